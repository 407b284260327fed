package policy

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// MaxPathLength bounds both the path as received (query and fragment
// excluded) and its canonical spelling. Bounding the output too keeps
// CanonicalPath idempotent: a canonical path is always short enough to be
// accepted again.
const MaxPathLength = 8 << 10

// ErrNonCanonicalPath is wrapped by every CanonicalPath error; the wrapping
// error says why.
var ErrNonCanonicalPath = errors.New("non-canonical path")

type pathError string

func (e pathError) Error() string { return ErrNonCanonicalPath.Error() + ": " + string(e) }
func (e pathError) Unwrap() error { return ErrNonCanonicalPath }

// What a decoded byte becomes in the canonical spelling.
const (
	byteReject = iota // never allowed, raw or percent-encoded
	byteRaw           // written as the plain character
	byteEscape        // written as %XX with upper-case hex
	byteSlash         // raw: segment separator; encoded: rejected
)

// byteClass is the canonical spelling of every byte value. Every character
// that may legally appear unescaped in a path segment (RFC 3986 pchar) is
// written raw — so %41, %7E and %3A are decoded — and everything else is
// escaped. The canonical form is therefore a function of the decoded bytes
// alone, which is what upstream servers route on: "/a:b" and "/a%3Ab" can
// never be told apart by the policy and the application differently.
var byteClass = func() (t [256]uint8) {
	for c := 0; c < 256; c++ {
		switch {
		case c < 0x20 || c == 0x7f:
			t[c] = byteReject // control characters, %00 included
		case c == '\\' || c == ';':
			t[c] = byteReject // path separators or parameters to some servers
		case c == '/':
			t[c] = byteSlash
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			strings.IndexByte("-._~!$&'()*+,=:@", byte(c)) >= 0:
			t[c] = byteRaw
		default:
			// space " % < > ? # [ ] ^ ` { | } and every byte >= 0x80.
			t[c] = byteEscape
		}
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isHexDigit(c byte) bool { _, ok := unhex(c); return ok }

// CanonicalPath returns the one spelling of a request path that policy
// decisions are made on, or an error wrapping ErrNonCanonicalPath saying why
// the path is refused. The query and fragment are cut at the first '?' or
// '#' (the input is never given to net/url, which would decode %2F).
//
// Canonical form:
//   - percent-escapes of characters allowed raw in a path segment
//     (ALPHA DIGIT - . _ ~ ! $ & ' ( ) * + , = : @) are decoded;
//   - every other byte (space, " % < > ? # [ ] ^ ` { | }, and all non-ASCII
//     bytes, which must form valid UTF-8) is written %XX with upper-case hex,
//     whether it arrived raw or escaped;
//   - case is otherwise preserved: paths are case-sensitive.
//
// Refused (raw or escaped unless noted): '/' escaped (%2F), '\', ';',
// control characters (C0, DEL, and C1 code points), malformed escapes,
// invalid or overlong UTF-8, '.' and '..' segments, empty segments ("//"
// and a trailing slash: "/orders/" is refused, only "/" itself may end in
// '/'), double encoding (an escaped '%' followed by two hex digits, e.g.
// %252e), paths not starting with '/' (including "*" and absolute-form URIs),
// and paths or canonical spellings longer than MaxPathLength.
//
// A path that is already canonical is returned without allocating.
func CanonicalPath(raw string) (string, error) {
	p := raw
	for i := 0; i < len(p); i++ {
		if p[i] == '?' || p[i] == '#' {
			p = p[:i]
			break
		}
	}
	switch {
	case len(p) > MaxPathLength:
		return "", pathError("longer than 8 KiB")
	case p == "":
		return "", pathError("empty path")
	case p == "*":
		return "", pathError("asterisk-form request target")
	case p[0] != '/':
		if strings.Contains(p, "://") {
			return "", pathError("absolute-form request target")
		}
		return "", pathError("does not start with '/'")
	case p == "/":
		return p, nil
	}

	var (
		out      []byte // nil while the output equals the input
		segLen   int    // decoded bytes in the current segment
		allDots  bool   // the current segment is only '.' so far
		pctState int    // 1: after a decoded '%'; 2: after '%' and one hex digit
		u8       [utf8.UTFMax]byte
		u8have   int // bytes of a multi-byte sequence collected
		u8want   int // its total length; 0 when not inside one
	)
	endSegment := func() error {
		switch {
		case u8want != 0:
			return pathError("invalid UTF-8")
		case segLen == 0:
			return pathError("empty segment")
		case allDots && segLen <= 2:
			return pathError("dot segment")
		}
		return nil
	}
	for i := 1; i < len(p); {
		c := p[i]
		b, width, escaped := c, 1, false
		if c == '%' {
			if i+2 >= len(p) {
				return "", pathError("malformed percent-escape")
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return "", pathError("malformed percent-escape")
			}
			b, width, escaped = hi<<4|lo, 3, true
		}

		class := byteClass[b]
		if class == byteSlash {
			if escaped {
				return "", pathError("encoded '/'")
			}
			if err := endSegment(); err != nil {
				return "", err
			}
			segLen, allDots, pctState = 0, false, 0
			if out != nil {
				out = append(out, '/')
			}
			i++
			continue
		}
		if class == byteReject {
			switch {
			case b == '\\':
				return "", pathError("backslash")
			case b == ';':
				return "", pathError("';' (path parameters)")
			default:
				return "", pathError("control character")
			}
		}

		// Multi-byte UTF-8 is validated on decoded bytes so a sequence may mix
		// raw and escaped bytes; utf8.DecodeRune rejects overlong forms and
		// surrogates.
		if b >= 0x80 {
			if u8want == 0 {
				switch {
				case 0xC2 <= b && b <= 0xDF:
					u8want = 2
				case 0xE0 <= b && b <= 0xEF:
					u8want = 3
				case 0xF0 <= b && b <= 0xF4:
					u8want = 4
				default:
					return "", pathError("invalid UTF-8")
				}
				u8[0], u8have = b, 1
			} else {
				if b&0xC0 != 0x80 {
					return "", pathError("invalid UTF-8")
				}
				u8[u8have] = b
				u8have++
				if u8have == u8want {
					r, size := utf8.DecodeRune(u8[:u8have])
					if size != u8want {
						return "", pathError("invalid UTF-8")
					}
					if r <= 0x9F { // C1 controls U+0080..U+009F
						return "", pathError("control character")
					}
					u8want = 0
				}
			}
		} else if u8want != 0 {
			return "", pathError("invalid UTF-8")
		}

		// "%25" followed by two hex digits decodes to something that a
		// second decoding pass (done by some proxies and frameworks) would
		// turn into another character, e.g. %252F -> %2F -> '/'.
		switch {
		case pctState == 1 && isHexDigit(b):
			pctState = 2
		case pctState == 2 && isHexDigit(b):
			return "", pathError("double percent-encoding")
		default:
			pctState = 0
		}
		if b == '%' {
			pctState = 1
		}

		if segLen == 0 {
			allDots = true
		}
		allDots = allDots && b == '.'
		segLen++

		if class == byteRaw {
			if out == nil && escaped {
				out = append(make([]byte, 0, len(p)), p[:i]...)
			}
			if out != nil {
				out = append(out, b)
			}
		} else { // byteEscape
			if out == nil && !(escaped && isUpperHex(p[i+1]) && isUpperHex(p[i+2])) {
				out = append(make([]byte, 0, len(p)+8), p[:i]...)
			}
			if out != nil {
				out = append(out, '%', upperHex[b>>4], upperHex[b&15])
			}
		}
		i += width
	}
	if err := endSegment(); err != nil {
		if segLen == 0 {
			return "", pathError("trailing slash")
		}
		return "", err
	}
	if out == nil {
		return p, nil
	}
	if len(out) > MaxPathLength {
		return "", pathError("longer than 8 KiB once canonical")
	}
	return string(out), nil
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }
