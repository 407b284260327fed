package portal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"gatehouse/issuer"
)

func setCookies(p *page) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		out[c.Name] = c
	}
	return out
}

func TestSessionCookieAttributes(t *testing.T) {
	for _, domain := range []string{"", "example.test"} {
		t.Run("domain="+domain, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.CookieDomain = domain })
			b := e.browser()
			b.get("/portal/sign-in")
			p := b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}})
			if p.status != http.StatusSeeOther {
				t.Fatalf("status %d: %s", p.status, snippet(p.body))
			}
			var access, refresh *http.Cookie
			for _, c := range (&http.Response{Header: p.header}).Cookies() {
				switch {
				case c.Name == DefaultAccessCookie && c.MaxAge > 0:
					access = c
				case c.Name == DefaultRefreshCookie:
					refresh = c
				}
			}
			if access == nil || refresh == nil {
				t.Fatalf("cookies not set: %v", p.header.Values("Set-Cookie"))
			}
			for _, c := range []*http.Cookie{access, refresh} {
				if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode {
					t.Errorf("%s: HttpOnly %v Secure %v SameSite %v; want HttpOnly, Secure, Lax", c.Name, c.HttpOnly, c.Secure, c.SameSite)
				}
				// Both live as long as the session (the refresh token), not the 15-minute access token, so an expired
				// access token still reaches the sidecar and leads to the refresh endpoint.
				if want := int(refreshT / time.Second); c.MaxAge < want-2 || c.MaxAge > want {
					t.Errorf("%s: Max-Age %d, want about %d", c.Name, c.MaxAge, want)
				}
			}
			if access.Path != "/" || access.Domain != domain {
				t.Errorf("access cookie Path %q Domain %q, want / and %q", access.Path, access.Domain, domain)
			}
			if refresh.Path != "/portal/refresh" || refresh.Domain != "" {
				t.Errorf("refresh cookie Path %q Domain %q, want /portal/refresh, host-only", refresh.Path, refresh.Domain)
			}
			if _, err := e.iss.VerifyAccess(context.Background(), access.Value); err != nil {
				t.Errorf("access cookie does not hold a valid access token: %v", err)
			}
		})
	}
}

func TestCSRFCookieAttributes(t *testing.T) {
	e := newEnv(t)
	p := e.browser().get("/portal/sign-in")
	c := setCookies(p)["__Host-gatehouse_csrf"]
	if c == nil {
		t.Fatalf("no __Host- CSRF cookie: %v", p.header.Values("Set-Cookie"))
	}
	if !c.HttpOnly || !c.Secure || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("CSRF cookie %+v: want HttpOnly, Secure, Path=/, host-only, Lax (what __Host- requires)", c)
	}
}

