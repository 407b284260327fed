package extauthz

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"gatehouse/token"
)

// bigPolicy has n routes before the ones the benchmark hits, so matching cost is exercised at scale.
func bigPolicy(n int) string {
	var b strings.Builder
	b.WriteString(testPolicy[:strings.Index(testPolicy, "routes:")])
	b.WriteString("routes:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: svc-%d\n    match: {methods: [GET], path: \"/svc-%d/items/{id}/**\"}\n    permissions: [read:orders]\n", i, i)
	}
	b.WriteString(testPolicy[strings.Index(testPolicy, "routes:")+len("routes:\n"):])
	return b.String()
}

// BenchmarkCheck is the decision hot path: a valid, cached access token on a 1,000-route policy, in-process.
func BenchmarkCheck(b *testing.B) {
	h := newHarness(&testing.T{})
	h.srv.SetPolicy(mustCompile(b, bigPolicy(1000)))
	tok := h.sign(h.claims(token.Access, "user"))
	req := NewCheckRequest("GET", "api.example.com", "/svc-500/items/42/detail", bearer(tok))
	ctx := context.Background()
	if resp, _ := h.srv.Check(ctx, req); httpStatus(resp) != 200 {
		b.Fatalf("setup: %d %s", httpStatus(resp), reason(resp))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, _ := h.srv.Check(ctx, req)
		if resp.GetOkResponse() == nil {
			b.Fatal("denied")
		}
	}
}

// BenchmarkCheckDeny measures the common denial (no token) on the same policy.
func BenchmarkCheckDeny(b *testing.B) {
	h := newHarness(&testing.T{})
	h.srv.SetPolicy(mustCompile(b, bigPolicy(1000)))
	req := NewCheckRequest("GET", "api.example.com", "/svc-500/items/42", nil)
	ctx := context.Background()
	h.srv.log = slog.New(slog.DiscardHandler)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h.srv.Check(ctx, req)
	}
}

// BenchmarkCheckWire is the hot path as the gRPC service runs it: an Envoy-shaped request decoded from its bytes
// into a pooled request, then decided (valid cached token, 1,000-route policy).
func BenchmarkCheckWire(b *testing.B) {
	h := newHarness(&testing.T{})
	h.srv.SetPolicy(mustCompile(b, bigPolicy(1000)))
	tok := h.sign(h.claims(token.Access, "user"))
	req := envoyShaped()
	req.Attributes.Request.Http.Method, req.Attributes.Request.Http.Path = "GET", "/svc-500/items/42/detail"
	req.Attributes.Request.Http.Headers["authorization"] = "Bearer " + tok
	buf := marshal(b, req)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r := getRequest()
		r.decode(buf)
		if h.srv.check(ctx, r).GetOkResponse() == nil {
			b.Fatal("denied")
		}
		putRequest(r)
	}
}

// BenchmarkDecodeRequest compares the wire decoder with proto.Unmarshal of the same Envoy-shaped request.
func BenchmarkDecodeRequest(b *testing.B) {
	buf := marshal(b, envoyShaped())
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := getRequest()
			r.decode(buf)
			putRequest(r)
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m authv3.CheckRequest
			if err := proto.Unmarshal(buf, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
