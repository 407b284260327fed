package extauthz

import (
	"encoding/json"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"gatehouse/policy"
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
//
// Rendered responses are shared between requests and must never be modified: gRPC only reads (marshals) them,
// and protobuf-go marshals one message from several goroutines safely.
type responder struct {
	headers    HeaderNames
	removeAll  []string
	denyBodies map[int]string
	okStatus   *rpcstatus.Status
}

func newResponder(h HeaderNames) *responder {
	r := &responder{headers: h, removeAll: []string{h.UserID, h.Username, h.Roles}, denyBodies: map[int]string{},
		okStatus: &rpcstatus.Status{Code: int32(grpcCode(200))}}
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

// render builds the response for an outcome that does not depend on the caller: a denial or a public allow.
func (r *responder) render(o outcome) *authv3.CheckResponse {
	if o.allowed() {
		return &authv3.CheckResponse{
			Status:          r.okStatus,
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{HeadersToRemove: r.removeAll}},
			DynamicMetadata: metadata(o),
		}
	}
	return r.deny(o)
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

// compiled is one policy version and the responses rendered for it, so a decision usually allocates nothing.
// Keys are (rule, status, reason): rules of this policy times a fixed reason vocabulary, so the map stays small;
// maxRendered only guards against a reason that would not be fixed.
//
// Each rendered response is also kept encoded, for the gRPC codec (codec.go): a shared response whole, and for
// the template of an authenticated allow its metadata field, which the codec appends to the caller's part.
type compiled struct {
	policy *policy.Policy

	mu        sync.RWMutex
	rendered  map[outcome]*authv3.CheckResponse
	encoded   map[*authv3.CheckResponse][]byte // shared responses, encoded
	allowTail map[*structpb.Struct][]byte      // metadata of authenticated allows, encoded as field 4
}

const maxRendered = 1 << 16

func compile(p *policy.Policy) *compiled {
	return &compiled{policy: p, rendered: map[outcome]*authv3.CheckResponse{},
		encoded: map[*authv3.CheckResponse][]byte{}, allowTail: map[*structpb.Struct][]byte{}}
}

// response returns the shared response for o, rendering it the first time. For an authenticated allow it is a
// template holding the status and metadata only.
func (c *compiled) response(r *responder, o outcome) *authv3.CheckResponse {
	c.mu.RLock()
	resp := c.rendered[o]
	c.mu.RUnlock()
	if resp != nil {
		return resp
	}
	template := o.reason == policy.ReasonAllowed
	if template {
		resp = &authv3.CheckResponse{Status: r.okStatus, DynamicMetadata: metadata(o)}
	} else {
		resp = r.render(o)
	}
	enc, err := proto.Marshal(resp)
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev := c.rendered[o]; prev != nil {
		return prev
	}
	if len(c.rendered) < maxRendered {
		c.rendered[o] = resp
		switch {
		case err != nil: // never for messages we build; the codec then marshals as usual
		case template:
			md, _ := proto.Marshal(resp.DynamicMetadata)
			c.allowTail[resp.DynamicMetadata] = protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), md)
		default:
			c.encoded[resp] = enc
		}
	}
	return resp
}

// allowBlock is an authenticated allow in one allocation: the response, its OK part and the identity headers.
type allowBlock struct {
	resp authv3.CheckResponse
	wrap authv3.CheckResponse_OkResponse
	ok   authv3.OkHttpResponse
	opts [3]*corev3.HeaderValueOption
	hvo  [3]corev3.HeaderValueOption
	hv   [3]corev3.HeaderValue
}

// allow renders an authenticated allow: status and metadata are the rule's shared ones, the identity headers are
// the caller's. OVERWRITE_IF_EXISTS_OR_ADD replaces every client-sent copy, so nothing needs removing; listing the
// names in headers_to_remove as well would, depending on Envoy's order, drop what we set.
//
// This is the one allocation of an allowed request (plus the roles string with two roles or more). Keeping the
// rendered headers per cached token would save it but cost ~700 B per cached token, which the memory budget
// (10^5 tokens beside 10^6 revocations in 256 MiB) does not allow.
func (s *Server) allow(c *compiled, o outcome, cl *token.Claims) *authv3.CheckResponse {
	tmpl := c.response(s.resp, o)
	b := &allowBlock{}
	h := s.resp.headers
	for i, kv := range [3][2]string{
		{h.UserID, cl.Subject},
		{h.Username, cl.Username},
		{h.Roles, strings.Join(cl.Roles, ",")},
	} {
		b.hv[i].Key, b.hv[i].Value = kv[0], kv[1]
		b.hvo[i].Header = &b.hv[i]
		b.hvo[i].AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		b.opts[i] = &b.hvo[i]
	}
	b.ok.Headers = b.opts[:]
	b.wrap.OkResponse = &b.ok
	b.resp.Status, b.resp.HttpResponse, b.resp.DynamicMetadata = tmpl.Status, &b.wrap, tmpl.DynamicMetadata
	return &b.resp
}
