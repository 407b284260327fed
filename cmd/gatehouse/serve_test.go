package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"gatehouse/extauthz"
	"gatehouse/internal/logbuf"
	"gatehouse/password"
	"gatehouse/store/redistest"
	"gatehouse/token"
)

// servedApp is `gatehouse serve` running in-process on loopback ports.
type servedApp struct {
	*app
	dir    string
	logs   *logbuf.Buffer
	authz  authv3.AuthorizationClient
	health healthpb.HealthClient
	base   string
}

// keyedDir returns a temporary config folder holding a fresh Ed25519 key pair in keys/.
func keyedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := token.WriteKeyPair(filepath.Join(dir, "keys"), "EdDSA", rand.Reader); err != nil {
		t.Fatal(err)
	}
	return dir
}

// demoDir is keyedDir plus the demo policy as policy.yaml.
func demoDir(t *testing.T) string {
	t.Helper()
	dir := keyedDir(t)
	policySrc, err := os.ReadFile("../../deploy/dev/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "policy.yaml", string(policySrc))
	return dir
}

// writeCheapUsers writes users.yaml with alice (user) and bob (admin), hashed with cheap parameters.
func writeCheapUsers(t *testing.T, dir string) {
	t.Helper()
	cheap := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	alice, _ := password.Hash("alice-pw", cheap, rand.Reader)
	bob, _ := password.Hash("bob-pw", cheap, rand.Reader)
	writeFile(t, dir, "users.yaml", fmt.Sprintf("users:\n  - {id: u-1, username: alice, password_hash: %q, roles: [user]}\n  - {id: u-2, username: bob, password_hash: %q, roles: [admin]}\n", alice, bob))
}

// launch writes cfgYAML as dir/gatehouse.yaml, starts the app on it and connects a gRPC client to the decider.
func launch(t *testing.T, dir, cfgYAML string) *servedApp {
	t.Helper()
	cfg := writeFile(t, dir, "gatehouse.yaml", cfgYAML)
	logs := &logbuf.Buffer{}
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.shutdown(5 * time.Second) })
	conn, err := grpc.NewClient(a.authzAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &servedApp{app: a, dir: dir, logs: logs, authz: authv3.NewAuthorizationClient(conn), health: healthpb.NewHealthClient(conn)}
	if a.issuerAddr != nil {
		s.base = "http://" + a.issuerAddr.String()
	}
	return s
}

// issuerConfig is the config of a full Gatehouse (issuer + decider) on loopback ports; extra adds keys.
func issuerConfig(extra string) string {
	return `authz: {listen: 127.0.0.1:0}
issuer: {listen: 127.0.0.1:0, url: https://login.gatehouse.test}
policy: policy.yaml
users: users.yaml
keys: {dir: keys}
` + extra
}

// startServe starts a full Gatehouse on the demo policy (real Redis when redisAddr is set).
func startServe(t *testing.T, redisAddr string) *servedApp {
	t.Helper()
	dir := demoDir(t)
	writeCheapUsers(t, dir)
	redis := ""
	if redisAddr != "" {
		redis = fmt.Sprintf("redis: {url: \"redis://%s/0\"}\n", redisAddr)
	}
	return launch(t, dir, issuerConfig(redis))
}

func (s *servedApp) post(t *testing.T, path, body, bearer string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(body))
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

