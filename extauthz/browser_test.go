package extauthz

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"gatehouse/policy"
	"gatehouse/portal/safeurl"
	"gatehouse/token"
)

const (
	testSignIn  = "https://login.example.com/portal/sign-in"
	testRefresh = "https://login.example.com/portal/refresh"
	html        = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
)

// newBrowserHarness is newHarness with browser sessions on: cookie gatehouse_access, the portal on
// login.example.com, allowed domain example.com.
func newBrowserHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	sites, err := safeurl.NewPolicy([]string{"example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = h.server(t, func(c *Config) {
		c.Browser = &BrowserConfig{AccessCookie: "gatehouse_access", SignInURL: testSignIn, RefreshURL: testRefresh, Sites: sites}
	})
	return h
}

func cookieHeader(tok string) string { return "theme=dark; gatehouse_access=" + tok + "; other=1" }

func responseHeader(r *authv3.CheckResponse, name string) string {
	var hs []*corev3.HeaderValueOption
	if ok := r.GetOkResponse(); ok != nil {
		hs = ok.GetHeaders()
	} else {
		hs = r.GetDeniedResponse().GetHeaders()
	}
	for _, hv := range hs {
		if strings.EqualFold(hv.GetHeader().GetKey(), name) {
			return hv.GetHeader().GetValue()
		}
	}
	return ""
}

func TestCookieAuthentication(t *testing.T) {
	h := newBrowserHarness(t)
	valid := h.sign(h.claims(token.Access, "user"))
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		reason  string
	}{
		{"cookie alone", map[string]string{"cookie": cookieHeader(valid)}, 200, policy.ReasonAllowed},
		{"quoted cookie", map[string]string{"cookie": `gatehouse_access="` + valid + `"`}, 200, policy.ReasonAllowed},
		{"no cookie", map[string]string{"cookie": "theme=dark"}, 401, ReasonTokenMissing},
		{"look-alike names", map[string]string{"cookie": "xgatehouse_access=" + valid + "; gatehouse_access2=" + valid}, 401, ReasonTokenMissing},
		{"empty cookie", map[string]string{"cookie": "gatehouse_access="}, 401, ReasonTokenMissing},
		{"two cookies", map[string]string{"cookie": "gatehouse_access=" + valid + "; gatehouse_access=" + valid}, 401, ReasonTokenInvalid},
		{"garbage cookie", map[string]string{"cookie": "gatehouse_access=a b"}, 401, ReasonTokenInvalid},
		{"forged cookie", map[string]string{"cookie": "gatehouse_access=" + valid[:len(valid)-4] + "AAAA"}, 401, "token_signature"},
		// An Authorization header always wins: the cookie is not read at all.
		{"bad bearer, good cookie", map[string]string{"authorization": "Bearer nope", "cookie": cookieHeader(valid)}, 401, "token_malformed"},
		{"basic auth, good cookie", map[string]string{"authorization": "Basic YTpi", "cookie": cookieHeader(valid)}, 401, ReasonTokenInvalid},
		{"good bearer, garbage cookie", map[string]string{"authorization": "Bearer " + valid, "cookie": "gatehouse_access=x y"}, 200, policy.ReasonAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.check("GET", "api.example.com", "/me", c.headers)
			if httpStatus(r) != c.status || reason(r) != c.reason {
				t.Errorf("got %d %s, want %d %s", httpStatus(r), reason(r), c.status, c.reason)
			}
			if c.status == 200 && responseHeader(r, "x-username") != "alice" {
				t.Errorf("identity headers missing on a cookie-authenticated allow")
			}
		})
	}
	// Browser sessions off: the cookie means nothing.
	off := newHarness(t)
	r := off.check("GET", "api.example.com", "/me", map[string]string{"cookie": cookieHeader(off.sign(off.claims(token.Access, "user")))})
	if httpStatus(r) != 401 || reason(r) != ReasonTokenMissing {
		t.Errorf("cookie honoured with browser sessions off: %d %s", httpStatus(r), reason(r))
	}
}

