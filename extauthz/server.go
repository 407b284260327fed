// Package extauthz is Gatehouse's envoy.service.auth.v3.Authorization server: it decides every request Envoy
// forwards, in this order: request → canonical path → rule → token → revocation → permission → response.
// Every failure, including panics and store errors, is a denial CheckResponse, never a gRPC error.
package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"gatehouse/policy"
	"gatehouse/store"
	"gatehouse/token"
)

// Revocations answers whether a verified token was revoked. Implementations make at most one store round trip.
// Besides plain errors (503 store_unavailable) they may return store.ErrStoreReset (401 store_reset: the token
// predates a loss of the store's data) and store.ErrStale (503 revocation_stale: a replica lost touch).
type Revocations interface {
	Revoked(ctx context.Context, jti, sid, userID string, issuedAt time.Time) (bool, error)
}

// localRevocations is implemented by Revocations that answer from memory without I/O (the Redis replica, the
// in-memory store): Check then skips the per-request deadline, which only exists to bound a network call.
type localRevocations interface {
	Local() bool
}

// Verifier verifies a token of a wanted type.
type Verifier interface {
	Verify(raw string, want token.Type) (*token.Claims, error)
}

// Config wires a Server.
type Config struct {
	Policy      *policy.Policy
	Verifier    Verifier
	Revocations Revocations
	Headers     HeaderNames  // zero value: DefaultHeaderNames
	Logger      *slog.Logger // audit lines for denials
	Now         func() time.Time
	// RevocationTimeout bounds the revocation lookup; it must stay well under Envoy's ext_authz timeout so a slow
	// store becomes our 503, not Envoy's status_on_error. Unused when the Revocations are local.
	RevocationTimeout time.Duration // default 100ms
	// CacheSize bounds the verified-token cache (entries); 0 means the default 100,000, negative disables it.
	CacheSize int
	// Browser turns on browser sessions (access cookie, CSRF check, redirects to the portal; browser.go).
	Browser *BrowserConfig
	// Observer receives every decision (metrics); nil observes nothing.
	Observer Observer
}

// Observer is told about every decision. It is called on the hot path, so it must not block or allocate.
// took is measured with Config.Now.
type Observer interface {
	Decided(status int, reason, rule string, took time.Duration)
	TokenCache(hit bool)
}

// Server implements authv3.AuthorizationServer.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	policy      atomic.Pointer[compiled]
	verifier    Verifier
	revocations Revocations
	revLocal    bool
	resp        *responder
	log         *slog.Logger
	now         func() time.Time
	revTimeout  time.Duration
	cache       *claimsCache
	browser     *browser // nil: Bearer only
	obs         Observer // nil: none
}

// New builds a Server. Policy, Verifier and Revocations are required.
func New(c Config) (*Server, error) {
	if c.Policy == nil || c.Verifier == nil || c.Revocations == nil {
		return nil, errors.New("extauthz: policy, verifier and revocations are required")
	}
	if c.Headers == (HeaderNames{}) {
		c.Headers = DefaultHeaderNames
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RevocationTimeout <= 0 {
		c.RevocationTimeout = 100 * time.Millisecond
	}
	switch {
	case c.CacheSize == 0:
		c.CacheSize = 100_000
	case c.CacheSize < 0:
		c.CacheSize = 0
	}
	s := &Server{verifier: c.Verifier, revocations: c.Revocations, resp: newResponder(c.Headers), log: c.Logger,
		now: c.Now, revTimeout: c.RevocationTimeout, cache: newClaimsCache(c.CacheSize), obs: c.Observer}
	if l, ok := c.Revocations.(localRevocations); ok {
		s.revLocal = l.Local()
	}
	var err error
	if s.browser, err = newBrowser(c.Browser); err != nil {
		return nil, fmt.Errorf("extauthz: %w", err)
	}
	s.policy.Store(compile(c.Policy))
	return s, nil
}

// SetPolicy swaps the policy atomically: each Check sees exactly one policy version.
func (s *Server) SetPolicy(p *policy.Policy) { s.policy.Store(compile(p)) }

// Check decides one request. It never returns an error. Responses that do not depend on the caller (denials,
// public allows) and the metadata of every response are rendered once per policy version; an authenticated allow
// costs one allocation for the caller's identity headers. The gRPC service decides the same way from the wire
// (checkHandler), without building the CheckRequest.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r := getRequest()
	defer putRequest(r)
	r.fill(req)
	return s.check(ctx, r), nil
}

func (s *Server) check(ctx context.Context, r *request) *authv3.CheckResponse {
	// One clock read serves as the observer's start and as the token's "now" (a read costs ~40ns on the project's
	// machine); without an observer, only routes that need a token read the clock at all.
	var start time.Time
	if s.obs != nil {
		start = s.now()
	}
	c := s.policy.Load()
	o, claims := s.decide(ctx, c.policy, r, start)
	if s.obs != nil {
		rule := ""
		if o.rule != nil {
			rule = o.rule.Name
		}
		s.obs.Decided(o.status, o.reason, rule, s.now().Sub(start))
	}
	switch {
	case o.allowed() && claims != nil:
		return s.allow(c, o, claims)
	case o.allowed():
		return c.response(s.resp, o)
	}
	if resp := s.browserDeny(ctx, r, o, claims); resp != nil {
		return resp
	}
	s.audit(ctx, r, o, claims)
	return c.response(s.resp, o)
}