func TestInsecureDevMode(t *testing.T) {
	base := Config{Issuer: &issuer.Server{}, Verifier: stubVerifier{}, CSRFKey: bytes.Repeat([]byte{1}, 32)}
	cases := []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"http://localhost:8080/portal", true, true},
		{"http://127.0.0.1:8080/portal", true, true},
		{"http://[::1]:8080/portal", true, true},
		{"https://login.example.test/portal", false, true},
		{"https://login.example.test/portal", true, false}, // insecure cookies over https: refused
		{"http://login.example.test/portal", true, false},
		{"http://login.example.test/portal", false, false},
		{"http://192.0.2.1/portal", true, false},
		{"https://login.example.test", false, false}, // no path to serve under
		{"https://login.example.test/portal?x=1", false, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s insecure=%v", c.url, c.insecure), func(t *testing.T) {
			cfg := base
			cfg.URL, cfg.Insecure = c.url, c.insecure
			_, err := New(cfg)
			if (err == nil) != c.ok {
				t.Errorf("New: err %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestInsecureCookiesHaveNoSecure(t *testing.T) {
	e := newEnv(t)
	p, err := New(Config{Issuer: e.iss, Verifier: e.verifier, URL: "http://127.0.0.1:1/portal", Insecure: true,
		CSRFKey: bytes.Repeat([]byte{1}, 32), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if p.csrfCookieName() != "gatehouse_csrf" {
		t.Errorf("dev mode CSRF cookie %q: __Host- needs Secure", p.csrfCookieName())
	}
	if c := p.cookie("a", "v", "/", "", 10); c.Secure || !c.HttpOnly {
		t.Errorf("dev cookie %+v: want HttpOnly without Secure", c)
	}
}

// stubVerifier satisfies Verifier for configs that are never used.
type stubVerifier struct{ Verifier }

func TestReturnURLs(t *testing.T) {
	e := newEnv(t)
	home := e.ts.URL + "/portal/"
	cases := []struct{ in, want string }{
		{"", home},
		{"https://app.example.test/orders?id=1", "https://app.example.test/orders?id=1"},
		{e.ts.URL + "/portal/sessions", e.ts.URL + "/portal/sessions"}, // the portal's own host always
		{"https://evil.test/", home},
		{"//evil.test/", home},
		{"/portal/sessions", home},
		{`https://app.example.test\@evil.test`, home},
		{"https://app.example.test@evil.test/", home},
		{"javascript:alert(1)", home},
		{"http://app.example.test/", home}, // https only outside dev mode
	}
	for _, c := range cases {
		if got := e.portal.returnURL(c.in); got != c.want {
			t.Errorf("returnURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// The sign-in page carries only an allowed return URL through its form.
	b := e.browser()
	p := b.get("/portal/sign-in?return_to=" + url.QueryEscape("https://evil.test/x"))
	if strings.Contains(p.body, "evil.test") {
		t.Errorf("the sign-in page carries a refused return URL: %s", snippet(p.body))
	}
	p = b.get("/portal/sign-in?return_to=" + url.QueryEscape("https://app.example.test/x?a=1&b=2"))
	if got := field(t, p.body, "return_to"); got != "https://app.example.test/x?a=1&b=2" {
		t.Errorf("return_to field %q", got)
	}
	mustContain(t, p.body, "to continue to <strong>app.example.test</strong>")
}

// TestCSRF: a portal form post is refused unless it carries the pre-session cookie and its HMAC, and neither
// Fetch Metadata nor Origin says it came from elsewhere.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/portal/sign-in")
	tok := field(t, b.last.body, "csrf")
	other := e.browser()
	other.get("/portal/sign-in")
	otherTok := field(t, other.last.body, "csrf")
	cases := []struct {
		name   string
		client *browser
		csrf   string
		header map[string]string
		ok     bool
	}{
		{"token and cookie", b, tok, nil, true},
		{"same-origin fetch metadata and origin", b, tok, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.ts.URL}, true},
		{"user-initiated (none)", b, tok, map[string]string{"Sec-Fetch-Site": "none"}, true},
		{"no token", b, "", nil, false},
		{"wrong token", b, tok[:len(tok)-2] + "AA", nil, false},
		{"another browser's token", b, otherTok, nil, false},
		{"no cookie", e.browser(), tok, nil, false},
		{"cross-site", b, tok, map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"same-site sibling", b, tok, map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"origin null", b, tok, map[string]string{"Origin": "null"}, false},
		{"foreign origin", b, tok, map[string]string{"Origin": "https://evil.test"}, false},
		{"allowed app origin is still not the portal", b, tok, map[string]string{"Origin": "https://app.example.test"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			form := url.Values{"username": {"alice"}, "password": {"wrong password"}}
			if c.csrf != "" {
				form.Set("csrf", c.csrf)
			}
			p := c.client.do("POST", "/portal/sign-in", form, c.header)
			refused := p.status == http.StatusForbidden
			if refused == c.ok {
				t.Errorf("status %d, want ok=%v: %s", p.status, c.ok, snippet(p.body))
			}
			if refused {
				mustContain(t, p.body, "This form has expired or was sent from another site.")
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	for _, path := range []string{"/portal/", "/portal/sign-in", "/portal/sessions", "/portal/sign-out",
		"/portal/nope", "/portal/static/portal.css", "/portal/refresh"} {
		t.Run(path, func(t *testing.T) {
			p := b.get(path)
			want := map[string]string{
				"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "same-origin",
			}
			for k, v := range want {
				if got := p.header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			cc := p.header.Get("Cache-Control")
			if strings.HasSuffix(path, ".css") {
				if !strings.Contains(cc, "max-age") {
					t.Errorf("stylesheet Cache-Control %q", cc)
				}
			} else if cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

func TestNotFoundAndMethod(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.get("/portal/nope")
	if p.status != http.StatusNotFound {
		t.Errorf("status %d", p.status)
	}
	mustContain(t, p.body, "There is no page at this address.")
	p = b.do("DELETE", "/portal/sign-in", nil, nil)
	if p.status != http.StatusMethodNotAllowed || p.header.Get("Allow") != "GET, POST, HEAD" {
		t.Errorf("status %d Allow %q", p.status, p.header.Get("Allow"))
	}
	if p := b.get("/portal"); p.status != http.StatusSeeOther || p.header.Get("Location") != e.ts.URL+"/portal/" {
		t.Errorf("/portal: %d %q", p.status, p.header.Get("Location"))
	}
}

// TestSignedOutRedirects: pages that need a session send the browser to sign-in and back.
func TestSignedOutRedirects(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.get("/portal/sessions")
	want := e.ts.URL + "/portal/sign-in?return_to=" + url.QueryEscape(e.ts.URL+"/portal/sessions")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != want {
		t.Fatalf("got %d %q, want 303 %q", p.status, p.header.Get("Location"), want)
	}
	b.follow(p)
	p = b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW},
		"return_to": {field(t, b.last.body, "return_to")}})
	if p.header.Get("Location") != e.ts.URL+"/portal/sessions" {
		t.Fatalf("after sign-in: %d %q", p.status, p.header.Get("Location"))
	}
}

// TestSignInReturnsToAnotherOrigin: a cross-origin return ends on an interstitial (form-action 'self' governs a
// post's redirects), with a meta refresh and a link to the validated URL.
func TestSignInReturnsToAnotherOrigin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	ret := "https://app.example.test/orders?id=1&x=2"
	b.get("/portal/sign-in?return_to=" + url.QueryEscape(ret))
	p := b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}, "return_to": {ret}})
	if p.status != http.StatusOK {
		t.Fatalf("status %d: %s", p.status, snippet(p.body))
	}
	mustContain(t, p.body, `<meta http-equiv="refresh" content="0; url=https://app.example.test/orders?id=1&amp;x=2">`,
		`href="https://app.example.test/orders?id=1&amp;x=2"`, "Continue to app.example.test")
}

func TestErrorSentences(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		err  error
		want string
	}{
		{issuer.ErrInvalidCredentials, "The username or password is not right. Check them and try again."},
		{&issuer.RateLimitedError{RetryAfter: 4 * time.Minute, Until: now.Add(4 * time.Minute)}, "Too many attempts. Try again in 4 minutes."},
		{&issuer.RateLimitedError{RetryAfter: 181 * time.Second, Until: now.Add(181 * time.Second)}, "Too many attempts. Try again in 4 minutes."},
		{&issuer.RateLimitedError{RetryAfter: time.Minute}, "Too many attempts. Try again in 1 minute."},
		{&issuer.RateLimitedError{RetryAfter: 40 * time.Second}, "Too many attempts. Try again in 40 seconds."},
		{&issuer.RateLimitedError{RetryAfter: 1 * time.Second}, "Too many attempts. Try again in 1 second."},
		{&issuer.RateLimitedError{RetryAfter: 3 * time.Hour}, "Too many attempts. Try again in 3 hours."},
		{fmt.Errorf("wrapped: %w", issuer.ErrRateLimited), "Too many attempts. Try again later."},
		{issuer.ErrCodeReplayed, "That code has already been used. Wait for your app to show a new code, then enter it."},
		{issuer.ErrMFACodeInvalid, "That code is not right. Check your authenticator app, or use one of your backup codes."},
		{issuer.ErrMFATokenExpired, "Your sign-in expired before the code was entered. Please sign in again."},
		{issuer.ErrMFATokenInvalid, "This sign-in can no longer be completed. Please sign in again."},
		{issuer.ErrMFASetupNotFound, "The setup expired after 5 minutes. Start again to get a new QR code."},
		{issuer.ErrUnavailable, "The service is busy right now. Please try again in a moment."},
		{issuer.ErrInvalidToken, "You have been signed out. Please sign in again."},
		{errors.New("redis: connection reset by peer at store.go:42"), "Something went wrong on our side. Please try again."},
	}
	for _, c := range cases {
		if got := sentence(c.err, now); got != c.want {
			t.Errorf("sentence(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// TestLoginErrorsOnThePage: the issuer's refusals read as sentences on the page, tied to the field they concern.
func TestLoginErrorsOnThePage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.get("/portal/sign-in")

	p := b.submit("/portal/sign-in", url.Values{"username": {""}, "password": {""}})
	if p.status != http.StatusBadRequest {
		t.Errorf("empty form: status %d", p.status)
	}
	mustContain(t, p.body, "Enter your username.", "Enter your password.", `href="#username"`)
	u := inputTag(t, p.body, "username")
	if u["aria-invalid"] != "true" || u["aria-describedby"] != "username-error" || u["autofocus"] != "" && u["autofocus"] != "autofocus" {
		t.Errorf("username input %v: want aria-invalid and aria-describedby=username-error", u)
	}
	if _, ok := u["autofocus"]; !ok {
		t.Errorf("the first invalid field should take focus: %v", u)
	}

	p = b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {"wrong"}})
	if p.status != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d", p.status)
	}
	mustContain(t, p.body, "The username or password is not right. Check them and try again.", `id="password-error"`)
	pw := inputTag(t, p.body, "password")
	if pw["aria-invalid"] != "true" || pw["aria-describedby"] != "password-error" || pw["value"] != "" {
		t.Errorf("password input %v: want aria-invalid, described by the error, and no value", pw)
	}
	if got := inputTag(t, p.body, "username")["value"]; got != "alice" {
		t.Errorf("the username should be kept, got %q", got)
	}
	// Four more failures lock the account for a minute (the issuer's rule); the fifth already answers the lock.
	for range 4 {
		p = b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {"wrong"}})
	}
	p = b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}})
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("locked: status %d: %s", p.status, snippet(p.body))
	}
	mustContain(t, p.body, "Too many attempts. Try again in 1 minute.")
	e.clock.Advance(30 * time.Second)
	p = b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}})
	mustContain(t, p.body, "Too many attempts. Try again in 30 seconds.")
	for _, bad := range []string{"goroutine", "panic", "rate_limited", "invalid_credentials", "issuer:"} {
		if strings.Contains(p.body, bad) {
			t.Errorf("page shows internal detail %q", bad)
		}
	}
}

