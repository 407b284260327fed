package extauthz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"gatehouse/token"
)

// The codec's bytes must decode to exactly the message Check returned, for every kind of response, including one
// rendered by a policy version that is no longer current and ones that are not ours.
func TestCodecMatchesProto(t *testing.T) {
	h := newHarness(t)
	codec := newResponseCodec(h.srv)
	tok := h.sign(h.claims(token.Access, "user", "guest"))
	check := func(method, path string, hdr map[string]string) *authv3.CheckResponse {
		resp, _ := h.srv.Check(context.Background(), NewCheckRequest(method, "api.example.com", path, hdr))
		return resp
	}
	cases := map[string]*authv3.CheckResponse{
		"authenticated allow":   check("GET", "/me", bearer(tok)),
		"allow on another rule": check("GET", "/users/profile", bearer(tok)),
		"public allow":          check("POST", "/auth/login", nil),
		"401":                   check("GET", "/me", nil),
		"403 no route":          check("GET", "/nowhere", bearer(tok)),
		"400":                   check("GET", "/a/../b", nil),
		"not rendered by us":    {Status: h.srv.resp.okStatus, DynamicMetadata: &structpb.Struct{}},
		"empty":                 {},
	}
	stale := check("GET", "/me", bearer(tok))
	h.srv.SetPolicy(h.srv.policy.Load().policy) // a new version: stale's parts are no longer known
	cases["rendered by an older policy"] = stale
	for name, resp := range cases {
		t.Run(name, func(t *testing.T) {
			for range 2 { // the second time from what the first rendered
				bs, err := codec.Marshal(resp)
				if err != nil {
					t.Fatal(err)
				}
				var got authv3.CheckResponse
				if err := proto.Unmarshal(bs.Materialize(), &got); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(&got, resp) {
					t.Fatalf("decoded %v\nwant    %v", &got, resp)
				}
			}
		})
	}
	// Other messages go to the standard codec.
	if _, err := codec.Marshal(&structpb.Struct{}); err != nil {
		t.Errorf("marshal a non-CheckResponse: %v", err)
	}
}