// decide returns the outcome and, once the token verified, its claims. now is the time of the decision, or zero
// when the clock has not been read yet.
func (s *Server) decide(ctx context.Context, p *policy.Policy, h *request, now time.Time) (outcome, *token.Claims) {
	if !h.http || h.method == "" || h.path == "" {
		return outcome{status: 400, reason: ReasonMalformedRequest}, nil
	}
	path, err := policy.CanonicalPath(h.path)
	if err != nil {
		return outcome{status: 400, reason: policy.ReasonNonCanonicalPath}, nil
	}
	rule := p.Match(h.method, h.host, path)
	if rule == nil {
		return outcome{status: 403, reason: policy.ReasonNoRoute}, nil
	}
	if rule.Access == policy.AccessPublic {
		return outcome{status: 200, reason: policy.ReasonPublic, rule: rule}, nil
	}
	claims, reason := s.authenticate(h, now)
	if claims == nil {
		return outcome{status: unauthenticatedStatus(reason), reason: reason, rule: rule}, nil
	}
	if o, ok := s.checkRevoked(ctx, claims, rule); !ok {
		return o, claims
	}
	if !p.Authorized(rule, p.Grants(claims.Roles)) {
		return outcome{status: 403, reason: policy.ReasonForbidden, rule: rule}, claims
	}
	return outcome{status: 200, reason: policy.ReasonAllowed, rule: rule}, claims
}

// authenticate returns verified access-token claims, or nil and the reason.
func (s *Server) authenticate(h *request, now time.Time) (*token.Claims, string) {
	raw, reason := bearerCandidate(h) // characters checked below, for tokens not in the cache
	if reason == ReasonTokenMissing {
		raw, reason = s.browser.cookieToken(h)
	}
	if reason != "" {
		return nil, reason
	}
	if now.IsZero() {
		now = s.now()
	}
	key := keyOf(raw)
	if c := s.cache.get(&key, now); c != nil {
		if s.obs != nil {
			s.obs.TokenCache(true)
		}
		return c, ""
	}
	if s.obs != nil {
		s.obs.TokenCache(false)
	}
	if !token.IsB64Token(raw) {
		return nil, ReasonTokenInvalid
	}
	c, err := s.verifier.Verify(raw, token.Access)
	if err != nil {
		return nil, token.Reason(err)
	}
	s.cache.put(&key, c, now)
	return c, ""
}

// checkRevoked runs on every request, cached token or not.
func (s *Server) checkRevoked(ctx context.Context, c *token.Claims, rule *policy.Rule) (outcome, bool) {
	revoked, err := s.revoked(ctx, c)
	switch {
	case errors.Is(err, store.ErrStoreReset):
		return outcome{status: 401, reason: ReasonStoreReset, rule: rule}, false
	case errors.Is(err, store.ErrStale):
		// The replica logs losing and regaining Redis; a line per request would flood the log.
		return outcome{status: 503, reason: ReasonRevocationStale, rule: rule}, false
	case err != nil:
		s.log.LogAttrs(ctx, slog.LevelError, "revocation lookup failed", slog.String("event", "authz.store_error"),
			slog.String("error", err.Error()))
		return outcome{status: 503, reason: ReasonStoreUnavailable, rule: rule}, false
	case revoked:
		return outcome{status: 401, reason: ReasonTokenRevoked, rule: rule}, false
	}
	return outcome{}, true
}

func (s *Server) revoked(ctx context.Context, c *token.Claims) (bool, error) {
	if s.revLocal {
		return s.revocations.Revoked(ctx, c.ID, c.SessionID, c.Subject, c.IssuedAt)
	}
	ctx, cancel := context.WithTimeout(ctx, s.revTimeout)
	defer cancel()
	return s.revocations.Revoked(ctx, c.ID, c.SessionID, c.Subject, c.IssuedAt)
}

// audit writes one line per denial. It never logs headers, tokens or the query string.
func (s *Server) audit(ctx context.Context, h *request, o outcome, c *token.Claims) {
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return // building the line allocates; skip it when nobody reads it
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("event", "authz.deny"), slog.Int("status", o.status), slog.String("reason", o.reason))
	if o.rule != nil {
		attrs = append(attrs, slog.String("rule", o.rule.Name))
	}
	if h.http {
		attrs = append(attrs, slog.String("method", clip(h.method, 16)), slog.String("host", clip(h.host, 256)),
			slog.String("path", logPath(h.path)), slog.String("request_id", clip(h.id, 128)))
	}
	if c != nil {
		attrs = append(attrs, slog.String("user_id", c.Subject), slog.String("session_id", c.SessionID), slog.String("jti", c.ID))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "request denied", attrs...)
}

// logPath drops the query and fragment (they can carry tokens) and bounds the length.
func logPath(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' || p[i] == '#' {
			p = p[:i]
			break
		}
	}
	return clip(p, 512)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
