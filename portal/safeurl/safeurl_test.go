package safeurl

import (
	"strings"
	"testing"
)

func mustPolicy(t *testing.T, allowHTTP bool, domains ...string) Policy {
	t.Helper()
	p, err := NewPolicy(domains, allowHTTP)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewPolicyRefusesBadEntries(t *testing.T) {
	for _, d := range []string{"", "https://example.com", "*.example.com", ".example.com", "example.com.", "Example.com",
		"exa mple.com", "example.com/", "ex_ample.com", "-a.com", "a..com", "fe80::1%eth0", "0x7f.1", "1.2.3"} {
		if _, err := NewPolicy([]string{d}, false); err == nil {
			t.Errorf("NewPolicy(%q) accepted a bad entry", d)
		}
	}
	if _, err := NewPolicy([]string{"example.com", "localhost", "127.0.0.1", "::1"}, false); err != nil {
		t.Fatal(err)
	}
}

// TestReturnURL is the open-redirect table: every trick a browser would follow somewhere else must be refused.
func TestReturnURL(t *testing.T) {
	p := mustPolicy(t, false, "example.com", "192.0.2.7")
	dev := mustPolicy(t, true, "localhost", "127.0.0.1", "::1")
	cases := []struct {
		name string
		p    Policy
		in   string
		want string // "" = refused
	}{
		{"exact host", p, "https://example.com/", "https://example.com/"},
		{"subdomain with path and query", p, "https://app.example.com/orders/1?x=1&y=2#top", "https://app.example.com/orders/1?x=1&y=2#top"},
		{"deep subdomain, port", p, "https://a.b.example.com:8443/x", "https://a.b.example.com:8443/x"},
		{"no path", p, "https://app.example.com", "https://app.example.com"},
		{"scheme case", p, "HTTPS://app.example.com/x", "https://app.example.com/x"},
		{"host case", p, "https://APP.Example.COM/x", "https://APP.Example.COM/x"},
		{"listed IP", p, "https://192.0.2.7/x", "https://192.0.2.7/x"},
		{"encoded path kept", p, "https://app.example.com/a%2Fb", "https://app.example.com/a%2Fb"},
		{"dev http localhost", dev, "http://localhost:8080/x", "http://localhost:8080/x"},
		{"dev http loopback", dev, "http://127.0.0.1:9000/hello?a=b", "http://127.0.0.1:9000/hello?a=b"},
		{"dev ipv6 loopback", dev, "http://[::1]:9000/", "http://[::1]:9000/"},

		{"empty", p, "", ""},
		{"http when https only", p, "http://app.example.com/", ""},
		{"other domain", p, "https://evil.test/", ""},
		{"suffix without dot", p, "https://evilexample.com/", ""},
		{"allowed name as a label of another", p, "https://example.com.evil.test/", ""},
		{"trailing dot", p, "https://example.com./", ""},
		{"relative path", p, "/portal/", ""},
		{"scheme-relative", p, "//evil.test/", ""},
		{"scheme-relative to allowed", p, "//app.example.com/", ""},
		{"triple slash", p, "https:///evil.test/", ""},
		{"no slashes", p, "https:evil.test", ""},
		{"one slash", p, "https:/evil.test", ""},
		{"backslash authority", p, `https://app.example.com\@evil.test/`, ""},
		{"backslashes as slashes", p, `https:\\evil.test`, ""},
		{"backslash in path", p, `https://app.example.com/\evil.test`, ""},
		{"userinfo", p, "https://user@app.example.com/", ""},
		{"userinfo trick", p, "https://app.example.com@evil.test/", ""},
		{"userinfo with password", p, "https://app.example.com:x@evil.test/", ""},
		{"encoded at", p, "https://app.example.com%40evil.test/", ""},
		{"encoded host", p, "https://%65xample.com/", ""},
		{"javascript", p, "javascript:alert(1)", ""},
		{"javascript with slashes", p, "javascript://app.example.com/%0aalert(1)", ""},
		{"data", p, "data:text/html,<script>alert(1)</script>", ""},
		{"tab in scheme", p, "ht\ttps://evil.test", ""},
		{"newline in host", p, "https://app.example.com\n.evil.test/", ""},
		{"space", p, "https://app.example.com /", ""},
		{"non-ascii host", p, "https://аpp.example.com/", ""},
		{"non-ascii path", p, "https://app.example.com/é", ""},
		{"numeric host", p, "https://0x7f.1/", ""},
		{"decimal ip", p, "https://3221226247/", ""},
		{"unlisted ip", p, "https://192.0.2.8/", ""},
		{"empty port", p, "https://app.example.com:/", ""},
		{"bad port", p, "https://app.example.com:99999/", ""},
		{"signed port", p, "https://app.example.com:+443/", ""},
		{"bare ipv6", dev, "http://::1/", ""},
		{"ipv6 zone", dev, "http://[fe80::1%25eth0]/", ""},
		{"too long", p, "https://app.example.com/" + strings.Repeat("a", MaxURLBytes), ""},
		{"bad escape", p, "https://app.example.com/%zz", ""},
		{"ftp", p, "ftp://app.example.com/", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := c.p.ReturnURL(c.in)
			if ok != (c.want != "") || got != c.want {
				t.Errorf("ReturnURL(%q) = %q, %v; want %q", c.in, got, ok, c.want)
			}
		})
	}
}

