package envoy

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const upstreamHTTPOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Type URLs the checker recognises, spelled from the generated types so a
// rename upstream breaks the build instead of silently matching nothing.
var (
	typeHCM          = typeURL(&hcmv3.HttpConnectionManager{})
	typeExtAuthz     = typeURL(&extauthzv3.ExtAuthz{})
	typeExtAuthzPR   = typeURL(&extauthzv3.ExtAuthzPerRoute{})
	typeRouter       = typeURL(&routerv3.Router{})
	typeFilterConfig = typeURL(&routev3.FilterConfig{})
)

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// Check loads the Envoy bootstrap at path and reports settings that would let
// a request reach an application without Gatehouse's decision, or with a path
// Gatehouse did not judge. gatehouseAuthzAddr is Gatehouse's authz.listen
// (host:port); when not empty, the ext_authz cluster must point at that port.
//
// err is for a file that cannot be loaded (see LoadBootstrap) or a malformed
// address; a loadable but risky config yields warnings and a nil error.
func Check(path, gatehouseAuthzAddr string) (warnings []string, err error) {
	b, err := LoadBootstrap(path)
	if err != nil {
		return nil, err
	}
	return CheckBootstrap(b, gatehouseAuthzAddr)
}

// CheckBootstrap is Check for a bootstrap already in memory.
func CheckBootstrap(b *bootstrapv3.Bootstrap, gatehouseAuthzAddr string) ([]string, error) {
	c := &checker{clusters: map[string]*clusterv3.Cluster{}}
	if gatehouseAuthzAddr != "" {
		host, port, err := net.SplitHostPort(gatehouseAuthzAddr)
		if err != nil {
			return nil, fmt.Errorf("gatehouse authz address %q: %w", gatehouseAuthzAddr, err)
		}
		c.authzHost, c.authzPort = host, port
	}
	for _, cl := range b.GetStaticResources().GetClusters() {
		c.clusters[cl.GetName()] = cl
	}
	c.cds = b.GetDynamicResources().GetCdsConfig() != nil
	c.lds = b.GetDynamicResources().GetLdsConfig() != nil

	for i, l := range b.GetStaticResources().GetListeners() {
		c.listener(i, l)
	}
	if c.extAuthzFilters == 0 {
		msg := "no ext_authz filter found in any listener's HTTP connection manager: Envoy never asks Gatehouse about a request"
		if c.lds {
			msg += " (listeners from LDS are not visible to this check)"
		}
		c.warn("%s", msg)
	}
	return c.warnings, nil
}

type checker struct {
	clusters             map[string]*clusterv3.Cluster
	cds, lds             bool
	authzHost, authzPort string
	extAuthzFilters      int
	warnings             []string
}

func (c *checker) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *checker) listener(i int, l *listenerv3.Listener) {
	where := fmt.Sprintf("listener %q", l.GetName())
	if l.GetName() == "" {
		where = fmt.Sprintf("listener #%d", i)
	}
	chains := l.GetFilterChains()
	for j, fc := range chains {
		w := where
		switch {
		case fc.GetName() != "":
			w = fmt.Sprintf("%s, filter chain %q", where, fc.GetName())
		case len(chains) > 1 || l.GetDefaultFilterChain() != nil:
			w = fmt.Sprintf("%s, filter chain #%d", where, j)
		}
		c.filterChain(w, fc)
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		c.filterChain(where+", default filter chain", fc)
	}
}

func (c *checker) filterChain(where string, fc *listenerv3.FilterChain) {
	for _, f := range fc.GetFilters() {
		if f.GetTypedConfig().GetTypeUrl() != typeHCM {
			continue
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
			c.warn("%s: cannot decode HTTP connection manager %q: %v", where, f.GetName(), err)
			continue
		}
		c.connectionManager(where, hcm)
	}
}

