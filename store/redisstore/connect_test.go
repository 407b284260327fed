package redisstore_test

import (
	"crypto/tls"
	"runtime"
	"strings"
	"testing"
	"time"

	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
)

// rediss:// verifies the server against the system roots, to which SSL_CERT_FILE adds a private CA; a server
// under another CA is refused, and the URL cannot turn verification off.
func TestRediss(t *testing.T) {
	addr, ca := redistest.StartTLS(t)
	otherAddr, _ := redistest.StartTLS(t)
	// Go reads the system roots once, at first use; nothing in this test binary uses them before.
	t.Setenv("SSL_CERT_FILE", ca)
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	ctx := t.Context()

	opt, err := redisstore.ClientOptions("rediss://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	if opt.TLSConfig == nil || opt.TLSConfig.InsecureSkipVerify || opt.TLSConfig.MinVersion < tls.VersionTLS12 {
		t.Fatalf("TLS config %+v", opt.TLSConfig)
	}
	for _, u := range []string{"rediss://" + addr, "rediss://localhost:" + addr[strings.LastIndex(addr, ":")+1:]} {
		s, err := redisstore.Open(u, "", time.Now)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping over TLS (%s): %v", u, err)
		}
		s.Close()
	}

	s, err := redisstore.Open("rediss://"+otherAddr, "", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Ping of a server under an unknown CA: %v, want a certificate error", err)
	}
	if _, err := redisstore.Open("rediss://"+otherAddr+"?skip_verify=true", "", time.Now); err == nil {
		t.Error("skip_verify=true accepted")
	}
}

func TestTargets(t *testing.T) {
	sentinel := &redisstore.Sentinel{Master: "m", Addrs: []string{"s1:26379", "s2:26379"}, Password: "spw"}
	cluster := &redisstore.Cluster{Addrs: []string{"r1:7000", "r2:7000"}}

	fo, err := redisstore.FailoverOptions(redisstore.Target{Sentinel: sentinel, Username: "u", Password: "pw", TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	if fo.MasterName != "m" || len(fo.SentinelAddrs) != 2 || fo.SentinelPassword != "spw" || fo.Username != "u" ||
		fo.Password != "pw" || fo.TLSConfig == nil || fo.TLSConfig.InsecureSkipVerify || fo.TLSConfig.MinVersion < tls.VersionTLS12 {
		t.Errorf("failover options lost the target: %+v", fo)
	}
	if !fo.ContextTimeoutEnabled || fo.DialTimeout != time.Second || fo.ReadTimeout != 200*time.Millisecond ||
		fo.WriteTimeout != 200*time.Millisecond || fo.PoolTimeout != 200*time.Millisecond || fo.MaxRetries != 1 ||
		fo.DialerRetries != 1 || fo.PoolSize != 10*runtime.GOMAXPROCS(0) {
		t.Errorf("failover options without our limits: %+v", fo)
	}

	co, err := redisstore.ClusterOptions(redisstore.Target{Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	if len(co.Addrs) != 2 || co.TLSConfig != nil || !co.ContextTimeoutEnabled || co.DialTimeout != time.Second ||
		co.ReadTimeout != 200*time.Millisecond || co.WriteTimeout != 200*time.Millisecond ||
		co.PoolTimeout != 200*time.Millisecond || co.MaxRedirects != 2 || co.DialerRetries != 1 ||
		co.PoolSize != 10*runtime.GOMAXPROCS(0) {
		t.Errorf("cluster options without our limits: %+v", co)
	}

	for _, c := range []struct {
		name   string
		target redisstore.Target
		prefix string
		want   string
	}{
		{"nothing", redisstore.Target{}, "", "exactly one"},
		{"two", redisstore.Target{URL: "redis://r:6379", Cluster: cluster}, "", "exactly one"},
		{"url with a password", redisstore.Target{URL: "redis://r:6379", Password: "pw"}, "", "carries its own"},
		{"sentinel without master", redisstore.Target{Sentinel: &redisstore.Sentinel{Addrs: []string{"s:1"}}}, "", "master name"},
		{"sentinel bad addr", redisstore.Target{Sentinel: &redisstore.Sentinel{Master: "m", Addrs: []string{"s"}}}, "", "host:port"},
		{"cluster without addrs", redisstore.Target{Cluster: &redisstore.Cluster{}}, "", "at least one"},
		{"brace in the prefix", redisstore.Target{Cluster: cluster}, "gh{1}:", "must not contain"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := redisstore.OpenTarget(c.target, c.prefix, time.Now)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("OpenTarget: %v, want an error containing %q", err, c.want)
			}
		})
	}
}
