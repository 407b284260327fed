package main

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"gatehouse/config"
	"gatehouse/password"
	"gatehouse/store/redistest"
	"gatehouse/token"
)

// serve runs on a Sentinel group (revocations confirmed by the replica) and on a Redis Cluster: log in, use the
// token at the sidecar (replica mode, the default), log out, and see the sidecar deny it.
func TestServeOnSentinelAndCluster(t *testing.T) {
	for _, c := range []struct {
		name  string
		redis func(t *testing.T) string
	}{
		{"sentinel", func(t *testing.T) string {
			master, sentinels, _ := redistest.StartSentinel(t)
			return fmt.Sprintf("redis: {sentinel: {master: %s, addrs: [%s]}, wait_replicas: 1, wait_timeout: 1s}\n",
				master, strings.Join(sentinels, ", "))
		}},
		{"cluster", func(t *testing.T) string {
			return fmt.Sprintf("redis: {cluster: {addrs: [%s]}}\n", strings.Join(redistest.StartCluster(t), ", "))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServeRedis(t, c.redis(t))
			code, login := s.post(t, "/auth/login", `{"username":"alice","password":"alice-pw"}`, "")
			if code != 200 {
				t.Fatalf("login: %d %v", code, login)
			}
			access := login["access_token"].(string)
			if st, r := s.check(t, "GET", "/users/profile", access); st != 200 {
				t.Fatalf("sidecar with a fresh access token: %d %s", st, r)
			}
			if code, _ := s.post(t, "/auth/logout", "", access); code != 204 {
				t.Fatalf("logout: %d", code)
			}
			// The replica in this process hears of the logout at once.
			if st, r := s.check(t, "GET", "/users/profile", access); st != 401 || r != "token_revoked" {
				t.Fatalf("after logout: %d %s", st, r)
			}
		})
	}
}

// startServeRedis is startServe with the given redis section.
func startServeRedis(t *testing.T, redisYAML string) *servedApp {
	t.Helper()
	dir := t.TempDir()
	if _, err := token.WriteKeyPair(filepath.Join(dir, "keys"), "EdDSA", rand.Reader); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "policy.yaml", "roles:\n  user: {permissions: [p]}\nroutes:\n  - name: profile\n    match: {path: /users/profile}\n    permissions: [p]\n")
	cheap := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	alice, _ := password.Hash("alice-pw", cheap, rand.Reader)
	writeFile(t, dir, "users.yaml", fmt.Sprintf("users:\n  - {id: u-1, username: alice, password_hash: %q, roles: [user]}\n", alice))
	cfg := writeFile(t, dir, "gatehouse.yaml", `authz: {listen: 127.0.0.1:0}
issuer: {listen: 127.0.0.1:0, url: https://login.gatehouse.test}
policy: policy.yaml
users: users.yaml
keys: {dir: keys}
`+redisYAML)
	logs := &syncBuffer{}
	a, err := newApp(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.shutdown(5 * time.Second) })
	conn, err := grpc.NewClient(a.authzAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &servedApp{app: a, dir: dir, logs: logs, authz: authv3.NewAuthorizationClient(conn),
		health: healthpb.NewHealthClient(conn), base: "http://" + a.issuerAddr.String()}
}

func TestRedisTarget(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "s3cret\n")
	spw := writeFile(t, dir, "spw", "sentinel-pw")
	tg, err := redisTarget(&config.Redis{Sentinel: &config.RedisSentinel{Master: "m", Addrs: []string{"s:26379"}, PasswordFile: spw},
		Username: "gh", PasswordFile: pw, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Password != "s3cret" || tg.Username != "gh" || !tg.TLS || tg.Sentinel.Password != "sentinel-pw" ||
		tg.Sentinel.Master != "m" || tg.Cluster != nil || tg.URL != "" {
		t.Errorf("target %+v %+v", tg, tg.Sentinel)
	}
	tg, err = redisTarget(&config.Redis{Cluster: &config.RedisCluster{Addrs: []string{"a:1", "b:2"}}})
	if err != nil || tg.Cluster == nil || len(tg.Cluster.Addrs) != 2 || tg.Password != "" {
		t.Errorf("cluster target %+v, %v", tg, err)
	}
	_, err = redisTarget(&config.Redis{Cluster: &config.RedisCluster{Addrs: []string{"a:1"}}, PasswordFile: filepath.Join(dir, "missing")})
	if err == nil || !strings.HasPrefix(err.Error(), "redis.password_file: ") {
		t.Errorf("missing password file: %v", err)
	}
}
