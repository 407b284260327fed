package issuer

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"untrusted peer, no XFF", "203.0.113.5:1234", nil, "203.0.113.5"},
		{"untrusted peer's XFF ignored", "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer, one hop", "10.0.0.2:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"spoofed left part ignored", "10.0.0.2:1234", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"trusted hops skipped", "10.0.0.2:1234", []string{"1.2.3.4, 198.51.100.1, 10.1.1.1, 10.2.2.2"}, "198.51.100.1"},
		{"several header lines", "10.0.0.2:1234", []string{"1.2.3.4", "198.51.100.1, 10.1.1.1"}, "198.51.100.1"},
		{"all hops trusted", "10.0.0.2:1234", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"malformed hop", "10.0.0.2:1234", []string{"1.2.3.4, not-an-ip"}, "10.0.0.2"},
		{"hop with port", "10.0.0.2:1234", []string{"198.51.100.1:80"}, "10.0.0.2"},
		{"empty hop", "10.0.0.2:1234", []string{"198.51.100.1,,"}, "10.0.0.2"},
		{"trusted peer, no XFF", "10.0.0.2:1234", nil, "10.0.0.2"},
		{"IPv6 peer", "[2001:db8::1]:443", []string{"2001:db9::7"}, "2001:db9::7"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.2]:443", []string{"198.51.100.1"}, "198.51.100.1"},
		{"IPv4-mapped hop", "10.0.0.2:1234", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"no port", "203.0.113.5", nil, "203.0.113.5"},
		{"unparsable peer", "@", nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/auth/login", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, trusted); got != c.want {
				t.Errorf("clientIP = %q, want %q", got, c.want)
			}
		})
	}
}

// TestLockoutUsesForwardedClient: behind a trusted proxy failures count against the real client, not the proxy.
func TestLockoutUsesForwardedClient(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} })
	from := func(client, user, pw string) int {
		return e.do(req{method: "POST", path: "/auth/login", body: loginBody(user, pw), remote: "10.0.0.2:5000",
			header: map[string]string{"X-Forwarded-For": client}}).Code
	}
	for i := range 5 {
		from("198.51.100.1", "probe"+string(rune('a'+i)), "x")
	}
	if code := from("198.51.100.1", "alice", alicePW); code != 429 {
		t.Fatalf("locked client: %d", code)
	}
	if code := from("198.51.100.2", "alice", alicePW); code != 200 {
		t.Fatalf("another client behind the same proxy: %d", code)
	}
}