// TestCookieFromRawHeaderMap: Envoy with encode_raw_headers sends header_map, one entry per header line (HTTP/2
// splits cookies into several).
func TestCookieFromRawHeaderMap(t *testing.T) {
	h := newBrowserHarness(t)
	valid := h.sign(h.claims(token.Access, "user"))
	req := NewCheckRequest("POST", "api.example.com", "/me", nil)
	hr := req.Attributes.Request.Http
	hr.Headers = nil
	hr.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", Value: "POST"}, {Key: "cookie", Value: "theme=dark"},
		{Key: "cookie", RawValue: []byte("gatehouse_access=" + valid)},
	}}
	r, _ := h.srv.Check(context.Background(), req)
	if httpStatus(r) != 200 {
		t.Fatalf("got %d %s", httpStatus(r), reason(r))
	}
	hr.HeaderMap.Headers = append(hr.HeaderMap.Headers, &corev3.HeaderValue{Key: "origin", Value: "https://app.example.com"},
		&corev3.HeaderValue{Key: "origin", Value: "https://evil.test"})
	if r, _ := h.srv.Check(context.Background(), req); httpStatus(r) != 403 || reason(r) != ReasonCSRF {
		t.Errorf("two Origin headers: got %d %s, want 403 csrf", httpStatus(r), reason(r))
	}
}

