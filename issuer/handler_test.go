package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/password"
	"gatehouse/store"
	"gatehouse/token"
)

// TestStatuses drives every documented status through the real handler and a real memstore.
func TestStatuses(t *testing.T) {
	type tc struct {
		name string
		// prep may change the env and returns the request (it may log in first).
		prep       func(e *env) req
		opts       []option
		status     int
		code       string // "" for success responses
		retryAfter string
		allow      string
	}
	login := func(user, pw string) func(*env) req {
		return func(*env) req { return req{method: "POST", path: "/auth/login", body: loginBody(user, pw)} }
	}
	raw := func(method, path, body string) func(*env) req {
		return func(*env) req { return req{method: method, path: path, body: body} }
	}
	withAccess := func(method, path string) func(*env) req {
		return func(e *env) req {
			return req{method: method, path: path, bearer: e.login("alice", alicePW).AccessToken}
		}
	}
	lockAlice := func(e *env) {
		for range 5 {
			e.loginRaw("alice", "wrong")
		}
	}
	cases := []tc{
		{name: "login ok", prep: login("alice", alicePW), status: 200},
		{name: "login username case-insensitive", prep: login("ALICE", alicePW), status: 200},
		{name: "login unknown user", prep: login("mallory", "x"), status: 401, code: CodeInvalidCredentials},
		{name: "login wrong password", prep: login("alice", "wrong"), status: 401, code: CodeInvalidCredentials},
		{name: "login disabled user", prep: login("bob", bobPW), status: 401, code: CodeInvalidCredentials},
		{name: "login password case matters", prep: login("alice", strings.ToUpper(alicePW)), status: 401, code: CodeInvalidCredentials},
		{name: "login malformed JSON", prep: raw("POST", "/auth/login", `{"username":`), status: 400, code: CodeInvalidRequest},
		{name: "login missing password", prep: raw("POST", "/auth/login", `{"username":"alice"}`), status: 400, code: CodeInvalidRequest},
		{name: "login empty body", prep: raw("POST", "/auth/login", ``), status: 400, code: CodeInvalidRequest},
		{name: "login unknown member", prep: raw("POST", "/auth/login", `{"username":"alice","password":"x","admin":true}`), status: 400, code: CodeInvalidRequest},
		{name: "login duplicate member", prep: raw("POST", "/auth/login", `{"username":"mallory","password":"x","username":"alice"}`), status: 400, code: CodeInvalidRequest},
		{name: "login username too long", prep: login(strings.Repeat("a", 257), "x"), status: 400, code: CodeInvalidRequest},
		{name: "login body too large", prep: raw("POST", "/auth/login", `{"username":"alice","password":"`+strings.Repeat("x", MaxBodyBytes)+`"}`), status: 413, code: CodeTooLarge},
		{name: "logout body too large", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/logout", body: strings.Repeat(" ", MaxBodyBytes+1), bearer: e.login("alice", alicePW).AccessToken}
		}, status: 413, code: CodeTooLarge},
		{name: "login locked", prep: func(e *env) req { lockAlice(e); return login("alice", alicePW)(e) }, status: 429, code: CodeRateLimited, retryAfter: "60"},
		{name: "login wrong method", prep: raw("GET", "/auth/login", ""), status: 405, code: CodeMethodNotAllowed, allow: "POST"},
		{name: "sessions wrong method", prep: raw("PUT", "/auth/sessions", ""), status: 405, code: CodeMethodNotAllowed, allow: "GET, HEAD"},
		{name: "session wrong method", prep: raw("GET", "/auth/sessions/abc", ""), status: 405, code: CodeMethodNotAllowed, allow: "DELETE"},
		{name: "unknown path", prep: raw("GET", "/nope", ""), status: 404, code: CodeNotFound},
		{name: "refresh malformed", prep: raw("POST", "/auth/refresh", `["x"]`), status: 400, code: CodeInvalidRequest},
		{name: "refresh garbage token", prep: raw("POST", "/auth/refresh", refreshBody("abc")), status: 401, code: CodeInvalidToken},
		{name: "refresh with access token", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/refresh", body: refreshBody(e.login("alice", alicePW).AccessToken)}
		}, status: 401, code: CodeInvalidToken},
		{name: "logout", prep: withAccess("POST", "/auth/logout"), status: 204},
		{name: "logout all", prep: withAccess("POST", "/auth/logout/all"), status: 204},
		{name: "logout without token", prep: raw("POST", "/auth/logout", ""), status: 401, code: CodeInvalidToken},
		{name: "logout with refresh token", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/logout", bearer: e.login("alice", alicePW).RefreshToken}
		}, status: 401, code: CodeInvalidToken},
		{name: "logout with two tokens", prep: func(e *env) req {
			a := e.login("alice", alicePW).AccessToken
			return req{method: "POST", path: "/auth/logout", header: map[string]string{"Authorization": "Bearer " + a + " " + a}}
		}, status: 401, code: CodeInvalidToken},
		{name: "logout with lower-case scheme", prep: func(e *env) req {
			a := e.login("alice", alicePW).AccessToken
			return req{method: "POST", path: "/auth/logout", header: map[string]string{"Authorization": "bearer " + a}}
		}, status: 204},
		{name: "logout with basic scheme", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/logout", header: map[string]string{"Authorization": "Basic YWxpY2U6eA=="}}
		}, status: 401, code: CodeInvalidToken},
		{name: "list sessions", prep: withAccess("GET", "/auth/sessions"), status: 200},
		{name: "delete unknown session", prep: withAccess("DELETE", "/auth/sessions/nope"), status: 404, code: CodeNotFound},
		{name: "delete someone else's session", prep: func(e *env) req {
			carol := e.login("carol", carolPW)
			return req{method: "DELETE", path: "/auth/sessions/" + carol.SessionID, bearer: e.login("alice", alicePW).AccessToken}
		}, status: 403, code: CodeForbidden},
		{name: "delete own session", prep: func(e *env) req {
			other := e.login("alice", alicePW)
			return req{method: "DELETE", path: "/auth/sessions/" + other.SessionID, bearer: e.login("alice", alicePW).AccessToken}
		}, status: 204},
		{name: "jwks", prep: raw("GET", "/.well-known/jwks.json", ""), status: 200},
		{name: "discovery", prep: raw("GET", "/.well-known/openid-configuration", ""), status: 200},
		{name: "healthz", prep: raw("GET", "/healthz", ""), status: 200},
		{name: "readyz", prep: raw("GET", "/readyz", ""), status: 200},
		{name: "readyz store down", prep: raw("GET", "/readyz", ""), status: 503, code: CodeUnavailable, retryAfter: "1",
			opts: []option{func(c *Config) { c.Ready = func(context.Context) error { return errors.New("down") } }}},
		{name: "metrics", prep: raw("GET", "/metrics", ""), status: 200},
		{name: "login store down", prep: login("alice", alicePW), status: 503, code: CodeUnavailable, retryAfter: "1",
			opts: []option{func(c *Config) { c.Counters = downCounters{c.Counters} }}},
		{name: "logout store down", prep: withAccess("POST", "/auth/logout"), status: 503, code: CodeUnavailable, retryAfter: "1",
			opts: []option{func(c *Config) { c.Revocations = downRevocations{c.Revocations} }}},
		{name: "token predates a store reset", prep: withAccess("GET", "/auth/sessions"), status: 401, code: CodeInvalidToken,
			opts: []option{func(c *Config) { c.Revocations = resetRevocations{c.Revocations, store.ErrStoreReset} }}},
		{name: "refresh token predates a store reset", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/refresh", body: refreshBody(e.login("alice", alicePW).RefreshToken)}
		}, status: 401, code: CodeInvalidToken,
			opts: []option{func(c *Config) { c.Revocations = resetRevocations{c.Revocations, store.ErrStoreReset} }}},
		{name: "revocations stale", prep: withAccess("GET", "/auth/sessions"), status: 503, code: CodeUnavailable, retryAfter: "1",
			opts: []option{func(c *Config) { c.Revocations = resetRevocations{c.Revocations, store.ErrStale} }}},
		{name: "login broken randomness", prep: login("alice", alicePW), status: 500, code: CodeInternal,
			opts: []option{func(c *Config) { c.Rand = &failAfter{n: 48} }}}, // enough for the dummy hash only
		// MFA endpoints.
		{name: "login MFA store down", prep: login("alice", alicePW), status: 503, code: CodeUnavailable, retryAfter: "1",
			opts: []option{func(c *Config) { c.MFA.Store = downMFA{c.MFA.Store} }}}, // never a login without the factor
		{name: "mfa verify missing code", prep: raw("POST", "/auth/mfa/verify", `{"mfa_token":"x"}`), status: 400, code: CodeInvalidRequest},
		{name: "mfa verify unknown member", prep: raw("POST", "/auth/mfa/verify", `{"mfa_token":"x","code":"1","user":"a"}`), status: 400, code: CodeInvalidRequest},
		{name: "mfa verify garbage token", prep: raw("POST", "/auth/mfa/verify", verifyBody("abc", "123456")), status: 401, code: CodeInvalidToken},
		{name: "mfa verify with an access token", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/mfa/verify", body: verifyBody(e.login("alice", alicePW).AccessToken, "123456")}
		}, status: 401, code: CodeInvalidToken},
		{name: "mfa verify wrong method", prep: raw("GET", "/auth/mfa/verify", ""), status: 405, code: CodeMethodNotAllowed, allow: "POST"},
		{name: "mfa setup without token", prep: raw("POST", "/auth/mfa/setup", ""), status: 401, code: CodeInvalidToken},
		{name: "mfa setup", prep: withAccess("POST", "/auth/mfa/setup"), status: 200},
		{name: "mfa setup store down", prep: withAccess("POST", "/auth/mfa/setup"), status: 503, code: CodeUnavailable, retryAfter: "1",
			opts: []option{func(c *Config) { c.MFA.Store = downPendingMFA{c.MFA.Store} }}},
		{name: "mfa confirm nothing pending", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/mfa/confirm", body: codeBody("123456"), bearer: e.login("alice", alicePW).AccessToken}
		}, status: 404, code: CodeMFASetupNotFound},
		{name: "mfa disable not enabled", prep: func(e *env) req {
			return req{method: "POST", path: "/auth/mfa/disable", body: codeBody("123456"), bearer: e.login("alice", alicePW).AccessToken}
		}, status: 409, code: CodeMFANotEnabled},
		{name: "mfa disable wrong method", prep: raw("GET", "/auth/mfa/disable", ""), status: 405, code: CodeMethodNotAllowed, allow: "POST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.opts...)
			r := c.prep(e)
			rec := e.do(r)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, c.status, rec.Body)
			}
			if c.code != "" {
				if got := errorOf(t, rec); got != c.code {
					t.Errorf("error %q, want %q", got, c.code)
				}
			}
			if got := rec.Header().Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			if got := rec.Header().Get("Allow"); got != c.allow {
				t.Errorf("Allow %q, want %q", got, c.allow)
			}
			if c.status == 401 && c.code == CodeInvalidToken && strings.HasPrefix(r.path, "/auth/log") {
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 on a Bearer endpoint without WWW-Authenticate")
				}
			}
			if c.status >= 500 && strings.Contains(rec.Body.String(), "down") {
				t.Errorf("internal cause leaked to the client: %s", rec.Body)
			}
		})
	}
}

