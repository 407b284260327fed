package extauthz

import (
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"gatehouse/token"
)

// authorizationValues returns the Authorization header values. With encode_raw_headers Envoy sends every copy
// separately in header_map; otherwise duplicates arrive merged with "," in the headers map, which the decider
// refuses because a comma is not a b64token character (token.IsB64Token).
func authorizationValues(r *request, buf []string) []string { return r.values("authorization", buf) }

// bearerCandidate extracts exactly one Bearer token. reason is "" on success, ReasonTokenMissing when there is no
// Authorization header, and ReasonTokenInvalid for two headers, another scheme or no token. It does not check the
// token's characters (token.IsB64Token): the decider does that only for tokens that are not in its cache, since a
// cached token is the very string that passed it before.
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
		return "", reasonTokenTooLarge
	}
	tok, ok := token.Bearer(v)
	if !ok {
		return "", ReasonTokenInvalid
	}
	return tok, ""
}

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