// TestMFAFlow: enrol (QR, key, backup codes), sign out, sign in with a code, a replayed code, a backup code,
// an expired sign-in, disable.
func TestMFAFlow(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.signIn()
	mustContain(t, p.body, "Two-step verification", "Set up two-step verification", "Signed in as <strong>alice</strong>")

	p = b.submit("/portal/mfa/setup", nil)
	if p.status != http.StatusOK {
		t.Fatalf("setup: %d %s", p.status, snippet(p.body))
	}
	mustContain(t, p.body, `src="data:image/png;base64,iVBOR`, `alt="QR code that adds Gatehouse Test (alice) to an authenticator app.`)
	secret := totpSecret(t, p.body)

	// A wrong code keeps the same QR code and key on the page, with the error tied to the field.
	p = b.submit("/portal/mfa/confirm", url.Values{"code": {"000000"}, "enrol": {field(t, p.body, "enrol")},
		"enrol_mac": {field(t, p.body, "enrol_mac")}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("wrong code: %d", p.status)
	}
	mustContain(t, p.body, "That code is not right.", `aria-describedby="code-hint code-error"`)
	if got := totpSecret(t, p.body); !bytes.Equal(got, secret) {
		t.Errorf("the key changed after a wrong code")
	}
	// A forged enrolment field is not rendered.
	p2 := b.submit("/portal/mfa/confirm", url.Values{"code": {"000000"}, "enrol": {"otpauth://totp/x?secret=AAAA"},
		"enrol_mac": {field(t, p.body, "enrol_mac")}, "csrf": {field(t, p.body, "csrf")}})
	if strings.Contains(p2.body, "data:image/png") {
		t.Errorf("a forged otpauth URI was rendered")
	}

	confirmCode := code(t, secret, e.clock.Now())
	p = b.submit("/portal/mfa/confirm", url.Values{"code": {confirmCode}, "enrol": {field(t, p.body, "enrol")},
		"enrol_mac": {field(t, p.body, "enrol_mac")}, "csrf": {field(t, p.body, "csrf")}})
	if p.status != http.StatusOK {
		t.Fatalf("confirm: %d %s", p.status, snippet(p.body))
	}
	codes := backupRE.FindAllStringSubmatch(p.body, -1)
	if len(codes) != 10 {
		t.Fatalf("want 10 backup codes on the page, got %d", len(codes))
	}
	mustContain(t, p.body, "This is the only time they are shown.")

	// Sign out, then sign in with the password and a code.
	b.get("/portal/sign-out")
	p = b.submit("/portal/sign-out", nil)
	mustContain(t, p.body, "You are signed out")
	if c := setCookies(p)[DefaultAccessCookie]; c == nil || c.MaxAge >= 0 {
		t.Errorf("sign-out must delete the access cookie: %v", p.header.Values("Set-Cookie"))
	}
	b.get("/portal/sign-in")
	p = b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}})
	mustContain(t, p.body, "Two-step verification", `autocomplete="one-time-code"`)
	if setCookies(p)[DefaultAccessCookie] != nil {
		t.Fatal("a password alone set a session cookie for a user with MFA on")
	}
	mfaTok := field(t, p.body, "mfa_token")

	// The code used to confirm is spent: the page says so, in words.
	p = b.submit("/portal/sign-in/mfa", url.Values{"mfa_token": {mfaTok}, "code": {confirmCode}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("replay: %d", p.status)
	}
	mustContain(t, p.body, "That code has already been used.")
	// A code typed with a space is fine.
	next := code(t, secret, e.clock.Now().Add(30*time.Second))
	p = b.submit("/portal/sign-in/mfa", url.Values{"mfa_token": {field(t, p.body, "mfa_token")}, "code": {next[:3] + " " + next[3:]}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("verify: %d %s", p.status, snippet(p.body))
	}
	p = b.follow(p)
	mustContain(t, p.body, "On since", "you have 10 backup codes left")

	// An MFA step left too long: the sign-in starts over with a sentence.
	b2 := e.browser()
	b2.get("/portal/sign-in")
	p = b2.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}})
	tok := field(t, p.body, "mfa_token")
	e.clock.Advance(6 * time.Minute)
	p = b2.submit("/portal/sign-in/mfa", url.Values{"mfa_token": {tok}, "code": {code(t, secret, e.clock.Now())}})
	mustContain(t, p.body, "Your sign-in expired before the code was entered. Please sign in again.", `name="password"`)

	// A backup code works once.
	b3 := e.browser()
	b3.get("/portal/sign-in")
	p = b3.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}})
	p = b3.submit("/portal/sign-in/mfa", url.Values{"mfa_token": {field(t, p.body, "mfa_token")}, "code": {codes[0][1]}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("backup code: %d %s", p.status, snippet(p.body))
	}

	// Disable with a fresh code.
	e.clock.Advance(time.Minute)
	p = b3.follow(p)
	p = b3.submit("/portal/mfa/disable", url.Values{"code": {"123"}})
	mustContain(t, p.body, "That code is not right.")
	p = b3.submit("/portal/mfa/disable", url.Values{"code": {code(t, secret, e.clock.Now())}})
	mustContain(t, p.body, "Two-step verification is off.", "Set up two-step verification")
}

