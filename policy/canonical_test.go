package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalPath(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxPathLength-1)
	tests := []struct {
		name, in string
		want     string // canonical form; "" when refused
		why      string // substring of the error when refused
	}{
		// Accepted, unchanged.
		{"root", "/", "/", ""},
		{"simple", "/users/profile", "/users/profile", ""},
		{"case preserved", "/ADMIN", "/ADMIN", ""},
		{"sub-delims raw", "/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", ""},
		{"unreserved raw", "/a-b._~9", "/a-b._~9", ""},
		{"three dots is a name", "/...", "/...", ""},
		{"dot in name", "/a./.b/a..b", "/a./.b/a..b", ""},
		{"upper-case escape kept", "/a%20b", "/a%20b", ""},
		{"escaped percent", "/100%25", "/100%25", ""},
		{"valid UTF-8 escaped", "/caf%C3%A9", "/caf%C3%A9", ""},
		{"U+FFFD itself", "/%EF%BF%BD", "/%EF%BF%BD", ""},
		{"max length", long, long, ""},

		// Accepted, rewritten to the one canonical spelling.
		{"query stripped", "/users?id=1", "/users", ""},
		{"fragment stripped", "/users#top", "/users", ""},
		{"query with slash and dots", "/a?x=/../b#/..", "/a", ""},
		{"query on root", "/?x", "/", ""},
		{"unreserved decoded", "/%61%62%2D%5F%7E", "/ab-_~", ""},
		{"sub-delim decoded", "/a%3Ab%40c%2B", "/a:b@c+", ""},
		{"lower-case escape upper-cased", "/a%7bb", "/a%7Bb", ""},
		{"raw space escaped", "/a b", "/a%20b", ""},
		{"raw brace escaped", "/{x}", "/%7Bx%7D", ""},
		{"raw UTF-8 escaped", "/café", "/caf%C3%A9", ""},
		{"mixed raw and escaped UTF-8", "/caf\xc3%a9", "/caf%C3%A9", ""},
		{"escaped ? kept", "/a%3fb", "/a%3Fb", ""},
		{"escaped # kept", "/a%23b", "/a%23b", ""},
		{"dot decoded inside name", "/a%2Eb", "/a.b", ""},
		{"double dot decoded inside name", "/%2e%2e%2e", "/...", ""},

		// Bypass classics.
		{"dot-dot traversal", "/public/../admin", "", "dot segment"},
		{"dot segment", "/./admin", "", "dot segment"},
		{"trailing dot-dot", "/admin/..", "", "dot segment"},
		{"encoded dot-dot", "/public/%2e%2e/admin", "", "dot segment"},
		{"mixed-case encoded dot-dot", "/public/%2E%2e/admin", "", "dot segment"},
		{"half encoded dot-dot", "/public/.%2e/admin", "", "dot segment"},
		{"encoded dot", "/%2e/admin", "", "dot segment"},
		{"encoded slash", "/admin%2Fusers/1", "", "encoded '/'"},
		{"encoded slash lower", "/admin%2fusers", "", "encoded '/'"},
		{"double slash", "//admin", "", "empty segment"},
		{"inner double slash", "/a//b", "", "empty segment"},
		{"trailing slash", "/orders/", "", "trailing slash"},
		{"semicolon", "/admin;x=1", "", "';'"},
		{"encoded semicolon", "/admin%3Bx=1", "", "';'"},
		{"raw backslash", "\\admin", "", "start with '/'"},
		{"inner backslash", "/a\\admin", "", "backslash"},
		{"encoded backslash", "/a%5Cadmin", "", "backslash"},
		{"encoded backslash lower", "/a%5cadmin", "", "backslash"},
		{"overlong slash", "/a%c0%afb", "", "invalid UTF-8"},
		{"overlong 3-byte slash", "/a%e0%80%afb", "", "invalid UTF-8"},
		{"overlong 4-byte", "/a%f0%80%80%afb", "", "invalid UTF-8"},
		{"overlong dot", "/%c0%ae%c0%ae/admin", "", "invalid UTF-8"},
		{"raw overlong", "/a\xc0\xafb", "", "invalid UTF-8"},
		{"surrogate", "/%ed%a0%80", "", "invalid UTF-8"},
		{"beyond U+10FFFF", "/%f4%90%80%80", "", "invalid UTF-8"},
		{"stray continuation", "/%80", "", "invalid UTF-8"},
		{"truncated sequence", "/%c3", "", "invalid UTF-8"},
		{"truncated before slash", "/%c3/a", "", "invalid UTF-8"},
		{"truncated by ASCII", "/%c3a", "", "invalid UTF-8"},
		{"raw invalid UTF-8", "/\xff", "", "invalid UTF-8"},
		{"NUL encoded", "/a%00b", "", "control character"},
		{"NUL raw", "/a\x00b", "", "control character"},
		{"tab", "/a\tb", "", "control character"},
		{"newline encoded", "/a%0Ab", "", "control character"},
		{"DEL raw", "/a\x7fb", "", "control character"},
		{"DEL encoded", "/a%7fb", "", "control character"},
		{"C1 control", "/a%c2%85b", "", "control character"},
		{"malformed escape", "/a%zzb", "", "malformed"},
		{"malformed escape one digit", "/a%2", "", "malformed"},
		{"malformed escape at end", "/a%", "", "malformed"},
		{"malformed escape half", "/a%g1", "", "malformed"},
		{"double encoded dot", "/%252e%252e/admin", "", "double percent-encoding"},
		{"double encoded slash", "/admin%252Fusers", "", "double percent-encoding"},
		{"triple encoded via decoding", "/%25%32%66", "", "double percent-encoding"},
		{"empty", "", "", "empty path"},
		{"only query", "?a=1", "", "empty path"},
		{"no leading slash", "admin", "", "start with '/'"},
		{"asterisk-form", "*", "", "asterisk-form"},
		{"absolute-form", "http://x/y", "", "absolute-form"},
		{"absolute-form https", "https://evil.example/admin", "", "absolute-form"},
		{"too long", long + "a", "", "longer than 8 KiB"},
		{"too long once canonical", "/" + strings.Repeat(" ", MaxPathLength/3+1), "", "once canonical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalPath(tt.in)
			if tt.why != "" {
				if err == nil {
					t.Fatalf("CanonicalPath(%q) = %q, want error containing %q", tt.in, got, tt.why)
				}
				if !errors.Is(err, ErrNonCanonicalPath) || !strings.Contains(err.Error(), tt.why) {
					t.Fatalf("CanonicalPath(%q) error = %v, want ErrNonCanonicalPath containing %q", tt.in, err, tt.why)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CanonicalPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			again, err := CanonicalPath(got)
			if err != nil || again != got {
				t.Fatalf("not idempotent: CanonicalPath(%q) = %q, %v", got, again, err)
			}
		})
	}
}

