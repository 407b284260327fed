package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse/password"
	"gatehouse/token"
)

// runCLI runs the binary's entry point in-process.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(&env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsageAndUnknownCommands(t *testing.T) {
	code, out, _ := runCLI(t, "", "--help")
	if code != 0 || !strings.Contains(out, "policy lint") || !strings.Contains(out, "keys generate") {
		t.Errorf("help: %d %q", code, out)
	}
	code, _, errOut := runCLI(t, "", "frobnicate")
	if code != 2 || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	for _, cmd := range [][]string{{"serve", "--help"}, {"policy", "lint", "-h"}, {"check", "--help"}, {"keys", "generate", "--help"}} {
		code, _, errOut := runCLI(t, "", cmd...)
		if code != 0 || !strings.Contains(errOut, "Usage: gatehouse "+strings.Join(cmd[:len(cmd)-1], " ")) {
			t.Errorf("%v: %d %q", cmd, code, errOut)
		}
	}
	if code, _, _ := runCLI(t, "", "policy", "lint"); code != 2 {
		t.Errorf("missing argument must be a usage error, got %d", code)
	}
	if code, _, _ := runCLI(t, "", "policy", "lint", "--nope", "x"); code != 2 {
		t.Errorf("unknown flag must be a usage error, got %d", code)
	}
}

const goodPolicy = `roles:
  user: {permissions: [read:users]}
routes:
  - name: auth
    match: {path_prefix: /auth}
    public: true
  - name: profile
    match: {methods: [GET], path: /users/profile}
    permissions: [read:users]
`

func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", goodPolicy)
	code, out, _ := runCLI(t, "", "policy", "lint", good)
	if code != 0 || out != "" {
		t.Errorf("clean policy: %d %q", code, out)
	}
	warn := writeFile(t, dir, "warn.yaml", goodPolicy+"  - name: shadowed\n    match: {path: /auth/login}\n    public: true\n")
	code, out, _ = runCLI(t, "", "policy", "lint", warn)
	if code != 0 || !strings.Contains(out, warn+":10: warning:") {
		t.Errorf("warnings only must exit 0 and print FILE:LINE: warning: %d %q", code, out)
	}
	bad := writeFile(t, dir, "bad.yaml", goodPolicy+"  - name: x\n    match: {path: /x}\n    roles: [superuser]\n")
	code, out, _ = runCLI(t, "", "policy", "lint", bad)
	if code != 1 || !strings.Contains(out, bad+":") || !strings.Contains(out, "superuser") {
		t.Errorf("errors must exit 1 with FILE:LINE: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, "", "policy", "lint", filepath.Join(dir, "missing.yaml")); code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("missing file: %d %q", code, errOut)
	}
}

func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	pol := writeFile(t, dir, "p.yaml", goodPolicy)
	pass := writeFile(t, dir, "pass.yaml", `cases:
  - {name: login, method: POST, path: /auth/login, expect: allow, rule: auth}
  - {name: anon profile, method: GET, path: /users/profile, expect: deny, status: 401}
  - {name: user profile, method: GET, path: /users/profile, roles: [user], expect: allow}
`)
	code, out, _ := runCLI(t, "", "policy", "test", pol, pass)
	if code != 0 || strings.TrimSpace(out) != "3 passed, 0 failed" {
		t.Errorf("passing cases: %d %q", code, out)
	}
	fail := writeFile(t, dir, "fail.yaml", `cases:
  - {name: wrong status, method: GET, path: /users/profile, expect: deny, status: 403}
  - {name: fine, method: POST, path: /auth/x, expect: allow}
`)
	code, out, _ = runCLI(t, "", "policy", "test", pol, fail)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 2 || !strings.Contains(lines[0], `"wrong status"`) || !strings.Contains(lines[0], "401") ||
		lines[1] != "1 passed, 1 failed" {
		t.Errorf("failing case: %d %q", code, out)
	}
}

// The demo cases are the README's examples; CI runs them through make test as well.
func TestDemoPolicyCasesPass(t *testing.T) {
	code, out, errOut := runCLI(t, "", "policy", "test", "../../deploy/dev/policy.yaml", "../../deploy/dev/cases.yaml")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), " passed, 0 failed") {
		t.Errorf("demo cases: %d %s %s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "", "policy", "lint", "../../deploy/dev/policy.yaml"); code != 0 || out != "" {
		t.Errorf("demo policy lint: %d %q", code, out)
	}
}

