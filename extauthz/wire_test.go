package extauthz

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"gatehouse/token"
)

// envoyShaped is a CheckRequest as Envoy's ext_authz filter sends it from a sidecar: peers, a timestamp, context
// extensions and metadata around the HTTP request, so the decoder skips what it does not read.
func envoyShaped() *authv3.CheckRequest {
	req := NewCheckRequest("POST", "api.example.com", "/orders/7?x=1", map[string]string{
		"authorization": "Bearer abc.def.ghi", "cookie": "a=1; gh_at=xyz", "accept": "text/html",
		"x-request-id": "5d3c", "user-agent": "curl/8", "x-forwarded-proto": "https",
	})
	addr := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	req.Attributes.Source = &authv3.AttributeContext_Peer{Address: addr("10.0.0.7", 51234),
		Principal: "spiffe://cluster.local/ns/shop/sa/web"}
	req.Attributes.Destination = &authv3.AttributeContext_Peer{Address: addr("10.0.0.9", 8080)}
	req.Attributes.ContextExtensions = map[string]string{"team": "shop"}
	req.Attributes.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.filters.http.jwt": {Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("v")}}}}
	h := req.Attributes.Request.Http
	req.Attributes.Request.Time = timestamppb.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	h.Id, h.Scheme, h.Query, h.Protocol, h.Size = "5d3c", "https", "x=1", "HTTP/2", 12
	return req
}

// rawHeaders is a request with encode_raw_headers: header_map, raw_value set, duplicate lines, mixed-case names.
func rawHeaders() *authv3.CheckRequest {
	req := NewCheckRequest("GET", "h", "/me", nil)
	req.Attributes.Request.Http.Headers = nil
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":path", RawValue: []byte("/me")},
		{Key: "Authorization", RawValue: []byte("Bearer a.b.c")},
		{Key: "cookie", Value: "ignored", RawValue: []byte("x=\xff")}, // raw bytes need not be UTF-8
		{Key: "cookie", Value: "gh_at=t"},
	}}
	return req
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeMatches reports how the wire decoder differs from proto.Unmarshal followed by fill. The decoder may
// accept bytes proto.Unmarshal refuses (it skips fields it does not read), never the reverse.
func decodeMatches(b []byte) error {
	var got request
	got.decode(b)
	var msg authv3.CheckRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		return nil
	}
	if got.malformed {
		return fmt.Errorf("decode refused bytes proto.Unmarshal accepts")
	}
	var want request
	want.fill(&msg)
	type scalars struct {
		http                           bool
		id, method, path, host, scheme string
	}
	g := scalars{got.http, got.id, got.method, got.path, got.host, got.scheme}
	w := scalars{want.http, want.id, want.method, want.path, want.host, want.scheme}
	if g != w {
		return fmt.Errorf("fields %+v, want %+v", g, w)
	}
	asMap := func(hs []header) map[string]string {
		m := map[string]string{}
		for _, h := range hs {
			m[h.name] = h.value // a later duplicate wins, as in a protobuf map
		}
		return m
	}
	if gm, wm := asMap(got.headers), asMap(want.headers); !maps.Equal(gm, wm) {
		return fmt.Errorf("headers %v, want %v", gm, wm)
	}
	if !slices.Equal(got.headerMap, want.headerMap) {
		return fmt.Errorf("header_map %v, want %v", got.headerMap, want.headerMap)
	}
	for _, name := range []string{"authorization", "cookie", "origin", "accept"} {
		if gv, wv := got.values(name, nil), want.values(name, nil); !slices.Equal(gv, wv) {
			return fmt.Errorf("values(%q) = %q, want %q", name, gv, wv)
		}
	}
	return nil
}

