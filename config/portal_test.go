package config

import (
	"strings"
	"testing"
)

func TestPortalDefaults(t *testing.T) {
	cfg, err := Parse("/etc/gh/c.yaml", []byte("policy: p\nusers: u\nissuer: {url: https://login.example.com/}\nportal: {enabled: true, logo: logo.svg}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Portal
	if p.URL != "https://login.example.com/portal" || p.Title != "Gatehouse" || !p.Cookies.Secure ||
		p.Cookies.Access != "gatehouse_access" || p.Cookies.Refresh != "gatehouse_refresh" || p.Logo != "/etc/gh/logo.svg" {
		t.Errorf("portal defaults: %+v", p)
	}
}

func TestPortalErrors(t *testing.T) {
	const head = "policy: p\nusers: u\n"
	tests := []struct {
		name, src string
		want      []string // "" = valid
	}{
		{"dev mode on loopback", head + "portal:\n  enabled: true\n  url: http://127.0.0.1:8080/portal\n  cookies: {secure: false}\n", nil},
		{"dev mode on localhost", head + "portal:\n  enabled: true\n  url: http://localhost:8080/login\n  cookies:\n    secure: false\n", nil},
		{"production", head + "portal:\n  enabled: true\n  url: https://login.example.com/portal\n  return_domains: [example.com, 192.0.2.1]\n  cookies: {domain: example.com}\n", nil},
		{"disabled portal is not checked", head + "portal:\n  url: http://evil\n  cookies: {secure: false}\n", nil},
		{"insecure cookies on a real host", head + "portal:\n  enabled: true\n  url: https://login.example.com/portal\n  cookies:\n    secure: false\n",
			[]string{"c.yaml:7: portal.cookies.secure: false is only allowed in local development"}},
		{"insecure cookies over http on a real host", head + "portal:\n  enabled: true\n  url: http://login.example.com/portal\n  cookies: {secure: false}\n",
			[]string{"c.yaml:5: portal.url: must be https", "c.yaml:6: portal.cookies.secure: false is only allowed in local development"}},
		{"http dev URL needs secure false", head + "portal:\n  enabled: true\n  url: http://127.0.0.1:8080/portal\n",
			[]string{"c.yaml:5: portal.url: portal.url \"http://127.0.0.1:8080/portal\" is http: set portal.cookies.secure: false"}},
		{"default URL from an http issuer", head + "portal: {enabled: true}\n",
			[]string{"c.yaml:3: portal.enabled:", "set portal.cookies.secure: false"}},
		{"no path", head + "portal: {enabled: true, url: \"https://login.example.com/\"}\n", []string{"c.yaml:3: portal.url: want a plain path"}},
		{"shadows the issuer", head + "portal: {enabled: true, url: \"https://login.example.com/auth/portal\"}\n", []string{"portal.url: the path /auth/portal would shadow the issuer's /auth"}},
		{"query", head + "portal: {enabled: true, url: \"https://login.example.com/portal?x=1\"}\n", []string{"portal.url: want an absolute http(s) URL"}},
		{"bad cookie name", head + "portal: {enabled: true, url: \"https://l.example.com/p\", cookies: {access: \"a b\"}}\n", []string{"c.yaml:3: portal.cookies.access: want a cookie name"}},
		{"same cookie names", head + "portal: {enabled: true, url: \"https://l.example.com/p\", cookies: {access: x, refresh: x}}\n", []string{"portal.cookies.refresh: must differ"}},
		{"domain not containing the portal", head + "portal: {enabled: true, url: \"https://l.example.com/p\", cookies: {domain: other.com}}\n", []string{"portal.cookies.domain: \"other.com\" does not contain the portal's host"}},
		{"suffix is not a parent domain", head + "portal: {enabled: true, url: \"https://lexample.com/p\", cookies: {domain: example.com}}\n", []string{"portal.cookies.domain"}},
		{"bad return domain", head + "portal: {enabled: true, url: \"https://l.example.com/p\", return_domains: [\"*.example.com\", \"https://x.com\"]}\n", []string{"portal.return_domains: want a lower-case host name", "\"*.example.com\"", "\"https://x.com\""}},
		{"zoned IP return domain", head + "portal: {enabled: true, url: \"https://l.example.com/p\", return_domains: [\"fe80::1%eth0\"]}\n", []string{"c.yaml:3: portal.return_domains: want a lower-case host name", "fe80::1%eth0"}},
		{"bad logo", head + "portal: {enabled: true, url: \"https://l.example.com/p\", logo: logo.exe}\n", []string{"portal.logo: want a .png"}},
		{"decider-only needs the URL", "policy: p\nissuer: {enabled: false}\nportal: {enabled: true, cookies: {secure: false}}\n", []string{"portal.url: required when the issuer is disabled"}},
		{"unknown key", head + "portal: {enabled: true, cookie: {}}\n", []string{"c.yaml:3: portal.cookie: unknown key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c.yaml", []byte(tc.src))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want errors %q, got none", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
