package issuer

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatehouse/password"
	"gatehouse/store"
	"gatehouse/token"
	"gatehouse/users"
)

// SessionStore is what the issuer needs from store.Sessions.
type SessionStore interface {
	CreateSession(ctx context.Context, s store.Session) error
	GetSession(ctx context.Context, id string) (store.Session, error)
	ListSessions(ctx context.Context, userID string) ([]store.Session, error)
	RotateRefresh(ctx context.Context, id, oldRefreshID, newRefreshID string, now time.Time) (store.Session, error)
	DeleteSession(ctx context.Context, id string) error
}

// RevocationStore is what the issuer needs from store.Revocations.
type RevocationStore interface {
	RevokeSession(ctx context.Context, sid string, until time.Time) error
	RevokeUserBefore(ctx context.Context, userID string, before, until time.Time) error
	Revoked(ctx context.Context, jti, sid, userID string, issuedAt time.Time) (bool, error)
}

// Signer mints tokens (*token.Signer).
type Signer interface {
	Sign(c token.Claims) (string, error)
}

// Verifier verifies tokens (*token.Verifier); it must be configured with the same issuer and audience.
type Verifier interface {
	Verify(raw string, want token.Type) (*token.Claims, error)
}

// Config wires a Server. Fields marked required must be set; zero values of the others take the defaults noted.
type Config struct {
	Issuer   string // required: iss of every token and the base URL of the discovery documents
	Audience string // required: aud of every token
	// AccessTTL and RefreshTTL are required. RefreshTTL is also the absolute session lifetime: refreshing never
	// extends a session past login + RefreshTTL.
	AccessTTL, RefreshTTL time.Duration
	// Leeway is the verifiers' clock-skew allowance; revocations outlive the tokens they cover by it. Default 30s.
	Leeway time.Duration

	Signer   Signer        // required
	Verifier Verifier      // required
	Keys     *token.KeySet // required: served as JWKS (public parts only)

	Users *users.Directory // required; replace it later with SetUsers

	Sessions    SessionStore    // required
	Revocations RevocationStore // required
	Counters    CounterStore    // required
	// Ready reports whether the store answers (GET /readyz); nil means always ready.
	Ready func(ctx context.Context) error

	MaxSessions int // concurrent sessions per user; the oldest are ended past it. Default 10.
	Login       LoginLimits
	MFA         MFAConfig // Store, Once and Keys are required
	// DummyParams are the argon2id parameters of the hash verified for unknown usernames, so they cost what a
	// real user costs. Default password.DefaultParams; set it to what the users file uses if that differs.
	DummyParams password.Params

	TrustedProxies []netip.Prefix // peers whose X-Forwarded-For is believed
	Logger         *slog.Logger   // audit and error lines; default slog.Default()
	// Registry receives the issuer's metrics and is served on /metrics; default a new registry.
	Registry *prometheus.Registry
	Now      func() time.Time // default time.Now
	Rand     io.Reader        // default crypto/rand
}

// Server is the login issuer's HTTP API. It is safe for concurrent use.
type Server struct {
	cfg       Config
	users     atomic.Pointer[users.Directory]
	sessions  SessionStore
	revs      RevocationStore
	counters  CounterStore
	mfaStore  MFAStore
	once      OnceStore
	reg       *regulator
	gate      *hashGate
	dummy     *password.Hashed
	log       *slog.Logger
	metrics   *metrics
	now       func() time.Time
	rand      io.Reader
	jwks      []byte
	discovery []byte
	mux       *http.ServeMux

	// verify checks a password against a hash; tests replace it to count verifications.
	verify func(h *password.Hashed, pw string) bool
}

// readyTimeout bounds the store ping behind /readyz.
const readyTimeout = time.Second

// New validates c and builds a Server.
func New(c Config) (*Server, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.Issuer == "":
		bad("issuer is required")
	case c.Audience == "":
		bad("audience is required")
	}
	if c.AccessTTL < time.Second {
		bad("access TTL must be at least 1s (token times are whole seconds)")
	}
	if c.RefreshTTL < c.AccessTTL {
		bad("refresh TTL must not be shorter than the access TTL")
	}
	if c.Signer == nil || c.Verifier == nil || c.Keys == nil {
		bad("signer, verifier and keys are required")
	}
	if c.Users == nil {
		bad("users directory is required")
	}
	if c.Sessions == nil || c.Revocations == nil || c.Counters == nil {
		bad("session, revocation and counter stores are required")
	}
	if c.Leeway < 0 || c.Leeway > token.MaxLeeway {
		bad("leeway must be between 0 and %v", token.MaxLeeway)
	}
	if c.MFA.Store == nil || c.MFA.Once == nil || c.MFA.Keys == nil {
		bad("MFA store, once store and keys are required")
	}
	if c.MFA.TokenTTL > MaxMFATokenTTL {
		bad("MFA token TTL must not exceed %v", MaxMFATokenTTL)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("issuer: %w", errors.Join(errs...))
	}
	if c.Leeway == 0 {
		c.Leeway = token.MaxLeeway
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 10
	}
	c.Login.setDefaults()
	c.MFA.setDefaults()
	if c.DummyParams == (password.Params{}) {
		c.DummyParams = password.DefaultParams
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = cryptorand.Reader
	}
	dummy, err := dummyHash(c.DummyParams, c.Rand)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(c.Registry)
	if err != nil {
		return nil, err
	}
	jwks, err := c.Keys.JWKS()
	if err != nil {
		return nil, fmt.Errorf("issuer: jwks: %w", err)
	}
	s := &Server{
		cfg:       c,
		sessions:  c.Sessions,
		revs:      c.Revocations,
		counters:  c.Counters,
		mfaStore:  c.MFA.Store,
		once:      c.MFA.Once,
		reg:       &regulator{store: c.Counters, limits: c.Login, now: c.Now},
		gate:      newHashGate(hashSlots(c.Login.HashConcurrency, max(c.Users.MaxHashMemoryKiB(), dummy.MemoryKiB())), c.Login.HashWait),
		dummy:     dummy,
		log:       c.Logger,
		metrics:   m,
		now:       c.Now,
		rand:      c.Rand,
		jwks:      jwks,
		discovery: discoveryDoc(c.Issuer, c.Keys.SigningAlg()),
		verify:    (*password.Hashed).Verify,
	}
	s.users.Store(c.Users)
	s.mux = s.routes()
	return s, nil
}

