package extauthz

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"

	"gatehouse/policy"
	"gatehouse/store/memstore"
	"gatehouse/token"
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "gatehouse"
)

const testPolicy = `
roles:
  guest: {permissions: [read:orders]}
  user:  {inherits: [guest], permissions: [read:users, write:orders]}
  admin: {inherits: [user], permissions: [write:users, delete:users, admin:access]}
routes:
  - name: auth
    match: {path_prefix: /auth}
    public: true
  - name: profile
    match: {methods: [GET], path: /users/profile}
    permissions: [read:users]
  - name: delete-user
    match: {methods: [DELETE], path: "/admin/users/{id}"}
    permissions: [delete:users]
  - name: orders
    match: {methods: [GET, HEAD], path: "/orders/**", hosts: [api.example.com, "*.example.com"]}
    roles: [user, admin]
  - name: me
    match: {path: /me}
    authenticated: true
`

// harness is a Server over real parts: a compiled policy, an Ed25519 key set, the in-memory store and a clock
// the test moves.
type harness struct {
	t      *testing.T
	srv    *Server
	keys   *token.KeySet
	signer *token.Signer
	store  *memstore.Store
	now    time.Time
	logs   *bytes.Buffer
	cfg    Config // what srv was built from
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	clock := func() time.Time { return h.now }
	p, err := policy.Compile("policy.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	h.keys, err = token.GenerateKeySet("EdDSA", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h.signer, err = token.NewSigner(h.keys, clock, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h.store = memstore.New(clock)
	h.cfg = Config{
		Policy:      p,
		Verifier:    token.NewVerifier(h.keys.PublicOnly(), token.VerifierOptions{Issuer: testIssuer, Audience: testAudience, Now: clock}),
		Revocations: h.store,
		Logger:      slog.New(slog.NewJSONHandler(h.logs, nil)),
		Now:         clock,
	}
	h.srv = h.server(t, nil)
	return h
}

// server builds another Server from the harness's configuration, changed first by edit when it is not nil.
func (h *harness) server(t *testing.T, edit func(*Config)) *Server {
	t.Helper()
	c := h.cfg
	if edit != nil {
		edit(&c)
	}
	srv, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// serverWith is the harness's Server over other Revocations.
func (h *harness) serverWith(t *testing.T, r Revocations) *Server {
	t.Helper()
	return h.server(t, func(c *Config) { c.Revocations = r })
}

func (h *harness) claims(typ token.Type, roles ...string) token.Claims {
	return token.Claims{Type: typ, Issuer: testIssuer, Subject: "u-1001", Audience: testAudience,
		SessionID: "sid-1", Username: "alice", Roles: roles, ExpiresAt: h.now.Add(15 * time.Minute)}
}

func (h *harness) sign(c token.Claims) string {
	h.t.Helper()
	s, err := h.signer.Sign(c)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) check(method, host, path string, headers map[string]string) *authv3.CheckResponse {
	h.t.Helper()
	resp, err := h.srv.Check(context.Background(), NewCheckRequest(method, host, path, headers))
	if err != nil {
		h.t.Fatalf("Check returned a gRPC error (Envoy could fail open): %v", err)
	}
	return resp
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

// status is the HTTP status a CheckResponse tells Envoy to use (200 for allow).
func httpStatus(r *authv3.CheckResponse) int {
	if r.GetOkResponse() != nil {
		return 200
	}
	return int(r.GetDeniedResponse().GetStatus().GetCode())
}

func reason(r *authv3.CheckResponse) string {
	return r.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
}

func rule(r *authv3.CheckResponse) string {
	return r.GetDynamicMetadata().GetFields()["rule"].GetStringValue()
}

// forge builds a token by hand, for the attacks the signer would never produce.
func forge(t *testing.T, header map[string]any, claims jwt.MapClaims, sign func(string) string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	return in + "." + sign(in)
}

// publicKeyBytes returns the raw Ed25519 public key of the harness's key, as an attacker reads it from the JWKS.
func (h *harness) publicKeyBytes() (kid string, raw []byte) {
	h.t.Helper()
	b, err := h.keys.JWKS()
	if err != nil {
		h.t.Fatal(err)
	}
	var set struct {
		Keys []struct{ Kid, X string } `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) == 0 {
		h.t.Fatalf("jwks: %v %s", err, b)
	}
	raw, err = base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	if err != nil {
		h.t.Fatal(err)
	}
	return set.Keys[0].Kid, raw
}

// failingRevocations is a store that cannot be reached.
type failingRevocations struct{}

func (failingRevocations) Revoked(context.Context, string, string, string, time.Time) (bool, error) {
	return false, errors.New("dial tcp 127.0.0.1:6379: connection refused")
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%q does not contain %q", s, sub)
	}
}
