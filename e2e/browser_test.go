package e2e

import (
	"context"
	"encoding/base32"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"gatehouse/issuer"
	"gatehouse/mfa"
)

// chromiumPath finds a Chromium or Chrome binary: $CHROMIUM, /usr/bin/chromium, then the usual names on PATH.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab is one Chromium tab with JavaScript disabled, plus the helpers the flow needs.
type tab struct {
	t       *testing.T
	ctx     context.Context
	shots   string
	console *consoleLog
}

func newTab(t *testing.T) *tab {
	t.Helper()
	bin := chromiumPath()
	if bin == "" {
		msg := "no Chromium found (looked at $CHROMIUM, /usr/bin/chromium, chromium, chromium-browser, google-chrome); install it with: apt-get install -y chromium"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	shots := os.Getenv("GATEHOUSE_E2E_SCREENSHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "gatehouse-e2e-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", shots)
	b := &tab{t: t, ctx: ctx, shots: shots}
	// The first Run starts the browser; it must not carry a timeout (that would stop the browser with it).
	if err := chromedp.Do(ctx, func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, tg, cdplog.Enable, cdp.Empty{}); err != nil {
			return chromedp.Void{}, err
		}
		// The portal must work with scripts off: the whole flow runs with JavaScript disabled in the page.
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	}); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	b.console = collectConsole(ctx)
	return b
}

// consoleLog keeps the browser's console and log messages: a CSP violation shows up there.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func collectConsole(ctx context.Context) *consoleLog {
	c := &consoleLog{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			c.mu.Lock()
			c.msgs = append(c.msgs, m)
			c.mu.Unlock()
		}
	}()
	return c
}

// violations returns the security messages (Content-Security-Policy refusals) and uncaught exceptions.
func (c *consoleLog) violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Source == "security" || m.IsException() || strings.Contains(m.Text, "Content Security Policy") ||
			strings.Contains(m.Text, "Refused to") {
			out = append(out, m.String())
		}
	}
	return out
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// state is the tab's URL and document, read without any page script (DOM.getOuterHTML).
func (b *tab) state() (string, string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "", "", err
	}
	doc, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		return "", "", err
	}
	// A navigation between the two reads would pair one page's URL with another's document.
	if again, err := chromedp.Run(ctx, chromedp.Location()); err != nil || again != loc {
		return "", "", errors.New("navigating")
	}
	return loc, doc, nil
}

