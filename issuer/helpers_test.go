package issuer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gatehouse/internal/logbuf"
	"gatehouse/mfa"
	"gatehouse/password"
	"gatehouse/store"
	"gatehouse/store/memstore"
	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
	"gatehouse/token"
	"gatehouse/users"
)

const (
	testIssuer   = "https://login.example.test"
	testAudience = "gatehouse"
	testIP       = "192.0.2.1"
	alicePW      = "correct horse battery staple"
	bobPW        = "bob's disabled password"
	carolPW      = "carol-pw-1234"
	// testMFAIssuer has a space and a colon-free name, so the otpauth URI's escaping is exercised.
	testMFAIssuer = "Gatehouse Test"
)

// cheapParams keep tests fast; TestDefaultParamsLogin covers the real cost.
var cheapParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	// Real time (whole seconds), so Redis, which expires keys by its own clock, agrees with us until a test
	// moves the clock forward.
	return &fakeClock{t: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testStore is every store interface the issuer uses.
type testStore interface {
	SessionStore
	RevocationStore
	CounterStore
	MFAStore
	OnceStore
	Ping(ctx context.Context) error
}

// backend is a store implementation the flow tests run against.
type backend struct {
	name string
	// clockDriven: entries expire by the injected clock alone, so tests may move the clock past store expiries
	// (counter windows, revocations). Redis expires keys by its own clock.
	clockDriven bool
	open        func(t *testing.T, now func() time.Time) testStore
}

// backends returns memstore and, when redis-server is installed, a Redis started once for the calling test.
func backends(t *testing.T) []backend {
	t.Helper()
	bs := []backend{{name: "memstore", clockDriven: true, open: func(t *testing.T, now func() time.Time) testStore {
		return memstore.New(now)
	}}}
	var (
		once sync.Once
		addr string
	)
	bs = append(bs, backend{name: "redis", open: func(st *testing.T, now func() time.Time) testStore {
		if _, err := exec.LookPath("redis-server"); err != nil {
			redistest.Start(st) // skips, or fails when CI is set, with its own message
			return nil
		}
		once.Do(func() { addr = redistest.Start(t) }) // one server per top-level test, a key prefix per subtest
		s, err := redisstore.Open("redis://"+addr, "issuer-test:"+st.Name()+":", now)
		if err != nil {
			st.Fatal(err)
		}
		st.Cleanup(func() { s.Close() })
		// A Redis without a generation marker treats its first Revoked as the detection of a data loss and refuses
		// tokens issued before it; start the generation now, as a running deployment has it.
		if _, err := s.Revoked(context.Background(), "warm-up", "", "", now()); err != nil && !errors.Is(err, store.ErrStoreReset) {
			st.Fatal(err)
		}
		return s
	}})
	return bs
}

var (
	hashesOnce sync.Once
	hashes     map[string]string
)

func testHashes(t testing.TB) map[string]string {
	hashesOnce.Do(func() {
		hashes = map[string]string{}
		for _, pw := range []string{alicePW, bobPW, carolPW} {
			h, err := password.Hash(pw, cheapParams, rand.Reader)
			if err != nil {
				panic(err)
			}
			hashes[pw] = h
		}
	})
	return hashes
}

// directory builds a users directory; mutate edits the YAML entries before parsing.
func directory(t testing.TB, entries ...string) *users.Directory {
	t.Helper()
	h := testHashes(t)
	if len(entries) == 0 {
		entries = []string{
			fmt.Sprintf(`{id: u-alice, username: Alice, password_hash: %q, roles: [user]}`, h[alicePW]),
			fmt.Sprintf(`{id: u-bob, username: bob, password_hash: %q, roles: [user], disabled: true}`, h[bobPW]),
			fmt.Sprintf(`{id: u-carol, username: carol, password_hash: %q, roles: [admin]}`, h[carolPW]),
		}
	}
	yaml := "users:\n"
	for _, e := range entries {
		yaml += "  - " + e + "\n"
	}
	d, err := users.Parse("users.yaml", []byte(yaml), func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// env is a Server over real parts: an Ed25519 key set, a real store and a clock the test moves.
type env struct {
	t        testing.TB
	clock    *fakeClock
	store    testStore
	srv      *Server
	keys     *token.KeySet
	signer   *token.Signer
	verifier *token.Verifier
	mfaKeys  *mfa.Keys
	logs     *logbuf.Buffer
	reg      *prometheus.Registry
	verifies atomic.Int64 // password verifications
}

type option func(*Config)

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	clock := newClock()
	return newEnvWith(t, clock, memstore.New(clock.Now), opts...)
}

func newEnvWith(t testing.TB, clock *fakeClock, st testStore, opts ...option) *env {
	t.Helper()
	e := &env{t: t, clock: clock, store: st, logs: &logbuf.Buffer{}, reg: prometheus.NewRegistry()}
	var err error
	e.keys, err = token.GenerateKeySet("EdDSA", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.signer, err = token.NewSigner(e.keys, clock.Now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.verifier = token.NewVerifier(e.keys.PublicOnly(), token.VerifierOptions{
		Issuer: testIssuer, Audience: testAudience, Leeway: 30 * time.Second, Now: clock.Now})
	master := make([]byte, mfa.KeySize)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	if e.mfaKeys, err = mfa.NewKeys(master, rand.Reader); err != nil {
		t.Fatal(err)
	}
	c := Config{
		Issuer: testIssuer, Audience: testAudience,
		AccessTTL: 15 * time.Minute, RefreshTTL: 24 * time.Hour, Leeway: 30 * time.Second,
		Signer: e.signer, Verifier: e.verifier, Keys: e.keys,
		Users:    directory(t),
		Sessions: st, Revocations: st, Counters: st, Ready: st.Ping,
		MFA:         MFAConfig{Store: st, Once: st, Keys: e.mfaKeys, IssuerName: testMFAIssuer},
		DummyParams: cheapParams,
		Logger:      slog.New(slog.NewJSONHandler(e.logs, nil)),
		Registry:    e.reg,
		Now:         clock.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	e.srv, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	inner := e.srv.verify
	e.srv.verify = func(h *password.Hashed, pw string) bool {
		e.verifies.Add(1)
		return inner(h, pw)
	}
	return e
}

// req describes one request; RemoteAddr defaults to testIP.
type req struct {
	method, path, body string
	bearer             string
	header             map[string]string
	remote             string
}

func (e *env) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.doWith(e.srv, r)
}

// variant builds a second Server over the same store, keys and clock, with mut applied to a copy of the config.
func (e *env) variant(mut func(*Config)) *Server {
	e.t.Helper()
	c := e.srv.cfg
	c.Registry = prometheus.NewRegistry()
	mut(&c)
	srv, err := New(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return srv
}

// doWith sends r to srv's handler.
func (e *env) doWith(srv *Server, r req) *httptest.ResponseRecorder {
	e.t.Helper()
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	hr.RemoteAddr = testIP + ":40000"
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+r.bearer)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, hr)
	return rec
}

func loginBody(user, pw string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	return string(b)
}

func refreshBody(tok string) string { return `{"refresh_token":"` + tok + `"}` }

func (e *env) loginRaw(user, pw string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/auth/login", body: loginBody(user, pw)})
}

// login logs in and fails the test unless it answers 200.
func (e *env) login(user, pw string) Tokens {
	e.t.Helper()
	return e.tokens(e.loginRaw(user, pw))
}

func (e *env) refreshRaw(tok string) *httptest.ResponseRecorder {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/auth/refresh", body: refreshBody(tok)})
}

func (e *env) tokens(rec *httptest.ResponseRecorder) Tokens {
	e.t.Helper()
	if rec.Code != http.StatusOK {
		e.t.Fatalf("status %d, want 200; body %s", rec.Code, rec.Body)
	}
	var tr Tokens
	if err := json.Unmarshal(rec.Body.Bytes(), &tr); err != nil {
		e.t.Fatal(err)
	}
	return tr
}

// sidecarAllows is what the ext_authz sidecar does with an access token: verify it, then ask the store whether
// it was revoked.
func (e *env) sidecarAllows(access string) bool {
	e.t.Helper()
	c, err := e.verifier.Verify(access, token.Access)
	if err != nil {
		return false
	}
	revoked, err := e.store.Revoked(context.Background(), c.ID, c.SessionID, c.Subject, c.IssuedAt)
	if err != nil {
		e.t.Fatal(err)
	}
	return !revoked
}

func (e *env) claims(raw string, typ token.Type) *token.Claims {
	e.t.Helper()
	c, err := e.verifier.Verify(raw, typ)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// errorOf decodes an error response and checks its shape: exactly the members error and message.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	if len(m) != 2 {
		t.Errorf("error body %s: want exactly error and message", rec.Body)
	}
	code, _ := m["error"].(string)
	if msg, _ := m["message"].(string); code == "" || msg == "" {
		t.Errorf("error body %s: error and message must be non-empty strings", rec.Body)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("error body %q: trailing data", rec.Body)
	}
	return code
}

// auditLines returns the captured audit lines whose event is ev.
func (e *env) auditLines(ev string) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			e.t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if m["event"] == ev {
			out = append(out, m)
		}
	}
	return out
}
