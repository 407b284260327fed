package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"gatehouse/extauthz"
)

// headerFlags collects repeated --header k=v.
type headerFlags map[string]string

func (h headerFlags) String() string { return "" }
func (h headerFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want name=value, got %q", s)
	}
	h[strings.ToLower(k)] = v
	return nil
}

func runCheck(e *env, args []string) error {
	fs := newFlags(e, "check", "--addr HOST:PORT --method M --path P [--host H] [--token T] [--header k=v]...\n\nSends one CheckRequest shaped like Envoy's ext_authz filter sends it and prints the decision,\nstatus, headers and body. Try the sidecar without Envoy.")
	addr := fs.String("addr", "127.0.0.1:9191", "ext_authz gRPC address")
	method := fs.String("method", "GET", "HTTP method")
	path := fs.String("path", "/", "request path (with query, as Envoy sends :path)")
	host := fs.String("host", "localhost", "request authority")
	tok := fs.String("token", "", "access token, sent as Authorization: Bearer TOKEN")
	timeout := fs.Duration("timeout", 3*time.Second, "call timeout")
	headers := headerFlags{}
	fs.Var(headers, "header", "extra request header name=value (repeatable)")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 0); err != nil {
		return err
	}
	if *tok != "" {
		headers["authorization"] = "Bearer " + *tok
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, extauthz.NewCheckRequest(*method, *host, *path, headers))
	if err != nil {
		return fmt.Errorf("check %s: %w", *addr, err)
	}
	printCheckResponse(e, resp)
	return nil
}

func printCheckResponse(e *env, resp *authv3.CheckResponse) {
	w := e.stdout
	meta := resp.GetDynamicMetadata().GetFields()
	reason, rule := meta["reason"].GetStringValue(), meta["rule"].GetStringValue()
	if ok := resp.GetOkResponse(); ok != nil {
		fmt.Fprintf(w, "decision: ALLOW\nstatus:   200 (%s)\nreason:   %s\nrule:     %s\n", codes.Code(resp.GetStatus().GetCode()), reason, rule)
		var hs []string
		for _, h := range ok.GetHeaders() {
			hs = append(hs, fmt.Sprintf("  set %s: %s", h.GetHeader().GetKey(), h.GetHeader().GetValue()))
		}
		for _, h := range ok.GetHeadersToRemove() {
			hs = append(hs, "  remove "+h)
		}
		sort.Strings(hs)
		if len(hs) > 0 {
			fmt.Fprintln(w, "upstream headers:")
			fmt.Fprintln(w, strings.Join(hs, "\n"))
		}
		return
	}
	d := resp.GetDeniedResponse()
	fmt.Fprintf(w, "decision: DENY\nstatus:   %d (%s)\nreason:   %s\nrule:     %s\n", d.GetStatus().GetCode(), codes.Code(resp.GetStatus().GetCode()), reason, rule)
	if len(d.GetHeaders()) > 0 {
		fmt.Fprintln(w, "response headers:")
		for _, h := range d.GetHeaders() {
			fmt.Fprintf(w, "  %s: %s\n", h.GetHeader().GetKey(), h.GetHeader().GetValue())
		}
	}
	fmt.Fprintf(w, "body:     %s\n", d.GetBody())
}
