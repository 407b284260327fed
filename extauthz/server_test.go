package extauthz

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	"gatehouse/policy"
	"gatehouse/token"
)

// routes in the test policy, one per access kind, with a request that matches each.
var matrixRoutes = []struct {
	access       string
	method, host string
	path         string
}{
	{"public", "POST", "api.example.com", "/auth/login"},
	{"authenticated", "GET", "api.example.com", "/me"},
	{"permissions", "GET", "api.example.com", "/users/profile"},
	{"roles", "GET", "api.example.com", "/orders/42"},
}

func TestDecisionMatrix(t *testing.T) {
	h := newHarness(t)
	other := newHarness(t) // a different key set: "wrong key"
	kid, pub := h.publicKeyBytes()

	valid := h.sign(h.claims(token.Access, "user"))
	revoked := h.claims(token.Access, "user")
	revoked.ID = "jti-revoked"
	revokedTok := h.sign(revoked)
	if err := h.store.RevokeToken(context.Background(), "jti-revoked", revoked.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	expired := h.claims(token.Access, "user")
	expired.IssuedAt, expired.ExpiresAt = h.now.Add(-2*time.Hour), h.now.Add(-time.Hour)
	std := jwt.MapClaims{"iss": testIssuer, "sub": "u-1001", "aud": testAudience, "exp": h.now.Add(time.Hour).Unix(),
		"iat": h.now.Unix(), "jti": "j", "sid": "s", "roles": []string{"admin"}}
	none := forge(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}, std, func(string) string { return "" })
	hsWithPub := forge(t, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}, std, func(in string) string {
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(in))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	})
	parts := strings.Split(valid, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tamperedPayload := strings.Replace(string(payload), `"user"`, `"admin"`, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(tamperedPayload)) + "." + parts[2]

	tokens := []struct {
		name       string
		tok        string // "" = no Authorization header
		wantStatus int    // on a non-public route
		wantReason string
	}{
		{"no token", "", 401, ReasonTokenMissing},
		{"valid", valid, 200, "allowed"},
		{"expired", h.sign(expired), 401, "token_expired"},
		{"revoked", revokedTok, 401, ReasonTokenRevoked},
		{"refresh-typed", h.sign(h.claims(token.Refresh, "user")), 401, "token_wrong_type"},
		{"mfa-typed", h.sign(h.claims(token.MFA, "user")), 401, "token_wrong_type"},
		{"wrong key", other.sign(other.claims(token.Access, "user")), 401, "token_unknown_key"},
		{"alg none", none, 401, ""},
		{"HS256 with public key", hsWithPub, 401, ""},
		{"tampered payload", tampered, 401, "token_signature"},
	}
	for _, rt := range matrixRoutes {
		for _, tk := range tokens {
			t.Run(rt.access+"/"+tk.name, func(t *testing.T) {
				hdr := map[string]string{}
				if tk.tok != "" {
					hdr = bearer(tk.tok)
				}
				resp := h.check(rt.method, rt.host, rt.path, hdr)
				want, wantReason := tk.wantStatus, tk.wantReason
				if rt.access == "public" {
					want, wantReason = 200, "public"
				}
				if got := httpStatus(resp); got != want {
					t.Fatalf("status = %d (%s), want %d", got, reason(resp), want)
				}
				if wantReason != "" && reason(resp) != wantReason {
					t.Errorf("reason = %q, want %q", reason(resp), wantReason)
				}
				if want == 401 {
					d := resp.GetDeniedResponse()
					if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated {
						t.Errorf("grpc status = %v, want Unauthenticated", codes.Code(resp.GetStatus().GetCode()))
					}
					if !hasHeader(d.GetHeaders(), "www-authenticate", `Bearer error="invalid_token"`) {
						t.Errorf("401 without www-authenticate: %v", d.GetHeaders())
					}
					var body map[string]string
					if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body["error"] == "" || body["message"] == "" {
						t.Errorf("body %q is not {error,message}: %v", d.GetBody(), err)
					}
				}
			})
		}
	}
}

func hasHeader(hs []*corev3.HeaderValueOption, k, v string) bool {
	for _, h := range hs {
		if h.GetHeader().GetKey() == k && h.GetHeader().GetValue() == v {
			return true
		}
	}
	return false
}

