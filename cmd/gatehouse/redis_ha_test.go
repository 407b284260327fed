package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse/config"
	"gatehouse/store/redistest"
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

// startServeRedis is startServe on a small policy with the given redis section.
func startServeRedis(t *testing.T, redisYAML string) *servedApp {
	t.Helper()
	dir := keyedDir(t)
	writeFile(t, dir, "policy.yaml", "roles:\n  user: {permissions: [p]}\n  admin: {inherits: [user]}\nroutes:\n  - name: profile\n    match: {path: /users/profile}\n    permissions: [p]\n")
	writeCheapUsers(t, dir)
	return launch(t, dir, issuerConfig(redisYAML))
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
