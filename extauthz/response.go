package extauthz

import (
	"encoding/json"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"gatehouse/token"
)

// HeaderNames are the identity headers set upstream on allowed authenticated requests. Client-sent copies are
// removed from every allowed request, so an upstream can trust them.
type HeaderNames struct {
	UserID, Username, Roles string
}

// DefaultHeaderNames are the names documented in the README.
var DefaultHeaderNames = HeaderNames{UserID: "x-user-id", Username: "x-username", Roles: "x-user-roles"}

// responder renders outcomes as CheckResponses. Deny bodies are fixed per status, so they are built once.
type responder struct {
	headers    HeaderNames
	removeAll  []string
	denyBodies map[int]string
}

func newResponder(h HeaderNames) *responder {
	r := &responder{headers: h, removeAll: []string{h.UserID, h.Username, h.Roles}, denyBodies: map[int]string{}}
	for _, s := range []int{400, 401, 403, 503} {
		code, msg := publicMessage(s)
		b, _ := json.Marshal(map[string]string{"error": code, "message": msg})
		r.denyBodies[s] = string(b)
	}
	return r
}

// metadata is what Envoy's access log reads from the ext_authz filter's dynamic metadata namespace.
func metadata(o outcome) *structpb.Struct {
	rule := ""
	if o.rule != nil {
		rule = o.rule.Name
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		"reason": structpb.NewStringValue(o.reason),
		"rule":   structpb.NewStringValue(rule),
	}}
}

// allow renders an allowed request. claims is nil on public routes.
func (r *responder) allow(o outcome, claims *token.Claims) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{}
	if claims == nil {
		ok.HeadersToRemove = r.removeAll
	} else {
		// OVERWRITE_IF_EXISTS_OR_ADD replaces every client-sent copy, so nothing needs removing; listing the
		// names in headers_to_remove as well would, depending on Envoy's order, drop what we set.
		ok.Headers = []*corev3.HeaderValueOption{
			setHeader(r.headers.UserID, claims.Subject),
			setHeader(r.headers.Username, claims.Username),
			setHeader(r.headers.Roles, strings.Join(claims.Roles, ",")),
		}
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(grpcCode(200))},
		HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: metadata(o),
	}
}

func setHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// deny renders a denial. It is always a CheckResponse, never a gRPC error: an Envoy configured with
// failure_mode_allow would let a request through on an error.
func (r *responder) deny(o outcome) *authv3.CheckResponse {
	body, ok := r.denyBodies[o.status]
	if !ok {
		body = r.denyBodies[403]
	}
	hs := []*corev3.HeaderValueOption{setHeader("content-type", "application/json"), setHeader("cache-control", "no-store")}
	if o.status == 401 {
		hs = append(hs, setHeader("www-authenticate", `Bearer error="invalid_token"`))
	}
	code := grpcCode(o.status)
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: o.reason},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(o.status)},
			Headers: hs,
			Body:    body,
		}},
		DynamicMetadata: metadata(o),
	}
}