func TestDecodeMatchesProto(t *testing.T) {
	shaped, raw := marshal(t, envoyShaped()), marshal(t, rawHeaders())
	other := marshal(t, NewCheckRequest("DELETE", "other", "/admin/users/1", map[string]string{"authorization": "x", "origin": "o"}))
	cases := map[string][]byte{
		"envoy-shaped":     shaped,
		"raw header_map":   raw,
		"empty":            nil,
		"no http":          marshal(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}),
		"empty http":       marshal(t, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{}}}}),
		"two merged":       append(slices.Clone(shaped), other...), // a message seen twice is merged
		"merged with raw":  append(slices.Clone(other), raw...),
		"merged reversed":  append(slices.Clone(other), shaped...),
		"method as varint": wrapHTTP(protowire.AppendVarint(protowire.AppendTag(nil, fieldHTTPMethod, protowire.VarintType), 7)),
		"map entry without key": wrapHTTP(protowire.AppendBytes(protowire.AppendTag(nil, fieldHTTPHeaders, protowire.BytesType),
			protowire.AppendString(protowire.AppendTag(nil, fieldMapValue, protowire.BytesType), "v"))),
		"map entry with a field 3": wrapHTTP(protowire.AppendBytes(protowire.AppendTag(nil, fieldHTTPHeaders, protowire.BytesType),
			protowire.AppendString(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, fieldMapKey, protowire.BytesType), "authorization"), fieldHeaderRawValue, protowire.BytesType), "not a value"))),
		"map entry with an unknown field": wrapHTTP(protowire.AppendBytes(protowire.AppendTag(nil, fieldHTTPHeaders, protowire.BytesType),
			protowire.AppendVarint(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, fieldMapKey, protowire.BytesType), "k"), 9, protowire.VarintType), 1))),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if err := decodeMatches(b); err != nil {
				t.Fatal(err)
			}
		})
	}

	// The merged request reads what a merged message holds: the second's method and scheme, the union of headers.
	var r request
	r.decode(cases["two merged"])
	if r.method != "DELETE" || r.path != "/admin/users/1" || r.scheme != "http" {
		t.Errorf("merged: %s %s %s", r.method, r.path, r.scheme)
	}
	if v := r.values("authorization", nil); !slices.Equal(v, []string{"x"}) {
		t.Errorf("merged authorization %q, want the later entry", v)
	}
}

// wrapHTTP puts encoded HttpRequest fields inside a CheckRequest.
func wrapHTTP(http []byte) []byte {
	wrap := func(num protowire.Number, inner []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), inner)
	}
	return wrap(fieldCheckAttributes, wrap(fieldAttrsRequest, wrap(fieldRequestHTTP, http)))
}

func TestDecodeRefusesWhatProtobufRefuses(t *testing.T) {
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
	}
	for name, b := range map[string][]byte{
		"truncated":           marshal(t, envoyShaped())[:40],
		"invalid path UTF-8":  wrapHTTP(str(fieldHTTPPath, "/\xff")),
		"invalid header name": wrapHTTP(protowire.AppendBytes(protowire.AppendTag(nil, fieldHTTPHeaders, protowire.BytesType), str(fieldMapKey, "\xc0"))),
		"field number 0":      {0x02, 0x00},
		"stray end group":     {0x0c},
		"length past the end": {0x0a, 0x7f, 0x00},
	} {
		t.Run(name, func(t *testing.T) {
			var msg authv3.CheckRequest
			if proto.Unmarshal(b, &msg) == nil {
				t.Fatal("proto.Unmarshal accepts it: not a refusal case")
			}
			var r request
			r.decode(b)
			if !r.malformed || r.http || r.method != "" {
				t.Fatalf("decoded %+v, want malformed and empty", r)
			}
		})
	}
	// Unread fields are skipped, not checked: a bad query string does not hide the method and path.
	b := wrapHTTP(append(append(str(fieldHTTPMethod, "GET"), str(7, "\xff")...), str(fieldHTTPPath, "/me")...))
	var r request
	r.decode(b)
	if r.malformed || r.method != "GET" || r.path != "/me" {
		t.Errorf("with an unread invalid field: %+v", r)
	}
}

// FuzzDecodeRequest holds the wire decoder to proto.Unmarshal on arbitrary bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(marshal(f, envoyShaped()))
	f.Add(marshal(f, rawHeaders()))
	f.Add(append(marshal(f, envoyShaped()), marshal(f, rawHeaders())...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := decodeMatches(b); err != nil {
			t.Fatal(err)
		}
	})
}