// waitFor polls until cond holds for the tab's URL and document (a navigation may be in flight).
func (b *tab) waitFor(what string, cond func(loc, doc string) bool) (string, string) {
	b.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var loc, doc string
	for time.Now().Before(deadline) {
		l, d, err := b.state()
		if err == nil {
			loc, doc = l, d
			if cond(loc, doc) {
				return loc, doc
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("timed out waiting for %s; at %s:\n%s", what, loc, clip(doc))
	return "", ""
}

// waitText waits for a page whose document contains every sub.
func (b *tab) waitText(subs ...string) (string, string) {
	b.t.Helper()
	return b.waitFor(strings.Join(subs, " + "), func(_, doc string) bool {
		for _, s := range subs {
			if !strings.Contains(doc, s) {
				return false
			}
		}
		return true
	})
}

func (b *tab) navigate(u string) { b.t.Helper(); b.do(chromedp.Navigate(u)) }

func (b *tab) typeInto(id, text string) {
	b.t.Helper()
	b.do(chromedp.SendKeys(chromedp.ID(id), text))
}

func (b *tab) click(css string) { b.t.Helper(); b.do(chromedp.Click(chromedp.CSS(css))) }

// screenshot saves the page as NAME.png at 1280 px wide and, with narrow, also NAME-320.png at 320 px.
func (b *tab) screenshot(name string, narrow bool) {
	b.t.Helper()
	shoot := func(file string) {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, file), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	shoot(name + ".png")
	if narrow {
		b.do(chromedp.EmulateViewport(320, 640))
		shoot(name + "-320.png")
		b.do(chromedp.EmulateViewport(1280, 900))
	}
}

// cookie returns the browser's cookie called name for URL u.
func (b *tab) cookie(u, name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	res, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func clip(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

var secretRE = regexp.MustCompile(`<code id="secret">([A-Z2-7 ]+)</code>`)
var backupRE = regexp.MustCompile(`<li><code>([0-9a-z-]+)</code></li>`)

func totp(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	c, err := mfa.Code(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBrowserFlow drives real headless Chromium, with JavaScript off, through the portal and the sidecar:
// a protected URL sends it to sign-in and back; it enrols in MFA, signs out, signs in with a code (after a
// replayed one is refused), ends another session, and an expired access cookie is refreshed on the way to the
// app. Every page is saved as a screenshot.
func TestBrowserFlow(t *testing.T) {
	s := startStack(t)
	b := newTab(t)
	protected := s.proxyURL + "/hello/world?x=1&y=two"

	// 1. A protected URL without a session: the sidecar sends the browser to sign-in with the URL to come back to.
	b.navigate(protected)
	loc, doc := b.waitText("<h1>Sign in</h1>")
	wantLoc := s.portalURL + "/sign-in?return_to=" + url.QueryEscape(protected)
	if loc != wantLoc {
		t.Fatalf("redirected to %s, want %s", loc, wantLoc)
	}
	if !strings.Contains(doc, "to continue to <strong>"+strings.TrimPrefix(s.proxyURL, "http://")+"</strong>") {
		t.Errorf("the sign-in page does not say where it returns to")
	}
	b.screenshot("01-sign-in", true)

	// 2. A wrong password: a sentence, tied to the field.
	b.typeInto("username", "alice")
	b.typeInto("password", "not the password")
	b.click("form button[type=submit]")
	_, doc = b.waitText("There is a problem", "The username or password is not right.")
	if !strings.Contains(doc, `aria-describedby="password-error"`) || !strings.Contains(doc, `aria-invalid="true"`) {
		t.Errorf("the error is not tied to the password field")
	}
	b.screenshot("02-sign-in-error", true)

	// 3. The right password: back on the protected URL (through the interstitial, since it is another origin).
	b.typeInto("password", alicePW)
	b.click("form button[type=submit]")
	loc, _ = b.waitText(`<h1 id="hello">Hello, alice</h1>`)
	if loc != protected {
		t.Fatalf("after sign-in at %s, want %s", loc, protected)
	}
	b.screenshot("03-app", false)

	// 4. Enrol in MFA: QR code, setup key, a wrong code, then the right one and the backup codes.
	b.navigate(s.portalURL + "/")
	b.waitText("<h1>Your account</h1>", "Set up two-step verification")
	b.screenshot("04-account", true)
	b.click(`form[action="/portal/mfa/setup"] button`)
	_, doc = b.waitText("<h1>Set up two-step verification</h1>", `src="data:image/png;base64,`)
	m := secretRE.FindStringSubmatch(doc)
	if m == nil {
		t.Fatal("no setup key on the enrolment page")
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(m[1], " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	b.screenshot("05-mfa-setup", true)
	b.typeInto("code", "000000")
	b.click(`form[action="/portal/mfa/confirm"] button`)
	_, doc = b.waitText("That code is not right.")
	if !strings.Contains(doc, m[1]) || !strings.Contains(doc, `src="data:image/png;base64,`) {
		t.Errorf("a wrong code lost the QR code or the key")
	}
	b.screenshot("06-mfa-setup-error", false)
	confirmCode := totp(t, secret, s.clock.Now())
	b.typeInto("code", confirmCode)
	b.click(`form[action="/portal/mfa/confirm"] button`)
	_, doc = b.waitText("<h1>Save your backup codes</h1>")
	if codes := backupRE.FindAllStringSubmatch(doc, -1); len(codes) != 10 {
		t.Fatalf("want 10 backup codes, got %d", len(codes))
	}
	b.screenshot("07-backup-codes", true)
	b.click("a.button")
	b.waitText(`Two-step verification <span class="badge badge--on">On</span>`, "you have 10 backup codes left", "Turn off two-step verification")
	b.screenshot("07b-account-mfa-on", true)

	// 5. Sign out; the protected URL sends the browser to sign-in again.
	b.navigate(s.portalURL + "/sign-out")
	b.waitText("<h1>Sign out</h1>")
	b.screenshot("08-sign-out", false)
	b.click(`form[action="/portal/sign-out"] button`)
	b.waitText("<h1>You are signed out</h1>")
	b.screenshot("09-signed-out", false)
	if c := b.cookie(s.proxyURL, cookieName); c != "" {
		t.Errorf("the access cookie survived sign-out")
	}
	b.navigate(protected)
	if loc, _ = b.waitText("<h1>Sign in</h1>"); loc != wantLoc {
		t.Fatalf("after sign-out the protected URL led to %s", loc)
	}

	// 6. Sign in with MFA. The code used for enrolment is spent: refused, in words. The next code works.
	b.typeInto("username", "alice")
	b.typeInto("password", alicePW)
	b.click("form button[type=submit]")
	b.waitText("<h1>Two-step verification</h1>")
	b.screenshot("10-mfa-step", true)
	b.typeInto("code", confirmCode)
	b.click("form button[type=submit]")
	b.waitText("That code has already been used.")
	b.screenshot("11-mfa-replayed", false)
	b.typeInto("code", totp(t, secret, s.clock.Now().Add(30*time.Second)))
	b.click("form button[type=submit]")
	if loc, _ = b.waitText(`<h1 id="hello">Hello, alice</h1>`); loc != protected {
		t.Fatalf("after MFA at %s", loc)
	}

	// 7. Another session (a second device, through the Go API with a TOTP code), seen and ended in the portal.
	s.clock.Advance(30 * time.Second) // the next code must be newer than the last one used
	res, err := s.iss.Authenticate(context.Background(), "alice", alicePW, "198.51.100.7", "curl/8.5.0")
	if err != nil || res.MFA == nil {
		t.Fatalf("second device: %v %+v", err, res)
	}
	other, err := s.iss.VerifyMFA(context.Background(), res.MFA.Token, totp(t, secret, s.clock.Now().Add(30*time.Second)), "198.51.100.7", "curl/8.5.0")
	if err != nil {
		t.Fatal(err)
	}
	b.navigate(s.portalURL + "/sessions")
	b.waitText("<h1>Your sessions</h1>", "198.51.100.7", "This device")
	b.screenshot("12-sessions", true)
	b.do(chromedp.Click(chromedp.Search(`//input[@value="` + other.SessionID + `"]/following-sibling::button`)))
	_, doc = b.waitText("That session is signed out.")
	if strings.Contains(doc, "198.51.100.7") {
		t.Errorf("the ended session is still listed")
	}
	b.screenshot("13-session-ended", false)
	if _, err := s.iss.VerifyAccess(context.Background(), other.AccessToken); !errors.Is(err, issuer.ErrInvalidToken) {
		t.Errorf("the ended session's token still verifies: %v", err)
	}

	// 8. The access token expires: the sidecar sends the browser through the refresh endpoint and back.
	before := b.cookie(s.proxyURL, cookieName)
	s.clock.Advance(accessTTL + time.Minute)
	again := s.proxyURL + "/hello/again"
	b.navigate(again)
	if loc, _ = b.waitText(`<h1 id="hello">Hello, alice</h1>`, "/hello/again"); loc != again {
		t.Fatalf("after refresh at %s", loc)
	}
	if after := b.cookie(s.proxyURL, cookieName); after == "" || after == before {
		t.Errorf("the access cookie was not renewed")
	}
	if !strings.Contains(s.logs.String(), `"reason":"token_expired"`) || !strings.Contains(s.logs.String(), `"event":"refresh","user_id":"u-alice"`) {
		t.Errorf("no refresh went through the sidecar and the issuer:\n%s", s.logs.String())
	}

	// 9. CSRF at the sidecar: the browser's cookie on a post from another site is refused; from the app's own
	// origin it passes. (A real cross-site post would not even carry the SameSite=Lax cookie.)
	cookie := b.cookie(s.proxyURL, cookieName)
	for origin, want := range map[string]int{"http://evil.test": 403, "null": 403, s.proxyURL: 200} {
		req, _ := http.NewRequest("POST", s.proxyURL+"/hello/form", strings.NewReader("a=1"))
		req.Header.Set("Cookie", cookieName+"="+cookie)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST with the cookie from %s: %d, want %d", origin, resp.StatusCode, want)
		}
	}

	// 10. The pages a flow passes too quickly to photograph: not found, and the interstitial (its meta refresh
	// removed, set into a portal page so its stylesheet loads).
	b.navigate(s.portalURL + "/nope")
	b.waitText("<h1>Page not found</h1>")
	b.screenshot("14-not-found", false)
	interstitial := continuePage(t, s)
	b.do(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		tree, err := cdp.Call(ctx, tg, page.GetFrameTree, cdp.Empty{})
		if err != nil {
			return chromedp.Void{}, err
		}
		_, err = cdp.Call(ctx, tg, page.SetDocumentContent, page.SetDocumentContentParams{FrameID: tree.FrameTree.Frame.ID, HTML: interstitial})
		return chromedp.Void{}, err
	})
	b.waitText("<h1>You are signed in</h1>")
	time.Sleep(200 * time.Millisecond) // let the stylesheet apply before the picture
	b.screenshot("15-continue", true)

	if v := b.console.violations(); len(v) > 0 {
		t.Errorf("console security messages or exceptions:\n%s", strings.Join(v, "\n"))
	}
}

var metaRefreshRE = regexp.MustCompile(`<meta http-equiv="refresh"[^>]*>`)

// continuePage signs in over plain HTTP with a return URL on another origin and returns the interstitial the
// portal answers, without its meta refresh.
func continuePage(t *testing.T, s *stack) string {
	t.Helper()
	jar := &cookieJar{}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ret := s.proxyURL + "/hello/world"
	resp, err := c.Get(s.portalURL + "/sign-in?return_to=" + url.QueryEscape(ret))
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if csrf == nil {
		t.Fatal("no csrf field")
	}
	// bob has no MFA, so the password alone signs in (alice has MFA on by now).
	form := url.Values{"csrf": {csrf[1]}, "username": {"bob"}, "password": {bobPW}, "return_to": {ret}}
	resp, err = c.PostForm(s.portalURL+"/sign-in", form)
	if err != nil {
		t.Fatal(err)
	}
	body = readAll(t, resp)
	return metaRefreshRE.ReplaceAllString(body, "")
}

type cookieJar struct {
	mu sync.Mutex
	cs []*http.Cookie
}

func (j *cookieJar) SetCookies(_ *url.URL, cs []*http.Cookie) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.cs = append(j.cs, cs...)
}

func (j *cookieJar) Cookies(*url.URL) []*http.Cookie {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.cs
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