// check asks the sidecar over gRPC, the way Envoy does, and returns the HTTP status and reason it decided.
func (s *servedApp) check(t *testing.T, method, path, tok string) (int, string) {
	t.Helper()
	hs := map[string]string{}
	if tok != "" {
		hs["authorization"] = "Bearer " + tok
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := s.authz.Check(ctx, extauthz.NewCheckRequest(method, "api.example.com", path, hs))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	reason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
	if resp.GetOkResponse() != nil {
		return 200, reason
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode()), reason
}

// TestServeEndToEnd is the issuer and the sidecar together on real Redis: log in over HTTP, use the token at the
// sidecar over gRPC, refresh, replay the spent refresh token, and see the sidecar deny the session.
func TestServeEndToEnd(t *testing.T) {
	s := startServe(t, redistest.Start(t))

	code, login := s.post(t, "/auth/login", `{"username":"ALICE","password":"alice-pw"}`, "")
	if code != 200 || login["token_type"] != "Bearer" || login["session_id"] == "" {
		t.Fatalf("login: %d %v", code, login)
	}
	access, refresh := login["access_token"].(string), login["refresh_token"].(string)
	if st, r := s.check(t, "GET", "/users/profile", access); st != 200 {
		t.Fatalf("sidecar with a fresh access token: %d %s", st, r)
	}
	if st, r := s.check(t, "DELETE", "/admin/users/u-9", access); st != 403 || r != "forbidden" {
		t.Fatalf("user deleting users: %d %s", st, r)
	}
	if st, r := s.check(t, "GET", "/users/profile", refresh); st != 401 || r != "token_wrong_type" {
		t.Fatalf("refresh token at the sidecar: %d %s", st, r)
	}

	code, rotated := s.post(t, "/auth/refresh", fmt.Sprintf(`{"refresh_token":%q}`, refresh), "")
	if code != 200 || rotated["refresh_token"] == refresh {
		t.Fatalf("refresh: %d %v", code, rotated)
	}
	newAccess := rotated["access_token"].(string)
	if st, _ := s.check(t, "GET", "/users/profile", newAccess); st != 200 {
		t.Fatalf("rotated access token: %d", st)
	}

	// The spent refresh token comes back: theft. 401, and the whole session is gone.
	if code, body := s.post(t, "/auth/refresh", fmt.Sprintf(`{"refresh_token":%q}`, refresh), ""); code != 401 {
		t.Fatalf("reused refresh token: %d %v", code, body)
	}
	for _, tok := range []string{access, newAccess} {
		if st, r := s.check(t, "GET", "/users/profile", tok); st != 401 || r != "token_revoked" {
			t.Fatalf("session access token after reuse detection: %d %s", st, r)
		}
	}
	if code, _ := s.post(t, "/auth/refresh", fmt.Sprintf(`{"refresh_token":%q}`, rotated["refresh_token"]), ""); code != 401 {
		t.Fatalf("the rotated refresh token must die with the session: %d", code)
	}
	if !strings.Contains(s.logs.String(), `"event":"refresh_reuse"`) {
		t.Errorf("no audit event for the reuse")
	}

	// Logout: another session, then the sidecar denies it.
	_, login2 := s.post(t, "/auth/login", `{"username":"bob","password":"bob-pw"}`, "")
	bobAccess := login2["access_token"].(string)
	if st, _ := s.check(t, "DELETE", "/admin/users/u-9", bobAccess); st != 200 {
		t.Fatalf("admin delete: %d", st)
	}
	if code, _ := s.post(t, "/auth/logout", "", bobAccess); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	if st, r := s.check(t, "DELETE", "/admin/users/u-9", bobAccess); st != 401 || r != "token_revoked" {
		t.Fatalf("after logout: %d %s", st, r)
	}
	for _, secret := range []string{"alice-pw", "bob-pw", access, refresh, bobAccess} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatalf("logs leak a secret")
		}
	}
}

func TestServeReloadsPolicyAndKeepsTheOldOneOnError(t *testing.T) {
	s := startServe(t, "")
	_, login := s.post(t, "/auth/login", `{"username":"alice","password":"alice-pw"}`, "")
	access := login["access_token"].(string)
	if st, _ := s.check(t, "GET", "/me", access); st != 200 {
		t.Fatalf("before reload: %d", st)
	}
	// A broken policy is refused; the running one keeps serving.
	writeFile(t, s.dir, "policy.yaml", "routes: [{name: x}]\n")
	s.reload()
	if st, _ := s.check(t, "GET", "/me", access); st != 200 {
		t.Fatalf("broken policy replaced the running one: %d", st)
	}
	if !strings.Contains(s.logs.String(), "serve.reload_failed") {
		t.Errorf("refused reload not logged")
	}
	// A good one replaces it.
	writeFile(t, s.dir, "policy.yaml", "roles:\n  user: {permissions: [p]}\n  admin: {permissions: [q]}\nroutes:\n  - name: me-admin\n    match: {path: /me}\n    roles: [admin]\n")
	s.reload()
	if st, r := s.check(t, "GET", "/me", access); st != 403 || r != "forbidden" {
		t.Fatalf("after reload: %d %s", st, r)
	}
}

