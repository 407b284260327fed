package token

import "strings"

// Bearer returns the token in one Authorization header value with the Bearer scheme (RFC 6750 section 2.1): the
// scheme in any case, spaces, then the token. ok is false for another scheme or no token. It does not check the
// token's characters (IsB64Token), so a caller that caches verified tokens can check only the ones it has not
// seen. The decider and the issuer read Authorization headers with these same rules.
func Bearer(value string) (tok string, ok bool) {
	scheme, rest, found := strings.Cut(value, " ")
	if !found || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	return rest, rest != ""
}

// IsB64Token reports whether tok is made only of RFC 6750 b64token characters. A JWT always is; two tokens, a
// comma-merged duplicate header or stray bytes are not.
func IsB64Token(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if !b64TokenChars[tok[i]] {
			return false
		}
	}
	return true
}

// b64TokenChars is the b64token alphabet as a table: the decider scans tokens on its hot path.
var b64TokenChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
	}
	return t
}()