type downCounters struct{ CounterStore }

func (downCounters) LockedUntil(context.Context, string) (time.Time, error) {
	return time.Time{}, errors.New("counters down")
}

type downMFA struct{ MFAStore }

func (downMFA) GetMFA(context.Context, string) (store.MFAEnrollment, error) {
	return store.MFAEnrollment{}, errors.New("mfa store down")
}

type downPendingMFA struct{ MFAStore }

func (downPendingMFA) PutPendingMFA(context.Context, string, []byte, time.Time) error {
	return errors.New("mfa store down")
}

type downRevocations struct{ RevocationStore }

func (downRevocations) RevokeSession(context.Context, string, time.Time) error {
	return errors.New("revocations down")
}

// resetRevocations answers every Revoked like a store after a data loss (ErrStoreReset) or a stale replica.
type resetRevocations struct {
	RevocationStore
	err error
}

func (r resetRevocations) Revoked(context.Context, string, string, string, time.Time) (bool, error) {
	return r.err == store.ErrStoreReset, r.err
}

// failAfter yields n random bytes, then fails.
type failAfter struct{ n int }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("entropy exhausted")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// TestInvalidCredentialsLookAlike: unknown user, wrong password and disabled user (right or wrong password) get
// byte-identical responses and cost exactly one password verification each; the audit log tells them apart.
func TestInvalidCredentialsLookAlike(t *testing.T) {
	cases := []struct {
		name, user, pw, outcome, reason string
	}{
		{"unknown user", "mallory", "whatever", OutcomeInvalidCredentials, "unknown_user"},
		{"wrong password", "alice", "wrong", OutcomeInvalidCredentials, "wrong_password"},
		{"disabled, right password", "bob", bobPW, OutcomeDisabled, "user_disabled"},
		{"disabled, wrong password", "bob", "wrong", OutcomeInvalidCredentials, "wrong_password"},
	}
	var first string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			rec := e.loginRaw(c.user, c.pw)
			if rec.Code != 401 {
				t.Fatalf("status %d", rec.Code)
			}
			if got := e.verifies.Load(); got != 1 {
				t.Errorf("%d password verifications, want exactly 1", got)
			}
			resp := rec.Body.String() + "|" + rec.Header().Get("Content-Type") + "|" + rec.Header().Get("WWW-Authenticate")
			if first == "" {
				first = resp
			} else if resp != first {
				t.Errorf("response %q differs from %q", resp, first)
			}
			lines := e.auditLines(EventLogin)
			if len(lines) != 1 || lines[0]["outcome"] != c.outcome || lines[0]["reason"] != c.reason {
				t.Errorf("audit %v, want outcome %s reason %s", lines, c.outcome, c.reason)
			}
		})
	}
}

