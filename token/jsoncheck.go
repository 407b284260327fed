package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Limits for JSON in a token. Our tokens are flat objects of about ten
// members; the caps keep the pairwise duplicate check linear in practice
// and bound the work a hostile 8 KiB token can cause before its signature
// is checked.
const (
	maxJSONDepth   = 16
	maxJSONMembers = 64
)

var (
	errJSONSyntax    = errors.New("invalid JSON")
	errNotObject     = errors.New("not a JSON object")
	errDuplicate     = errors.New("duplicate JSON member")
	errTrailingJSON  = errors.New("data after the JSON object")
	errInvalidUTF8   = errors.New("invalid UTF-8")
	errJSONTooDeep   = errors.New("JSON nested too deeply")
	errJSONTooWide   = errors.New("JSON object has too many members")
	errFoldedClaimNm = errors.New("claim name differs from a registered one only by case")
)

// walkObject checks that b is exactly one JSON object (RFC 8259) in which no
// object, at any depth, has two members with the same name, and calls member
// with each top-level member's name (unescaped) and raw value.
//
// Why: encoding/json keeps the last of duplicate members and matches field
// names case-insensitively, so {"sub":"a","sub":"b"} or {"sub":..,"SUB":..}
// could mean different things to another parser. Names are compared with
// bytes.EqualFold, the folding encoding/json uses. Invalid UTF-8 is refused
// too (encoding/json would silently replace it).
//
// It is a small hand-written scanner rather than a json.Decoder token walk:
// Decoder.Token allocated about 180 times per token and dominated Verify's
// non-crypto cost. It allocates only for names containing escapes.
// FuzzWalkObject checks it against encoding/json.
func walkObject(b []byte, member func(name, value []byte) error) error {
	if !utf8.Valid(b) {
		return errInvalidUTF8
	}
	s := jsonScanner{b: b}
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return errNotObject
	}
	if err := s.object(0, member); err != nil {
		return err
	}
	s.space()
	if s.i != len(s.b) {
		return errTrailingJSON
	}
	return nil
}

type jsonScanner struct {
	b []byte
	i int
}

func (s *jsonScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) value(depth int) error {
	if s.i >= len(s.b) {
		return errJSONSyntax
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth+1, nil)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return errJSONSyntax
}

// object scans from '{'. member, when set, sees each member.
func (s *jsonScanner) object(depth int, member func(name, value []byte) error) error {
	if depth >= maxJSONDepth {
		return errJSONTooDeep
	}
	s.i++ // '{'
	var stack [16][]byte
	names := stack[:0]
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errJSONSyntax
		}
		start := s.i
		escaped, err := s.str()
		if err != nil {
			return err
		}
		name := s.b[start+1 : s.i-1]
		if escaped {
			var u string
			if err := json.Unmarshal(s.b[start:s.i], &u); err != nil {
				return errJSONSyntax
			}
			name = []byte(u)
		}
		if len(names) == maxJSONMembers {
			return errJSONTooWide
		}
		for _, n := range names {
			if bytes.EqualFold(n, name) {
				return errDuplicate
			}
		}
		names = append(names, name)
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errJSONSyntax
		}
		s.i++
		s.space()
		vstart := s.i
		if err := s.value(depth); err != nil {
			return err
		}
		if member != nil {
			if err := member(name, s.b[vstart:s.i]); err != nil {
				return err
			}
		}
		s.space()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.space()
		case '}':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (s *jsonScanner) array(depth int) error {
	if depth >= maxJSONDepth {
		return errJSONTooDeep
	}
	s.i++ // '['
	s.space()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.b) {
			return errJSONSyntax
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.space()
		case ']':
			s.i++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

// str scans a string from its opening quote to just past its closing one.
func (s *jsonScanner) str() (escaped bool, err error) {
	s.i++ // '"'
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return escaped, nil
		case c < 0x20:
			return false, errJSONSyntax
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return false, errJSONSyntax
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return false, errJSONSyntax
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false, errJSONSyntax
					}
				}
				s.i += 5
			default:
				return false, errJSONSyntax
			}
		default:
			s.i++
		}
	}
	return false, errJSONSyntax
}

// number scans -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *jsonScanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return errJSONSyntax
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errJSONSyntax
		}
	}
	return nil
}

func (s *jsonScanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *jsonScanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return errJSONSyntax
	}
	s.i += len(lit)
	return nil
}

// jsonStringBytes decodes a raw JSON value that must be a string; ok is
// false for any other JSON type. Without escapes it returns a subslice of
// raw (no allocation).
func jsonStringBytes(raw []byte) (v []byte, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// registeredClaims are the payload names we read. A top-level name that folds
// to one of them without being equal ("Sub", "ſub") would still be decoded
// into that field by encoding/json; we refuse it rather than guess.
var registeredClaims = [...]string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "username", "roles"}

func checkClaimName(name, _ []byte) error {
	for _, r := range registeredClaims {
		if string(name) != r && bytes.EqualFold(name, []byte(r)) {
			return errFoldedClaimNm
		}
	}
	return nil
}
