// Command noop is the transport floor of `make bench-load`: an ext_authz gRPC server that answers OK to every
// CheckRequest without looking at it. Whatever Gatehouse costs beyond it is the price of deciding.
//
//	noop --listen 127.0.0.1:0   # prints the address it listens on, then serves until killed
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The same limits as Gatehouse's server, so both decode the same requests the same way.
const maxMessageSize = 1 << 20

var ok = &authv3.CheckResponse{
	Status:       &rpcstatus.Status{},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

type noop struct {
	authv3.UnimplementedAuthorizationServer
}

func (noop) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return ok, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
	fmt.Println(lis.Addr().String())
	// The transport settings of Gatehouse's server (extauthz.NewGRPCServer), so that the floor is the same
	// transport: worker goroutines that keep their stacks, the same message limits.
	g := grpc.NewServer(grpc.MaxRecvMsgSize(maxMessageSize), grpc.MaxSendMsgSize(maxMessageSize),
		grpc.NumStreamWorkers(uint32(64*runtime.GOMAXPROCS(0))))
	authv3.RegisterAuthorizationServer(g, noop{})
	healthpb.RegisterHealthServer(g, health.NewServer())
	if err := g.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
}
