package issuer

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatehouse/extauthz"
	"gatehouse/mfa"
	"gatehouse/policy"
	"gatehouse/store"
	"gatehouse/token"
)

// --- helpers ---

func codeBody(code string) string {
	b, _ := json.Marshal(map[string]string{"code": code})
	return string(b)
}

func verifyBody(tok, code string) string {
	b, _ := json.Marshal(map[string]string{"mfa_token": tok, "code": code})
	return string(b)
}

// code is the TOTP code of secret at the env's clock moved by d.
func (e *env) code(secret []byte, d time.Duration) string {
	e.t.Helper()
	c, err := mfa.Code(secret, e.clock.Now().Add(d))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// wrongCode is a six-digit code that matches no step mfa.Match accepts now.
func (e *env) wrongCode(secret []byte) string {
	e.t.Helper()
	taken := map[string]bool{}
	for _, d := range []time.Duration{-mfa.Period, 0, mfa.Period} {
		taken[e.code(secret, d)] = true
	}
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%06d", i); !taken[c] {
			return c
		}
	}
}

// setup calls POST /auth/mfa/setup and returns the decoded response.
func (e *env) setup(access string) (secret []byte, body map[string]string) {
	e.t.Helper()
	rec := e.do(req{method: "POST", path: "/auth/mfa/setup", bearer: access})
	if rec.Code != 200 {
		e.t.Fatalf("setup: status %d body %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body) != 3 {
		e.t.Fatalf("setup body %s: %v", rec.Body, err)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(body["secret"])
	if err != nil || len(secret) != mfa.SecretSize {
		e.t.Fatalf("secret %q: %v", body["secret"], err)
	}
	return secret, body
}

func (e *env) confirmRaw(access, code string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/auth/mfa/confirm", bearer: access, body: codeBody(code)})
}

func (e *env) disableRaw(access, code string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/auth/mfa/disable", bearer: access, body: codeBody(code)})
}

// enrol turns MFA on for user over the HTTP API, confirming with the code of the current step. It returns the
// secret, the backup codes and the (password-only) session that enrolled.
func (e *env) enrol(user, pw string) (secret []byte, backup []string, sess Tokens) {
	e.t.Helper()
	sess = e.login(user, pw)
	secret, _ = e.setup(sess.AccessToken)
	rec := e.confirmRaw(sess.AccessToken, e.code(secret, 0))
	var got struct {
		BackupCodes []string `json:"backup_codes"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil {
		e.t.Fatalf("confirm: status %d body %s", rec.Code, rec.Body)
	}
	return secret, got.BackupCodes, sess
}

// mfaLogin logs in a user with MFA on and returns the mfa_token, checking the response shape.
func (e *env) mfaLogin(user, pw string) string {
	e.t.Helper()
	rec := e.loginRaw(user, pw)
	var m map[string]any
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
		e.t.Fatalf("login: status %d body %s", rec.Code, rec.Body)
	}
	tok, _ := m["mfa_token"].(string)
	if m["mfa_required"] != true || tok == "" || m["expires_in"] != float64(300) || len(m) != 3 {
		e.t.Fatalf("login with MFA on answered %s", rec.Body)
	}
	return tok
}

func (e *env) verifyRaw(tok, code string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/auth/mfa/verify", body: verifyBody(tok, code)})
}

// wantError asserts an error response with status and code.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if got := errorOf(t, rec); got != code {
		t.Fatalf("error %q, want %q", got, code)
	}
}

const sidecarPolicy = `
roles:
  user: {permissions: [read:app]}
  admin: {inherits: [user]}
routes:
  - name: app
    match: {path_prefix: /app}
    authenticated: true
`

// sidecar is the real ext_authz decision server over the env's keys, store and clock.
func (e *env) sidecar() *extauthz.Server {
	e.t.Helper()
	p, err := policy.Compile("policy.yaml", []byte(sidecarPolicy))
	if err != nil {
		e.t.Fatal(err)
	}
	srv, err := extauthz.New(extauthz.Config{Policy: p, Verifier: e.verifier, Revocations: e.store,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Now: e.clock.Now, CacheSize: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	return srv
}

// sidecarStatus is the HTTP status the sidecar tells Envoy for GET /app/x with tok (200: allowed).
func sidecarStatus(t *testing.T, srv *extauthz.Server, tok string) int {
	t.Helper()
	resp, err := srv.Check(context.Background(), extauthz.NewCheckRequest("GET", "app.example.test", "/app/x",
		map[string]string{"authorization": "Bearer " + tok}))
	if err != nil {
		t.Fatalf("Check returned an error: %v", err)
	}
	if resp.GetOkResponse() != nil {
		return 200
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode())
}

// --- flows, against memstore and Redis ---

func TestMFAFlows(t *testing.T) {
	flows := []flow{
		{name: "LoginThenVerify", run: testMFALoginThenVerify},
		{name: "TOTPWindowAndReplay", run: testMFAWindowAndReplay},
		{name: "TokenSingleUse", run: testMFATokenSingleUse},
		{name: "Lockout", run: testMFALockout},
		{name: "BackupCodes", run: testMFABackupCodes},
		{name: "Disable", run: testMFADisable},
		{name: "DisableWithBackupCode", run: testMFADisableWithBackupCode},
		{name: "EnableEndsOtherSessions", run: testMFAEnableEndsOtherSessions},
		{name: "SetupAndConfirm", run: testMFASetupAndConfirm},
		{name: "UserChangedBetweenSteps", run: testMFAUserChangedBetweenSteps},
		{name: "TokenRefusedElsewhere", run: testMFATokenRefusedElsewhere},
		{name: "WrongKeyIs500", run: testMFAWrongKeyIs500},
		{name: "PendingSetupExpires", run: testMFAPendingExpires, timeTravel: true},
		{name: "FailureWindowExpires", run: testMFAFailureWindowExpires, timeTravel: true},
	}
	runFlows(t, flows)
}

func testMFALoginThenVerify(t *testing.T, e *env) {
	secret, backup, _ := e.enrol("alice", alicePW)
	if len(backup) != mfa.BackupCodeCount {
		t.Fatalf("%d backup codes", len(backup))
	}
	e.clock.Advance(mfa.Period) // the enrolling code's step is spent
	before, _ := e.store.ListSessions(context.Background(), "u-alice")

	tok := e.mfaLogin("Alice", alicePW)
	c := e.claims(tok, token.MFA)
	if c.Subject != "u-alice" || c.ID == "" || len(c.SessionID) < 22 || c.Roles != nil ||
		!c.ExpiresAt.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Errorf("mfa_token claims %+v", c)
	}
	if _, err := e.store.GetSession(context.Background(), c.SessionID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the mfa_token's sid names a session: %v", err)
	}
	if after, _ := e.store.ListSessions(context.Background(), "u-alice"); len(after) != len(before) {
		t.Errorf("login with MFA on created a session (%d -> %d)", len(before), len(after))
	}

	tr := e.tokens(e.verifyRaw(tok, e.code(secret, 0)))
	if tr.SessionID == c.SessionID || tr.TokenType != "Bearer" || tr.ExpiresIn != 15*60 {
		t.Errorf("token response %+v", tr)
	}
	ac := e.claims(tr.AccessToken, token.Access)
	if ac.Subject != "u-alice" || ac.SessionID != tr.SessionID || ac.Username != "Alice" {
		t.Errorf("access claims %+v", ac)
	}
	if !e.sidecarAllows(tr.AccessToken) || sidecarStatus(t, e.sidecar(), tr.AccessToken) != 200 {
		t.Error("the access token after MFA is refused")
	}
	e.tokens(e.refreshRaw(tr.RefreshToken))
	if got := e.auditLines(EventMFAVerify); len(got) != 1 || got[0]["outcome"] != OutcomeSuccess ||
		got[0]["method"] != methodTOTP || got[0]["mfa_attempt"] != c.SessionID || got[0]["session_id"] != tr.SessionID {
		t.Errorf("verify audit %v", got)
	}
	logins := e.auditLines(EventLogin)
	if l := logins[len(logins)-2]; l["outcome"] != OutcomeMFARequired {
		t.Errorf("password step audit %v", l)
	}
	if l := logins[len(logins)-1]; l["outcome"] != OutcomeSuccess || l["reason"] != "mfa_totp" || l["session_id"] != tr.SessionID {
		t.Errorf("login audit %v", l)
	}
}

// testMFAWindowAndReplay: one step of drift either side, never two, and each step at most once, in order.
func testMFAWindowAndReplay(t *testing.T, e *env) {
	secret, _, _ := e.enrol("alice", alicePW)
	e.clock.Advance(4 * mfa.Period) // the enrolling step is well behind
	steps := []struct {
		name   string
		offset time.Duration
		status int
		code   string // error code; "" for success
	}{
		{"two steps back", -2 * mfa.Period, 401, CodeInvalidCode},
		{"two steps ahead", 2 * mfa.Period, 401, CodeInvalidCode},
		{"one step back", -mfa.Period, 200, ""},
		{"current step", 0, 200, ""},
		{"current step again", 0, 401, CodeCodeReplayed},
		{"an older step after a newer one", -mfa.Period, 401, CodeCodeReplayed},
		{"one step ahead", mfa.Period, 200, ""},
		{"the current step after the next one", 0, 401, CodeCodeReplayed},
	}
	for _, s := range steps {
		tok := e.mfaLogin("alice", alicePW)
		rec := e.verifyRaw(tok, e.code(secret, s.offset))
		if s.code == "" {
			if rec.Code != 200 {
				t.Fatalf("%s: status %d body %s", s.name, rec.Code, rec.Body)
			}
			continue
		}
		if rec.Code != s.status || errorOf(t, rec) != s.code {
			t.Fatalf("%s: status %d body %s, want %d %s", s.name, rec.Code, rec.Body, s.status, s.code)
		}
	}
	// A replay does not burn the mfa_token: once the clock moves on, the next step's code works with it.
	tok := e.mfaLogin("alice", alicePW)
	wantError(t, e.verifyRaw(tok, e.code(secret, 0)), 401, CodeCodeReplayed)
	e.clock.Advance(2 * mfa.Period)
	e.tokens(e.verifyRaw(tok, e.code(secret, 0)))
	if got := e.auditLines(EventMFAReplay); len(got) != 4 || got[0]["user_id"] != "u-alice" || got[0]["via"] != EventMFAVerify {
		t.Errorf("replay audit lines %v", got)
	}
}

func testMFATokenSingleUse(t *testing.T, e *env) {
	secret, _, _ := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	tok := e.mfaLogin("alice", alicePW)
	wantError(t, e.verifyRaw(tok, e.wrongCode(secret)), 401, CodeInvalidCode) // does not burn it
	e.tokens(e.verifyRaw(tok, e.code(secret, 0)))
	wantError(t, e.verifyRaw(tok, e.code(secret, mfa.Period)), 401, CodeInvalidToken) // a fresh code, a spent token
	// The refusal came after the code was spent (claimed last): the next login needs the step after.
	wantError(t, e.verifyRaw(e.mfaLogin("alice", alicePW), e.code(secret, mfa.Period)), 401, CodeCodeReplayed)
}

func testMFALockout(t *testing.T, e *env) {
	secret, _, _ := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	early := e.mfaLogin("alice", alicePW)
	e.clock.Advance(time.Second)
	tok := e.mfaLogin("alice", alicePW)
	wrong := e.wrongCode(secret)
	for i := range 5 { // the fifth failure locks, and still gets its own refusal
		if rec := e.verifyRaw(tok, wrong); rec.Code != 401 || errorOf(t, rec) != CodeInvalidCode {
			t.Fatalf("failure %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	lockedAt := e.clock.Now()
	// Locked: everything is refused, the right code included, and Retry-After says when it ends.
	for _, code := range []string{e.code(secret, 0), wrong} {
		rec := e.verifyRaw(tok, code)
		wantError(t, rec, 429, CodeRateLimited)
		if got := rec.Header().Get("Retry-After"); got != "300" {
			t.Fatalf("Retry-After %q, want 300", got)
		}
	}
	e.clock.Advance(time.Second)
	during := e.mfaLogin("alice", alicePW) // the password still works; the token is issued during the lock
	if rec := e.verifyRaw(during, e.code(secret, 0)); rec.Code != 429 || rec.Header().Get("Retry-After") != "299" {
		t.Fatalf("during the lock: %d %s Retry-After %s", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	// The lock ends five minutes after it began.
	e.clock.Advance(lockedAt.Add(5 * time.Minute).Sub(e.clock.Now()))
	// Tokens issued before the lock began (or in its second) stay void, whatever code they bring.
	for name, old := range map[string]string{"issued before the failures": early, "the locked token": tok} {
		if rec := e.verifyRaw(old, e.code(secret, 0)); rec.Code != 401 || errorOf(t, rec) != CodeInvalidToken {
			t.Fatalf("%s after the lock: %d %s", name, rec.Code, rec.Body)
		}
	}
	// A token issued after the lock began works once the lock is over.
	tr := e.tokens(e.verifyRaw(during, e.code(secret, 0)))
	if !e.sidecarAllows(tr.AccessToken) {
		t.Error("access token after the lockout refused")
	}
	lines := e.auditLines(EventMFALockout)
	if len(lines) != 1 || lines[0]["user_id"] != "u-alice" || lines[0]["duration"] != "5m0s" {
		t.Errorf("lockout audit %v", lines)
	}
	var locked int
	for _, l := range e.auditLines(EventMFAVerify) {
		if l["outcome"] == OutcomeLocked {
			locked++
		}
	}
	if locked != 3 {
		t.Errorf("%d locked verify lines, want 3", locked)
	}
}

func testMFABackupCodes(t *testing.T, e *env) {
	_, backup, first := e.enrol("alice", alicePW)
	carol := e.login("carol", carolPW)
	e.clock.Advance(time.Second)
	tr := e.tokens(e.verifyRaw(e.mfaLogin("alice", alicePW), strings.ToUpper(backup[0]))) // case does not matter
	// A backup-code login keeps only its own session.
	if e.sidecarAllows(first.AccessToken) {
		t.Error("the session that existed before the backup-code login survived")
	}
	if rec := e.refreshRaw(first.RefreshToken); rec.Code != 401 {
		t.Errorf("refresh of the old session: %d", rec.Code)
	}
	if !e.sidecarAllows(tr.AccessToken) || !e.sidecarAllows(carol.AccessToken) {
		t.Error("the new session or another user's was revoked")
	}
	if list, _ := e.store.ListSessions(context.Background(), "u-alice"); len(list) != 1 || list[0].ID != tr.SessionID {
		t.Errorf("sessions after a backup-code login: %v", list)
	}
	used := e.auditLines(EventMFABackupUsed)
	if len(used) != 1 || used[0]["backup_codes_left"] != float64(9) || used[0]["session_id"] != tr.SessionID {
		t.Errorf("backup audit %v", used)
	}
	// Single use: the same code is refused, and the refusal leaves the token usable for another code.
	tok := e.mfaLogin("alice", alicePW)
	wantError(t, e.verifyRaw(tok, backup[0]), 401, CodeInvalidCode)
	tr2 := e.tokens(e.verifyRaw(tok, strings.ReplaceAll(backup[1], "-", " "))) // spaces and dashes do not matter
	if e.sidecarAllows(tr.AccessToken) || !e.sidecarAllows(tr2.AccessToken) {
		t.Error("the second backup-code login did not keep only its own session")
	}
	if enr, err := e.store.GetMFA(context.Background(), "u-alice"); err != nil || len(enr.BackupCodes) != 8 {
		t.Errorf("backup codes left: %v (%v)", enr.BackupCodes, err)
	}
}

func testMFADisable(t *testing.T, e *env) {
	secret, _, a := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	pending := e.mfaLogin("alice", alicePW) // a login in progress when MFA goes off
	b := e.tokens(e.verifyRaw(e.mfaLogin("alice", alicePW), e.code(secret, 0)))

	wantError(t, e.disableRaw(a.AccessToken, e.wrongCode(secret)), 400, CodeInvalidCode)
	wantError(t, e.disableRaw(a.AccessToken, e.code(secret, 0)), 400, CodeCodeReplayed) // spent by b's login
	wantError(t, e.disableRaw(a.AccessToken, ""), 400, CodeInvalidRequest)
	if rec := e.disableRaw(a.AccessToken, e.code(secret, mfa.Period)); rec.Code != 204 || rec.Body.Len() != 0 {
		t.Fatalf("disable: %d %s", rec.Code, rec.Body)
	}
	if !e.sidecarAllows(a.AccessToken) {
		t.Error("disabling MFA ended the current session")
	}
	if e.sidecarAllows(b.AccessToken) {
		t.Error("disabling MFA left another session alive")
	}
	if _, err := e.store.GetMFA(context.Background(), "u-alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("enrolment still stored: %v", err)
	}
	wantError(t, e.verifyRaw(pending, e.code(secret, 2*mfa.Period)), 401, CodeInvalidToken)
	e.login("alice", alicePW) // no second factor any more
	wantError(t, e.disableRaw(a.AccessToken, e.code(secret, 0)), 409, CodeMFANotEnabled)
	lines := e.auditLines(EventMFADisable)
	if l := lines[len(lines)-2]; l["outcome"] != OutcomeSuccess || l["method"] != methodTOTP || l["reason"] != "1_other_sessions_ended" {
		t.Errorf("disable audit %v", l)
	}
	// And on again: a fresh enrolment works.
	e.clock.Advance(mfa.Period)
	secret2, _ := e.setup(a.AccessToken)
	if rec := e.confirmRaw(a.AccessToken, e.code(secret2, 0)); rec.Code != 200 {
		t.Fatalf("re-enrol: %d %s", rec.Code, rec.Body)
	}
}

func testMFADisableWithBackupCode(t *testing.T, e *env) {
	_, backup, a := e.enrol("alice", alicePW)
	other := e.login("carol", carolPW)
	if rec := e.disableRaw(a.AccessToken, backup[3]); rec.Code != 204 {
		t.Fatalf("disable with a backup code: %d %s", rec.Code, rec.Body)
	}
	if !e.sidecarAllows(a.AccessToken) || !e.sidecarAllows(other.AccessToken) {
		t.Error("disable revoked the current session or another user's")
	}
	if got := e.auditLines(EventMFABackupUsed); len(got) != 1 {
		t.Errorf("backup audit %v", got)
	}
}

func testMFAEnableEndsOtherSessions(t *testing.T, e *env) {
	other := e.login("alice", alicePW)
	carol := e.login("carol", carolPW)
	_, _, cur := e.enrol("alice", alicePW)
	if e.sidecarAllows(other.AccessToken) {
		t.Error("a password-only session survived enabling MFA")
	}
	if !e.sidecarAllows(cur.AccessToken) || !e.sidecarAllows(carol.AccessToken) {
		t.Error("enabling MFA ended the current session or another user's")
	}
	if got := e.auditLines(EventMFAEnable); len(got) != 1 || got[0]["outcome"] != OutcomeSuccess || got[0]["reason"] != "1_other_sessions_ended" {
		t.Errorf("enable audit %v", got)
	}
}

func testMFASetupAndConfirm(t *testing.T, e *env) {
	a := e.login("alice", alicePW)
	wantError(t, e.confirmRaw(a.AccessToken, "123456"), 404, CodeMFASetupNotFound)
	first, _ := e.setup(a.AccessToken)
	second, body := e.setup(a.AccessToken) // replaces the first
	if body["otpauth_uri"] == "" || body["qr_png"] == "" {
		t.Fatalf("setup body %v", body)
	}
	if c1 := e.code(first, 0); c1 != e.code(second, 0) {
		wantError(t, e.confirmRaw(a.AccessToken, c1), 400, CodeInvalidCode)
	}
	wantError(t, e.confirmRaw(a.AccessToken, "12345"), 400, CodeInvalidCode)
	wantError(t, e.do(req{method: "POST", path: "/auth/mfa/confirm", bearer: a.AccessToken, body: `{}`}), 400, CodeInvalidRequest)
	wantError(t, e.do(req{method: "POST", path: "/auth/mfa/confirm", bearer: a.AccessToken, body: `{"code":"1","extra":"x"}`}), 400, CodeInvalidRequest)
	confirmCode := e.code(second, 0)
	rec := e.confirmRaw(a.AccessToken, confirmCode)
	var got map[string][]string
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &got) != nil || len(got) != 1 {
		t.Fatalf("confirm: %d %s", rec.Code, rec.Body)
	}
	shape := regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$`)
	seen := map[string]bool{}
	for _, c := range got["backup_codes"] {
		if !shape.MatchString(c) || seen[c] {
			t.Errorf("backup code %q malformed or repeated", c)
		}
		seen[c] = true
	}
	if len(seen) != mfa.BackupCodeCount {
		t.Fatalf("%d backup codes", len(seen))
	}
	// At rest: the secret sealed, the backup codes hashed.
	enr, err := e.store.GetMFA(context.Background(), "u-alice")
	if err != nil || strings.Contains(string(enr.Secret), string(second)) || len(enr.BackupCodes) != mfa.BackupCodeCount {
		t.Fatalf("stored enrolment %+v (%v)", enr, err)
	}
	if plain, err := e.mfaKeys.Open("u-alice", enr.Secret); err != nil || string(plain) != string(second) {
		t.Errorf("sealed secret does not open to the enrolled one: %v", err)
	}
	for _, h := range enr.BackupCodes {
		if seen[h] {
			t.Error("a backup code is stored in clear")
		}
	}
	if _, err := e.store.GetPendingMFA(context.Background(), "u-alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pending secret left behind: %v", err)
	}
	wantError(t, e.do(req{method: "POST", path: "/auth/mfa/setup", bearer: a.AccessToken}), 409, CodeMFAAlreadyEnabled)
	wantError(t, e.confirmRaw(a.AccessToken, confirmCode), 409, CodeMFAAlreadyEnabled)
	// The confirming code's step is spent: it cannot log in.
	wantError(t, e.verifyRaw(e.mfaLogin("alice", alicePW), confirmCode), 401, CodeCodeReplayed)
}

func testMFAUserChangedBetweenSteps(t *testing.T, e *env) {
	h := testHashes(t)
	cases := map[string]string{
		"disabled": fmt.Sprintf(`{id: u-alice, username: alice, password_hash: %q, disabled: true}`, h[alicePW]),
		"removed":  fmt.Sprintf(`{id: u-carol, username: carol, password_hash: %q}`, h[carolPW]),
	}
	secret, _, _ := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	for name, entry := range cases {
		tok := e.mfaLogin("alice", alicePW)
		e.srv.SetUsers(directory(t, entry))
		wantError(t, e.verifyRaw(tok, e.code(secret, 0)), 401, CodeInvalidToken)
		e.srv.SetUsers(directory(t))
		if got := e.auditLines(EventMFAVerify); got[len(got)-1]["reason"] != "user_"+name {
			t.Errorf("%s: audit %v", name, got[len(got)-1])
		}
	}
}

// testMFATokenRefusedElsewhere: a partly authenticated login grants nothing: the mfa_token is refused by the
// sidecar, by refresh and by every Bearer endpoint, and none of that spends it.
func testMFATokenRefusedElsewhere(t *testing.T, e *env) {
	secret, _, _ := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	tok := e.mfaLogin("alice", alicePW)

	if got := sidecarStatus(t, e.sidecar(), tok); got != 401 {
		t.Errorf("ext_authz answered %d for an mfa_token", got)
	}
	for _, typ := range []token.Type{token.Access, token.Refresh} {
		if _, err := e.verifier.Verify(tok, typ); !errors.Is(err, token.ErrWrongType) {
			t.Errorf("Verify as %s: %v", typ, err)
		}
	}
	wantError(t, e.refreshRaw(tok), 401, CodeInvalidToken)
	for _, r := range []req{
		{method: "GET", path: "/auth/sessions"},
		{method: "DELETE", path: "/auth/sessions/x"},
		{method: "POST", path: "/auth/logout"},
		{method: "POST", path: "/auth/logout/all"},
		{method: "POST", path: "/auth/mfa/setup"},
		{method: "POST", path: "/auth/mfa/confirm", body: codeBody("123456")},
		{method: "POST", path: "/auth/mfa/disable", body: codeBody(e.code(secret, 0))},
	} {
		r.bearer = tok
		rec := e.do(r)
		if rec.Code != 401 || errorOf(t, rec) != CodeInvalidToken || rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s with an mfa_token: %d %s", r.method, r.path, rec.Code, rec.Body)
		}
	}
	// The Go API refuses MFA claims handed over as if they were access claims.
	mc := e.claims(tok, token.MFA)
	ctx := context.Background()
	if _, err := e.srv.ListSessions(ctx, mc); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("ListSessions with MFA claims: %v", err)
	}
	if _, err := e.srv.SetupMFA(ctx, mc, testIP); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("SetupMFA with MFA claims: %v", err)
	}
	if _, err := e.srv.VerifyAccess(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("VerifyAccess of an mfa_token: %v", err)
	}
	// Nothing above spent the token or the code.
	e.tokens(e.verifyRaw(tok, e.code(secret, 0)))
}

