package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"gatehouse/extauthz"
)

// TestServePortal: with portal.enabled the issuer serves the portal under its path and the decider takes the
// access cookie and sends browsers to the portal's sign-in with a return URL.
func TestServePortal(t *testing.T) {
	dir := demoDir(t)
	writeCheapUsers(t, dir)
	writeFile(t, dir, "logo.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>")
	writeFile(t, dir, "csrf.key", strings.Repeat("ab", 32))
	cfg := writeFile(t, dir, "gatehouse.yaml", `authz: {listen: 127.0.0.1:0}
issuer: {listen: 127.0.0.1:0, url: https://login.example.com}
policy: policy.yaml
users: users.yaml
keys: {dir: keys}
portal:
  enabled: true
  title: Example Corp
  logo: logo.svg
  return_domains: [example.com]
  csrf_key_file: csrf.key
`)
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.shutdown(5 * time.Second) })
	base := "http://" + a.issuerAddr.String()

	resp, err := http.Get(base + "/portal/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") ||
		!strings.Contains(string(body), "Example Corp") || !strings.Contains(string(body), `src="/portal/static/logo"`) {
		t.Fatalf("sign-in page: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	if resp, err := http.Get(base + "/portal/static/logo"); err != nil || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("logo: %v %v", err, resp)
	}
	// The JSON API is still there, with its own 404s.
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}

	conn, err := grpc.NewClient(a.authzAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	check := func(headers map[string]string) *authv3.CheckResponse {
		req := extauthz.NewCheckRequest("GET", "app.example.com", "/users/profile?x=1", headers)
		req.Attributes.Request.Http.Scheme = "https"
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := client.Check(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := check(map[string]string{"accept": "text/html"})
	want := "https://login.example.com/portal/sign-in?return_to=" + url.QueryEscape("https://app.example.com/users/profile?x=1")
	if d := r.GetDeniedResponse(); d.GetStatus().GetCode() != 302 || d.GetHeaders()[0].GetHeader().GetValue() != want {
		t.Fatalf("browser without a session: %v", r)
	}
	res, err := a.issuer.(*httpIssuer).srv.Authenticate(context.Background(), "alice", "alice-pw", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if r := check(map[string]string{"cookie": "gatehouse_access=" + res.Tokens.AccessToken}); r.GetOkResponse() == nil {
		t.Fatalf("cookie session refused: %v", r)
	}
}

func TestPortalKeyAndLogoErrors(t *testing.T) {
	dir := t.TempDir()
	short := writeFile(t, dir, "short.key", "nope")
	for name, portal := range map[string]string{
		"bad csrf key": "csrf_key_file: " + short,
		"missing logo": "logo: " + filepath.Join(dir, "nope.png"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := demoDir(t)
			writeFile(t, dir, "users.yaml", "users: []\n")
			cfg := writeFile(t, dir, "gatehouse.yaml", `authz: {listen: 127.0.0.1:0}
issuer: {listen: 127.0.0.1:0, url: https://login.example.com}
policy: policy.yaml
users: users.yaml
keys: {dir: keys}
portal: {enabled: true, `+portal+`}
`)
			_, err := newApp(cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
			key := strings.SplitN(portal, ":", 2)[0]
			if err == nil || !strings.Contains(err.Error(), "portal."+key) {
				t.Fatalf("err %v, want one naming portal.%s", err, key)
			}
		})
	}
}
