package envoy

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"gatehouse/config"
)

var shippedFiles = []string{"sidecar.yaml", "front-proxy.yaml"}

// devConfig is the example Gatehouse config whose authz.listen the shipped Envoy files must point at.
const devConfig = "../deploy/dev/gatehouse.yaml"

// testAuthzAddr returns Gatehouse's authz.listen from the example config, read by Gatehouse's own loader.
func testAuthzAddr(t *testing.T) string {
	t.Helper()
	cfg, err := config.Load(devConfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Authz.Listen
}

func loadShipped(t *testing.T, file string) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := LoadBootstrap(file)
	if err != nil {
		t.Fatalf("LoadBootstrap(%s): %v", file, err)
	}
	return b
}

// onlyHCM returns the single HTTP connection manager of a shipped file and
// its ext_authz filter config.
func onlyHCM(t *testing.T, b *bootstrapv3.Bootstrap) (*hcmv3.HttpConnectionManager, *extauthzv3.ExtAuthz) {
	t.Helper()
	ls := b.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 || len(ls[0].GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatalf("want one listener with one filter chain and one network filter")
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	filters := hcm.GetHttpFilters()
	if len(filters) != 2 || filters[0].GetName() != "envoy.filters.http.ext_authz" || filters[1].GetName() != "envoy.filters.http.router" {
		t.Fatalf("http_filters: want [ext_authz router], got %v", filters)
	}
	ea := &extauthzv3.ExtAuthz{}
	if err := filters[0].GetTypedConfig().UnmarshalTo(ea); err != nil {
		t.Fatal(err)
	}
	return hcm, ea
}

func clusterByName(b *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

func TestShippedConfigsCheckClean(t *testing.T) {
	for _, file := range shippedFiles {
		t.Run(file, func(t *testing.T) {
			warnings, err := Check(file, testAuthzAddr(t))
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 {
				t.Fatalf("want no warnings, got:\n%s", strings.Join(warnings, "\n"))
			}
		})
	}
}

// The settings the security checklist asks for, asserted directly rather
// than through Check, so a bug in Check cannot hide a drift in the files.
func TestShippedSettings(t *testing.T) {
	for _, file := range shippedFiles {
		t.Run(file, func(t *testing.T) {
			b := loadShipped(t, file)
			hcm, ea := onlyHCM(t, b)

			if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
				t.Error("normalize_path and merge_slashes must be true")
			}
			if hcm.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
				t.Errorf("path_with_escaped_slashes_action = %v", hcm.GetPathWithEscapedSlashesAction())
			}
			if hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_REJECT_REQUEST {
				t.Error("headers_with_underscores_action must be REJECT_REQUEST")
			}

			if ea.GetFailureModeAllow() || ea.GetTransportApiVersion() != corev3.ApiVersion_V3 ||
				ea.GetStatusOnError().GetCode() != 503 || ea.GetIncludePeerCertificate() ||
				ea.GetWithRequestBody() != nil || ea.GetShadowMode() {
				t.Errorf("ext_authz settings drifted: %v", ea)
			}
			if got := ea.GetGrpcService().GetTimeout().AsDuration(); got <= 0 || got > time.Second {
				t.Errorf("grpc_service timeout = %v, want (0, 1s]", got)
			}
			for _, h := range []string{":method", ":authority", ":path", "authorization", "cookie"} {
				if !headerSent(ea, h) {
					t.Errorf("ext_authz does not send %s to Gatehouse", h)
				}
			}
			for _, h := range []string{"x-user-id", "x-api-key", "content-type"} {
				if headerSent(ea, h) {
					t.Errorf("ext_authz sends %s to Gatehouse, which does not need it", h)
				}
			}

			// The access log prints Gatehouse's decision metadata.
			logs := hcm.GetAccessLog()
			if len(logs) != 1 {
				t.Fatalf("want one access log, got %d", len(logs))
			}
			stdout := &streamv3.StdoutAccessLog{}
			if err := logs[0].GetTypedConfig().UnmarshalTo(stdout); err != nil {
				t.Fatal(err)
			}
			fields := stdout.GetLogFormat().GetJsonFormat().GetFields()
			for key, want := range map[string]string{
				"authz_reason": "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%",
				"authz_rule":   "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:rule)%",
			} {
				if got := fields[key].GetStringValue(); got != want {
					t.Errorf("access log %s = %q, want %q", key, got, want)
				}
			}
			for key, v := range fields {
				if s := strings.ToUpper(v.GetStringValue()); strings.Contains(s, "AUTHORIZATION") || strings.Contains(s, "COOKIE") || strings.Contains(s, "%REQ(:PATH)%") {
					t.Errorf("access log %s = %q logs credentials or query strings", key, v.GetStringValue())
				}
			}

			gh := clusterByName(b, "gatehouse")
			if gh == nil {
				t.Fatal("no gatehouse cluster")
			}
			if !http2(gh) {
				t.Error("gatehouse cluster is not HTTP/2")
			}
			hcs := gh.GetHealthChecks()
			if len(hcs) != 1 || hcs[0].GetGrpcHealthCheck() == nil {
				t.Errorf("gatehouse cluster: want one grpc_health_check, got %v", hcs)
			}
			if gh.GetOutlierDetection() == nil {
				t.Error("gatehouse cluster has no outlier_detection")
			}
			if a := b.GetAdmin().GetAddress().GetSocketAddress(); a != nil && a.GetAddress() != "127.0.0.1" {
				t.Errorf("admin listens on %s, want loopback", a.GetAddress())
			}
		})
	}
}