// testMFAWrongKeyIs500: a secret that does not decrypt (another mfa.encryption_key_file) fails closed with a 500
// and an error line; it never skips the second factor, and it spends nothing.
func testMFAWrongKeyIs500(t *testing.T, e *env) {
	secret, backup, a := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	otherKey := make([]byte, mfa.KeySize) // all zeros: not the env's random key
	keys, err := mfa.NewKeys(otherKey, strings.NewReader(strings.Repeat("n", 1<<10)))
	if err != nil {
		t.Fatal(err)
	}
	wrong := e.variant(func(c *Config) { c.MFA.Keys = keys })
	before, _ := e.store.ListSessions(context.Background(), "u-alice")

	rec := e.doWith(wrong, req{method: "POST", path: "/auth/login", body: loginBody("alice", alicePW)})
	var m map[string]any
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &m) != nil || m["mfa_required"] != true {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	tok := m["mfa_token"].(string)
	for _, code := range []string{e.code(secret, 0), backup[0]} {
		rec := e.doWith(wrong, req{method: "POST", path: "/auth/mfa/verify", body: verifyBody(tok, code)})
		wantError(t, rec, 500, CodeInternal)
	}
	wantError(t, e.doWith(wrong, req{method: "POST", path: "/auth/mfa/disable", bearer: a.AccessToken,
		body: codeBody(e.code(secret, 0))}), 500, CodeInternal)
	if after, _ := e.store.ListSessions(context.Background(), "u-alice"); len(after) != len(before) {
		t.Error("a session was created without a checked second factor")
	}
	if !strings.Contains(e.logs.String(), `"event":"issuer.mfa_unseal_failed"`) {
		t.Error("no error line for the undecryptable secret")
	}
	// The right key still works with the same token and code: nothing was spent.
	e.tokens(e.verifyRaw(tok, e.code(secret, 0)))
}

