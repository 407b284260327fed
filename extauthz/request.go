package extauthz

import (
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"gatehouse/token"
)

// authorizationValues returns the Authorization header values. With encode_raw_headers Envoy sends every copy
// separately in header_map; otherwise duplicates arrive merged with "," in the headers map, which bearerToken
// refuses because a token never contains a comma.
func authorizationValues(r *request, buf []string) []string { return r.values("authorization", buf) }

// bearerToken extracts exactly one Bearer token. reason is "" on success, ReasonTokenMissing when there is no
// Authorization header, and ReasonTokenInvalid for anything ambiguous: two headers, another scheme, two tokens,
// characters outside RFC 6750's b64token.
func bearerToken(h *request) (tok, reason string) {
	tok, reason = bearerCandidate(h)
	if reason == "" && !validB64Token(tok) {
		return "", ReasonTokenInvalid
	}
	return tok, reason
}

// bearerCandidate is bearerToken without the character check, which the decider runs only for tokens that are not
// in its cache: a cached token is the very string that passed it before.
func bearerCandidate(h *request) (tok, reason string) {
	var arr [2]string
	vals := authorizationValues(h, arr[:0])
	switch len(vals) {
	case 0:
		return "", ReasonTokenMissing
	case 1:
	default:
		return "", ReasonTokenInvalid
	}
	v := vals[0]
	if len(v) > token.MaxTokenSize+len("Bearer ") {
		return "", "token_too_large"
	}
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", ReasonTokenInvalid
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" {
		return "", ReasonTokenInvalid
	}
	return rest, ""
}

// validB64Token reports whether every character is in RFC 6750's b64token alphabet.
func validB64Token(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if !isB64TokenChar(tok[i]) {
			return false
		}
	}
	return true
}

func isB64TokenChar(c byte) bool { return b64TokenChars[c] }

// b64TokenChars is RFC 6750's b64token alphabet as a table: a token is scanned on every request.
var b64TokenChars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
	}
	return t
}()

// NewCheckRequest builds an Envoy-shaped CheckRequest, as Envoy's ext_authz filter sends it, for `gatehouse check`
// and tests. Header names are lower-cased like Envoy does.
func NewCheckRequest(method, host, path string, headers map[string]string) *authv3.CheckRequest {
	hs := make(map[string]string, len(headers)+3)
	for k, v := range headers {
		hs[strings.ToLower(k)] = v
	}
	hs[":method"], hs[":path"], hs[":authority"] = method, path, host
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Host: host, Path: path, Headers: hs, Protocol: "HTTP/1.1", Scheme: "http"},
	}}}
}