func TestOriginAllowed(t *testing.T) {
	p := mustPolicy(t, false, "example.com")
	dev := mustPolicy(t, true, "127.0.0.1")
	cases := []struct {
		name         string
		p            Policy
		origin, host string
		want         bool
	}{
		{"same host", p, "https://app.test", "app.test", true},
		{"same host and port", p, "https://app.test:8443", "app.test:8443", true},
		{"same host, case", p, "https://APP.test", "app.test", true},
		{"allowed domain", p, "https://login.example.com", "app.test", true},
		{"allowed subdomain, port", p, "https://a.example.com:444", "app.test", true},
		{"null", p, "null", "app.test", false},
		{"empty", p, "", "app.test", false},
		{"other site", p, "https://evil.test", "app.test", false},
		{"other port of the request host", p, "https://app.test:444", "app.test", false},
		{"http origin", p, "http://login.example.com", "app.test", false},
		{"http same host", p, "http://app.test", "app.test", false},
		{"path", p, "https://login.example.com/", "app.test", false},
		{"userinfo", p, "https://x@login.example.com", "app.test", false},
		{"suffix trick", p, "https://evilexample.com", "app.test", false},
		{"dev http", dev, "http://127.0.0.1:9999", "127.0.0.1:8080", true},
		{"dev other host", dev, "http://localhost:9999", "127.0.0.1:8080", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.OriginAllowed(c.origin, c.host); got != c.want {
				t.Errorf("OriginAllowed(%q, %q) = %v, want %v", c.origin, c.host, got, c.want)
			}
		})
	}
}

func FuzzReturnURL(f *testing.F) {
	p, _ := NewPolicy([]string{"example.com", "127.0.0.1"}, true)
	for _, s := range []string{"https://app.example.com/x", `https://a.example.com\@evil`, "//evil", "http://127.0.0.1:1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := p.ReturnURL(raw)
		if !ok {
			return
		}
		// Whatever is admitted must be admitted again as emitted, with an admitted host.
		again, ok2 := p.ReturnURL(got)
		if !ok2 || again != got {
			t.Fatalf("ReturnURL(%q) = %q, which is not stable (%q, %v)", raw, got, again, ok2)
		}
		if strings.ContainsAny(got, "\\@ \t\r\n") {
			t.Fatalf("ReturnURL(%q) = %q admits a dangerous character", raw, got)
		}
	})
}