func testMFAPendingExpires(t *testing.T, e *env) {
	a := e.login("alice", alicePW)
	secret, _ := e.setup(a.AccessToken)
	e.clock.Advance(5 * time.Minute)
	wantError(t, e.confirmRaw(a.AccessToken, e.code(secret, 0)), 404, CodeMFASetupNotFound)
}

func testMFAFailureWindowExpires(t *testing.T, e *env) {
	secret, _, _ := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	tok := e.mfaLogin("alice", alicePW)
	for range 4 {
		wantError(t, e.verifyRaw(tok, e.wrongCode(secret)), 401, CodeInvalidCode)
	}
	e.clock.Advance(5 * time.Minute) // the fixed window is over; so is the token (5m), so log in again
	tok = e.mfaLogin("alice", alicePW)
	for range 4 {
		wantError(t, e.verifyRaw(tok, e.wrongCode(secret)), 401, CodeInvalidCode)
	}
	e.tokens(e.verifyRaw(tok, e.code(secret, 0)))
}

// --- single-backend tests ---

// TestMFAGoAPI drives the portal's Go API and checks its typed errors.
func TestMFAGoAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secret, backup, _ := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)

	if _, err := e.srv.Authenticate(ctx, "alice", "wrong", testIP, "ua"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := e.srv.Authenticate(ctx, "", alicePW, testIP, "ua"); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("no username: %v", err)
	}
	if res, err := e.srv.Authenticate(ctx, "carol", carolPW, "", "ua"); err != nil || res.Tokens == nil || res.MFA != nil {
		t.Fatalf("password-only login: %+v %v", res, err)
	}
	challenge := func() string {
		t.Helper()
		res, err := e.srv.Authenticate(ctx, "alice", alicePW, testIP, "portal")
		if err != nil || res.MFA == nil || res.Tokens != nil || res.MFA.ExpiresIn != 300 {
			t.Fatalf("MFA login: %+v %v", res, err)
		}
		return res.MFA.Token
	}
	tok := challenge()
	type check struct {
		name     string
		code     string
		is, isnt []error
	}
	for _, c := range []check{
		{"wrong code", e.wrongCode(secret), []error{ErrMFACodeInvalid}, []error{ErrCodeReplayed, ErrInvalidToken}},
		{"enrolling step", e.code(secret, -mfa.Period), []error{ErrCodeReplayed, ErrMFACodeInvalid}, []error{ErrInvalidToken}},
		{"spent backup code", "zzzzz-zzzzz", []error{ErrMFACodeInvalid}, nil},
	} {
		_, err := e.srv.VerifyMFA(ctx, tok, c.code, testIP, "portal")
		for _, want := range c.is {
			if !errors.Is(err, want) {
				t.Errorf("%s: %v is not %v", c.name, err, want)
			}
		}
		for _, not := range c.isnt {
			if errors.Is(err, not) {
				t.Errorf("%s: %v is %v", c.name, err, not)
			}
		}
	}
	tr, err := e.srv.VerifyMFA(ctx, tok, e.code(secret, 0), testIP, "portal")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.VerifyMFA(ctx, tok, backup[0], testIP, "portal"); !errors.Is(err, ErrMFATokenInvalid) || !errors.Is(err, ErrInvalidToken) {
		t.Errorf("spent token: %v", err)
	}

	c, err := e.srv.VerifyAccess(ctx, tr.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.srv.ListSessions(ctx, c)
	if err != nil || len(list) != 2 || !list[1].Current || list[1].UserAgent != "portal" || list[1].ClientIP != testIP {
		t.Fatalf("sessions %+v %v", list, err)
	}
	// 9: the spent token's attempt above used backup[0] before its claim failed (documented on VerifyMFA).
	if st, err := e.srv.MFAStatus(ctx, c); err != nil || !st.Enabled || st.BackupCodesLeft != 9 || st.EnabledAt.IsZero() {
		t.Errorf("status %+v %v", st, err)
	}
	if _, err := e.srv.SetupMFA(ctx, c, testIP); !errors.Is(err, ErrMFAAlreadyEnabled) {
		t.Errorf("setup while enabled: %v", err)
	}
	if err := e.srv.RevokeSession(ctx, c, "nope", testIP); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: %v", err)
	}
	if err := e.srv.Logout(ctx, nil, testIP); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("nil claims: %v", err)
	}
	if _, err := e.srv.Refresh(ctx, "", testIP, "portal"); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("empty refresh token: %v", err)
	}

	// Expiry: ErrMFATokenExpired, which is also ErrMFATokenInvalid and ErrInvalidToken.
	late := challenge()
	e.clock.Advance(5*time.Minute + 31*time.Second) // past exp + leeway
	_, err = e.srv.VerifyMFA(ctx, late, e.code(secret, 0), testIP, "portal")
	for _, want := range []error{ErrMFATokenExpired, ErrMFATokenInvalid, ErrInvalidToken} {
		if !errors.Is(err, want) {
			t.Errorf("expired token: %v is not %v", err, want)
		}
	}

	// Logout-all also voids the mfa_tokens of logins in progress.
	inFlight := challenge()
	e.clock.Advance(time.Second)
	if err := e.srv.LogoutAll(ctx, c, testIP); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.VerifyMFA(ctx, inFlight, e.code(secret, 0), testIP, "portal"); !errors.Is(err, ErrMFATokenInvalid) {
		t.Errorf("mfa_token after logout-all: %v", err)
	}

	// Lockout: *RateLimitedError with the remaining time, for verify and disable alike.
	e.clock.Advance(time.Second)
	tok = challenge()
	for range 5 {
		if _, err := e.srv.VerifyMFA(ctx, tok, e.wrongCode(secret), testIP, "portal"); !errors.Is(err, ErrMFACodeInvalid) {
			t.Fatalf("wrong code: %v", err)
		}
	}
	_, err = e.srv.VerifyMFA(ctx, tok, e.code(secret, 0), testIP, "portal")
	var rl *RateLimitedError
	if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) || rl.RetryAfter != 5*time.Minute ||
		!rl.Until.Equal(e.clock.Now().Add(5*time.Minute)) {
		t.Fatalf("locked verify: %v (%+v)", err, rl)
	}
	if st, code, msg := PublicError(err); st != 429 || code != CodeRateLimited || msg == "" {
		t.Errorf("PublicError: %d %s %q", st, code, msg)
	}
	tr2 := e.login("carol", carolPW)
	c2, _ := e.srv.VerifyAccess(ctx, tr2.AccessToken)
	if err := e.srv.DisableMFA(ctx, c2, "123456", testIP); !errors.Is(err, ErrMFANotEnabled) {
		t.Errorf("disable without MFA: %v", err)
	}
	if st, code, _ := PublicError(errors.New("boom")); st != 500 || code != CodeInternal {
		t.Errorf("PublicError of a foreign error: %d %s", st, code)
	}
}