// TestSessionsPage lists sessions, ends another one, then all.
func TestSessionsPage(t *testing.T) {
	e := newEnv(t)
	other, err := e.iss.Authenticate(context.Background(), "alice", alicePW, "198.51.100.9", "curl/8.5.0")
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn()
	p := b.get("/portal/sessions")
	mustContain(t, p.body, "Chrome on Linux", "This device", "curl", "198.51.100.9", `name="session" value="`+other.Tokens.SessionID+`"`,
		"Sign out everywhere", `<span class="visually-hidden"> curl, signed in`)
	if i, j := strings.Index(p.body, "This device"), strings.Index(p.body, "198.51.100.9"); i > j {
		t.Errorf("the current session should come first")
	}

	p = b.submit("/portal/sessions/revoke", url.Values{"session": {other.Tokens.SessionID}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", p.status, snippet(p.body))
	}
	p = b.follow(p)
	mustContain(t, p.body, "That session is signed out.")
	if strings.Contains(p.body, "198.51.100.9") {
		t.Errorf("the ended session is still listed")
	}
	if _, err := e.iss.VerifyAccess(context.Background(), other.Tokens.AccessToken); !errors.Is(err, issuer.ErrInvalidToken) {
		t.Errorf("the ended session's access token still verifies: %v", err)
	}
	// Ending it again: already gone, said in words.
	p = b.submit("/portal/sessions/revoke", url.Values{"session": {other.Tokens.SessionID}})
	mustContain(t, b.follow(p).body, "That session had already ended.")

	access := b.cookie("/", DefaultAccessCookie)
	p = b.submit("/portal/sessions/revoke-all", nil)
	mustContain(t, p.body, "You are signed out on every device.")
	if _, err := e.iss.VerifyAccess(context.Background(), access); !errors.Is(err, issuer.ErrInvalidToken) {
		t.Errorf("sign out everywhere left the current session alive: %v", err)
	}
	if p := b.get("/portal/sessions"); p.status != http.StatusSeeOther {
		t.Errorf("after sign out everywhere the sessions page answered %d", p.status)
	}
}

// TestRefreshEndpoint: an expired access cookie is refreshed and the browser sent back; no refresh cookie or a
// refused one leads to sign-in with the same return URL; an invalid return URL leads home.
func TestRefreshEndpoint(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	oldAccess := b.cookie("/", DefaultAccessCookie)
	e.clock.Advance(16 * time.Minute)

	// A portal page with an expired access token goes through refresh and back.
	p := b.get("/portal/sessions")
	wantLoc := e.ts.URL + "/portal/refresh?return_to=" + url.QueryEscape(e.ts.URL+"/portal/sessions")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != wantLoc {
		t.Fatalf("expired: %d %q, want %q", p.status, p.header.Get("Location"), wantLoc)
	}
	p = b.follow(p)
	if p.status != http.StatusFound || p.header.Get("Location") != e.ts.URL+"/portal/sessions" {
		t.Fatalf("refresh: %d %q %s", p.status, p.header.Get("Location"), snippet(p.body))
	}
	if b.cookie("/", DefaultAccessCookie) == oldAccess {
		t.Fatal("refresh did not replace the access cookie")
	}
	if p = b.follow(p); p.status != http.StatusOK {
		t.Fatalf("back on the page: %d", p.status)
	}

	// Invalid return URL: home.
	p = b.get("/portal/refresh?return_to=" + url.QueryEscape("https://evil.test/"))
	if p.header.Get("Location") != e.ts.URL+"/portal/" {
		t.Errorf("invalid return: %q", p.header.Get("Location"))
	}
	// No refresh cookie: sign-in, keeping the return URL.
	p = e.browser().get("/portal/refresh?return_to=" + url.QueryEscape("https://app.example.test/x"))
	if want := e.ts.URL + "/portal/sign-in?return_to=" + url.QueryEscape("https://app.example.test/x"); p.status != http.StatusFound || p.header.Get("Location") != want {
		t.Errorf("no cookie: %d %q, want %q", p.status, p.header.Get("Location"), want)
	}
}

// TestRefreshGrace: two tabs arriving with the same refresh cookie share one rotation instead of the second
// being taken for a thief (which would end the session); another client presenting it still trips reuse detection.
func TestRefreshGrace(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	rt := b.cookie("/portal/refresh", DefaultRefreshCookie)
	tab := func(ua string) *page {
		req, _ := http.NewRequest("GET", e.ts.URL+"/portal/refresh", nil)
		req.Header.Set("User-Agent", ua)
		req.AddCookie(&http.Cookie{Name: DefaultRefreshCookie, Value: rt})
		c := &http.Client{Transport: e.ts.Client().Transport}
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return &page{status: resp.StatusCode, header: resp.Header}
	}
	first, second := tab(testUA), tab(testUA)
	a1, a2 := setCookies(first)[DefaultAccessCookie], setCookies(second)[DefaultAccessCookie]
	if a1 == nil || a2 == nil || a1.Value != a2.Value {
		t.Fatalf("the second tab did not get the first tab's tokens: %v / %v", first.header, second.header)
	}
	if _, err := e.iss.VerifyAccess(context.Background(), a2.Value); err != nil {
		t.Fatalf("the session ended: %v", err)
	}
	// After the grace, or from another client, the spent token reaches the issuer: reuse ends the session.
	thief := tab("curl/8.5.0")
	if thief.header.Get("Location") != e.ts.URL+"/portal/sign-in" {
		t.Errorf("thief: %d %q", thief.status, thief.header.Get("Location"))
	}
	if _, err := e.iss.VerifyAccess(context.Background(), a2.Value); !errors.Is(err, issuer.ErrInvalidToken) {
		t.Errorf("reuse by another client did not end the session: %v", err)
	}
}

// TestTemplatesRender renders every page with representative data: no template errors, the shared landmarks,
// and no script anywhere.
func TestTemplatesRender(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Logo, c.LogoType = []byte("<svg xmlns='http://www.w3.org/2000/svg'/>"), "image/svg+xml"
	})
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	full := func(v *view) *view {
		v.User, v.CSRF, v.ReturnTo, v.ReturnHost = "alice", "tok", "https://app.example.test/x", "app.example.test"
		v.Alert, v.Notice = "An alert.", "A notice."
		v.fieldError("code", "A field error.")
		v.MFAToken = "mfa"
		v.MFA = mfaView{Enabled: true, EnabledAt: now, BackupCodesLeft: 1}
		v.Enrol = &enrolView{QR: "data:image/png;base64,AAAA", Secret: "ABCD EFGH", Account: "alice", Issuer: "Gatehouse", URI: "otpauth://totp/x", MAC: "m"}
		v.BackupCodes = []string{"abcde-12345"}
		v.Sessions = []sessionView{{ID: "s1", Device: "Chrome on Linux", UserAgent: testUA, ClientIP: "192.0.2.1", Created: now, LastUsed: now, Current: true},
			{ID: "s2", Device: "curl", Created: now, LastUsed: now}}
		v.Refresh, v.Back, v.BackLabel = "https://app.example.test/x", "https://app.example.test/x", "Back"
		return v
	}
	for name := range e.portal.pages.byName {
		for _, variant := range []string{"empty", "full"} {
			t.Run(name+"/"+variant, func(t *testing.T) {
				v := e.portal.view(nil, "Title")
				if variant == "full" {
					v = full(v)
				}
				if name == "mfa-setup" && v.Enrol == nil {
					v.Enrol = &enrolView{}
				}
				var buf bytes.Buffer
				if err := e.portal.pages.execute(&buf, name, v); err != nil {
					t.Fatal(err)
				}
				out := buf.String()
				mustContain(t, out, `<html lang="en">`, `<a class="skip-link" href="#main">Skip to main content</a>`,
					`<main id="main" tabindex="-1"`, `<meta name="viewport"`, "<h1>", "/portal/static/portal.css?v=")
				if variant == "full" {
					mustContain(t, out, `<img class="brand__logo" src="/portal/static/logo" alt=""`)
				}
				for _, bad := range []string{"<script", "javascript:", " style=", " on", "ZgotmplZ"} {
					if bad == " on" {
						if strings.Contains(out, " onclick") || strings.Contains(out, " onload") || strings.Contains(out, " onsubmit") {
							t.Errorf("inline event handler in %s", name)
						}
						continue
					}
					if strings.Contains(out, bad) {
						t.Errorf("%s renders %q:\n%s", name, bad, out)
					}
				}
			})
		}
	}
}