func (c *checker) connectionManager(where string, hcm *hcmv3.HttpConnectionManager) {
	var authzNames []string
	authzAt, routerAt := -1, -1
	for i, hf := range hcm.GetHttpFilters() {
		switch {
		case hf.GetTypedConfig().GetTypeUrl() == typeExtAuthz:
			ea := &extauthzv3.ExtAuthz{}
			if err := hf.GetTypedConfig().UnmarshalTo(ea); err != nil {
				c.warn("%s: cannot decode ext_authz filter %q: %v", where, hf.GetName(), err)
				continue
			}
			c.extAuthzFilters++
			authzNames = append(authzNames, hf.GetName())
			if authzAt < 0 {
				authzAt = i
			}
			c.extAuthz(fmt.Sprintf("%s: ext_authz filter %q", where, hf.GetName()), hf.GetDisabled(), ea)
		case discovers(hf.GetConfigDiscovery(), typeExtAuthz):
			c.extAuthzFilters++
			authzNames = append(authzNames, hf.GetName())
			if authzAt < 0 {
				authzAt = i
			}
			c.warn("%s: ext_authz filter %q is configured through extension config discovery, so this check cannot see its settings", where, hf.GetName())
		case hf.GetTypedConfig().GetTypeUrl() == typeRouter && routerAt < 0:
			routerAt = i
		}
	}
	if len(authzNames) == 0 {
		return
	}
	if routerAt >= 0 && routerAt < authzAt {
		c.warn("%s: the router filter comes before ext_authz filter %q, so ext_authz never runs; put ext_authz first and the router last", where, authzNames[0])
	}
	c.pathHandling(where, hcm)
	if rc := hcm.GetRouteConfig(); rc != nil {
		c.routes(where, rc, authzNames)
	}
}

// pathHandling checks that Envoy hands Gatehouse the same path the app gets.
func (c *checker) pathHandling(where string, hcm *hcmv3.HttpConnectionManager) {
	if hcm.GetTypedHeaderValidationConfig() != nil {
		c.warn("%s: typed_header_validation_config is set, and Envoy then ignores normalize_path, merge_slashes and path_with_escaped_slashes_action; this check cannot verify path normalisation", where)
		return
	}
	if !hcm.GetNormalizePath().GetValue() {
		c.warn("%s: normalize_path is not true: /public/../admin reaches Gatehouse, the router and the app unnormalised, and they may resolve it differently; set normalize_path: true", where)
	}
	if !hcm.GetMergeSlashes() {
		c.warn("%s: merge_slashes is not true: Gatehouse refuses //a as non-canonical while the app may treat it as /a; set merge_slashes: true so both see one spelling", where)
	}
	switch a := hcm.GetPathWithEscapedSlashesAction(); a {
	case hcmv3.HttpConnectionManager_KEEP_UNCHANGED, hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT:
		c.warn("%s: path_with_escaped_slashes_action is %s, so %%2F and %%5C pass through undecoded and the app may decode them into a path Gatehouse never judged; set REJECT_REQUEST (or UNESCAPE_AND_REDIRECT)", where, a)
	case hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:
		c.warn("%s: path_with_escaped_slashes_action is UNESCAPE_AND_FORWARD, which Envoy documents as a path-confusion risk behind access control; set REJECT_REQUEST (or UNESCAPE_AND_REDIRECT)", where)
	}
	switch hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() {
	case corev3.HttpProtocolOptions_REJECT_REQUEST, corev3.HttpProtocolOptions_DROP_HEADER:
	default:
		c.warn("%s: headers with underscores are allowed, so a client's x_user_id can reach apps that read it as x-user-id (Gatehouse strips only the dashed spelling); set common_http_protocol_options.headers_with_underscores_action: REJECT_REQUEST", where)
	}
}