func TestServeHealthAndDevMode(t *testing.T) {
	s := startServe(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if r, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health: %v %v", r, err)
	}
	for _, p := range []string{"/healthz", "/readyz", "/.well-known/jwks.json"} {
		resp, err := http.Get(s.base + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}

	dev, err := newApp("", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.close()
	if !dev.devMode || dev.authz == nil || dev.issuer == nil || !dev.keys.CanSign() {
		t.Fatalf("dev mode app incomplete")
	}
}

// TestServeAdminMetricsAndReadiness runs a decider-only Gatehouse (issuer off) with admin.listen: metrics count
// decisions and reloads, and readiness follows the store.
func TestServeAdminMetricsAndReadiness(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{})
	dir := keyedDir(t)
	writeFile(t, dir, "policy.yaml", "roles:\n  user: {permissions: [p]}\nroutes:\n  - name: open\n    match: {path: /open}\n    public: true\n  - name: me\n    match: {path: /me}\n    permissions: [p]\n")
	a := launch(t, dir, fmt.Sprintf(`authz: {listen: 127.0.0.1:0}
issuer: {enabled: false}
admin: {listen: 127.0.0.1:0}
policy: policy.yaml
keys: {dir: keys}
redis: {url: "redis://%s/0"}
revocation: {mode: strict}
`, srv.Addr))
	if a.issuer != nil {
		t.Fatal("issuer must be off")
	}
	admin := "http://" + a.adminAddr.String()
	get := func(path string) (int, string) {
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz with Redis up: %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := a.authz
	for _, p := range []string{"/open", "/open", "/me"} {
		if _, err := client.Check(ctx, extauthz.NewCheckRequest("GET", "h", p, nil)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, dir, "policy.yaml", "not: [valid")
	a.reload()
	_, body := get("/metrics")
	for _, want := range []string{
		`gatehouse_authz_decisions_total{reason="public",result="allow",rule="open",status="200"} 2`,
		`gatehouse_authz_decisions_total{reason="token_missing",result="deny",rule="me",status="401"} 1`,
		`gatehouse_config_reloads_total{outcome="failure"} 1`,
		`gatehouse_config_last_reload_success 0`,
		"gatehouse_authz_decision_seconds_bucket",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Redis goes away: readiness follows, over HTTP and grpc.health.v1.
	srv.Kill()
	a.checkReady(context.Background())
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("readyz with Redis down: %d", code)
	}
	hc, err := a.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("grpc health with Redis down: %v %v", hc, err)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz is liveness and stays 200: %d", code)
	}
	if _, body := get("/metrics"); !strings.Contains(body, `gatehouse_store_errors_total{op="ping"}`) {
		t.Errorf("store errors not counted")
	}
}

func TestServeExportsReplicaLag(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{})
	dir := keyedDir(t)
	writeFile(t, dir, "policy.yaml", "roles:\n  user: {permissions: [p]}\nroutes:\n  - name: me\n    match: {path: /me}\n    permissions: [p]\n")
	a := launch(t, dir, fmt.Sprintf("authz: {listen: 127.0.0.1:0}\nissuer: {enabled: false}\nadmin: {listen: 127.0.0.1:0}\npolicy: policy.yaml\nkeys: {dir: keys}\nredis: {url: \"redis://%s/0\"}\nrevocation: {mode: replica}\n", srv.Addr))
	resp, err := http.Get("http://" + a.adminAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var lag float64 = -2
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "gatehouse_revocation_replica_lag_seconds ") {
			fmt.Sscan(strings.TrimPrefix(line, "gatehouse_revocation_replica_lag_seconds "), &lag)
		}
	}
	// The replica loaded at start, so it has heard from Redis within its staleness bound.
	if lag < 0 || lag > 2 {
		t.Fatalf("replica lag metric = %v, want between 0 and 2s:\n%s", lag, b)
	}
}

// TestServeReloadsUsers: a reload picks up a changed users file, and a broken one is refused while the running
// users keep logging in.
func TestServeReloadsUsers(t *testing.T) {
	s := startServe(t, "")
	carol, err := password.Hash("carol-pw", password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	users, err := os.ReadFile(filepath.Join(s.dir, "users.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := s.post(t, "/auth/login", `{"username":"carol","password":"carol-pw"}`, ""); code != 401 {
		t.Fatalf("carol before she is added: %d", code)
	}
	writeFile(t, s.dir, "users.yaml", string(users)+fmt.Sprintf("  - {id: u-3, username: carol, password_hash: %q, roles: [user]}\n", carol))
	s.reload()
	if code, body := s.post(t, "/auth/login", `{"username":"carol","password":"carol-pw"}`, ""); code != 200 {
		t.Fatalf("carol after the reload: %d %v", code, body)
	}

	writeFile(t, s.dir, "users.yaml", "users:\n  - {id: u-9, username: mallory, password_hash: nope, roles: [user]}\n")
	s.reload()
	if !strings.Contains(s.logs.String(), `"event":"serve.reload_failed"`) {
		t.Errorf("refused users reload not logged")
	}
	if code, _ := s.post(t, "/auth/login", `{"username":"carol","password":"carol-pw"}`, ""); code != 200 {
		t.Fatalf("a broken users file replaced the running one: %d", code)
	}
}

// TestWatchFiles: a changed file, or one that disappears, is noticed by its content.
func TestWatchFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := writeFile(t, dir, "a.yaml", "a: 1\n"), writeFile(t, dir, "b.yaml", "b: 1\n")
	changed := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchFiles(ctx, []string{a, b}, 5*time.Millisecond, func() { changed <- struct{}{} })
	noticed := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s not noticed", what)
		}
	}
	// Replaced in one step, as editors and ConfigMap swaps do, so the watcher never sees a half-written file.
	if err := os.Rename(writeFile(t, dir, "b.new", "b: 2\n"), b); err != nil {
		t.Fatal(err)
	}
	noticed("a changed b.yaml")
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	noticed("a removed a.yaml")
}