func TestLabelsForEveryInput(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	pages := []*page{b.get("/portal/sign-in"), b.get("/portal/"), b.submit("/portal/mfa/setup", nil)}
	for _, p := range pages {
		for _, in := range inputRE.FindAllString(p.body, -1) {
			a := attributes(in)
			if a["type"] == "hidden" {
				continue
			}
			if !strings.Contains(p.body, `<label class="label" for="`+a["id"]+`">`) {
				t.Errorf("input %v has no label", a)
			}
		}
	}
}

func TestDescribeUserAgent(t *testing.T) {
	for ua, want := range map[string]string{
		testUA: "Chrome on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0":                   "Edge on Windows",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1": "Safari on iOS",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14.0; rv:126.0) Gecko/20100101 Firefox/126.0":                                                     "Firefox on macOS",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36":                               "Chrome on Linux",
		"curl/8.5.0": "curl",
		"":           "Unknown device",
	} {
		if got := describeUserAgent(ua); got != want {
			t.Errorf("describeUserAgent(%q) = %q, want %q", ua, got, want)
		}
	}
}

// TestAmbiguousAccessCookie: two access cookies (a copy planted with another Path or Domain) are treated as none,
// never as whichever the server happens to read first.
func TestAmbiguousAccessCookie(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	access := b.cookie("/", DefaultAccessCookie)
	req, err := http.NewRequest("GET", e.ts.URL+"/portal/sessions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: DefaultAccessCookie, Value: access})
	c := &http.Client{Transport: e.ts.Client().Transport}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	one, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	one.Body.Close()
	if one.StatusCode != http.StatusOK {
		t.Fatalf("one access cookie: status %d", one.StatusCode)
	}
	req.AddCookie(&http.Cookie{Name: DefaultAccessCookie, Value: access})
	two, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	two.Body.Close()
	if loc := two.Header.Get("Location"); two.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, e.ts.URL+"/portal/sign-in?") {
		t.Errorf("two access cookies: %d %q, want 303 to sign-in", two.StatusCode, loc)
	}
	// The sign-in page does not take them for a session either.
	if p := b.do("GET", "/portal/sign-in", nil, map[string]string{"Cookie": DefaultAccessCookie + "=" + access + "; " +
		DefaultAccessCookie + "=" + access}); strings.Contains(p.body, "already signed in") {
		t.Errorf("the sign-in page took two access cookies for a session")
	}
}