func (c *checker) extAuthz(where string, disabled bool, ea *extauthzv3.ExtAuthz) {
	if disabled {
		c.warn("%s: disabled: true turns it off on every route that does not enable it again", where)
	}
	switch {
	case ea.GetGrpcService() != nil:
		gs := ea.GetGrpcService()
		if t := gs.GetTimeout(); t == nil || t.AsDuration() <= 0 {
			c.warn("%s: grpc_service has no timeout; set one well under the clients' own (for example timeout: 0.25s)", where)
		}
		if eg := gs.GetEnvoyGrpc(); eg != nil {
			c.authzCluster(where, eg.GetClusterName(), true)
		}
	case ea.GetHttpService() != nil:
		c.warn("%s: uses http_service, but Gatehouse's ext_authz server speaks gRPC (envoy.service.auth.v3.Authorization); use grpc_service", where)
		c.authzCluster(where, ea.GetHttpService().GetServerUri().GetCluster(), false)
	default:
		c.warn("%s: has neither grpc_service nor http_service", where)
	}
	if v := ea.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		c.warn("%s: transport_api_version is %s; Gatehouse implements only the v3 API, set transport_api_version: V3", where, v)
	}
	if ea.GetFailureModeAllow() {
		c.warn("%s: failure_mode_allow is true, so requests reach the app unchecked whenever Gatehouse is unreachable, slow or failing; set it to false", where)
	}
	if st := ea.GetStatusOnError(); st == nil {
		c.warn("%s: status_on_error is unset, so Envoy answers 403 when Gatehouse fails and an outage looks like a policy denial; set status_on_error: {code: ServiceUnavailable}", where)
	} else if code := st.GetCode(); code < 500 || code > 599 {
		c.warn("%s: status_on_error is %d (%s), not a 5xx, so an outage looks like a decision; use 503 (ServiceUnavailable)", where, int32(code), typev3.StatusCode_name[int32(code)])
	}
	if ea.GetShadowMode() {
		c.warn("%s: shadow_mode is true, so denials are recorded but never enforced", where)
	}
	if fe := ea.GetFilterEnabled(); fe != nil && !wholePercent(fe.GetDefaultValue()) {
		c.warn("%s: filter_enabled samples requests, so the rest reach the app without a Check", where)
	}
	if ea.GetFilterEnabledMetadata() != nil {
		c.warn("%s: filter_enabled_metadata limits the Check to requests with matching metadata; the others reach the app unchecked", where)
	}
	if ea.GetWithRequestBody() != nil {
		c.warn("%s: with_request_body sends request bodies to Gatehouse, which never reads them; remove it", where)
	}
	if !headerSent(ea, "authorization") {
		c.warn("%s: allowed_headers/disallowed_headers keep the authorization header from Gatehouse, so every bearer token is ignored", where)
	}
	// Browser sessions (the portal) need these; without them navigations get 401 instead of a redirect to
	// sign-in and cross-site cookie posts cannot be told from same-site ones.
	var missing []string
	for _, h := range []string{"cookie", "accept", "origin", "sec-fetch-site"} {
		if !headerSent(ea, h) {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		c.warn("%s: allowed_headers/disallowed_headers keep %s from Gatehouse, which browser sessions (the portal's cookie, redirects and CSRF checks) need", where, strings.Join(missing, ", "))
	}
}

// authzCluster checks the cluster an ext_authz filter calls.
func (c *checker) authzCluster(where, name string, grpc bool) {
	cl, ok := c.clusters[name]
	if !ok {
		c.warn("%s: calls cluster %q, which is not defined in static_resources%s", where, name, c.cdsNote())
		return
	}
	if grpc && !http2(cl) {
		c.warn("%s: cluster %q does not speak HTTP/2 (typed_extension_protocol_options %s explicit_http_config.http2_protocol_options), and gRPC calls to Gatehouse need it", where, name, upstreamHTTPOptionsKey)
	}
	if c.authzPort == "" {
		return
	}
	endpoints := socketAddresses(cl)
	for _, sa := range endpoints {
		if fmt.Sprint(sa.GetPortValue()) == c.authzPort && sameHost(c.authzHost, sa.GetAddress()) {
			return
		}
	}
	got := make([]string, 0, len(endpoints))
	for _, sa := range endpoints {
		got = append(got, net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue())))
	}
	c.warn("%s: cluster %q points at [%s], but Gatehouse's authz.listen is %s", where, name, strings.Join(got, " "), net.JoinHostPort(c.authzHost, c.authzPort))
}

