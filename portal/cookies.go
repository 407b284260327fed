package portal

import (
	"errors"
	"fmt"
	"net/http"

	"gatehouse/issuer"
	"gatehouse/token"
)

// Browser session cookies.
//
//   - access (gatehouse_access): the access JWT. HttpOnly, Secure, SameSite=Lax, Path=/, Domain = CookieDomain
//     when set (so the sidecars of apps on sibling hosts receive it). It lives as long as the session (the refresh
//     token's exp), not the access token: an expired access token must still reach the sidecar, which then sends
//     the browser to the refresh endpoint instead of the sign-in page.
//   - refresh (gatehouse_refresh): the refresh JWT. HttpOnly, Secure, SameSite=Lax, host-only, Path=<prefix>/refresh,
//     so it is sent to the refresh endpoint and nowhere else (not to apps, not to other portal pages).
//
// Lax (not Strict) because the sidecar's redirect to the refresh endpoint is a top-level navigation that may
// come from another site; Lax still keeps both cookies off cross-site posts and subresource requests.

// errNoSession: the request carries no (unambiguous) access cookie.
var errNoSession = errors.New("portal: no session cookie")

func (p *Portal) refreshPath() string { return p.prefix + "/refresh" }

// setSession stores t in the cookies. Both live until the session ends (the refresh token's exp).
func (p *Portal) setSession(w http.ResponseWriter, t issuer.Tokens) error {
	rc, err := p.cfg.Verifier.Verify(t.RefreshToken, token.Refresh)
	if err != nil {
		return fmt.Errorf("portal: the issuer's refresh token does not verify: %w", err)
	}
	maxAge := int(rc.ExpiresAt.Sub(p.now()).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	if p.cfg.CookieDomain != "" {
		// A host-only copy left from before the domain was configured would make the access cookie ambiguous.
		http.SetCookie(w, p.cookie(p.cfg.AccessCookie, "", "/", "", -1))
	}
	http.SetCookie(w, p.cookie(p.cfg.AccessCookie, t.AccessToken, "/", p.cfg.CookieDomain, maxAge))
	http.SetCookie(w, p.cookie(p.cfg.RefreshCookie, t.RefreshToken, p.refreshPath(), "", maxAge))
	return nil
}

// clearSession deletes both cookies (same name, path and domain, Max-Age=0).
func (p *Portal) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, p.cookie(p.cfg.AccessCookie, "", "/", p.cfg.CookieDomain, -1))
	if p.cfg.CookieDomain != "" {
		http.SetCookie(w, p.cookie(p.cfg.AccessCookie, "", "/", "", -1))
	}
	http.SetCookie(w, p.cookie(p.cfg.RefreshCookie, "", p.refreshPath(), "", -1))
}

// cookie builds a session cookie; maxAge < 0 deletes it.
func (p *Portal) cookie(name, value, path, domain string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: path, Domain: domain, MaxAge: maxAge,
		HttpOnly: true, Secure: !p.cfg.Insecure, SameSite: http.SameSiteLaxMode}
}

// session returns the verified claims of the request's access cookie: errNoSession without one, the issuer's
// ErrInvalidToken when it does not verify or was revoked, ErrUnavailable when the store cannot say.
func (p *Portal) session(r *http.Request) (*token.Claims, error) {
	raw, ok := singleCookie(r, p.cfg.AccessCookie)
	if !ok || raw == "" {
		return nil, errNoSession
	}
	if len(raw) > token.MaxTokenSize {
		return nil, issuer.ErrInvalidToken
	}
	return p.cfg.Issuer.VerifyAccess(r.Context(), raw)
}

// signedInAs is the username of a valid session, or "" (for pages that work either way).
func (p *Portal) signedInAs(r *http.Request) string {
	c, err := p.session(r)
	if err != nil {
		return ""
	}
	return c.Username
}