// dummyHash builds a hash with params from random salt and key bytes, so verifying anything against it costs one
// real verification and never succeeds, without spending a hash computation at start-up.
func dummyHash(p password.Params, rand io.Reader) (*password.Hashed, error) {
	salt := make([]byte, max(p.SaltLen, 16))
	key := make([]byte, max(p.KeyLen, 32))
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("issuer: dummy hash: %w", err)
	}
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, fmt.Errorf("issuer: dummy hash: %w", err)
	}
	b64 := base64.RawStdEncoding
	h, err := password.Parse(fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)))
	if err != nil {
		return nil, fmt.Errorf("issuer: dummy hash params: %w", err)
	}
	return h, nil
}

// SetUsers swaps the users directory atomically (SIGHUP reload). Each request sees one version. Sessions of users
// who disappear or become disabled end at their next refresh; their access tokens live out their TTL unless
// revoked. A nil directory is ignored.
func (s *Server) SetUsers(d *users.Directory) {
	if d != nil {
		s.users.Store(d)
	}
}

// activeUser returns the user with id while it exists and is enabled; otherwise nil and why not, as the audit
// reason ("user_removed" or "user_disabled"). Tokens outlive a users-file reload, so every step after the password
// asks again.
func (s *Server) activeUser(id string) (*users.User, string) {
	u, ok := s.users.Load().ByID(id)
	switch {
	case !ok:
		return nil, "user_removed"
	case u.Disabled:
		return nil, "user_disabled"
	}
	return u, ""
}

// Handler returns the HTTP API. Every request body is bounded by MaxBodyBytes, whatever the endpoint: a declared
// Content-Length over it is refused with 413 before routing, and reading past it fails.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxBodyBytes {
			s.writeError(w, r, errTooLarge())
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		s.mux.ServeHTTP(w, r)
	})
}

// route is one endpoint: method and path in http.ServeMux pattern syntax.
type route struct {
	method, path string
	h            http.Handler
}

// routes builds the mux. Every path also gets a method-less fallback that answers 405 with Allow in the JSON
// error shape (ServeMux's own 405 and 404 are plain text), and "/" answers 404.
func (s *Server) routes() *http.ServeMux {
	rs := []route{
		{"POST", "/auth/login", s.handle(s.handleLogin)},
		{"POST", "/auth/refresh", s.handle(s.handleRefresh)},
		{"POST", "/auth/logout", s.handle(s.authenticated(s.handleLogout))},
		{"POST", "/auth/logout/all", s.handle(s.authenticated(s.handleLogoutAll))},
		{"GET", "/auth/sessions", s.handle(s.authenticated(s.handleListSessions))},
		{"DELETE", "/auth/sessions/{id}", s.handle(s.authenticated(s.handleDeleteSession))},
		{"POST", "/auth/mfa/setup", s.handle(s.authenticated(s.handleMFASetup))},
		{"POST", "/auth/mfa/confirm", s.handle(s.authenticated(s.handleMFAConfirm))},
		{"POST", "/auth/mfa/disable", s.handle(s.authenticated(s.handleMFADisable))},
		{"POST", "/auth/mfa/verify", s.handle(s.handleMFAVerify)},
		{"GET", "/.well-known/jwks.json", s.handle(s.handleJWKS)},
		{"GET", "/.well-known/openid-configuration", s.handle(s.handleDiscovery)},
		{"GET", "/healthz", s.handle(s.handleHealthz)},
		{"GET", "/readyz", s.handle(s.handleReadyz)},
		{"GET", "/metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})},
	}
	mux := http.NewServeMux()
	allowed := map[string][]string{}
	var paths []string
	for _, r := range rs {
		mux.Handle(r.method+" "+r.path, r.h)
		if _, ok := allowed[r.path]; !ok {
			paths = append(paths, r.path)
		}
		allowed[r.path] = append(allowed[r.path], r.method)
		if r.method == "GET" {
			allowed[r.path] = append(allowed[r.path], "HEAD")
		}
	}
	for _, p := range paths {
		allow := strings.Join(slices.Compact(allowed[p]), ", ")
		mux.Handle(p, s.handle(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
				msg: "method " + clip(r.Method, 16) + " is not allowed here"}
		}))
	}
	mux.Handle("/", s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound("endpoint") }))
	return mux
}

// clip bounds a client-supplied string, cutting on a UTF-8 boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