func (c *checker) cdsNote() string {
	if c.cds {
		return " (it may come from CDS, which this check cannot see)"
	}
	return ""
}

// routes checks the inline route table of a connection manager that runs
// ext_authz: clusters must exist, and ext_authz may be switched off for
// single routes (the issuer's) but not for a whole virtual host.
func (c *checker) routes(where string, rc *routev3.RouteConfiguration, authzNames []string) {
	if disablesAuthz(rc.GetTypedPerFilterConfig(), authzNames) {
		c.warn("%s: route_config %q disables ext_authz for every virtual host", where, rc.GetName())
	}
	for _, vh := range rc.GetVirtualHosts() {
		vhWhere := fmt.Sprintf("%s, virtual host %q", where, vh.GetName())
		if disablesAuthz(vh.GetTypedPerFilterConfig(), authzNames) {
			c.warn("%s: disables ext_authz for the whole virtual host; disable it per route, and only for routes that authenticate on their own", vhWhere)
		}
		for i, r := range vh.GetRoutes() {
			rWhere := fmt.Sprintf("%s, route #%d", vhWhere, i)
			if r.GetName() != "" {
				rWhere = fmt.Sprintf("%s, route %q", vhWhere, r.GetName())
			}
			for _, name := range routeClusters(r) {
				if _, ok := c.clusters[name]; !ok {
					c.warn("%s: sends to cluster %q, which is not defined in static_resources%s", rWhere, name, c.cdsNote())
				}
			}
			for _, name := range authzNames {
				pr := perRouteExtAuthz(r.GetTypedPerFilterConfig()[name])
				if eg := pr.GetCheckSettings().GetGrpcService().GetEnvoyGrpc(); eg != nil {
					if _, ok := c.clusters[eg.GetClusterName()]; !ok {
						c.warn("%s: its ext_authz override calls cluster %q, which is not defined in static_resources%s", rWhere, eg.GetClusterName(), c.cdsNote())
					}
				}
			}
		}
	}
}

// routeClusters lists the clusters a route forwards to by name. Routes that
// pick the cluster from a header or a plugin at run time list nothing.
func routeClusters(r *routev3.Route) []string {
	ra := r.GetRoute()
	if ra == nil {
		return nil
	}
	if name := ra.GetCluster(); name != "" {
		return []string{name}
	}
	var names []string
	for _, wc := range ra.GetWeightedClusters().GetClusters() {
		if wc.GetName() != "" {
			names = append(names, wc.GetName())
		}
	}
	return names
}

// disablesAuthz reports whether per-filter config (of a route, virtual host or
// route table) switches off any of the named ext_authz filters.
func disablesAuthz(perFilter map[string]*anypb.Any, authzNames []string) bool {
	for _, name := range authzNames {
		a := perFilter[name]
		if a == nil {
			continue
		}
		if a.GetTypeUrl() == typeFilterConfig {
			fc := &routev3.FilterConfig{}
			if a.UnmarshalTo(fc) == nil && fc.GetDisabled() {
				return true
			}
		}
		if perRouteExtAuthz(a).GetDisabled() {
			return true
		}
	}
	return false
}

// perRouteExtAuthz unpacks an ExtAuthzPerRoute given directly or wrapped in
// the generic route FilterConfig; nil when it is neither.
func perRouteExtAuthz(a *anypb.Any) *extauthzv3.ExtAuthzPerRoute {
	if a.GetTypeUrl() == typeFilterConfig {
		fc := &routev3.FilterConfig{}
		if a.UnmarshalTo(fc) != nil {
			return nil
		}
		a = fc.GetConfig()
	}
	if a.GetTypeUrl() != typeExtAuthzPR {
		return nil
	}
	pr := &extauthzv3.ExtAuthzPerRoute{}
	if a.UnmarshalTo(pr) != nil {
		return nil
	}
	return pr
}