// TestUnknownUserCostsADefaultHash: without DummyParams the dummy hash has password.DefaultParams.
func TestUnknownUserCostsADefaultHash(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DummyParams = password.Params{} })
	if got, want := e.srv.dummy.MemoryKiB(), password.DefaultParams.Memory; got != want {
		t.Fatalf("dummy hash memory %d KiB, want %d", got, want)
	}
}

// TestDefaultParamsLogin checks the real parameters end to end (one hash at default cost, ~0.1-0.3 s).
func TestDefaultParamsLogin(t *testing.T) {
	h, err := password.Hash("s3cret-default", password.DefaultParams, strings.NewReader(strings.Repeat("salt", 8)))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) {
		c.Users = directory(t, `{id: u-dee, username: dee, password_hash: "`+h+`", roles: [user]}`)
	})
	tr := e.login("dee", "s3cret-default")
	if c := e.claims(tr.AccessToken, token.Access); c.Subject != "u-dee" {
		t.Fatalf("sub %q", c.Subject)
	}
}

// TestLockedLoginSpendsNoHash: while locked, even the right password is refused without hashing.
func TestLockedLoginSpendsNoHash(t *testing.T) {
	e := newEnv(t)
	for range 5 {
		e.loginRaw("alice", "wrong")
	}
	before := e.verifies.Load()
	rec := e.loginRaw("alice", alicePW)
	if rec.Code != 429 {
		t.Fatalf("status %d, want 429", rec.Code)
	}
	if e.verifies.Load() != before {
		t.Error("a locked login verified a password")
	}
	// Locks expire by the clock: 1m later, the right password works.
	e.clock.Advance(time.Minute)
	e.login("alice", alicePW)
}

