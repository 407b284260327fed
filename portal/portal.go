package portal

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"gatehouse/issuer"
	"gatehouse/portal/safeurl"
	"gatehouse/token"
)

// Issuer is the part of *issuer.Server the portal drives: every flow goes through the issuer's Go API, so
// lockouts, replay refusal and session rules are the API's, never re-implemented here.
type Issuer interface {
	Authenticate(ctx context.Context, username, password, clientIP, userAgent string) (issuer.LoginResult, error)
	VerifyMFA(ctx context.Context, mfaToken, code, clientIP, userAgent string) (issuer.Tokens, error)
	Refresh(ctx context.Context, refreshToken, clientIP, userAgent string) (issuer.Tokens, error)
	VerifyAccess(ctx context.Context, accessToken string) (*token.Claims, error)
	ListSessions(ctx context.Context, c *token.Claims) ([]issuer.SessionInfo, error)
	RevokeSession(ctx context.Context, c *token.Claims, id, clientIP string) error
	Logout(ctx context.Context, c *token.Claims, clientIP string) error
	LogoutAll(ctx context.Context, c *token.Claims, clientIP string) error
	SetupMFA(ctx context.Context, c *token.Claims, clientIP string) (issuer.MFASetup, error)
	ConfirmMFA(ctx context.Context, c *token.Claims, code, clientIP string) ([]string, error)
	DisableMFA(ctx context.Context, c *token.Claims, code, clientIP string) error
	MFAStatus(ctx context.Context, c *token.Claims) (issuer.MFAStatus, error)
}

var _ Issuer = (*issuer.Server)(nil)

// Verifier verifies a token (*token.Verifier). The portal uses it to read a refresh token's expiry, which is the
// session's end and so the cookies' lifetime.
type Verifier interface {
	Verify(raw string, want token.Type) (*token.Claims, error)
}

// Default cookie names.
const (
	DefaultAccessCookie  = "gatehouse_access"
	DefaultRefreshCookie = "gatehouse_refresh"
)

// Config wires a Portal.
type Config struct {
	Issuer   Issuer   // required
	Verifier Verifier // required
	// URL is the portal's public base URL (https://login.example.com/portal). Its path is the prefix the portal
	// serves under; pages link and redirect to absolute URLs built from it.
	URL string
	// Title is the name in the page header and titles; default "Gatehouse".
	Title string
	// Logo is an optional image shown beside the title (PNG, JPEG, GIF, WebP or SVG; LogoType its media type).
	Logo     []byte
	LogoType string
	// AccessCookie and RefreshCookie name the cookies; defaults DefaultAccessCookie and DefaultRefreshCookie.
	AccessCookie, RefreshCookie string
	// CookieDomain is the access cookie's Domain attribute ("" = host-only): set it to the parent domain of the
	// protected apps (example.com) so their sidecars receive the cookie.
	CookieDomain string
	// Insecure drops the Secure attribute from every cookie. Local development only: New refuses it unless URL is
	// http://localhost or a loopback IP.
	Insecure bool
	// ReturnURLs is where the portal may send a browser after sign-in (the sidecar's return URLs).
	ReturnURLs safeurl.Policy
	// CSRFKey (at least 32 bytes) keys the form tokens. Instances behind one load balancer need the same key.
	CSRFKey []byte
	// ClientIP returns the client address of a request for regulation and audit (issuer.Server.ClientIP, which
	// believes X-Forwarded-For from trusted proxies only). Default: the socket peer.
	ClientIP func(*http.Request) string
	Logger   *slog.Logger     // default slog.Default()
	Now      func() time.Time // default time.Now
	Rand     io.Reader        // default crypto/rand
}

