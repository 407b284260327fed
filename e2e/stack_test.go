package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"

	"gatehouse/extauthz"
	"gatehouse/internal/logbuf"
	"gatehouse/issuer"
	"gatehouse/mfa"
	"gatehouse/password"
	"gatehouse/policy"
	"gatehouse/portal"
	"gatehouse/portal/safeurl"
	"gatehouse/store/memstore"
	"gatehouse/token"
	"gatehouse/users"
)

const (
	alicePW     = "correct horse battery staple"
	bobPW       = "bob has no second factor"
	testPolicy  = "roles:\n  user: {permissions: [read:hello]}\nroutes:\n  - name: hello\n    match: {path_prefix: /hello}\n    permissions: [read:hello]\n"
	accessTTL   = 15 * time.Minute
	refreshTTL  = 24 * time.Hour
	cookieName  = "gatehouse_access"
	refreshName = "gatehouse_refresh"
)

// logoSVG is the configurable logo the pages show beside the title.
const logoSVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path fill="#0b57d0" d="M16 2 4 7v8c0 7.5 5.1 13.4 12 15 6.9-1.6 12-7.5 12-15V7z"/><path fill="#fff" d="M11 15h10v8H11zm2-3a3 3 0 0 1 6 0v3h-2v-3a1 1 0 0 0-2 0v3h-2z"/></svg>`

// clock is the one clock of the whole stack (issuer, store, sidecar, portal): it stands still unless the test
// moves it, so TOTP steps and token expiry are decided by the test, not by how fast the machine is.
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

// stack is Gatehouse as a browser meets it, all on loopback: the issuer with the portal mounted on it, the
// ext_authz gRPC server, a tiny protected app, and in front of the app a minimal reverse proxy standing in for
// Envoy (see proxy).
type stack struct {
	clock     *clock
	iss       *issuer.Server
	portalURL string // http://127.0.0.1:P/portal
	proxyURL  string // http://127.0.0.1:Q (the protected app behind the sidecar)
	logs      *logbuf.Buffer
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{clock: &clock{t: time.Now().Truncate(time.Second)}, logs: &logbuf.Buffer{}}
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	cheap := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hash, err := password.Hash(alicePW, cheap, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bobHash, err := password.Hash(bobPW, cheap, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := users.Parse("users.yaml", []byte(fmt.Sprintf("users:\n  - {id: u-alice, username: alice, password_hash: %q, roles: [user]}\n"+
		"  - {id: u-bob, username: bob, password_hash: %q, roles: [user]}\n", hash, bobHash)),
		func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile("policy.yaml", []byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.GenerateKeySet("EdDSA", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(keys, s.clock.Now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	issuerLis := listen(t)
	issuerURL := "http://" + issuerLis.Addr().String()
	s.portalURL = issuerURL + "/portal"
	verifier := token.NewVerifier(keys.PublicOnly(), token.VerifierOptions{Issuer: issuerURL, Audience: "gatehouse", Now: s.clock.Now})
	master := make([]byte, mfa.KeySize)
	_, _ = rand.Read(master)
	mk, err := mfa.NewKeys(master, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New(s.clock.Now)
	s.iss, err = issuer.New(issuer.Config{
		Issuer: issuerURL, Audience: "gatehouse", AccessTTL: accessTTL, RefreshTTL: refreshTTL,
		Signer: signer, Verifier: verifier, Keys: keys, Users: dir,
		Sessions: st, Revocations: st, Counters: st,
		MFA:         issuer.MFAConfig{Store: st, Once: st, Keys: mk, IssuerName: "Gatehouse"},
		DummyParams: cheap, Logger: log, Now: s.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Dev mode, as the config allows it for loopback only: http, cookies without Secure.
	sites, err := safeurl.NewPolicy([]string{"127.0.0.1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := portal.New(portal.Config{Issuer: s.iss, Verifier: verifier, URL: s.portalURL, Title: "Example Corp",
		Logo: []byte(logoSVG), LogoType: "image/svg+xml",
		Insecure: true, ReturnURLs: sites, CSRFKey: []byte("0123456789abcdef0123456789abcdef"),
		ClientIP: s.iss.ClientIP, Logger: log, Now: s.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", s.iss.Handler())
	mux.Handle(pt.Prefix()+"/", pt.Handler())
	mux.Handle(pt.Prefix(), pt.Handler())
	serve(t, issuerLis, mux)

	authz, err := extauthz.New(extauthz.Config{Policy: pol, Verifier: verifier, Revocations: st, Logger: log, Now: s.clock.Now,
		Browser: &extauthz.BrowserConfig{AccessCookie: cookieName, SignInURL: pt.SignInURL(), RefreshURL: pt.RefreshURL(), Sites: sites}})
	if err != nil {
		t.Fatal(err)
	}
	grpcLis := listen(t)
	g := extauthz.NewGRPCServer(authz, health.NewServer(), log)
	go func() { _ = g.Serve(grpcLis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(grpcLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	app := httptest.NewServer(http.HandlerFunc(helloApp))
	t.Cleanup(app.Close)
	appURL, _ := url.Parse(app.URL)
	proxyLis := listen(t)
	s.proxyURL = "http://" + proxyLis.Addr().String()
	serve(t, proxyLis, &proxy{authz: authv3.NewAuthorizationClient(conn), upstream: httputil.NewSingleHostReverseProxy(appURL)})
	return s
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func serve(t *testing.T, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// helloApp is the protected app: it greets the user the sidecar named in x-username.
func helloApp(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Hello app</title></head><body>`+
		`<h1 id="hello">Hello, %s</h1><p id="where">%s %s</p></body></html>`,
		html.EscapeString(r.Header.Get("X-Username")), html.EscapeString(r.Method), html.EscapeString(r.URL.RequestURI()))
}

