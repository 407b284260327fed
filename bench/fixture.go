package main

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse/extauthz"
	"gatehouse/store/redisstore"
	"gatehouse/token"
)

const (
	benchIssuer   = "https://login.bench.test"
	benchAudience = "gatehouse"
	benchHost     = "api.bench.test"
	redisPrefix   = "gatehouse:"
)

// fixture is what every Gatehouse the bench starts shares: a key pair (sidecars get the public half), a policy
// and a signer.
type fixture struct {
	dir     string
	pubDir  string
	policy  string
	routes  int
	signer  *token.Signer
	sidecar int // sidecars started so far, for unique names
}

func newFixture(dir string, routes int) (*fixture, error) {
	f := &fixture{dir: dir, routes: routes, pubDir: filepath.Join(dir, "pubkeys"), policy: filepath.Join(dir, "policy.yaml")}
	keyDir := filepath.Join(dir, "keys")
	kid, err := token.WriteKeyPair(keyDir, token.AlgEdDSA, crand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.pubDir, 0o700); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(filepath.Join(keyDir, kid+".pub.pem"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(f.pubDir, kid+".pub.pem"), pub, 0o600); err != nil {
		return nil, err
	}
	ks, err := token.LoadKeyDir(keyDir)
	if err != nil {
		return nil, err
	}
	if f.signer, err = token.NewSigner(ks, time.Now, crand.Reader); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.policy, []byte(bigPolicy(routes)), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

// bigPolicy has n service routes, each needing a permission, and a public one.
func bigPolicy(n int) string {
	var b strings.Builder
	b.WriteString(`roles:
  guest: {permissions: [read:orders]}
  user:  {inherits: [guest], permissions: [read:users, write:orders]}
routes:
  - name: auth
    match: {path_prefix: /auth}
    public: true
`)
	for i := range n {
		fmt.Fprintf(&b, "  - name: svc-%d\n    match: {methods: [GET, POST], path: \"/svc-%d/items/{id}/**\"}\n    permissions: [read:orders]\n", i, i)
	}
	return b.String()
}

// config writes a sidecar config (issuer off) and returns its path and the authz address.
func (f *fixture) config(redisAddr, mode string) (path, addr string, err error) {
	port, err := freePort()
	if err != nil {
		return "", "", err
	}
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	f.sidecar++
	path = filepath.Join(f.dir, fmt.Sprintf("gatehouse-%d-%s.yaml", f.sidecar, mode))
	cfg := fmt.Sprintf(`authz: {listen: %q}
issuer: {enabled: false, url: %q}
policy: %q
keys: {dir: %q}
redis: {url: "redis://%s/0", prefix: %q}
revocation: {mode: %s, max_staleness: 2s}
tokens: {audience: %s}
`, addr, benchIssuer, f.policy, f.pubDir, redisAddr, redisPrefix, mode, benchAudience)
	return path, addr, os.WriteFile(path, []byte(cfg), 0o600)
}

// token signs a valid access token; jti is its revocation key.
func (f *fixture) token(i int, jti string) (string, error) {
	return f.signer.Sign(token.Claims{Type: token.Access, Issuer: benchIssuer, Audience: benchAudience,
		Subject: fmt.Sprintf("u-%06d", i), Username: fmt.Sprintf("user%06d", i), ID: jti,
		SessionID: fmt.Sprintf("sid-%06d", i), Roles: []string{"user"}, ExpiresAt: time.Now().Add(2 * time.Hour)})
}

func (f *fixture) tokens(n int, jtiPrefix string) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		var err error
		if out[i], err = f.token(i, fmt.Sprintf("%s%06d", jtiPrefix, i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkRequest is a CheckRequest as Envoy's ext_authz filter sends it from a sidecar: peers, request time, the
// request's headers (pseudo-headers included), id, scheme and protocol.
func checkRequest(method, path, tok string, rng *rand.Rand) *authv3.CheckRequest {
	id := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.Uint32()&0xffff, rng.Uint32()&0xffff,
		rng.Uint32()&0xffff, rng.Uint64()&0xffffffffffff)
	req := extauthz.NewCheckRequest(method, benchHost, path, map[string]string{
		"authorization":                  "Bearer " + tok,
		":scheme":                        "http",
		"user-agent":                     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
		"accept":                         "application/json",
		"accept-encoding":                "gzip, deflate, br",
		"x-forwarded-proto":              "https",
		"x-request-id":                   id,
		"x-envoy-expected-rq-timeout-ms": "15000",
		"content-length":                 "0",
	})
	h := req.Attributes.Request.Http
	h.Id = fmt.Sprint(rng.Uint64())
	req.Attributes.Request.Time = timestamppb.Now()
	req.Attributes.Source = &authv3.AttributeContext_Peer{
		Address:   sockAddr(fmt.Sprintf("10.1.%d.%d", rng.IntN(256), rng.IntN(256)), uint32(30000+rng.IntN(30000))),
		Principal: "spiffe://cluster.local/ns/shop/sa/frontend",
	}
	req.Attributes.Destination = &authv3.AttributeContext_Peer{Address: sockAddr("10.2.0.17", 8080)}
	return req
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// requests pairs every token with random routes: n requests over the 1,000-route policy.
func (f *fixture) requests(toks []string, n int) []*authv3.CheckRequest {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]*authv3.CheckRequest, n)
	for i := range out {
		path := fmt.Sprintf("/svc-%d/items/%d/detail", rng.IntN(f.routes), rng.IntN(100000))
		out[i] = checkRequest("GET", path, toks[i%len(toks)], rng)
	}
	return out
}

// seedRedis writes what a Redis in long use holds: a generation marker that began before any token (tokens are
// signed in the same second the sidecars start, and JWT iat is whole seconds) and n unrelated revoked jtis. The
// revocations are written as plain keys, pipelined, in the store's layout as one revocation through the store shows
// it: going through the store's script a million times would take minutes and fill the stream.
func seedRedis(ctx context.Context, addr string, n int) error {
	cl := redis.NewClient(&redis.Options{Addr: addr})
	defer cl.Close()
	if err := redisstore.SeedGeneration(ctx, cl, redisPrefix); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	s, err := redisstore.Open("redis://"+addr, redisPrefix, time.Now, redisstore.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer s.Close()
	const probe = "bench-layout-probe"
	if err := s.RevokeToken(ctx, probe, time.Now().Add(time.Minute)); err != nil {
		return err
	}
	keys, err := cl.Keys(ctx, "*"+probe+"*").Result()
	if err != nil || len(keys) != 1 {
		return fmt.Errorf("cannot find the revocation key layout: %v %v", keys, err)
	}
	layout := strings.Replace(keys[0], probe, "%s", 1)
	until := time.Now().Add(3 * time.Hour).UnixMilli()
	const batch = 10_000
	for i := 0; i < n; i += batch {
		_, err := cl.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j := i; j < min(n, i+batch); j++ {
				p.Do(ctx, "set", fmt.Sprintf(layout, revokedJTI(j)), "1", "pxat", until)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// revokedJTI is the jti of the i-th seeded revocation.
func revokedJTI(i int) string { return fmt.Sprintf("revoked-%022d", i) }
