package extauthz

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// MaxMessageSize bounds a CheckRequest. Envoy's default header limit is 60 KiB; this leaves room for bodies
// forwarded with with_request_body while keeping one request from taking much memory.
const MaxMessageSize = 1 << 20

// NewGRPCServer returns a gRPC server with the Authorization and grpc.health.v1 services registered. A panic in
// Check is turned into a denial, so a bug can never make Envoy fail open or take the process down.
func NewGRPCServer(s *Server, hs *health.Server, log *slog.Logger) *grpc.Server {
	g := grpc.NewServer(
		grpc.ForceServerCodecV2(newResponseCodec(s)),
		// Long-lived workers keep the stack a decision needs; a goroutine per request would grow a fresh one each
		// time (stack copying was ~8% of a request's CPU). Requests beyond the workers still get a goroutine.
		grpc.NumStreamWorkers(uint32(64*runtime.GOMAXPROCS(0))),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.ChainUnaryInterceptor(recoverInterceptor(s, log)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	g.RegisterService(&authorizationService, newGRPCService(s))
	healthpb.RegisterHealthServer(g, hs)
	return g
}

// authorizationService is envoy.service.auth.v3.Authorization with a Check handler that decodes the request
// straight from the wire into a request (wire.go) instead of a CheckRequest message.
var authorizationService = grpc.ServiceDesc{
	ServiceName: authv3.Authorization_ServiceDesc.ServiceName,
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}},
	Metadata:    authv3.Authorization_ServiceDesc.Metadata,
}

// grpcService is what checkHandler is given: the server, and what the interceptors need, made once rather than
// per call.
type grpcService struct {
	s       *Server
	info    *grpc.UnaryServerInfo
	handler grpc.UnaryHandler
}

func newGRPCService(s *Server) *grpcService {
	g := &grpcService{s: s, info: &grpc.UnaryServerInfo{Server: s, FullMethod: authv3.Authorization_Check_FullMethodName}}
	g.handler = func(ctx context.Context, req any) (any, error) { return s.check(ctx, req.(*request)), nil }
	return g
}

func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	g := srv.(*grpcService)
	r := getRequest()
	defer putRequest(r) // the response refers to nothing in r
	if err := dec(r); err != nil {
		return nil, err // the transport's: a message over the size limit, a broken stream
	}
	if interceptor == nil {
		return g.s.check(ctx, r), nil
	}
	return interceptor(ctx, r, g.info, g.handler)
}

func recoverInterceptor(s *Server, log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.LogAttrs(ctx, slog.LevelError, "panic in handler", slog.String("event", "authz.panic"),
					slog.String("method", info.FullMethod), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
				if info.FullMethod == authv3.Authorization_Check_FullMethodName {
					resp, err = s.resp.deny(outcome{status: 503, reason: ReasonInternal}), nil
				} else {
					resp, err = nil, status.Error(codes.Internal, "internal error")
				}
			}
		}()
		return handler(ctx, req)
	}
}