// Every cluster a route or an ext_authz filter names must be defined.
func TestShippedCrossReferences(t *testing.T) {
	for _, file := range shippedFiles {
		t.Run(file, func(t *testing.T) {
			b := loadShipped(t, file)
			hcm, ea := onlyHCM(t, b)
			refs := []string{ea.GetGrpcService().GetEnvoyGrpc().GetClusterName()}
			for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
				for _, r := range vh.GetRoutes() {
					names := routeClusters(r)
					if len(names) == 0 {
						t.Errorf("route %q names no cluster", r.GetName())
					}
					refs = append(refs, names...)
				}
			}
			for _, name := range refs {
				if clusterByName(b, name) == nil {
					t.Errorf("cluster %q is referenced but not defined", name)
				}
			}
		})
	}
}

// The Gatehouse cluster must point at Gatehouse's authz.listen port.
func TestShippedGatehousePort(t *testing.T) {
	_, wantPort, err := net.SplitHostPort(testAuthzAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range shippedFiles {
		t.Run(file, func(t *testing.T) {
			b := loadShipped(t, file)
			_, ea := onlyHCM(t, b)
			name := ea.GetGrpcService().GetEnvoyGrpc().GetClusterName()
			eps := socketAddresses(clusterByName(b, name))
			if len(eps) == 0 {
				t.Fatalf("cluster %q has no endpoints", name)
			}
			for _, sa := range eps {
				if got := strconv.FormatUint(uint64(sa.GetPortValue()), 10); got != wantPort {
					t.Errorf("cluster %q endpoint port %s, want %s", name, got, wantPort)
				}
			}
		})
	}
}

// On the edge, ext_authz is off exactly for the issuer's routes, which must
// be /auth/ and /.well-known/ and must strip client-sent identity headers.
func TestFrontProxyIssuerRoutes(t *testing.T) {
	b := loadShipped(t, "front-proxy.yaml")
	hcm, _ := onlyHCM(t, b)
	issuerPrefixes := map[string]bool{}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		if disablesAuthz(vh.GetTypedPerFilterConfig(), []string{"envoy.filters.http.ext_authz"}) {
			t.Errorf("virtual host %q disables ext_authz", vh.GetName())
		}
		for _, r := range vh.GetRoutes() {
			toIssuer := r.GetRoute().GetCluster() == "issuer"
			disabled := disablesAuthz(r.GetTypedPerFilterConfig(), []string{"envoy.filters.http.ext_authz"})
			if toIssuer != disabled {
				t.Errorf("route %q: to issuer %v but ext_authz disabled %v", r.GetName(), toIssuer, disabled)
			}
			if !toIssuer {
				continue
			}
			issuerPrefixes[r.GetMatch().GetPrefix()] = true
			if !removesIdentityHeaders(r) {
				t.Errorf("issuer route %q does not strip x-user-id, x-username, x-user-roles", r.GetName())
			}
		}
	}
	if len(issuerPrefixes) != 2 || !issuerPrefixes["/auth/"] || !issuerPrefixes["/.well-known/"] {
		t.Errorf("issuer routes match %v, want exactly prefixes /auth/ and /.well-known/", issuerPrefixes)
	}
}

func removesIdentityHeaders(r *routev3.Route) bool {
	removed := map[string]bool{}
	for _, h := range r.GetRequestHeadersToRemove() {
		removed[strings.ToLower(h)] = true
	}
	return removed["x-user-id"] && removed["x-username"] && removed["x-user-roles"]
}