// TestSignInPageNamesTheSignedInUser: signing in again while signed in says so (a new session will start).
func TestSignInPageNamesTheSignedInUser(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if p := b.get("/portal/sign-in"); strings.Contains(p.body, "already signed in") {
		t.Errorf("signed out, the sign-in page says signed in: %s", snippet(p.body))
	}
	b.signIn()
	mustContain(t, b.get("/portal/sign-in").body, "You are already signed in as alice. Signing in again starts a new session.")
}

// TestRefreshGraceEnds: the grace is refreshGrace long; past it the same browser presenting the spent refresh
// token reaches the issuer, whose reuse detection ends the session.
func TestRefreshGraceEnds(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	rt := b.cookie("/portal/refresh", DefaultRefreshCookie)
	refresh := func() *http.Response {
		req, _ := http.NewRequest("GET", e.ts.URL+"/portal/refresh", nil)
		req.Header.Set("User-Agent", testUA)
		req.AddCookie(&http.Cookie{Name: DefaultRefreshCookie, Value: rt})
		c := &http.Client{Transport: e.ts.Client().Transport}
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	first := refresh()
	access := setCookies(&page{header: first.Header})[DefaultAccessCookie]
	if first.StatusCode != http.StatusFound || access == nil {
		t.Fatalf("refresh: %d %v", first.StatusCode, first.Header)
	}
	e.clock.Advance(refreshGrace)
	if late := refresh(); late.Header.Get("Location") != e.ts.URL+"/portal/sign-in" {
		t.Errorf("spent token after the grace: %d %q, want sign-in", late.StatusCode, late.Header.Get("Location"))
	}
	if _, err := e.iss.VerifyAccess(context.Background(), access.Value); !errors.Is(err, issuer.ErrInvalidToken) {
		t.Errorf("reuse after the grace did not end the session: %v", err)
	}
}