func TestPermissionsAndRoles(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name               string
		roles              []string
		method, host, path string
		want               int
		wantReason         string
	}{
		{"user reads profile", []string{"user"}, "GET", "api.example.com", "/users/profile", 200, "allowed"},
		{"guest lacks read:users", []string{"guest"}, "GET", "api.example.com", "/users/profile", 403, "forbidden"},
		{"admin inherits read:users", []string{"admin"}, "GET", "api.example.com", "/users/profile", 200, "allowed"},
		{"admin deletes", []string{"admin"}, "DELETE", "api.example.com", "/admin/users/u-7", 200, "allowed"},
		{"user cannot delete", []string{"user"}, "DELETE", "api.example.com", "/admin/users/u-7", 403, "forbidden"},
		{"orders on a wildcard host", []string{"user"}, "GET", "eu.api.example.com:8443", "/orders", 200, "allowed"},
		{"orders on another host", []string{"user"}, "GET", "evil.test", "/orders/1", 403, "no_route"},
		{"guest is not user", []string{"guest"}, "GET", "api.example.com", "/orders/1", 403, "forbidden"},
		{"unknown role grants nothing", []string{"root"}, "GET", "api.example.com", "/users/profile", 403, "forbidden"},
		{"no roles but authenticated", nil, "GET", "api.example.com", "/me", 200, "allowed"},
		{"method not in route", []string{"admin"}, "POST", "api.example.com", "/users/profile", 403, "no_route"},
		{"encoded slash", []string{"admin"}, "GET", "api.example.com", "/admin%2Fusers/1", 400, "non_canonical_path"},
		{"dot dot", []string{"admin"}, "GET", "api.example.com", "/auth/../admin/users/1", 400, "non_canonical_path"},
		{"double slash", []string{"admin"}, "GET", "api.example.com", "//me", 400, "non_canonical_path"},
		{"query ignored", []string{"user"}, "GET", "api.example.com", "/users/profile?debug=1", 200, "allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.check(tt.method, tt.host, tt.path, bearer(h.sign(h.claims(token.Access, tt.roles...))))
			if got := httpStatus(resp); got != tt.want || reason(resp) != tt.wantReason {
				t.Errorf("got %d %s, want %d %s", got, reason(resp), tt.want, tt.wantReason)
			}
			// The CheckResponse status tells Envoy's logs and stats the same thing as the HTTP status.
			wantCode := map[int]codes.Code{200: codes.OK, 400: codes.InvalidArgument, 403: codes.PermissionDenied}[tt.want]
			if got := codes.Code(resp.GetStatus().GetCode()); got != wantCode {
				t.Errorf("grpc status %v, want %v", got, wantCode)
			}
		})
	}
}

func TestAllowSetsIdentityHeadersAndStripsClientCopies(t *testing.T) {
	h := newHarness(t)
	spoof := map[string]string{"x-user-id": "u-admin", "x-username": "root", "x-user-roles": "admin"}

	pub := h.check("POST", "api.example.com", "/auth/login", spoof).GetOkResponse()
	if pub == nil || strings.Join(pub.GetHeadersToRemove(), ",") != "x-user-id,x-username,x-user-roles" {
		t.Fatalf("public allow must remove client identity headers: %v", pub)
	}
	if len(pub.GetHeaders()) != 0 {
		t.Errorf("public allow must not set identity headers: %v", pub.GetHeaders())
	}

	hdr := bearer(h.sign(h.claims(token.Access, "user", "guest")))
	for k, v := range spoof {
		hdr[k] = v
	}
	resp := h.check("GET", "api.example.com", "/me", hdr)
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("want allow, got %v", resp)
	}
	want := map[string]string{"x-user-id": "u-1001", "x-username": "alice", "x-user-roles": "user,guest"}
	for _, hv := range ok.GetHeaders() {
		k := hv.GetHeader().GetKey()
		if want[k] != hv.GetHeader().GetValue() {
			t.Errorf("%s = %q, want %q", k, hv.GetHeader().GetValue(), want[k])
		}
		if hv.GetAppendAction().String() != "OVERWRITE_IF_EXISTS_OR_ADD" {
			t.Errorf("%s must overwrite client copies, got %v", k, hv.GetAppendAction())
		}
		delete(want, k)
	}
	if len(want) != 0 {
		t.Errorf("headers not set: %v", want)
	}
	if rule(resp) != "me" || reason(resp) != "allowed" {
		t.Errorf("metadata = %s/%s", rule(resp), reason(resp))
	}
}

func TestConfigurableHeaderNames(t *testing.T) {
	h := newHarness(t)
	srv := h.server(t, func(c *Config) { c.Headers = HeaderNames{UserID: "x-sub", Username: "x-name", Roles: "x-groups"} })
	resp, _ := srv.Check(context.Background(), NewCheckRequest("GET", "a", "/me", bearer(h.sign(h.claims(token.Access)))))
	keys := []string{}
	for _, hv := range resp.GetOkResponse().GetHeaders() {
		keys = append(keys, hv.GetHeader().GetKey())
	}
	if strings.Join(keys, ",") != "x-sub,x-name,x-groups" {
		t.Errorf("headers = %v", keys)
	}
}

