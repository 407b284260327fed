package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
)

// CSRF defence for the portal's forms, in three layers (any one refusing refuses the post):
//
//  1. Fetch Metadata: Sec-Fetch-Site must be absent, "same-origin" or "none". Browsers set it on every request
//     and pages cannot forge it; "same-site" is refused too, so a sibling subdomain cannot post.
//  2. Origin: absent, or the portal's own origin. "null" (sandboxed frames, data: pages) is refused.
//  3. A signed double-submit token. The first page view sets a pre-session cookie holding 256 random bits
//     (__Host-gatehouse_csrf: HttpOnly, Secure, Path=/, no Domain, so a sibling subdomain cannot plant one); every
//     form carries HMAC-SHA256(key, cookie) in a hidden field, and a post must bring a cookie and a field that
//     match. The HMAC means knowing a cookie value is not enough to forge a field without the server key, and the
//     token needs no server-side state, so it survives restarts and load balancing when instances share the key.
//     It is a pre-session cookie, not the session's: sign-in itself (login CSRF) is protected, and a token leaked
//     from a page is useless without the cookie, which scripts cannot read.
//
// SameSite=Lax on the session cookies already keeps them off cross-site posts in current browsers; these layers
// do not rely on it.

const csrfField = "csrf"

// csrfCookieBytes is the entropy of the pre-session cookie.
const csrfCookieBytes = 32

// csrfCookieName: the __Host- prefix needs Secure, which dev mode (http://localhost) cannot have.
func (p *Portal) csrfCookieName() string {
	if p.cfg.Insecure {
		return "gatehouse_csrf"
	}
	return "__Host-gatehouse_csrf"
}

// csrfCookie returns the request's pre-session cookie value, or "" when there is none or it is malformed or
// ambiguous (two cookies of that name).
func (p *Portal) csrfCookie(r *http.Request) string {
	v, ok := singleCookie(r, p.csrfCookieName())
	if !ok || len(v) != base64.RawURLEncoding.EncodedLen(csrfCookieBytes) || !isB64URL(v) {
		return ""
	}
	return v
}

// csrfToken returns the form token for this browser, setting the pre-session cookie first if it has none.
func (p *Portal) csrfToken(w http.ResponseWriter, r *http.Request) (string, error) {
	v := p.csrfCookie(r)
	if v == "" {
		b := make([]byte, csrfCookieBytes)
		if _, err := io.ReadFull(p.rand, b); err != nil {
			return "", err
		}
		v = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: p.csrfCookieName(), Value: v, Path: "/", HttpOnly: true,
			Secure: !p.cfg.Insecure, SameSite: http.SameSiteLaxMode})
		// Later reads in this request see the new cookie.
		r.AddCookie(&http.Cookie{Name: p.csrfCookieName(), Value: v})
	}
	return p.csrfMAC(v), nil
}

func (p *Portal) csrfMAC(cookie string) string {
	m := hmac.New(sha256.New, p.cfg.CSRFKey)
	m.Write([]byte("gatehouse/portal/csrf\x00"))
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF returns "" when the post may proceed, else a reason for the log.
func (p *Portal) checkCSRF(r *http.Request) string {
	switch site := r.Header.Values("Sec-Fetch-Site"); {
	case len(site) > 1:
		return "sec_fetch_site_ambiguous"
	case len(site) == 1 && site[0] != "same-origin" && site[0] != "none":
		return "sec_fetch_site_" + clipReason(site[0])
	}
	switch origin := r.Header.Values("Origin"); {
	case len(origin) > 1:
		return "origin_ambiguous"
	case len(origin) == 1 && !p.sameOrigin(origin[0], r):
		return "origin_foreign"
	}
	cookie := p.csrfCookie(r)
	if cookie == "" {
		return "csrf_cookie_missing"
	}
	field := r.PostForm[csrfField]
	if len(field) != 1 || subtle.ConstantTimeCompare([]byte(field[0]), []byte(p.csrfMAC(cookie))) != 1 {
		return "csrf_token_mismatch"
	}
	return ""
}

// sameOrigin reports whether an Origin header is the portal's own origin: the configured URL's, or the host the
// request came to with the configured scheme (a portal reached through another name of the same server).
func (p *Portal) sameOrigin(origin string, r *http.Request) bool {
	if strings.EqualFold(origin, p.origin) {
		return true
	}
	return r.Host != "" && strings.EqualFold(origin, p.base.Scheme+"://"+r.Host)
}

func clipReason(s string) string {
	if len(s) > 16 {
		s = s[:16]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r == '-' {
			return r
		}
		return '_'
	}, s)
}

func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// singleCookie returns the value of the one cookie named name. Two cookies of one name (a planted copy with
// another Path or Domain) are ambiguous: ok is false rather than guessing which the browser meant.
func singleCookie(r *http.Request, name string) (string, bool) {
	cs := r.CookiesNamed(name)
	if len(cs) != 1 {
		return "", false
	}
	return cs[0].Value, true
}
