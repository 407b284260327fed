package portal

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/issuer"
	"gatehouse/mfa"
	"gatehouse/password"
	"gatehouse/portal/safeurl"
	"gatehouse/store/memstore"
	"gatehouse/token"
	"gatehouse/users"
)

const (
	alicePW  = "correct horse battery staple"
	testAud  = "gatehouse"
	appHost  = "app.example.test"
	testUA   = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
	refreshT = 24 * time.Hour
)

var cheapParams = password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

var (
	hashOnce  sync.Once
	aliceHash string
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a portal over a real issuer (in-memory store, Ed25519 keys, cheap password hashing), served over TLS so
// Secure cookies behave as in production.
type env struct {
	t        *testing.T
	clock    *clock
	iss      *issuer.Server
	portal   *Portal
	ts       *httptest.Server
	verifier *token.Verifier
	logs     *bytes.Buffer
}

func newEnv(t *testing.T, mut ...func(*Config)) *env {
	t.Helper()
	hashOnce.Do(func() {
		h, err := password.Hash(alicePW, cheapParams, rand.Reader)
		if err != nil {
			panic(err)
		}
		aliceHash = h
	})
	e := &env{t: t, clock: &clock{t: time.Now().Truncate(time.Second)}, logs: &bytes.Buffer{}}
	dir, err := users.Parse("users.yaml", []byte(fmt.Sprintf(
		"users:\n  - {id: u-alice, username: alice, password_hash: %q, roles: [user]}\n", aliceHash)),
		func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.GenerateKeySet("EdDSA", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(keys, e.clock.Now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewUnstartedServer(nil)
	e.ts.StartTLS()
	t.Cleanup(e.ts.Close)
	issURL := e.ts.URL
	e.verifier = token.NewVerifier(keys.PublicOnly(), token.VerifierOptions{Issuer: issURL, Audience: testAud, Now: e.clock.Now})
	master := make([]byte, mfa.KeySize)
	_, _ = rand.Read(master)
	mk, err := mfa.NewKeys(master, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(e.clock.Now)
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	e.iss, err = issuer.New(issuer.Config{
		Issuer: issURL, Audience: testAud, AccessTTL: 15 * time.Minute, RefreshTTL: refreshT,
		Signer: signer, Verifier: e.verifier, Keys: keys, Users: dir,
		Sessions: st, Revocations: st, Counters: st,
		MFA:         issuer.MFAConfig{Store: st, Once: st, Keys: mk, IssuerName: "Gatehouse Test"},
		DummyParams: cheapParams, Logger: log, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	returns, err := safeurl.NewPolicy([]string{"example.test"}, false)
	if err != nil {
		t.Fatal(err)
	}
	c := Config{Issuer: e.iss, Verifier: e.verifier, URL: issURL + "/portal", Title: "Example Corp",
		ReturnURLs: returns, CSRFKey: bytes.Repeat([]byte{7}, 32), ClientIP: e.iss.ClientIP, Logger: log,
		Now: e.clock.Now}
	for _, m := range mut {
		m(&c)
	}
	e.portal, err = New(c)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", e.iss.Handler())
	mux.Handle(e.portal.Prefix()+"/", e.portal.Handler())
	mux.Handle(e.portal.Prefix(), e.portal.Handler())
	e.ts.Config.Handler = mux
	return e
}

// page is one response, body read.
type page struct {
	status int
	header http.Header
	body   string
	url    string
}

// browser is a cookie-keeping client that does not follow redirects, so tests see every hop.
type browser struct {
	e    *env
	c    *http.Client
	last *page
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: e.ts.Client().Transport, Jar: jar} // ts.Client() is one shared client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, c: c}
}

func (b *browser) do(method, target string, form url.Values, header map[string]string) *page {
	b.e.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = b.e.ts.URL + target
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", testUA)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := &page{status: resp.StatusCode, header: resp.Header, body: string(raw), url: target}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") && resp.StatusCode < 300 {
		b.last = p
	}
	return p
}

func (b *browser) get(target string) *page { b.e.t.Helper(); return b.do("GET", target, nil, nil) }

// submit posts a form with the CSRF token of the last page shown, like a browser submitting that page's form.
func (b *browser) submit(path string, form url.Values) *page {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" && b.last != nil {
		form.Set("csrf", field(b.e.t, b.last.body, "csrf"))
	}
	return b.do("POST", path, form, nil)
}

// follow GETs a redirect's Location.
func (b *browser) follow(p *page) *page {
	b.e.t.Helper()
	loc := p.header.Get("Location")
	if p.status < 300 || p.status > 399 || loc == "" {
		b.e.t.Fatalf("want a redirect, got %d (%s)", p.status, snippet(p.body))
	}
	return b.get(loc)
}

// signIn signs alice in with the password alone and returns the page after the redirects.
func (b *browser) signIn() *page {
	b.e.t.Helper()
	b.get("/portal/sign-in")
	p := b.submit("/portal/sign-in", url.Values{"username": {"alice"}, "password": {alicePW}})
	if p.status != http.StatusSeeOther {
		b.e.t.Fatalf("sign-in: status %d, want 303: %s", p.status, snippet(p.body))
	}
	return b.follow(p)
}

// cookie returns the jar's value of a cookie for the server's URL path.
func (b *browser) cookie(path, name string) string {
	u, _ := url.Parse(b.e.ts.URL + path)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var inputRE = regexp.MustCompile(`<input[^>]*>`)
var attrRE = regexp.MustCompile(`(\w[\w-]*)(?:="([^"]*)")?`)

// field returns the value of the (first) input named name in body.
func field(t *testing.T, body, name string) string {
	t.Helper()
	for _, in := range inputRE.FindAllString(body, -1) {
		attrs := attributes(in)
		if attrs["name"] == name {
			return attrs["value"]
		}
	}
	t.Fatalf("no input %q in page: %s", name, snippet(body))
	return ""
}

// inputTag returns the attributes of the input with id.
func inputTag(t *testing.T, body, id string) map[string]string {
	t.Helper()
	for _, in := range inputRE.FindAllString(body, -1) {
		if a := attributes(in); a["id"] == id {
			return a
		}
	}
	t.Fatalf("no input #%s in page: %s", id, snippet(body))
	return nil
}

func attributes(tag string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(strings.TrimSuffix(strings.TrimPrefix(tag, "<input"), ">"), -1) {
		m[a[1]] = html.UnescapeString(a[2])
	}
	return m
}

var secretRE = regexp.MustCompile(`<code id="secret">([A-Z2-7 ]+)</code>`)

// totpSecret reads the setup key from the enrolment page.
func totpSecret(t *testing.T, body string) []byte {
	t.Helper()
	m := secretRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no setup key on the page: %s", snippet(body))
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ReplaceAll(m[1], " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func code(t *testing.T, secret []byte, at time.Time) string {
	t.Helper()
	c, err := mfa.Code(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var backupRE = regexp.MustCompile(`<li><code>([0-9a-z-]+)</code></li>`)

func snippet(s string) string {
	if len(s) > 1500 {
		return s[:1500] + "…"
	}
	return s
}

func mustContain(t *testing.T, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("page does not contain %q:\n%s", s, snippet(body))
		}
	}
}