func TestStoreUnavailableIs503(t *testing.T) {
	h := newHarness(t)
	srv := h.serverWith(t, failingRevocations{})
	tok := h.sign(h.claims(token.Access, "user"))
	resp, err := srv.Check(context.Background(), NewCheckRequest("GET", "api.example.com", "/me", bearer(tok)))
	if err != nil || httpStatus(resp) != 503 || reason(resp) != ReasonStoreUnavailable ||
		codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable {
		t.Fatalf("got %v %v", resp, err)
	}
	// Public routes do not need the store.
	resp, _ = srv.Check(context.Background(), NewCheckRequest("POST", "api.example.com", "/auth/login", nil))
	if httpStatus(resp) != 200 {
		t.Errorf("public route with the store down: %d", httpStatus(resp))
	}
}

func TestRevocationBySessionAndUserIsSeenDespiteCache(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tok := h.sign(h.claims(token.Access, "user"))
	if s := httpStatus(h.check("GET", "a", "/me", bearer(tok))); s != 200 {
		t.Fatalf("first check: %d", s)
	}
	if err := h.store.RevokeSession(ctx, "sid-1", h.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if resp := h.check("GET", "a", "/me", bearer(tok)); httpStatus(resp) != 401 || reason(resp) != ReasonTokenRevoked {
		t.Fatalf("session revoked but cached token allowed: %d %s", httpStatus(resp), reason(resp))
	}

	c := h.claims(token.Access, "user")
	c.SessionID = "sid-2"
	c.IssuedAt = h.now.Add(-time.Minute)
	tok2 := h.sign(c)
	if s := httpStatus(h.check("GET", "a", "/me", bearer(tok2))); s != 200 {
		t.Fatalf("sid-2 before logout-all: %d", s)
	}
	if err := h.store.RevokeUserBefore(ctx, "u-1001", h.now, h.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if resp := h.check("GET", "a", "/me", bearer(tok2)); reason(resp) != ReasonTokenRevoked {
		t.Fatalf("logout-all not enforced: %s", reason(resp))
	}
}

func TestCachedTokenExpires(t *testing.T) {
	h := newHarness(t)
	c := h.claims(token.Access, "user")
	c.ExpiresAt = h.now.Add(time.Minute)
	tok := h.sign(c)
	if s := httpStatus(h.check("GET", "a", "/me", bearer(tok))); s != 200 {
		t.Fatalf("fresh token: %d", s)
	}
	h.now = h.now.Add(2 * time.Minute)
	if resp := h.check("GET", "a", "/me", bearer(tok)); reason(resp) != "token_expired" {
		t.Fatalf("expired token served from cache: %d %s", httpStatus(resp), reason(resp))
	}
}

// A token inside the verifier's leeway after exp is still accepted, but never cached: get would not return it.
func TestTokenInLeewayIsNotCached(t *testing.T) {
	h := newHarness(t)
	c := h.claims(token.Access, "user")
	c.IssuedAt, c.ExpiresAt = h.now.Add(-time.Hour), h.now.Add(-10*time.Second)
	if resp := h.check("GET", "a", "/me", bearer(h.sign(c))); httpStatus(resp) != 200 {
		t.Fatalf("token 10s past exp (leeway 30s): %d %s", httpStatus(resp), reason(resp))
	}
	if n := h.srv.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries, want an expired token left out", n)
	}
}

func TestBearerParsing(t *testing.T) {
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "user"))
	tests := []struct {
		name   string
		value  string
		want   int
		reason string
	}{
		{"canonical", "Bearer " + tok, 200, "allowed"},
		{"scheme is case-insensitive", "bEaReR " + tok, 200, "allowed"},
		{"basic scheme", "Basic " + tok, 401, ReasonTokenInvalid},
		{"no scheme", tok, 401, ReasonTokenInvalid},
		{"empty token", "Bearer ", 401, ReasonTokenInvalid},
		{"two tokens", "Bearer " + tok + " " + tok, 401, ReasonTokenInvalid},
		{"two headers merged by Envoy", "Bearer " + tok + ",Bearer " + tok, 401, ReasonTokenInvalid},
		{"garbage bytes", "Bearer \x00\xff\xfe" + tok, 401, ReasonTokenInvalid},
		{"100 KB token", "Bearer " + strings.Repeat("a", 100<<10), 401, "token_too_large"},
		{"not a JWT", "Bearer abc.def", 401, "token_malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.check("GET", "a", "/me", map[string]string{"authorization": tt.value})
			if httpStatus(resp) != tt.want || reason(resp) != tt.reason {
				t.Errorf("got %d %s, want %d %s", httpStatus(resp), reason(resp), tt.want, tt.reason)
			}
		})
	}
}

