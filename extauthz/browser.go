package extauthz

import (
	"context"
	"errors"
	"net/url"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"gatehouse/portal/safeurl"
	"gatehouse/token"
)

// Browser sessions: with Config.Browser set, the decider also serves people using the web portal.
//
//   - Cookie: a request with no Authorization header may carry the access token in the access cookie. An
//     Authorization header always wins: the cookie is then not read at all. Two cookies of that name are refused
//     (token_invalid) rather than guessed between.
//   - CSRF: a cookie-authenticated request with an unsafe method (anything but GET, HEAD, OPTIONS) is denied 403,
//     reason csrf, when Sec-Fetch-Site is cross-site or an Origin header is present and is neither the request's
//     own host nor an allowed domain ("null" included). Without either header the request passes: only browsers
//     send them, and SameSite=Lax keeps the cookie off cross-site posts in every current browser anyway. Bearer
//     requests are never checked: a page cannot make a browser add an Authorization header cross-site.
//   - Redirects: a browser navigation (GET or HEAD with text/html in Accept, no Authorization header) that would
//     be denied 401 is instead answered 302: to the portal's refresh endpoint when the access cookie's token has
//     expired, else to sign-in. Both carry ?return_to= the URL Envoy reports (scheme://host + path and query),
//     when that URL is allowed (https, a host in Sites); otherwise the portal sends the person to its home page.
//     API clients keep the 401 with WWW-Authenticate.

// ReasonCSRF denies a cookie-authenticated unsafe request from another site.
const ReasonCSRF = "csrf"

// BrowserConfig turns on browser sessions.
type BrowserConfig struct {
	// AccessCookie is the name of the cookie holding the access token (portal.cookies.access).
	AccessCookie string
	// SignInURL and RefreshURL are the portal's absolute sign-in and refresh URLs.
	SignInURL, RefreshURL string
	// Sites are the allowed domains: hosts a return URL may name and origins that may post with the cookie.
	Sites safeurl.Policy
}

// browser is BrowserConfig, checked. A nil *browser means browser sessions are off; its methods accept that.
type browser struct {
	cookie          string
	signIn, refresh string
	sites           safeurl.Policy
}

func newBrowser(c *BrowserConfig) (*browser, error) {
	if c == nil {
		return nil, nil
	}
	var errs []error
	if c.AccessCookie == "" || strings.ContainsAny(c.AccessCookie, "=; \t\r\n,\"") {
		errs = append(errs, errors.New("browser: an access cookie name is required"))
	}
	for _, u := range []string{c.SignInURL, c.RefreshURL} {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.RawQuery != "" {
			errs = append(errs, errors.New("browser: the portal's sign-in and refresh URLs must be absolute, without query"))
			break
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &browser{cookie: c.AccessCookie, signIn: c.SignInURL, refresh: c.RefreshURL, sites: c.Sites}, nil
}

// cookieToken is bearerToken for a request without an Authorization header: the access token from the access
// cookie, with the CSRF check of unsafe methods. reason is ReasonTokenMissing without a cookie.
func (b *browser) cookieToken(h *request) (tok, reason string) {
	if b == nil {
		return "", ReasonTokenMissing
	}
	var arr [2]string
	vals := cookieValues(h, b.cookie, arr[:0])
	switch {
	case len(vals) == 0:
		return "", ReasonTokenMissing
	case len(vals) > 1:
		return "", ReasonTokenInvalid
	}
	v := vals[0]
	if len(v) > token.MaxTokenSize {
		return "", reasonTokenTooLarge
	}
	if v == "" {
		return "", ReasonTokenMissing // a deleted cookie some clients still send as "name="
	}
	if !token.IsB64Token(v) {
		return "", ReasonTokenInvalid
	}
	if b.crossSite(h) {
		return "", ReasonCSRF
	}
	return v, ""
}

// unauthenticatedStatus is the status of a request whose credentials were refused: 403 for a cross-site
// cookie post (the credentials may be fine; the request is forged), else 401.
func unauthenticatedStatus(reason string) int {
	if reason == ReasonCSRF {
		return 403
	}
	return 401
}

// crossSite reports whether an unsafe request shows another site's origin.
func (b *browser) crossSite(h *request) bool {
	switch h.method {
	case "GET", "HEAD", "OPTIONS":
		return false
	}
	var arr [2]string
	for _, v := range h.values("sec-fetch-site", arr[:0]) {
		if strings.EqualFold(strings.TrimSpace(v), "cross-site") {
			return true
		}
	}
	origins := h.values("origin", arr[:0])
	switch len(origins) {
	case 0:
		return false
	case 1:
		return !b.sites.OriginAllowed(strings.TrimSpace(origins[0]), h.host)
	}
	return true // several Origin headers: not a browser we know
}

// isNavigation reports whether the request is a browser loading a page: GET or HEAD, Accept naming text/html,
// and no Authorization header (a client that sends one wants the 401 and its challenge).
func isNavigation(h *request) bool {
	if m := h.method; m != "GET" && m != "HEAD" {
		return false
	}
	var arr [2]string
	if len(authorizationValues(h, arr[:0])) > 0 {
		return false
	}
	for _, v := range h.values("accept", arr[:0]) {
		if strings.Contains(strings.ToLower(v), "text/html") {
			return true
		}
	}
	return false
}

// location is where a refused navigation goes: the refresh endpoint when the cookie's token expired (the refresh
// cookie may renew it), else sign-in; both with the request's URL to come back to, when it is allowed.
func (b *browser) location(h *request, reason string) string {
	target := b.signIn
	if reason == reasonTokenExpired {
		target = b.refresh
	}
	scheme := strings.ToLower(h.scheme)
	if scheme == "" {
		scheme = "https"
	}
	ret, ok := b.sites.ReturnURL(scheme + "://" + h.host + h.path)
	if !ok {
		return target
	}
	return target + "?return_to=" + url.QueryEscape(ret)
}

// browserDeny answers a 401 for a browser navigation with a redirect to the portal, audited as a 302. It
// returns nil when browser sessions are off or the request is not such a navigation.
func (s *Server) browserDeny(ctx context.Context, h *request, o outcome, c *token.Claims) *authv3.CheckResponse {
	b := s.browser
	if b == nil || o.status != 401 || !h.http || !isNavigation(h) {
		return nil
	}
	o.status = 302
	s.audit(ctx, h, o, c)
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.Unauthenticated), Message: o.reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_Found},
			Headers: []*corev3.HeaderValueOption{
				setHeader("location", b.location(h, o.reason)),
				setHeader("cache-control", "no-store"),
			},
		}},
		DynamicMetadata: metadata(o),
	}
}

// cookieValues returns the values of every cookie called name in the request's Cookie headers (RFC 6265
// section 4.2: "name=value" pairs separated by ";", one pair of double quotes allowed around a value).
func cookieValues(h *request, name string, buf []string) []string {
	var arr [2]string
	for _, line := range h.values("cookie", arr[:0]) {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			pair = strings.TrimSpace(pair)
			k, v, ok := strings.Cut(pair, "=")
			if !ok || strings.TrimSpace(k) != name {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			buf = append(buf, v)
		}
	}
	return buf
}