// Bytes that are not a CheckRequest get a 400 decision over gRPC, not a gRPC error (Envoy would answer those with
// its status_on_error, and fail open where failure_mode_allow is set).
func TestMalformedRequestIsDeniedOverGRPC(t *testing.T) {
	h := newHarness(t)
	conn := serve(t, h.srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok := h.sign(h.claims(token.Access, "user"))
	for name, c := range map[string]struct {
		b          []byte
		want       int
		wantReason string
	}{
		"garbage":     {[]byte{0xff, 0xff, 0xff}, 400, ReasonMalformedRequest},
		"bad UTF-8":   {wrapHTTP(append(protowire.AppendString(protowire.AppendTag(nil, fieldHTTPMethod, protowire.BytesType), "GET"), protowire.AppendString(protowire.AppendTag(nil, fieldHTTPPath, protowire.BytesType), "/me\xff")...)), 400, ReasonMalformedRequest},
		"well formed": {marshal(t, NewCheckRequest("GET", "api.example.com", "/me", bearer(tok))), 200, "allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			var out rawBytes
			in := rawBytes(c.b)
			if err := conn.Invoke(ctx, authv3.Authorization_Check_FullMethodName, &in, &out, grpc.ForceCodecV2(rawBytesCodec{})); err != nil {
				t.Fatalf("gRPC error: %v", err)
			}
			var resp authv3.CheckResponse
			if err := proto.Unmarshal(out, &resp); err != nil {
				t.Fatal(err)
			}
			if httpStatus(&resp) != c.want || reason(&resp) != c.wantReason {
				t.Fatalf("got %d %s, want %d %s", httpStatus(&resp), reason(&resp), c.want, c.wantReason)
			}
		})
	}
}

// rawBytesCodec sends bytes as they are, so a test can put anything on the wire.
type rawBytesCodec struct{}

type rawBytes []byte

func (rawBytesCodec) Name() string { return "proto" }

func (rawBytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*rawBytes))}, nil
}

func (rawBytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawBytes) = data.Materialize()
	return nil
}

// The gRPC path allocates nothing to decide beyond the identity headers of an authenticated allow: the request
// is decoded into a pooled request (the codec's one copy of the bytes aside, made before this runs).
func TestWireCheckAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	h := newHarness(t)
	ctx := context.Background()
	tok := h.sign(h.claims(token.Access, "user"))
	shaped := envoyShaped()
	shaped.Attributes.Request.Http.Method = "GET"
	shaped.Attributes.Request.Http.Path = "/me"
	shaped.Attributes.Request.Http.Headers["authorization"] = "Bearer " + tok
	b := marshal(t, shaped)
	check := func() *authv3.CheckResponse {
		r := getRequest()
		defer putRequest(r)
		r.decode(b)
		return h.srv.check(ctx, r)
	}
	if resp := check(); httpStatus(resp) != 200 {
		t.Fatalf("setup: %d %s", httpStatus(resp), reason(resp))
	}
	if got := testing.AllocsPerRun(200, func() { check() }); got > 1 {
		t.Errorf("%.1f allocations per decision from the wire, want <= 1", got)
	}
}

// reset leaves nothing of a request behind, whether its headers fit headersArr or outgrew it: a pooled request
// must not keep the last request's bytes alive, nor hand its headers to the next one.
func TestResetDropsEveryReference(t *testing.T) {
	for _, n := range []int{0, 3, 32, 40} {
		hs := map[string]string{}
		for i := range n {
			hs[fmt.Sprint("x-h-", i)] = "v"
		}
		req := NewCheckRequest("GET", "h", "/me", hs)
		req.Attributes.Request.Http.HeaderMap = rawHeaders().Attributes.Request.Http.HeaderMap
		r := getRequest()
		r.decode(marshal(t, req))
		if len(r.headers) != n+3 || len(r.headerMap) == 0 {
			t.Fatalf("%d headers: decoded %d, header_map %d", n, len(r.headers), len(r.headerMap))
		}
		r.reset()
		if r.headersArr != [len(r.headersArr)]header{} || len(r.headers) != 0 || &r.headers[:1][0] != &r.headersArr[0] ||
			slices.ContainsFunc(r.headerMap[:cap(r.headerMap)], func(h header) bool { return h != header{} }) {
			t.Errorf("%d headers: reset left headers behind", n)
		}
		putRequest(r)
	}
}