func TestRawHeaderMapDuplicatesAreRefused(t *testing.T) {
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "user"))
	req := NewCheckRequest("GET", "a", "/me", nil)
	req.Attributes.Request.Http.Headers = nil
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "authorization", RawValue: []byte("Bearer " + tok)},
		{Key: "Authorization", RawValue: []byte("Bearer " + tok)},
	}}
	resp, _ := h.srv.Check(context.Background(), req)
	if httpStatus(resp) != 401 || reason(resp) != ReasonTokenInvalid {
		t.Fatalf("two raw authorization headers: %d %s", httpStatus(resp), reason(resp))
	}
	req.Attributes.Request.Http.HeaderMap.Headers = req.Attributes.Request.Http.HeaderMap.Headers[:1]
	if resp, _ := h.srv.Check(context.Background(), req); httpStatus(resp) != 200 {
		t.Fatalf("one raw authorization header: %d %s", httpStatus(resp), reason(resp))
	}
}

func TestMalformedRequestsAreDenied(t *testing.T) {
	h := newHarness(t)
	many := map[string]string{}
	for i := range 1000 {
		many["x-h-"+strconv.Itoa(i)] = strings.Repeat("v", 100)
	}
	garbage := make([]byte, 512)
	_, _ = rand.Read(garbage)
	tests := []struct {
		name       string
		req        *authv3.CheckRequest
		want       int
		wantReason string
	}{
		{"nil request", nil, 400, ReasonMalformedRequest},
		{"empty request", &authv3.CheckRequest{}, 400, ReasonMalformedRequest},
		{"no http", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}, 400, ReasonMalformedRequest},
		{"no path", NewCheckRequest("GET", "a", "", nil), 400, ReasonMalformedRequest},
		{"no method", NewCheckRequest("", "a", "/me", nil), 400, ReasonMalformedRequest},
		{"1000 headers", NewCheckRequest("GET", "a", "/me", many), 401, ReasonTokenMissing},
		{"garbage header bytes", NewCheckRequest("GET", "a", "/me", map[string]string{"authorization": string(garbage), "x-junk": string(garbage)}), 401, ReasonTokenInvalid},
		{"garbage path", NewCheckRequest("GET", "a", string(garbage), nil), 400, policy.ReasonNonCanonicalPath},
		{"huge path", NewCheckRequest("GET", "a", "/"+strings.Repeat("a", 20<<10), nil), 400, policy.ReasonNonCanonicalPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := h.srv.Check(context.Background(), tt.req)
			if err != nil {
				t.Fatalf("gRPC error: %v", err)
			}
			if resp.GetDeniedResponse() == nil || httpStatus(resp) != tt.want || reason(resp) != tt.wantReason {
				t.Fatalf("got %d %s, want denial %d %s", httpStatus(resp), reason(resp), tt.want, tt.wantReason)
			}
		})
	}
}

func TestDenialsAreAuditedWithoutSecrets(t *testing.T) {
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "guest"))
	h.check("GET", "api.example.com", "/users/profile?access_token=SECRET", bearer(tok))
	h.check("GET", "api.example.com", "/me", map[string]string{"authorization": "Bearer bad.token.here", "cookie": "session=SECRET"})
	logs := h.logs.String()
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one audit line per denial, got %d:\n%s", len(lines), logs)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["event"] != "authz.deny" || first["reason"] != "forbidden" || first["rule"] != "profile" ||
		first["user_id"] != "u-1001" || first["path"] != "/users/profile" {
		t.Errorf("audit line: %v", first)
	}
	for _, secret := range []string{"SECRET", tok, "bad.token.here"} {
		if strings.Contains(logs, secret) {
			t.Errorf("audit log leaks %q", secret)
		}
	}
	// Allowed requests are not audited line by line.
	h.logs.Reset()
	h.check("GET", "api.example.com", "/me", bearer(tok))
	if h.logs.Len() != 0 {
		t.Errorf("allow was logged: %s", h.logs)
	}
}

func TestSetPolicySwapsAtomically(t *testing.T) {
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "user"))
	if s := httpStatus(h.check("GET", "a", "/me", bearer(tok))); s != 200 {
		t.Fatal(s)
	}
	p2 := mustCompile(t, "routes:\n  - name: none\n    match: {path: /other}\n    public: true\n")
	h.srv.SetPolicy(p2)
	if resp := h.check("GET", "a", "/me", bearer(tok)); reason(resp) != "no_route" {
		t.Fatalf("new policy not used: %s", reason(resp))
	}
}

func mustCompile(t testing.TB, src string) *policy.Policy {
	t.Helper()
	p, err := policy.Compile("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
