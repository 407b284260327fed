package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/extauthz"
	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
	"gatehouse/token"
)

// revocation.mode picks what the decider reads: the in-memory replica (default with Redis) or Redis itself.
// Either way a revocation written by this process is denied at once.
func TestServeRevocationModes(t *testing.T) {
	addr := redistest.Start(t)
	for _, mode := range []string{"replica", "strict"} {
		t.Run(mode, func(t *testing.T) {
			dir := demoDir(t)
			prefix := "rm-" + mode + ":"
			// A Redis in use since long before the tokens below (a fresh one refuses tokens older than itself).
			raw := redis.NewClient(&redis.Options{Addr: addr})
			defer raw.Close()
			if err := redisstore.SeedGeneration(t.Context(), raw, prefix); err != nil {
				t.Fatal(err)
			}
			cfg := writeFile(t, dir, "gatehouse.yaml", fmt.Sprintf(`authz: {listen: 127.0.0.1:0, token_cache_size: 10}
issuer: {enabled: false}
policy: policy.yaml
keys: {dir: keys}
redis: {url: "redis://%s/0", prefix: %q}
revocation: {mode: %s, max_staleness: 1s}
`, addr, prefix, mode))
			a, err := newApp(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer a.close()
			if _, replica := a.store.(replicatedStore); replica != (mode == "replica") {
				t.Fatalf("store %T for mode %s", a.store, mode)
			}
			signer, err := token.NewSigner(a.keys, time.Now, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := signer.Sign(token.Claims{Type: token.Access, Issuer: a.cfg.Issuer.URL, Audience: a.cfg.Tokens.Audience,
				Subject: "u-1", SessionID: "s-1", Roles: []string{"user"}, ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			check := func() string {
				resp, _ := a.authz.Check(context.Background(), extauthz.NewCheckRequest("GET", "api.example.com", "/users/profile",
					map[string]string{"authorization": "Bearer " + tok}))
				return resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
			}
			if r := check(); r != "allowed" {
				t.Fatalf("fresh token: %s", r)
			}
			if err := a.store.RevokeSession(t.Context(), "s-1", time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if r := check(); r != extauthz.ReasonTokenRevoked {
				t.Fatalf("after the revocation: %s", r)
			}
		})
	}
}