// proxy is a minimal stand-in for Envoy's ext_authz HTTP filter, in the test only: for each request it builds a
// CheckRequest the way Envoy does (lower-case header names, pseudo-headers, duplicates joined with "," and
// cookies with "; "), calls Check over gRPC, and then either forwards the request to the app with the
// OkHttpResponse's header mutations applied, or answers with the DeniedHttpResponse's status, headers and body
// (a 302 to the portal included). A gRPC failure is a 503, as with failure_mode_allow: false and
// status_on_error: 503 in our Envoy configs.
type proxy struct {
	authz    authv3.AuthorizationClient
	upstream http.Handler
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hs := map[string]string{":method": r.Method, ":path": r.URL.RequestURI(), ":authority": r.Host, ":scheme": "http"}
	for k, vs := range r.Header {
		sep := ","
		if strings.EqualFold(k, "cookie") {
			sep = "; "
		}
		hs[strings.ToLower(k)] = strings.Join(vs, sep)
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: r.Method, Host: r.Host, Path: r.URL.RequestURI(),
			Scheme: "http", Protocol: r.Proto, Headers: hs},
	}}}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	resp, err := p.authz.Check(ctx, req)
	if err != nil {
		http.Error(w, "authorization unavailable", http.StatusServiceUnavailable)
		return
	}
	if ok := resp.GetOkResponse(); ok != nil && resp.GetStatus().GetCode() == 0 {
		for _, name := range ok.GetHeadersToRemove() {
			r.Header.Del(name)
		}
		for _, hv := range ok.GetHeaders() {
			applyHeader(r.Header, hv)
		}
		p.upstream.ServeHTTP(w, r)
		return
	}
	d := resp.GetDeniedResponse()
	for _, hv := range d.GetHeaders() {
		applyHeader(w.Header(), hv)
	}
	status := int(d.GetStatus().GetCode())
	if status == 0 {
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, d.GetBody())
}

// applyHeader applies one HeaderValueOption as Envoy does (the deprecated append flag, when set, wins).
func applyHeader(h http.Header, hv *corev3.HeaderValueOption) {
	k, v := hv.GetHeader().GetKey(), hv.GetHeader().GetValue()
	if a := hv.GetAppend(); a != nil {
		if a.GetValue() {
			h.Add(k, v)
		} else {
			h.Set(k, v)
		}
		return
	}
	switch hv.GetAppendAction() {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
		h.Add(k, v)
	case corev3.HeaderValueOption_ADD_IF_ABSENT:
		if h.Get(k) == "" {
			h.Set(k, v)
		}
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
		h.Set(k, v)
	case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		if h.Get(k) != "" {
			h.Set(k, v)
		}
	}
}
