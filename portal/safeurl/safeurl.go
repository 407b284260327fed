// Package safeurl decides where Gatehouse may send a browser and which origins count as its own: the portal's
// return URLs (no open redirect) and the sidecar's CSRF origin check share one allow-list of domains.
//
// It is stdlib only so both the portal and the ext_authz sidecar can use it without importing each other.
//
// A URL is judged on its raw text before any parser sees it, because browsers (the WHATWG URL parser) and
// net/url disagree on hostile input: "https:evil.test" and "https:///evil.test" are https://evil.test to a
// browser, "https://good.test\@evil.test" goes to evil.test, tabs and newlines are silently dropped, and a host
// may be percent-encoded or written as "0x7f.1". So the scheme must be spelled "https://" (or "http://" in dev
// mode), the authority is re-checked character by character, and anything unusual is refused rather than
// repaired.
package safeurl

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLBytes bounds a return URL; a longer one is refused (the portal falls back to its home page).
const MaxURLBytes = 2048

// Policy is an allow-list of domains. An entry "example.com" admits example.com and every subdomain of it
// (app.example.com, a.b.example.com); an IP address entry admits exactly that address. Ports are not part of an
// entry: any port of an admitted host is admitted.
type Policy struct {
	domains   []string
	ips       []netip.Addr
	allowHTTP bool
}

// ErrBadDomain is returned by NewPolicy for an entry that is not a plain host name or IP address.
var ErrBadDomain = errors.New("safeurl: not a host name or IP address")

// NewPolicy builds a policy. allowHTTP admits http:// URLs and origins besides https:// ones; it is for local
// development only (the config refuses it unless the portal itself is on http://localhost or a loopback IP).
func NewPolicy(domains []string, allowHTTP bool) (Policy, error) {
	p := Policy{allowHTTP: allowHTTP}
	var errs []error
	for _, d := range domains {
		if a, err := netip.ParseAddr(d); err == nil && a.Zone() == "" {
			p.ips = append(p.ips, a.Unmap())
			continue
		}
		if !ValidHostname(d) || d != strings.ToLower(d) {
			errs = append(errs, fmt.Errorf("%w: %q", ErrBadDomain, d))
			continue
		}
		p.domains = append(p.domains, d)
	}
	return p, errors.Join(errs...)
}

// AllowHTTP reports whether http:// is admitted (dev mode).
func (p Policy) AllowHTTP() bool { return p.allowHTTP }

// ValidHostname reports whether s is a DNS host name Gatehouse accepts in an allow-list or a URL: ASCII labels
// of letters, digits and inner hyphens, 1-63 bytes each, 253 in all, no trailing dot, and a last label that does
// not start with a digit (browsers read such names as IPv4 addresses: "0x7f.1" is 127.0.0.1).
func ValidHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return !(last[0] >= '0' && last[0] <= '9')
}

// HostAllowed reports whether host (a host name or IP address, without port; IPv6 without brackets) is in the
// allow-list. Names compare case-insensitively.
func (p Policy) HostAllowed(host string) bool {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return false
		}
		a = a.Unmap()
		for _, ip := range p.ips {
			if ip == a {
				return true
			}
		}
		return false
	}
	if !ValidHostname(host) {
		return false
	}
	host = strings.ToLower(host)
	for _, d := range p.domains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// schemeOf returns the length of an admitted "https://" or "http://" prefix, or 0.
func (p Policy) schemeOf(raw string) int {
	const https, http = "https://", "http://"
	switch {
	case len(raw) >= len(https) && strings.EqualFold(raw[:len(https)], https):
		return len(https)
	case p.allowHTTP && len(raw) >= len(http) && strings.EqualFold(raw[:len(http)], http):
		return len(http)
	}
	return 0
}

// splitAuthority checks an authority ("host", "host:port", "[v6]:port") character by character and returns its
// host (brackets removed). Userinfo, percent-encoding, empty hosts and empty or out-of-range ports are refused.
func splitAuthority(a string) (host string, ok bool) {
	if a == "" {
		return "", false
	}
	host, port := a, ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", false
		}
		host, port = a[1:end], a[end+1:]
		if port != "" && port[0] != ':' {
			return "", false
		}
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "", false
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
		if _, err := netip.ParseAddr(host); err != nil && !ValidHostname(host) {
			return "", false
		}
		if strings.Contains(host, ":") {
			return "", false // an IPv6 address without brackets
		}
	} else if _, err := netip.ParseAddr(host); err != nil && !ValidHostname(host) {
		return "", false
	}
	if port != "" {
		n, err := strconv.Atoi(port[1:])
		if err != nil || n < 1 || n > 65535 || port[1] == '+' || port[1] == '-' {
			return "", false
		}
	}
	return host, host != ""
}

// ReturnURL checks a URL the portal was asked to send the browser to after sign-in and returns it as it will be
// sent. It must be absolute, https:// (or http:// in dev mode) spelled out, with a host in the allow-list, no
// userinfo, no backslash, no whitespace or control character, only ASCII, at most MaxURLBytes. Anything else,
// relative and scheme-relative ("//evil.test") URLs included, is refused: the caller then uses its home page.
func (p Policy) ReturnURL(raw string) (string, bool) {
	if raw == "" || len(raw) > MaxURLBytes {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return "", false
		}
	}
	n := p.schemeOf(raw)
	if n == 0 {
		return "", false
	}
	rest := raw[n:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host, ok := splitAuthority(rest[:end])
	if !ok || !p.HostAllowed(host) {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" || !strings.EqualFold(u.Host, rest[:end]) {
		return "", false
	}
	return u.String(), true
}

// OriginAllowed reports whether an Origin header value names a site Gatehouse trusts to send it
// cookie-authenticated requests: the request's own host (requestHost as the request carries it, port included),
// or a host in the allow-list; https only unless dev mode. "null" (sandboxed frames, file: pages, some
// redirects) and anything malformed are not allowed. An empty origin is not allowed either: callers decide what
// a missing header means.
func (p Policy) OriginAllowed(origin, requestHost string) bool {
	n := p.schemeOf(origin)
	if n == 0 {
		return false
	}
	authority := origin[n:]
	for i := 0; i < len(authority); i++ {
		if c := authority[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '\\' || c == '@' {
			return false
		}
	}
	host, ok := splitAuthority(authority)
	if !ok {
		return false
	}
	if requestHost != "" && strings.EqualFold(authority, requestHost) {
		return true
	}
	return p.HostAllowed(host)
}