func discovers(cs *corev3.ExtensionConfigSource, typeURL string) bool {
	for _, u := range cs.GetTypeUrls() {
		if u == typeURL {
			return true
		}
	}
	return false
}

// http2 reports whether a cluster talks HTTP/2 to its endpoints over
// plaintext, as a gRPC cluster must. auto_config only negotiates HTTP/2 with
// ALPN over TLS, and use_downstream_protocol_config depends on the client,
// so neither counts.
func http2(cl *clusterv3.Cluster) bool {
	//lint:ignore SA1019 the deprecated field still works in Envoy and users still write it
	if cl.GetHttp2ProtocolOptions() != nil {
		return true
	}
	a := cl.GetTypedExtensionProtocolOptions()[upstreamHTTPOptionsKey]
	if a == nil {
		return false
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	if a.UnmarshalTo(opts) != nil {
		return false
	}
	return opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
}

func socketAddresses(cl *clusterv3.Cluster) []*corev3.SocketAddress {
	var out []*corev3.SocketAddress
	for _, le := range cl.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			if sa := lb.GetEndpoint().GetAddress().GetSocketAddress(); sa != nil {
				out = append(out, sa)
			}
		}
	}
	return out
}

// sameHost reports whether an endpoint host can reach a listen host. A
// wildcard listen address is reachable under any name, and names cannot be
// resolved offline, so only two differing IP literals (other than two
// loopback addresses) count as a mismatch.
func sameHost(listen, endpoint string) bool {
	la, lerr := netip.ParseAddr(listen)
	if listen == "" || (lerr == nil && la.IsUnspecified()) {
		return true
	}
	if listen == "localhost" {
		listen, la, lerr = "127.0.0.1", netip.MustParseAddr("127.0.0.1"), nil
	}
	if endpoint == "localhost" {
		endpoint = "127.0.0.1"
	}
	ea, eerr := netip.ParseAddr(endpoint)
	if lerr != nil || eerr != nil {
		return true
	}
	return la == ea || (la.IsLoopback() && ea.IsLoopback())
}

func wholePercent(fp *typev3.FractionalPercent) bool {
	if fp == nil {
		return true
	}
	denominators := map[typev3.FractionalPercent_DenominatorType]uint32{
		typev3.FractionalPercent_HUNDRED:      100,
		typev3.FractionalPercent_TEN_THOUSAND: 10_000,
		typev3.FractionalPercent_MILLION:      1_000_000,
	}
	return fp.GetNumerator() >= denominators[fp.GetDenominator()]
}

// headerSent reports whether ext_authz forwards a (lower-case) header to a
// gRPC authorization server: everything when allowed_headers is unset, and
// disallowed_headers always wins.
func headerSent(ea *extauthzv3.ExtAuthz, header string) bool {
	if ea.GetDisallowedHeaders() != nil && listMatches(ea.GetDisallowedHeaders(), header) {
		return false
	}
	return ea.GetAllowedHeaders() == nil || listMatches(ea.GetAllowedHeaders(), header)
}

func listMatches(l *matcherv3.ListStringMatcher, s string) bool {
	for _, p := range l.GetPatterns() {
		if stringMatches(p, s) {
			return true
		}
	}
	return false
}

func stringMatches(m *matcherv3.StringMatcher, s string) bool {
	fold := func(x string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(x)
		}
		return x
	}
	s = fold(s)
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return fold(p.Exact) == s
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, fold(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, fold(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(s, fold(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		// Envoy's RE2 and Go's regexp agree on the syntax that matters here;
		// Envoy matches the whole string.
		re, err := regexp.Compile(`^(?:` + p.SafeRegex.GetRegex() + `)$`)
		return err == nil && re.MatchString(s)
	}
	return false
}