// Spellings of one decoded path must all canonicalise to the same string,
// and different paths to different strings.
func TestCanonicalPathOneSpelling(t *testing.T) {
	groups := [][]string{
		{"/admin/users", "/%61dmin/users", "/admin/%75sers", "/%61%64%6d%69%6e/users", "/admin/users?x", "/admin/users#f"},
		{"/a:b", "/a%3ab", "/a%3Ab"},
		{"/a%20b", "/a b", "/a%20b"},
		{"/%C3%A9", "/é", "/%c3%a9", "/\xc3%a9", "/%c3\xa9"},
	}
	seen := map[string]int{}
	for gi, g := range groups {
		want, err := CanonicalPath(g[0])
		if err != nil {
			t.Fatalf("CanonicalPath(%q): %v", g[0], err)
		}
		if prev, dup := seen[want]; dup {
			t.Fatalf("groups %d and %d both canonicalise to %q", prev, gi, want)
		}
		seen[want] = gi
		for _, in := range g[1:] {
			if got, err := CanonicalPath(in); err != nil || got != want {
				t.Errorf("CanonicalPath(%q) = %q, %v; want %q", in, got, err, want)
			}
		}
	}
}

func TestCanonicalPathNoAllocWhenCanonical(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := CanonicalPath("/orders/42/items?page=2"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("CanonicalPath allocated %v times for a canonical path", allocs)
	}
}