func TestCSRF(t *testing.T) {
	h := newBrowserHarness(t)
	valid := h.sign(h.claims(token.Access, "user"))
	withCookie := func(kv ...string) map[string]string {
		m := map[string]string{"cookie": cookieHeader(valid)}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	cases := []struct {
		name    string
		method  string
		headers map[string]string
		csrf    bool
	}{
		{"post, no browser headers", "POST", withCookie(), false},
		{"post same-origin", "POST", withCookie("sec-fetch-site", "same-origin", "origin", "https://api.example.com"), false},
		{"post same-site", "POST", withCookie("sec-fetch-site", "same-site", "origin", "https://app.example.com"), false},
		{"post from an allowed domain", "POST", withCookie("origin", "https://login.example.com"), false},
		{"post cross-site", "POST", withCookie("sec-fetch-site", "cross-site"), true},
		{"post cross-site, upper case", "POST", withCookie("sec-fetch-site", "Cross-Site"), true},
		{"post cross-site despite a good origin", "POST", withCookie("sec-fetch-site", "cross-site", "origin", "https://api.example.com"), true},
		{"origin null", "POST", withCookie("origin", "null"), true},
		{"foreign origin", "POST", withCookie("origin", "https://evil.test"), true},
		{"suffix origin", "POST", withCookie("origin", "https://evilexample.com"), true},
		{"http origin", "POST", withCookie("origin", "http://api.example.com"), true},
		{"origin with port of another host", "POST", withCookie("origin", "https://evil.test:443"), true},
		{"put cross-site", "PUT", withCookie("sec-fetch-site", "cross-site"), true},
		{"patch foreign origin", "PATCH", withCookie("origin", "https://evil.test"), true},
		{"delete foreign origin", "DELETE", withCookie("origin", "https://evil.test"), true},
		{"custom method foreign origin", "PURGE", withCookie("origin", "https://evil.test"), true},
		{"get cross-site is safe", "GET", withCookie("sec-fetch-site", "cross-site", "origin", "https://evil.test"), false},
		{"head cross-site is safe", "HEAD", withCookie("sec-fetch-site", "cross-site"), false},
		{"bearer is never checked", "POST", map[string]string{"authorization": "Bearer " + valid, "sec-fetch-site": "cross-site", "origin": "null"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.check(c.method, "api.example.com", "/me", c.headers)
			if c.csrf {
				if httpStatus(r) != 403 || reason(r) != ReasonCSRF || r.GetStatus().GetCode() != int32(codes.PermissionDenied) {
					t.Errorf("got %d %s, want 403 csrf", httpStatus(r), reason(r))
				}
				return
			}
			if httpStatus(r) != 200 {
				t.Errorf("got %d %s, want allowed", httpStatus(r), reason(r))
			}
		})
	}
}

// TestBrowserRedirects: navigations that would get a 401 go to the portal; everything else keeps its answer.
func TestBrowserRedirects(t *testing.T) {
	h := newBrowserHarness(t)
	valid := h.sign(h.claims(token.Access, "user"))
	guest := h.sign(h.claims(token.Access, "guest"))
	expired := h.claims(token.Access, "user")
	expired.IssuedAt, expired.ExpiresAt = h.now.Add(-2*time.Hour), h.now.Add(-time.Hour)
	expiredTok := h.sign(expired)
	revoked := h.claims(token.Access, "user")
	revoked.ID = "jti-gone"
	revokedTok := h.sign(revoked)
	if err := h.store.RevokeToken(context.Background(), "jti-gone", revoked.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	ret := func(u string) string { return "?return_to=" + url.QueryEscape(u) }
	cases := []struct {
		name               string
		method, host, path string
		scheme             string
		headers            map[string]string
		status             int
		location           string
		reason             string
	}{
		{"no cookie", "GET", "api.example.com", "/me?tab=2&x=%2F", "https", map[string]string{"accept": html}, 302,
			testSignIn + ret("https://api.example.com/me?tab=2&x=%2F"), ReasonTokenMissing},
		{"head", "HEAD", "api.example.com", "/me", "https", map[string]string{"accept": "text/html"}, 302, testSignIn + ret("https://api.example.com/me"), ReasonTokenMissing},
		{"expired cookie", "GET", "api.example.com", "/me", "https", map[string]string{"accept": html, "cookie": cookieHeader(expiredTok)}, 302,
			testRefresh + ret("https://api.example.com/me"), "token_expired"},
		{"revoked cookie", "GET", "api.example.com", "/me", "https", map[string]string{"accept": html, "cookie": cookieHeader(revokedTok)}, 302,
			testSignIn + ret("https://api.example.com/me"), ReasonTokenRevoked},
		{"port kept", "GET", "app.example.com:8443", "/me", "https", map[string]string{"accept": html}, 302, testSignIn + ret("https://app.example.com:8443/me"), ReasonTokenMissing},
		{"host not allowed: no return URL", "GET", "evil.test", "/me", "https", map[string]string{"accept": html}, 302, testSignIn, ReasonTokenMissing},
		{"http outside dev mode: no return URL", "GET", "api.example.com", "/me", "http", map[string]string{"accept": html}, 302, testSignIn, ReasonTokenMissing},
		{"userinfo-looking host: no return URL", "GET", "api.example.com@evil.test", "/me", "https", map[string]string{"accept": html}, 302, testSignIn, ReasonTokenMissing},

		{"api client", "GET", "api.example.com", "/me", "https", map[string]string{"accept": "application/json"}, 401, "", ReasonTokenMissing},
		{"no accept", "GET", "api.example.com", "/me", "https", nil, 401, "", ReasonTokenMissing},
		{"post", "POST", "api.example.com", "/me", "https", map[string]string{"accept": html}, 401, "", ReasonTokenMissing},
		{"authorization present", "GET", "api.example.com", "/me", "https", map[string]string{"accept": html, "authorization": "Bearer nope"}, 401, "", "token_malformed"},
		{"expired bearer", "GET", "api.example.com", "/me", "https", map[string]string{"accept": html, "authorization": "Bearer " + expiredTok}, 401, "", "token_expired"},
		{"forbidden stays 403", "GET", "api.example.com", "/users/profile", "https", map[string]string{"accept": html, "cookie": cookieHeader(guest)}, 403, "", policy.ReasonForbidden},
		{"no route stays 403", "GET", "api.example.com", "/nowhere", "https", map[string]string{"accept": html}, 403, "", policy.ReasonNoRoute},
		{"allowed", "GET", "api.example.com", "/me", "https", map[string]string{"accept": html, "cookie": cookieHeader(valid)}, 200, "", policy.ReasonAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := NewCheckRequest(c.method, c.host, c.path, c.headers)
			req.Attributes.Request.Http.Scheme = c.scheme
			r, err := h.srv.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if httpStatus(r) != c.status || reason(r) != c.reason {
				t.Fatalf("got %d %s, want %d %s", httpStatus(r), reason(r), c.status, c.reason)
			}
			if got := responseHeader(r, "location"); got != c.location {
				t.Errorf("location %q, want %q", got, c.location)
			}
			switch c.status {
			case 302:
				if responseHeader(r, "cache-control") != "no-store" || responseHeader(r, "www-authenticate") != "" {
					t.Errorf("redirect headers: %v", r.GetDeniedResponse().GetHeaders())
				}
				if r.GetStatus().GetCode() != int32(codes.Unauthenticated) {
					t.Errorf("gRPC code %d", r.GetStatus().GetCode())
				}
			case 401:
				if responseHeader(r, "www-authenticate") == "" {
					t.Errorf("a 401 lost its challenge")
				}
			}
		})
	}
	mustContain(t, h.logs.String(), `"status":302,"reason":"token_missing"`)
}

func TestNewBrowserRefusesBadConfig(t *testing.T) {
	for _, c := range []BrowserConfig{
		{SignInURL: testSignIn, RefreshURL: testRefresh},
		{AccessCookie: "a;b", SignInURL: testSignIn, RefreshURL: testRefresh},
		{AccessCookie: "a", SignInURL: "/portal/sign-in", RefreshURL: testRefresh},
		{AccessCookie: "a", SignInURL: testSignIn, RefreshURL: testRefresh + "?x=1"},
	} {
		if _, err := newBrowser(&c); err == nil {
			t.Errorf("newBrowser(%+v) accepted a bad config", c)
		}
	}
}
