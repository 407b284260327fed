package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFull(t *testing.T) {
	src := `
authz:  {listen: 127.0.0.1:9191, enabled: true}
issuer: {listen: 127.0.0.1:8080, enabled: true, url: http://127.0.0.1:8080, trusted_proxies: [10.0.0.0/8, 127.0.0.1]}
policy: policy.yaml
users: users.yaml
redis: {url: redis://127.0.0.1:6379/0}
keys: {dir: keys/}
tokens: {access_ttl: 15m, refresh_ttl: 168h, mfa_ttl: 5m, audience: gatehouse}
`
	cfg, err := Parse("/etc/gh/gatehouse.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy != "/etc/gh/policy.yaml" || cfg.Users != "/etc/gh/users.yaml" || cfg.Keys.Dir != "/etc/gh/keys" {
		t.Errorf("relative paths not resolved against the config folder: %q %q %q", cfg.Policy, cfg.Users, cfg.Keys.Dir)
	}
	if cfg.Tokens.AccessTTL.D() != 15*time.Minute || cfg.Tokens.RefreshTTL.D() != 168*time.Hour || cfg.Tokens.MFATTL.D() != 5*time.Minute {
		t.Errorf("durations: %+v", cfg.Tokens)
	}
	if cfg.Redis == nil || cfg.Redis.URL != "redis://127.0.0.1:6379/0" || cfg.Redis.Prefix != "gatehouse:" {
		t.Errorf("redis: %+v", cfg.Redis)
	}
	if len(cfg.Issuer.TrustedPrefixes) != 2 || cfg.Issuer.TrustedPrefixes[1].Bits() != 32 {
		t.Errorf("trusted proxies: %v", cfg.Issuer.TrustedPrefixes)
	}
	if cfg.Authz.Headers.UserID != "x-user-id" || cfg.Issuer.MaxSessions != 10 || cfg.Login.MaxFailures != 5 {
		t.Errorf("defaults lost: %+v %+v", cfg.Authz, cfg.Login)
	}
}