func TestPolicyExplain(t *testing.T) {
	dir := t.TempDir()
	pol := writeFile(t, dir, "p.yaml", goodPolicy)
	code, out, _ := runCLI(t, "", "policy", "explain", pol, "--method", "GET", "--path", "/users/profile?x=1", "--roles", "user")
	for _, want := range []string{"/users/profile", `"profile"`, "p.yaml:7", "read:users", "allow"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	_, out, _ = runCLI(t, "", "policy", "explain", "--anonymous", "--path", "/users/profile", "--method", "GET", pol)
	if !strings.Contains(out, "401") {
		t.Errorf("anonymous explain:\n%s", out)
	}
	_, out, _ = runCLI(t, "", "policy", "explain", pol, "--path", "/a%2Fb")
	if !strings.Contains(out, "400") || !strings.Contains(out, "non_canonical_path") {
		t.Errorf("non-canonical explain:\n%s", out)
	}
	if code, _, _ := runCLI(t, "", "policy", "explain", pol, "--path", "/x", "--roles", "a", "--anonymous"); code != 2 {
		t.Errorf("--roles with --anonymous must be a usage error")
	}
}

func TestUserHash(t *testing.T) {
	code, out, _ := runCLI(t, "s3cret pass\n", "user", "hash")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	h, err := password.Parse(strings.TrimSpace(out))
	if err != nil || !h.Verify("s3cret pass") || h.Verify("s3cret pass\n") {
		t.Fatalf("hash %q does not verify exactly the password: %v", out, err)
	}
	if !strings.HasPrefix(out, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Errorf("not the default params: %s", out)
	}
	if code, _, _ := runCLI(t, "", "user", "hash"); code != 1 {
		t.Errorf("empty stdin must fail")
	}
}

func TestKeysGenerate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	code, out, errOut := runCLI(t, "", "keys", "generate", "--alg", "ES256", "--out", dir)
	if code != 0 {
		t.Fatalf("%d %s %s", code, out, errOut)
	}
	ks, err := token.LoadKeyDir(dir)
	if err != nil || !ks.CanSign() || ks.SigningAlg() != "ES256" {
		t.Fatalf("generated keys do not load: %v", err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", st.Mode().Perm())
	}
	if code, _, _ := runCLI(t, "", "keys", "generate", "--alg", "none", "--out", dir); code != 1 {
		t.Errorf("alg none accepted")
	}
}

func TestEnvoyCheck(t *testing.T) {
	code, out, _ := runCLI(t, "", "envoy", "check", "../../envoy/sidecar.yaml")
	if code != 0 || !strings.Contains(out, "sidecar.yaml: ok") {
		t.Errorf("shipped sidecar: %d %q", code, out)
	}
	code, out, _ = runCLI(t, "", "envoy", "check", "../../envoy/testdata/fail-open.yaml")
	if code != 0 || !strings.Contains(out, "warning:") || !strings.Contains(out, "fail") {
		t.Errorf("fail-open config: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, "", "envoy", "check", "../../envoy/testdata/unknown-type.yaml"); code != 1 || !strings.Contains(errOut, "unknown-type.yaml") {
		t.Errorf("invalid config: %d %q", code, errOut)
	}
}

// TestCheckCommand runs `gatehouse check` against a running decider: the decision, status, reason, rule, upstream
// headers for an allow; the response headers and body for a deny.
func TestCheckCommand(t *testing.T) {
	s := startServe(t, "")
	_, login := s.post(t, "/auth/login", `{"username":"alice","password":"alice-pw"}`, "")
	tok, _ := login["access_token"].(string)
	addr := s.authzAddr.String()

	code, out, errOut := runCLI(t, "", "check", "--addr", addr, "--path", "/users/profile", "--token", tok)
	for _, want := range []string{"decision: ALLOW", "status:   200", "reason:   allowed", "rule:     profile",
		"set x-user-id: u-1", "set x-username: alice", "set x-user-roles: user"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("allowed check lacks %q: %d\n%s%s", want, code, out, errOut)
		}
	}
	// --header passes any request header, the credentials included.
	if code, out, _ := runCLI(t, "", "check", "--addr", addr, "--path", "/users/profile", "--header", "Authorization=Bearer "+tok); code != 0 || !strings.Contains(out, "decision: ALLOW") {
		t.Errorf("token through --header: %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, "", "check", "--addr", addr, "--method", "DELETE", "--path", "/admin/users/u-1")
	for _, want := range []string{"decision: DENY", "status:   401 (Unauthenticated)", "reason:   token_missing", "rule:     delete-user",
		`www-authenticate: Bearer error="invalid_token"`, `body:     {"error":`} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("denied check lacks %q: %d\n%s", want, code, out)
		}
	}
	if code, _, _ := runCLI(t, "", "check", "--addr", addr, "--header", "no-equals-sign"); code != 2 {
		t.Errorf("a malformed --header must be a usage error, got %d", code)
	}
	if code, _, errOut := runCLI(t, "", "check", "--addr", "127.0.0.1:1", "--timeout", "500ms"); code != 1 || !strings.Contains(errOut, "127.0.0.1:1") {
		t.Errorf("unreachable server: %d %q", code, errOut)
	}
}
