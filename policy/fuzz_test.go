package policy

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCanonicalPath checks that CanonicalPath never panics, is idempotent,
// and never lets through a spelling another component could read as a
// different path.
func FuzzCanonicalPath(f *testing.F) {
	for _, s := range []string{
		"/", "/users/profile", "/public/../admin", "/%2e%2e/admin", "/admin%2Fusers", "//admin",
		"/admin;x=1", "/ADMIN", "\\admin", "/a%c0%afb", "/caf\xc3%a9", "/a b?c#d", "/%252e", "*", "http://x/y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		cp, err := CanonicalPath(raw)
		if err != nil {
			if !errors.Is(err, ErrNonCanonicalPath) || cp != "" {
				t.Fatalf("CanonicalPath(%q) = %q, %v", raw, cp, err)
			}
			return
		}
		again, err := CanonicalPath(cp)
		if err != nil || again != cp {
			t.Fatalf("not idempotent: CanonicalPath(%q) = %q; again = %q, %v", raw, cp, again, err)
		}
		if len(cp) > MaxPathLength || cp[0] != '/' || (cp != "/" && strings.HasSuffix(cp, "/")) {
			t.Fatalf("CanonicalPath(%q) = %q: bad shape", raw, cp)
		}
		for _, bad := range []string{"//", "/./", "/../", "\\", ";", "?", "#", "%2F", "%5C", "%3B", "%00", "%2E"} {
			if strings.Contains(strings.ToUpper(cp), bad) {
				t.Fatalf("CanonicalPath(%q) = %q contains %q", raw, cp, bad)
			}
		}
		if doubleEncodedAt(cp) {
			t.Fatalf("CanonicalPath(%q) = %q is double-encoded", raw, cp)
		}
		if strings.HasSuffix(cp, "/.") || strings.HasSuffix(cp, "/..") {
			t.Fatalf("CanonicalPath(%q) = %q ends in a dot segment", raw, cp)
		}
		// Only printable ASCII, and every escape is '%' and two upper-case
		// hex digits; decoding yields valid UTF-8.
		var dec []byte
		for i := 0; i < len(cp); i++ {
			c := cp[i]
			if c <= ' ' || c >= 0x7f {
				t.Fatalf("CanonicalPath(%q) = %q has raw byte %#x", raw, cp, c)
			}
			if c == '%' {
				if i+2 >= len(cp) || !isUpperHex(cp[i+1]) || !isUpperHex(cp[i+2]) {
					t.Fatalf("CanonicalPath(%q) = %q has a bad escape", raw, cp)
				}
				hi, _ := unhex(cp[i+1])
				lo, _ := unhex(cp[i+2])
				c = hi<<4 | lo
				i += 2
			}
			dec = append(dec, c)
		}
		if !utf8.Valid(dec) {
			t.Fatalf("CanonicalPath(%q) = %q decodes to invalid UTF-8", raw, cp)
		}
	})
}

// doubleEncodedAt reports whether some "%25" in cp is followed by two hex
// digits (an escaped '%' is fine on its own).
func doubleEncodedAt(cp string) bool {
	for i := strings.Index(cp, "%25"); i >= 0; {
		rest := cp[i+3:]
		if len(rest) >= 2 && isHexDigit(rest[0]) && isHexDigit(rest[1]) {
			return true
		}
		j := strings.Index(rest, "%25")
		if j < 0 {
			return false
		}
		i += 3 + j
	}
	return false
}