// TestHashingQueueFull: with every hashing slot busy, a login waits HashWait and then gets 503 with Retry-After.
func TestHashingQueueFull(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Login.HashConcurrency = 1; c.Login.HashWait = 20 * time.Millisecond })
	entered, unblock := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	inner := e.srv.verify
	e.srv.verify = func(h *password.Hashed, pw string) bool {
		if calls.Add(1) == 1 {
			close(entered)
			<-unblock
		}
		return inner(h, pw)
	}
	done := make(chan int)
	go func() { done <- e.loginRaw("alice", alicePW).Code }()
	<-entered
	rec := e.loginRaw("carol", carolPW)
	if rec.Code != 503 || errorOf(t, rec) != CodeUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("busy login: status %d, Retry-After %q, body %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	close(unblock)
	if code := <-done; code != 200 {
		t.Fatalf("first login: status %d", code)
	}
	e.login("carol", carolPW) // the slot is free again
}

func TestHashSlots(t *testing.T) {
	cpu := 2 * runtime.GOMAXPROCS(0) // at least 2
	cases := []struct {
		configured int
		perHashKiB uint32
		want       int
	}{
		{configured: 3, perHashKiB: 64 << 10, want: 3},    // configured wins
		{configured: 100, perHashKiB: 1 << 20, want: 100}, // even over the memory budget
		{perHashKiB: 1 << 20, want: 1},                    // 1 GiB hashes: the 512 MiB budget still allows one
		{perHashKiB: 256 << 10, want: 2},                  // 512 MiB / 256 MiB
		{perHashKiB: 64, want: cpu},                       // CPU-bound: 2·GOMAXPROCS
		{perHashKiB: 0, want: cpu},                        // unknown memory: CPU only
	}
	for _, c := range cases {
		if got := hashSlots(c.configured, c.perHashKiB); got != c.want {
			t.Errorf("hashSlots(%d, %d) = %d, want %d", c.configured, c.perHashKiB, got, c.want)
		}
	}
}