// TestMFALockoutBlocksDisable: while MFA is locked, disable refuses even a right code.
func TestMFALockoutBlocksDisable(t *testing.T) {
	e := newEnv(t)
	secret, _, a := e.enrol("alice", alicePW)
	e.clock.Advance(mfa.Period)
	for range 5 {
		wantError(t, e.disableRaw(a.AccessToken, e.wrongCode(secret)), 400, CodeInvalidCode)
	}
	rec := e.disableRaw(a.AccessToken, e.code(secret, 0))
	wantError(t, rec, 429, CodeRateLimited)
	if got := rec.Header().Get("Retry-After"); got != "300" {
		t.Errorf("Retry-After %q, want 300", got)
	}
	// The failures at disable lock verify too: it is one counter per user.
	wantError(t, e.verifyRaw(e.mfaLogin("alice", alicePW), e.code(secret, 0)), 429, CodeRateLimited)
	e.clock.Advance(5 * time.Minute)
	if rec := e.disableRaw(a.AccessToken, e.code(secret, 0)); rec.Code != 204 {
		t.Fatalf("disable after the lock: %d %s", rec.Code, rec.Body)
	}
}

// TestMFAFailedPasswordRevealsNothing: a wrong password gets the same answer whether MFA is on or not.
func TestMFAFailedPasswordRevealsNothing(t *testing.T) {
	e := newEnv(t)
	e.enrol("alice", alicePW)
	var first string
	for _, user := range []string{"alice", "carol", "mallory"} {
		rec := e.do(req{method: "POST", path: "/auth/login", body: loginBody(user, "wrong"), remote: "198.51.100.1:1"})
		resp := fmt.Sprint(rec.Code, "|", rec.Body.String(), "|", rec.Header())
		if first == "" {
			first = resp
		} else if resp != first {
			t.Errorf("%s: %s differs from %s", user, resp, first)
		}
	}
}

