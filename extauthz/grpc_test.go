package extauthz

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"gatehouse/token"
)

// serve starts the real gRPC server on a loopback port and returns a connected client.
func serve(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	g := NewGRPCServer(s, hs, slog.New(slog.DiscardHandler))
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestEndToEndOverGRPC(t *testing.T) {
	h := newHarness(t)
	conn := serve(t, h.srv)
	client := authv3.NewAuthorizationClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	tok := h.sign(h.claims(token.Access, "user"))
	tests := []struct {
		name    string
		req     *authv3.CheckRequest
		want    int
		wantErr bool
	}{
		{"allowed", NewCheckRequest("GET", "api.example.com", "/users/profile", bearer(tok)), 200, false},
		{"no token", NewCheckRequest("GET", "api.example.com", "/users/profile", nil), 401, false},
		{"empty request", &authv3.CheckRequest{}, 400, false},
		{"100 KB token", NewCheckRequest("GET", "a", "/me", bearer(strings.Repeat("x", 100<<10))), 401, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Check(ctx, tt.req)
			if err != nil {
				t.Fatalf("gRPC error: %v", err)
			}
			if httpStatus(resp) != tt.want {
				t.Fatalf("status %d (%s), want %d", httpStatus(resp), reason(resp), tt.want)
			}
		})
	}

	// The server stays healthy after all that.
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", hc, err)
	}
	if resp, err := client.Check(ctx, NewCheckRequest("GET", "a", "/me", bearer(tok))); err != nil || httpStatus(resp) != 200 {
		t.Fatalf("after bad input: %v %v", resp, err)
	}
}

// panickingRevocations simulates a bug deep in the decision path.
type panickingRevocations struct{ Revocations }

func (panickingRevocations) Revoked(context.Context, string, string, string, time.Time) (bool, error) {
	panic("boom")
}

func TestPanicBecomesDenial(t *testing.T) {
	h := newHarness(t)
	conn := serve(t, h.serverWith(t, panickingRevocations{}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, NewCheckRequest("GET", "a", "/me", bearer(h.sign(h.claims(token.Access)))))
	if err != nil {
		t.Fatalf("a panic must not surface as a gRPC error: %v", err)
	}
	if httpStatus(resp) != 503 || reason(resp) != ReasonInternal {
		t.Fatalf("got %d %s", httpStatus(resp), reason(resp))
	}
	// And the process is still serving.
	if resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, NewCheckRequest("POST", "a", "/auth/login", nil)); err != nil || httpStatus(resp) != 200 {
		t.Fatalf("after panic: %v %v", resp, err)
	}
}