func TestTokenResponseShape(t *testing.T) {
	e := newEnv(t)
	rec := e.loginRaw("alice", alicePW)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"access_token", "refresh_token", "token_type", "expires_in", "session_id"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %s in %s", k, rec.Body)
		}
	}
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(15*60) || len(m) != 5 {
		t.Errorf("body %s", rec.Body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	c := e.claims(m["access_token"].(string), token.Access)
	if c.Username != "Alice" || c.Subject != "u-alice" || c.SessionID != m["session_id"] || len(c.Roles) != 1 {
		t.Errorf("claims %+v", c)
	}
	sess, err := e.store.GetSession(context.Background(), c.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	rc := e.claims(m["refresh_token"].(string), token.Refresh)
	if sess.RefreshID != rc.ID || sess.ClientIP != testIP || !sess.ExpiresAt.Equal(e.clock.Now().Add(24*time.Hour)) {
		t.Errorf("session %+v, refresh jti %s", sess, rc.ID)
	}
	if len(c.SessionID) < 22 { // 16 random bytes, base64url
		t.Errorf("session id %q shorter than 128 bits", c.SessionID)
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	e := newEnv(t)
	rec := e.do(req{method: "GET", path: "/.well-known/openid-configuration"})
	var d map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d["issuer"] != testIssuer || d["jwks_uri"] != testIssuer+"/.well-known/jwks.json" {
		t.Errorf("discovery %s", rec.Body)
	}
	if algs, _ := d["id_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "EdDSA" {
		t.Errorf("algs %v", d["id_token_signing_alg_values_supported"])
	}
	rec = e.do(req{method: "GET", path: "/.well-known/jwks.json"})
	var jwks struct{ Keys []map[string]any }
	if err := json.Unmarshal(rec.Body.Bytes(), &jwks); err != nil || len(jwks.Keys) != 1 {
		t.Fatalf("jwks %s: %v", rec.Body, err)
	}
	if _, private := jwks.Keys[0]["d"]; private {
		t.Fatal("JWKS exposes a private key")
	}
	// What Envoy's jwt_authn and Istio look keys up by.
	if k := jwks.Keys[0]; k["kid"] == nil || k["kid"] == "" || k["alg"] != "EdDSA" || k["use"] != "sig" {
		t.Errorf("JWKS key %v: want kid, alg EdDSA and use sig", k)
	}
	if rec = e.do(req{method: "HEAD", path: "/healthz"}); rec.Code != 200 {
		t.Errorf("HEAD /healthz: %d", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	tr := e.login("alice", alicePW)
	e.loginRaw("alice", "wrong")
	for range 5 { // from another address, so the IP counter stays below the threshold
		e.do(req{method: "POST", path: "/auth/login", body: loginBody("carol", "wrong"), remote: "198.51.100.7:1"})
	}
	e.loginRaw("carol", carolPW) // locked
	e.tokens(e.refreshRaw(tr.RefreshToken))
	e.refreshRaw(tr.RefreshToken) // reused
	e.do(req{method: "POST", path: "/auth/logout", bearer: e.login("alice", alicePW).AccessToken})
	body := e.do(req{method: "GET", path: "/metrics"}).Body.String()
	for _, want := range []string{
		`gatehouse_logins_total{outcome="success"} 2`,
		`gatehouse_logins_total{outcome="invalid_credentials"} 6`,
		`gatehouse_logins_total{outcome="locked"} 1`,
		`gatehouse_refresh_total{outcome="success"} 1`,
		`gatehouse_refresh_total{outcome="reused"} 1`,
		`gatehouse_lockouts_total 2`, // carol and the address she was tried from,
		`gatehouse_logouts_total 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	e := newEnv(t)
	good := e.srv.cfg
	good.Registry = nil // a fresh registry each time
	cases := map[string]func(*Config){
		"no issuer":        func(c *Config) { c.Issuer = "" },
		"no signer":        func(c *Config) { c.Signer = nil },
		"no users":         func(c *Config) { c.Users = nil },
		"no store":         func(c *Config) { c.Sessions = nil },
		"short access":     func(c *Config) { c.AccessTTL = 0 },
		"refresh < access": func(c *Config) { c.RefreshTTL = time.Minute },
		"leeway too large": func(c *Config) { c.Leeway = time.Hour },
		"no mfa store":     func(c *Config) { c.MFA.Store = nil },
		"no once store":    func(c *Config) { c.MFA.Once = nil },
		"no mfa keys":      func(c *Config) { c.MFA.Keys = nil },
		"mfa ttl too long": func(c *Config) { c.MFA.TokenTTL = 2 * time.Hour },
	}
	for name, mut := range cases {
		c := good
		mut(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
	if _, err := New(good); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	dup := good
	dup.Registry = e.reg // the metrics are registered there already
	if _, err := New(dup); err == nil {
		t.Error("registering the metrics twice was not reported")
	}
}

// TestPanicIsA500: a panicking handler still answers in the JSON error shape.
func TestPanicIsA500(t *testing.T) {
	e := newEnv(t)
	e.srv.verify = func(*password.Hashed, string) bool { panic("boom") }
	rec := e.loginRaw("alice", alicePW)
	if rec.Code != 500 || errorOf(t, rec) != CodeInternal || strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
}

// TestBodyLimitWithoutContentLength: a chunked body (no declared length) is cut at MaxBodyBytes too.
func TestBodyLimitWithoutContentLength(t *testing.T) {
	e := newEnv(t)
	body := `{"username":"alice","password":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	r := httptest.NewRequest("POST", "/auth/login", io.MultiReader(strings.NewReader(body)))
	r.ContentLength = -1
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, r)
	if rec.Code != 413 || errorOf(t, rec) != CodeTooLarge {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
	if e.verifies.Load() != 0 {
		t.Error("an oversized body reached the password check")
	}
}
