package verify

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gatehouse/envoy"
)

// originalSidecar is the Envoy config the deployed copy is derived from.
const originalSidecar = repoRoot + "/envoy/sidecar.yaml"

// envoyView is the part of an Envoy bootstrap the sidecar contract is about.
type envoyView struct {
	listenerPorts map[string]uint32
	clusters      map[string]*clusterv3.Cluster
	hcm           *hcmv3.HttpConnectionManager
	authz         *extauthzv3.ExtAuthz
}

func viewEnvoy(t *testing.T, file string) *envoyView {
	t.Helper()
	b, err := envoy.LoadBootstrap(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return viewBootstrap(t, file, b)
}

func viewBootstrap(t *testing.T, file string, b *bootstrapv3.Bootstrap) *envoyView {
	t.Helper()
	v := &envoyView{listenerPorts: map[string]uint32{}, clusters: map[string]*clusterv3.Cluster{}}
	ls := b.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 || len(ls[0].GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatalf("%s: want one listener with one filter chain and one network filter", file)
	}
	for _, l := range ls {
		v.listenerPorts[l.GetName()] = l.GetAddress().GetSocketAddress().GetPortValue()
	}
	v.hcm = &hcmv3.HttpConnectionManager{}
	if err := ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(v.hcm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for _, f := range v.hcm.GetHttpFilters() {
		if f.GetName() == "envoy.filters.http.ext_authz" {
			v.authz = &extauthzv3.ExtAuthz{}
			if err := f.GetTypedConfig().UnmarshalTo(v.authz); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		}
	}
	if v.authz == nil {
		t.Fatalf("%s: no ext_authz filter", file)
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		v.clusters[c.GetName()] = c
	}
	return v
}

func filterNames(h *hcmv3.HttpConnectionManager) []string {
	var out []string
	for _, f := range h.GetHttpFilters() {
		out = append(out, f.GetName())
	}
	return out
}

func sortedKeys[M ~map[string]V, V any](m M) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestSidecarEnvoy: in every pod with an Envoy sidecar, the Envoy config passes `gatehouse envoy check` against
// the pod's own Gatehouse, keeps envoy/sidecar.yaml's contract (listener port, clusters, ext_authz settings, path
// and header handling, filter order, routes), and the pod's only door is Envoy's listener.
func TestSidecarEnvoy(t *testing.T) {
	orig := viewEnvoy(t, originalSidecar)
	sidecars := 0
	for _, b := range builds {
		s := load(t, b)
		gs := instances(t, s)
		for _, w := range s.workloads() {
			ec := findContainer(&w.pod.Spec, "envoy")
			if ec == nil {
				continue
			}
			sidecars++
			t.Run(b+"/"+w.obj.Name, func(t *testing.T) {
				var gh *instance
				for _, g := range gs {
					if g.w.obj == w.obj {
						if gh != nil {
							t.Fatal("more than one Gatehouse container in the pod")
						}
						gh = g
					}
				}
				if gh == nil || !gh.decider() {
					t.Fatal("the pod has no Gatehouse decider container (authz on, issuer off)")
				}
				file := envoyConfigFile(t, s, w, ec)
				warnings, err := envoy.Check(file, gh.cfg.Authz.Listen)
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range warnings {
					t.Errorf("gatehouse envoy check: %s", w)
				}
				cp := viewEnvoy(t, file)
				compareSidecar(t, orig, cp)
				checkSidecarPod(t, s, w, ec, gh, cp)
			})
		}
	}
	if sidecars == 0 {
		t.Fatal("no build renders the sidecar example")
	}
}

// envoyConfigFile writes the Envoy config the container reads (-c FILE) to a temporary file.
func envoyConfigFile(t *testing.T, s *set, w *workload, c *corev1.Container) string {
	t.Helper()
	args := append(slices.Clone(c.Command), c.Args...)
	i := slices.IndexFunc(args, func(a string) bool { return a == "-c" || a == "--config-path" })
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("envoy container: no -c FILE in %q", args)
	}
	data, _, err := s.fileFor(w, c, args[i+1])
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func compareSidecar(t *testing.T, orig, cp *envoyView) {
	t.Helper()
	if !equalPorts(orig.listenerPorts, cp.listenerPorts) {
		t.Errorf("listeners %v, envoy/sidecar.yaml has %v", cp.listenerPorts, orig.listenerPorts)
	}
	if !slices.Equal(sortedKeys(orig.clusters), sortedKeys(cp.clusters)) {
		t.Errorf("clusters %v, envoy/sidecar.yaml has %v", sortedKeys(cp.clusters), sortedKeys(orig.clusters))
	}
	for name, c := range orig.clusters {
		if other, ok := cp.clusters[name]; ok && !proto.Equal(c, other) {
			t.Errorf("cluster %q differs from envoy/sidecar.yaml's", name)
		}
	}
	if !proto.Equal(orig.authz, cp.authz) {
		t.Errorf("ext_authz settings differ from envoy/sidecar.yaml's:\n got  %v\n want %v", cp.authz, orig.authz)
	}
	if !slices.Equal(filterNames(orig.hcm), filterNames(cp.hcm)) {
		t.Errorf("http filters %v, envoy/sidecar.yaml has %v", filterNames(cp.hcm), filterNames(orig.hcm))
	}
	o, c := orig.hcm, cp.hcm
	same := map[string]bool{
		"normalize_path":                   proto.Equal(o.GetNormalizePath(), c.GetNormalizePath()),
		"merge_slashes":                    o.GetMergeSlashes() == c.GetMergeSlashes(),
		"path_with_escaped_slashes_action": o.GetPathWithEscapedSlashesAction() == c.GetPathWithEscapedSlashesAction(),
		"common_http_protocol_options":     proto.Equal(o.GetCommonHttpProtocolOptions(), c.GetCommonHttpProtocolOptions()),
		"use_remote_address":               proto.Equal(o.GetUseRemoteAddress(), c.GetUseRemoteAddress()),
		"xff_num_trusted_hops":             o.GetXffNumTrustedHops() == c.GetXffNumTrustedHops(),
		"route_config":                     proto.Equal(o.GetRouteConfig(), c.GetRouteConfig()),
	}
	for _, k := range sortedKeys(same) {
		if !same[k] {
			t.Errorf("http_connection_manager %s differs from envoy/sidecar.yaml's", k)
		}
	}
}

func equalPorts(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// checkSidecarPod: Envoy's listener is its containerPort and the only port Services reach; Envoy's gatehouse
// cluster is the pod's own decider on its authz.listen port; the app is reachable only on loopback.
func checkSidecarPod(t *testing.T, s *set, w *workload, ec *corev1.Container, gh *instance, cp *envoyView) {
	t.Helper()
	var listenerPort int32
	for _, p := range cp.listenerPorts {
		listenerPort = int32(p)
	}
	if _, ok := containerPort(ec, intstr.FromInt32(listenerPort)); !ok {
		t.Errorf("Envoy listens on %d, which the envoy container does not declare", listenerPort)
	}
	authzPort, _ := listenPort(t, gh, "authz.listen", gh.cfg.Authz.Listen)
	for name, wantPort := range map[string]int32{"gatehouse": authzPort, "app": -1} {
		c := cp.clusters[name]
		if c == nil {
			t.Errorf("no %q cluster", name)
			continue
		}
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				if ip := net.ParseIP(sa.GetAddress()); ip == nil || !ip.IsLoopback() {
					t.Errorf("cluster %q endpoint %s: want the pod's loopback (a container of the same pod)", name, sa.GetAddress())
				}
				if wantPort >= 0 && int32(sa.GetPortValue()) != wantPort {
					t.Errorf("cluster %q port %d, Gatehouse authz.listen port is %d", name, sa.GetPortValue(), wantPort)
				}
			}
		}
	}
	for _, c := range w.pod.Spec.Containers {
		if c.Name != ec.Name && c.Name != gh.c.Name && len(c.Ports) > 0 {
			t.Errorf("container %s declares ports: the app must listen on loopback behind Envoy", c.Name)
		}
	}
	for _, o := range s.all("Service") {
		svc := o.Obj.(*corev1.Service)
		if o.Namespace != w.obj.Namespace || !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, w) {
			continue
		}
		for _, p := range svc.Spec.Ports {
			c, n, ok := podPort(&w.pod.Spec, p.TargetPort)
			if ok && (c.Name != ec.Name || n != listenerPort) {
				t.Errorf("%s port %q reaches container %s port %d, bypassing Envoy's listener", o, p.Name, c.Name, n)
			}
		}
	}
}