// TestMFAAuditCarriesNoSecrets runs every MFA flow and checks the log holds no secret, code or token, and has a
// line for each event.
func TestMFAAuditCarriesNoSecrets(t *testing.T) {
	e := newEnv(t)
	a := e.login("alice", alicePW)
	secret, setupBody := e.setup(a.AccessToken)
	confirmCode := e.code(secret, 0)
	rec := e.confirmRaw(a.AccessToken, confirmCode)
	var got struct {
		BackupCodes []string `json:"backup_codes"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	e.clock.Advance(mfa.Period)
	secrets := []string{setupBody["secret"], setupBody["otpauth_uri"], setupBody["qr_png"][:64], string(secret)}
	codes := []string{confirmCode}
	for _, bc := range got.BackupCodes {
		secrets = append(secrets, bc, mfa.NormaliseBackupCode(bc))
	}
	tok := e.mfaLogin("alice", alicePW)
	tr := e.tokens(e.verifyRaw(tok, e.code(secret, 0)))
	codes = append(codes, e.code(secret, 0))
	tok2 := e.mfaLogin("alice", alicePW)
	e.verifyRaw(tok2, e.code(secret, 0)) // replay
	e.tokens(e.verifyRaw(tok2, got.BackupCodes[0]))
	tok3 := e.mfaLogin("alice", alicePW)
	for range 6 {
		w := e.wrongCode(secret)
		codes = append(codes, w)
		e.verifyRaw(tok3, w)
	}
	e.clock.Advance(5 * time.Minute)
	b := e.login("carol", carolPW)
	e.do(req{method: "POST", path: "/auth/mfa/disable", bearer: b.AccessToken, body: codeBody("123456")})
	c := e.tokens(e.verifyRaw(e.mfaLogin("alice", alicePW), got.BackupCodes[1]))
	e.disableRaw(c.AccessToken, got.BackupCodes[2])
	secrets = append(secrets, a.AccessToken, tr.AccessToken, tr.RefreshToken, tok, tok2, tok3, c.AccessToken)

	log := e.logs.String()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log contains a secret (%.8s...)", s)
		}
		if i := strings.LastIndexByte(s, '.'); i > 0 && strings.Contains(log, s[i+1:]) {
			t.Error("the log contains a token signature")
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q", line)
		}
		for k, v := range m {
			for _, code := range codes {
				if v == code {
					t.Errorf("member %s holds a typed code", k)
				}
			}
		}
		if ev, _ := m["event"].(string); ev != "" {
			out, _ := m["outcome"].(string)
			seen[ev+"/"+out] = true
		}
	}
	for _, want := range []string{
		"login/mfa_required", "mfa_setup/success", "mfa_enable/success", "mfa_verify/success", "mfa_verify/invalid_code",
		"mfa_verify/replayed", "mfa_verify/locked", "mfa_replay/replayed", "mfa_backup_used/success",
		"mfa_lockout/locked", "mfa_disable/success", "mfa_disable/invalid", "session_revoke/success",
	} {
		if !seen[want] {
			t.Errorf("no %s audit line", want)
		}
	}
	body := e.do(req{method: "GET", path: "/metrics"}).Body.String()
	for _, want := range []string{
		`gatehouse_mfa_verify_total{outcome="success"} 3`,
		`gatehouse_mfa_verify_total{outcome="replayed"} 1`,
		`gatehouse_mfa_verify_total{outcome="invalid_code"} 5`,
		`gatehouse_mfa_verify_total{outcome="locked"} 1`,
		`gatehouse_mfa_lockouts_total 1`,
		`gatehouse_logins_total{outcome="mfa_required"} 4`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

type downDeletePendingMFA struct{ MFAStore }

func (downDeletePendingMFA) DeletePendingMFA(context.Context, string) error {
	return errors.New("mfa store down")
}

// TestMFAConfirmSpendsItsCode: a confirm whose code was accepted spends that step even when a later write fails,
// so retrying with the same code is a replay (400 code_replayed, audited via mfa_enable), never a second use.
func TestMFAConfirmSpendsItsCode(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MFA.Store = downDeletePendingMFA{c.MFA.Store} })
	a := e.login("alice", alicePW)
	secret, _ := e.setup(a.AccessToken)
	code := e.code(secret, 0)
	wantError(t, e.confirmRaw(a.AccessToken, code), 503, CodeUnavailable)
	wantError(t, e.confirmRaw(a.AccessToken, code), 400, CodeCodeReplayed)
	if got := e.auditLines(EventMFAReplay); len(got) != 1 || got[0]["via"] != EventMFAEnable {
		t.Errorf("replay audit %v", got)
	}
	if got := e.auditLines(EventMFAEnable); len(got) != 2 || got[1]["outcome"] != OutcomeReplayed {
		t.Errorf("enable audit %v", got)
	}
}