func TestParseMinimalUsesDefaults(t *testing.T) {
	cfg, err := Parse("/x/c.yaml", []byte("policy: p.yaml\nusers: u.yaml\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis != nil || cfg.Keys != nil {
		t.Errorf("absent redis/keys must stay nil (embedded store, ephemeral key)")
	}
	if cfg.Issuer.URL != "http://127.0.0.1:8080" || !cfg.Authz.Enabled || !cfg.Issuer.Enabled {
		t.Errorf("defaults: %+v %+v", cfg.Issuer, cfg.Authz)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unknown top key", "policy: p\nusers: u\npolcy: x\n", []string{"c.yaml:3: polcy: unknown key"}},
		{"unknown nested key", "policy: p\nusers: u\nauthz:\n  listen: 127.0.0.1:1\n  enabel: true\n", []string{"c.yaml:5: authz.enabel: unknown key"}},
		{"bad duration", "policy: p\nusers: u\ntokens:\n  access_ttl: 15 minutes\n", []string{"c.yaml:4:", "15 minutes"}},
		{"negative duration", "policy: p\nusers: u\ntokens: {access_ttl: -1m}\n", []string{"c.yaml:3: tokens.access_ttl: must be positive"}},
		{"missing policy", "users: u\n", []string{"c.yaml: policy: required"}},
		{"missing users with issuer", "policy: p\n", []string{"users: required when the issuer is enabled"}},
		{"bad listen", "policy: p\nusers: u\nauthz: {listen: nope}\n", []string{"c.yaml:3: authz.listen: want host:port"}},
		{"bad redis url", "policy: p\nusers: u\nredis: {url: http://x}\n", []string{"c.yaml:3: redis.url: want redis://"}},
		{"leeway too big", "policy: p\nusers: u\ntokens: {leeway: 5m}\n", []string{"tokens.leeway: must be between 0s and 30s"}},
		{"bad proxy", "policy: p\nusers: u\nissuer: {trusted_proxies: [foo]}\n", []string{"c.yaml:3: issuer.trusted_proxies: want an IP or CIDR"}},
		{"duplicate key", "policy: p\npolicy: q\nusers: u\n", []string{"c.yaml:2"}},
		{"not a mapping", "policy: p\nusers: u\nauthz: 3\n", []string{"c.yaml:3: authz: want a mapping"}},
		{"bad header", "policy: p\nusers: u\nauthz: {headers: {user_id: \"X User\"}}\n", []string{"authz.headers.user_id: want a lower-case header name"}},
		{"two errors reported together", "polcy: p\nusers: u\nfoo: 1\n", []string{"c.yaml:1: polcy: unknown key", "c.yaml:3: foo: unknown key"}},
		{"empty", "", []string{"empty config file"}},
		{"bad admin listen", "policy: p\nusers: u\nadmin: {listen: nope}\n", []string{"c.yaml:3: admin.listen: want host:port"}},
		{"mfa ttl too long", "policy: p\nusers: u\ntokens: {mfa_ttl: 2h}\n", []string{"c.yaml:3: tokens.mfa_ttl: must be at most 1h"}},
		{"nothing enabled", "policy: p\nauthz: {enabled: false}\nissuer: {enabled: false}\n", []string{"c.yaml:2: authz.enabled: both authz and issuer are disabled"}},
		{"bad revocation mode", "policy: p\nusers: u\nrevocation: {mode: lazy}\n", []string{"c.yaml:3: revocation.mode: want replica or strict"}},
		{"staleness too small", "policy: p\nusers: u\nrevocation:\n  max_staleness: 10ms\n", []string{"c.yaml:4: revocation.max_staleness: must be at least 100ms"}},
		{"bad staleness", "policy: p\nusers: u\nrevocation: {max_staleness: soon}\n", []string{"c.yaml:3:", "soon"}},
		{"negative cache", "policy: p\nusers: u\nauthz: {token_cache_size: -1}\n", []string{"c.yaml:3: authz.token_cache_size: must not be negative"}},
		{"redis without a target", "policy: p\nusers: u\nredis: {prefix: x}\n", []string{"c.yaml:3: redis: set one of url (one Redis), sentinel or cluster"}},
		{"redis url and cluster", "policy: p\nusers: u\nredis:\n  url: redis://r:6379\n  cluster: {addrs: [r:7000]}\n", []string{"c.yaml:5: redis.cluster: set only one of url, sentinel and cluster"}},
		{"redis sentinel and cluster", "policy: p\nusers: u\nredis:\n  sentinel: {master: m, addrs: [s:26379]}\n  cluster: {addrs: [r:7000]}\n", []string{"c.yaml:5: redis.cluster: set only one of"}},
		{"sentinel without master", "policy: p\nusers: u\nredis:\n  sentinel:\n    addrs: [s:26379]\n", []string{"c.yaml:4: redis.sentinel.master: required"}},
		{"sentinel bad addr", "policy: p\nusers: u\nredis:\n  sentinel:\n    master: m\n    addrs: [s1:26379, s2]\n", []string{"c.yaml:6: redis.sentinel.addrs: want host:port, got \"s2\""}},
		{"sentinel without addrs", "policy: p\nusers: u\nredis: {sentinel: {master: m}}\n", []string{"c.yaml:3: redis.sentinel.addrs: at least one host:port"}},
		{"empty sentinel", "policy: p\nusers: u\nredis:\n  sentinel:\n", []string{"c.yaml:4: redis.sentinel: want a mapping with master and addrs"}},
		{"cluster without addrs", "policy: p\nusers: u\nredis:\n  cluster: {addrs: []}\n", []string{"c.yaml:4: redis.cluster.addrs: at least one host:port"}},
		{"cluster unknown key", "policy: p\nusers: u\nredis:\n  cluster: {nodes: [r:7000]}\n", []string{"c.yaml:4: redis.cluster.nodes: unknown key"}},
		{"url with password_file", "policy: p\nusers: u\nredis:\n  url: redis://r:6379\n  password_file: pw\n", []string{"c.yaml:5: redis.password_file: only for sentinel and cluster"}},
		{"url with tls", "policy: p\nusers: u\nredis:\n  url: redis://r:6379\n  tls: true\n", []string{"c.yaml:5: redis.tls: only for sentinel and cluster"}},
		{"url skipping verification", "policy: p\nusers: u\nredis:\n  url: rediss://r:6379?skip_verify=true\n", []string{"c.yaml:4: redis.url: skip_verify is not allowed"}},
		{"prefix with a brace", "policy: p\nusers: u\nredis:\n  url: redis://r:6379\n  prefix: \"gh{x}:\"\n", []string{"c.yaml:5: redis.prefix: must not contain { or }"}},
		{"negative wait_replicas", "policy: p\nusers: u\nredis:\n  url: redis://r:6379\n  wait_replicas: -1\n", []string{"c.yaml:5: redis.wait_replicas: must not be negative"}},
		{"zero wait_timeout", "policy: p\nusers: u\nredis:\n  url: redis://r:6379\n  wait_replicas: 1\n  wait_timeout: 0s\n", []string{"c.yaml:6: redis.wait_timeout: must be between 1ms and 5s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tt.src))
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRedisTargets(t *testing.T) {
	tests := []struct {
		name, src string
		check     func(t *testing.T, r *Redis)
	}{
		{"url", "redis: {url: rediss://u:p@r:6380/2, wait_replicas: 1, wait_timeout: 250ms}\n", func(t *testing.T, r *Redis) {
			if r.URL != "rediss://u:p@r:6380/2" || r.Sentinel != nil || r.Cluster != nil || r.WaitReplicas != 1 ||
				r.WaitTimeout.D() != 250*time.Millisecond || r.Prefix != "gatehouse:" {
				t.Errorf("got %+v", r)
			}
		}},
		{"sentinel", `redis:
  sentinel:
    master: mymaster
    addrs: [10.0.0.1:26379, "[fd00::2]:26379"]
    password_file: secrets/sentinel
  username: gatehouse
  password_file: /run/secrets/redis
  tls: true
  prefix: "gh:"
  wait_replicas: 1
`, func(t *testing.T, r *Redis) {
			s := r.Sentinel
			if s == nil || s.Master != "mymaster" || len(s.Addrs) != 2 || s.PasswordFile != "/etc/gh/secrets/sentinel" ||
				r.Username != "gatehouse" || r.PasswordFile != "/run/secrets/redis" || !r.TLS || r.Prefix != "gh:" ||
				r.WaitReplicas != 1 || r.WaitTimeout != 0 || r.URL != "" {
				t.Errorf("got %+v %+v", r, s)
			}
		}},
		{"cluster", "redis: {cluster: {addrs: [r1:7000, r2:7000, r3:7000]}, password_file: pw}\n", func(t *testing.T, r *Redis) {
			if r.Cluster == nil || len(r.Cluster.Addrs) != 3 || r.PasswordFile != "/etc/gh/pw" || r.Sentinel != nil {
				t.Errorf("got %+v", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("/etc/gh/c.yaml", []byte("policy: p\nusers: u\n"+tt.src))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cfg.Redis)
		})
	}
}

func TestLoadResolvesAgainstFileFolder(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(p, []byte("policy: sub/policy.yaml\nusers: /abs/users.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Policy != filepath.Join(dir, "sub/policy.yaml") || cfg.Users != "/abs/users.yaml" {
		t.Errorf("got %q %q", cfg.Policy, cfg.Users)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file error should name it: %v", err)
	}
}

// The shipped example must stay loadable: the README, `make run` and the Envoy tests rely on it.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := Load("../deploy/dev/gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Authz.Listen != "127.0.0.1:9191" || cfg.Redis != nil || cfg.Keys != nil {
		t.Errorf("example config drifted: %+v", cfg)
	}
}

func TestRevocationAndCacheSettings(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		mode      string
		staleness time.Duration
		cache     int
	}{
		{"defaults", "", RevocationReplica, 2 * time.Second, 100_000},
		{"defaults with redis", "redis: {url: redis://r:6379}\n", RevocationReplica, 2 * time.Second, 100_000},
		{"strict", "redis: {url: redis://r:6379}\nrevocation: {mode: strict}\n", RevocationStrict, 2 * time.Second, 100_000},
		{"tuned", "revocation: {mode: replica, max_staleness: 500ms}\nauthz: {token_cache_size: 5000}\n", RevocationReplica, 500 * time.Millisecond, 5000},
		{"cache off", "authz: {token_cache_size: 0}\n", RevocationReplica, 2 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", []byte("policy: p\nusers: u\n"+tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Revocation.Mode != tt.mode || cfg.Revocation.MaxStaleness.D() != tt.staleness || cfg.Authz.TokenCacheSize != tt.cache {
				t.Errorf("got %+v, cache %d", cfg.Revocation, cfg.Authz.TokenCacheSize)
			}
		})
	}
}

// Several problems come out in one order on every run, so the same file always reads the same.
func TestParseErrorsInStableOrder(t *testing.T) {
	src := "policy: p\nusers: u\nauthz: {headers: {user_id: A, username: B, roles: C}}\n" +
		"tokens: {access_ttl: -1m, refresh_ttl: -1m, mfa_ttl: -1m}\nlogin: {window: -1m, lockout: -1m, max_lockout: -1m}\n" +
		"issuer: {url: https://l.example.com}\nportal: {enabled: true, cookies: {access: \"a b\", refresh: \"c d\"}}\n"
	_, first := Parse("c.yaml", []byte(src))
	if first == nil {
		t.Fatal("want errors")
	}
	for range 20 {
		if _, err := Parse("c.yaml", []byte(src)); err == nil || err.Error() != first.Error() {
			t.Fatalf("errors changed order between runs:\n%v\n---\n%v", first, err)
		}
	}
}