// Portal is the web sign-in portal. It is safe for concurrent use.
type Portal struct {
	cfg       Config
	base      *url.URL       // URL, without a trailing slash
	self      safeurl.Policy // the portal's own host, always a valid return URL
	prefix    string         // base.Path
	origin    string         // scheme://host of base
	pages     *pages
	refresher *refresher
	log       *slog.Logger
	now       func() time.Time
	rand      io.Reader
	mux       *http.ServeMux
	cssPath   string
}

// New validates c and builds a Portal.
func New(c Config) (*Portal, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Issuer == nil || c.Verifier == nil {
		bad("issuer and verifier are required")
	}
	base, err := url.Parse(strings.TrimSuffix(c.URL, "/"))
	switch {
	case err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.User != nil ||
		base.RawQuery != "" || base.Fragment != "":
		bad("url must be an absolute http(s) URL without query, got %q", c.URL)
	case base.Path == "" || !strings.HasPrefix(base.Path, "/") || strings.Contains(base.Path, "//"):
		bad("url must have a path to serve under (like /portal), got %q", c.URL)
	case base.Scheme == "http" && !IsLoopbackHost(base.Hostname()):
		bad("url must be https unless the portal runs on localhost or a loopback IP, got %q", c.URL)
	case c.Insecure && !(base.Scheme == "http" && IsLoopbackHost(base.Hostname())):
		bad("insecure cookies are only allowed for an http://localhost or loopback portal URL, got %q", c.URL)
	}
	if len(c.CSRFKey) < 32 {
		bad("the CSRF key must be at least 32 bytes")
	}
	if c.AccessCookie == "" {
		c.AccessCookie = DefaultAccessCookie
	}
	if c.RefreshCookie == "" {
		c.RefreshCookie = DefaultRefreshCookie
	}
	if !validCookieName(c.AccessCookie) || !validCookieName(c.RefreshCookie) || c.AccessCookie == c.RefreshCookie {
		bad("cookie names must be distinct tokens of letters, digits, '_', '-' and '.'")
	}
	if c.Logo != nil && !allowedLogoType(c.LogoType) {
		bad("logo type %q is not an image type the portal serves", c.LogoType)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("portal: %w", errors.Join(errs...))
	}
	if c.Title == "" {
		c.Title = "Gatehouse"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = cryptorand.Reader
	}
	if c.ClientIP == nil {
		c.ClientIP = peerIP
	}
	p := &Portal{cfg: c, base: base, prefix: base.Path, origin: base.Scheme + "://" + base.Host,
		log: c.Logger, now: c.Now, rand: c.Rand}
	if p.self, err = safeurl.NewPolicy([]string{strings.ToLower(strings.Trim(base.Hostname(), "[]"))}, c.Insecure); err != nil {
		return nil, fmt.Errorf("portal: url host: %w", err)
	}
	p.refresher = newRefresher(c.Issuer, c.Now)
	p.cssPath = p.prefix + "/static/portal.css?v=" + cssVersion
	p.pages, err = loadPages()
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	p.mux = p.routes()
	return p, nil
}

// Prefix is the path the portal serves under (the path of Config.URL, like "/portal"); mount Handler on
// Prefix+"/" and Prefix.
func (p *Portal) Prefix() string { return p.prefix }

// SignInURL and RefreshURL are the absolute URLs the sidecar redirects browsers to (with ?return_to=).
func (p *Portal) SignInURL() string  { return p.abs("/sign-in") }
func (p *Portal) RefreshURL() string { return p.abs("/refresh") }

// abs is the absolute URL of a portal path ("/sign-in").
func (p *Portal) abs(path string) string { return p.origin + p.prefix + path }

// home is the portal's own landing page, where an invalid return URL leads.
func (p *Portal) home() string { return p.abs("/") }

// IsLoopbackHost reports whether host is localhost or a loopback IP: the only hosts where the portal may run
// over plain http with cookies lacking Secure.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

func validCookieName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func allowedLogoType(t string) bool {
	switch t {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml":
		return true
	}
	return false
}

// peerIP is the socket peer's address, the default ClientIP.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	return a.Unmap().String()
}
