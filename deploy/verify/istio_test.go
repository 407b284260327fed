package verify

import (
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	istioBuild    = "istio"
	istioRootNS   = "istio-system" // meshConfig.rootNamespace's default
	providerName  = "gatehouse"
	maxAuthzDelay = time.Second
)

// istiodValues is the part of the istiod Helm chart's values this file sets. Only meshConfig is allowed, so a
// typo at the top level is an error; meshConfig itself is decoded strictly against istio.io/api's MeshConfig.
type istiodValues struct {
	MeshConfig json.RawMessage `json:"meshConfig"`
}

// istioOperator is a minimal hand-written schema of the IstioOperator fields used: the operator's Go types live in
// istio.io/istio (the whole control plane), not in istio.io/api. meshConfig is decoded like istiodValues'.
type istioOperator struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	} `json:"spec"`
}

func meshConfig(t *testing.T, raw json.RawMessage, file string) *meshv1alpha1.MeshConfig {
	t.Helper()
	if len(raw) == 0 {
		t.Fatalf("%s: no meshConfig", file)
	}
	mc := &meshv1alpha1.MeshConfig{}
	if err := protojson.Unmarshal(raw, mc); err != nil {
		t.Fatalf("%s: meshConfig: %v", file, err)
	}
	return mc
}

func readStrict(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestIstioMeshConfig: the Helm values and the IstioOperator carry the same strictly valid meshConfig, whose
// "gatehouse" provider fails closed with 503 and a bounded timeout and points at the decider Service's port, which
// leads to the deciders' authz.listen.
func TestIstioMeshConfig(t *testing.T) {
	var hv istiodValues
	readStrict(t, deployDir+"/istio/istiod-values.yaml", &hv)
	fromHelm := meshConfig(t, hv.MeshConfig, "istiod-values.yaml")
	var op istioOperator
	readStrict(t, deployDir+"/istio/istio-operator.yaml", &op)
	if op.APIVersion != "install.istio.io/v1alpha1" || op.Kind != "IstioOperator" {
		t.Errorf("istio-operator.yaml: %s/%s, want install.istio.io/v1alpha1 IstioOperator", op.APIVersion, op.Kind)
	}
	fromOperator := meshConfig(t, op.Spec.MeshConfig, "istio-operator.yaml")
	if !proto.Equal(fromHelm, fromOperator) {
		t.Errorf("istiod-values.yaml and istio-operator.yaml differ:\n%v\n%v", fromHelm, fromOperator)
	}
	if n := fromHelm.GetPathNormalization().GetNormalization(); n != meshv1alpha1.MeshConfig_ProxyPathNormalization_MERGE_SLASHES {
		t.Errorf("pathNormalization %v: want MERGE_SLASHES, the normalisation Gatehouse's own sidecar Envoy applies", n)
	}

	p := provider(t, fromHelm)
	if p.GetFailOpen() {
		t.Error("failOpen: true lets requests through when Gatehouse is unreachable")
	}
	if p.GetStatusOnError() != "503" {
		t.Errorf("statusOnError %q: want \"503\" (Istio's default 403 disguises an outage as a denial)", p.GetStatusOnError())
	}
	if d := p.GetTimeout().AsDuration(); d <= 0 || d > maxAuthzDelay {
		t.Errorf("timeout %v: want set and at most %v (Istio's default is 600s)", d, maxAuthzDelay)
	}

	s := load(t, istioBuild)
	name, ns, ok := strings.Cut(strings.TrimSuffix(p.GetService(), ".svc.cluster.local"), ".")
	if !ok || strings.Contains(ns, ".") {
		t.Fatalf("service %q: want NAME.NAMESPACE.svc.cluster.local", p.GetService())
	}
	o := s.find("Service", ns, name)
	if o == nil {
		t.Fatalf("service %s: no such Service in the istio build", p.GetService())
	}
	svc := o.Obj.(*corev1.Service)
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if uint32(svc.Spec.Ports[i].Port) == p.GetPort() {
			port = &svc.Spec.Ports[i]
		}
	}
	if port == nil {
		t.Fatalf("port %d is not a port of %s", p.GetPort(), o)
	}
	if port.AppProtocol == nil || *port.AppProtocol != "grpc" {
		t.Errorf("%s port %d: want appProtocol grpc so Istio speaks HTTP/2 to it", o, port.Port)
	}
	byWorkload := map[*object]*instance{}
	for _, g := range instances(t, s) {
		byWorkload[g.w.obj] = g
	}
	pods := s.podsSelected(t, ns, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
	if len(pods) == 0 {
		t.Fatalf("%s selects no pods", o)
	}
	for _, w := range pods {
		g := byWorkload[w.obj]
		if g == nil || !g.decider() {
			t.Errorf("%s: %s is not a Gatehouse decider (authz on, issuer off)", o, w)
			continue
		}
		c, n, ok := podPort(&w.pod.Spec, port.TargetPort)
		authz, _ := listenPort(t, g, "authz.listen", g.cfg.Authz.Listen)
		if !ok || c != g.c || n != authz {
			t.Errorf("%s port %d does not lead to %s's authz.listen port %d", o, port.Port, g, authz)
		}
	}
}

func provider(t *testing.T, mc *meshv1alpha1.MeshConfig) *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider {
	t.Helper()
	for _, ep := range mc.GetExtensionProviders() {
		if ep.GetName() == providerName {
			if ep.GetEnvoyExtAuthzGrpc() == nil {
				t.Fatalf("extension provider %q is not envoyExtAuthzGrpc", providerName)
			}
			return ep.GetEnvoyExtAuthzGrpc()
		}
	}
	t.Fatalf("no extension provider %q", providerName)
	return nil
}

func istioSpec[M proto.Message](t *testing.T, s *set, kind string) map[*object]M {
	t.Helper()
	out := map[*object]M{}
	for _, o := range s.all(kind) {
		out[o] = o.Obj.(*istioObject).Message.(M)
	}
	if len(out) == 0 {
		t.Fatalf("no %s in the %s build", kind, s.build)
	}
	return out
}

// TestIstioPolicies: the CUSTOM AuthorizationPolicy names the provider and has rules; the optional
// RequestAuthentication trusts exactly the issuer (iss, JWKS through the issuer Service, audience) and forwards
// the token to Gatehouse; only mTLS peers reach the deciders.
func TestIstioPolicies(t *testing.T) {
	s := load(t, istioBuild)
	var issuer *instance
	for _, g := range instances(t, s) {
		if g.cfg.Issuer.Enabled {
			issuer = g
		}
	}
	if issuer == nil {
		t.Fatal("no issuer in the istio build")
	}
	var authzSelector *typev1beta1.WorkloadSelector
	for o, ap := range istioSpec[*securityv1.AuthorizationPolicy](t, s, "AuthorizationPolicy") {
		if ap.GetAction() != securityv1.AuthorizationPolicy_CUSTOM {
			continue
		}
		if ap.GetProvider().GetName() != providerName {
			t.Errorf("%s: provider %q, meshConfig registers %q", o, ap.GetProvider().GetName(), providerName)
		}
		if len(ap.GetRules()) == 0 {
			t.Errorf("%s: no rules: a CUSTOM policy without rules never sends a request to Gatehouse", o)
		}
		if o.Namespace != istioRootNS && len(ap.GetSelector().GetMatchLabels()) == 0 {
			t.Errorf("%s: want a workload selector or the root namespace", o)
		}
		authzSelector = ap.GetSelector()
	}
	if authzSelector == nil {
		t.Fatal("no CUSTOM AuthorizationPolicy")
	}
	for o, ra := range istioSpec[*securityv1.RequestAuthentication](t, s, "RequestAuthentication") {
		if !proto.Equal(ra.GetSelector(), authzSelector) {
			t.Errorf("%s: selects %v, the CUSTOM policy selects %v", o, ra.GetSelector(), authzSelector)
		}
		if len(ra.GetJwtRules()) != 1 {
			t.Errorf("%s: want one jwtRule (Gatehouse's issuer)", o)
		}
		for _, r := range ra.GetJwtRules() {
			if r.GetIssuer() != issuer.cfg.Issuer.URL {
				t.Errorf("%s: issuer %q, Gatehouse's issuer.url is %q", o, r.GetIssuer(), issuer.cfg.Issuer.URL)
			}
			if len(r.GetAudiences()) != 1 || r.GetAudiences()[0] != issuer.cfg.Tokens.Audience {
				t.Errorf("%s: audiences %v, want [%s]", o, r.GetAudiences(), issuer.cfg.Tokens.Audience)
			}
			if !r.GetForwardOriginalToken() {
				t.Errorf("%s: forwardOriginalToken must be true: Istio strips the verified token otherwise, and Gatehouse sees none", o)
			}
			checkJWKSURI(t, s, issuer, r.GetJwksUri())
		}
	}
	for o, pa := range istioSpec[*securityv1.PeerAuthentication](t, s, "PeerAuthentication") {
		if pa.GetMtls().GetMode() != securityv1.PeerAuthentication_MutualTLS_STRICT {
			t.Errorf("%s: mtls mode %v, want STRICT", o, pa.GetMtls().GetMode())
		}
		sel := &metav1.LabelSelector{MatchLabels: pa.GetSelector().GetMatchLabels()}
		if len(s.podsSelected(t, o.Namespace, sel)) == 0 {
			t.Errorf("%s: selects no workload", o)
		}
	}
}

// checkJWKSURI: the URI reaches the issuer's /.well-known/jwks.json through its Service.
func checkJWKSURI(t *testing.T, s *set, issuer *instance, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" {
		t.Errorf("jwksUri %q: want an http(s) URL", raw)
		return
	}
	if u.Path != "/.well-known/jwks.json" {
		t.Errorf("jwksUri %q: the issuer serves its keys at /.well-known/jwks.json", raw)
	}
	name, rest, _ := strings.Cut(u.Hostname(), ".")
	ns, domain, _ := strings.Cut(rest, ".")
	if domain != "svc" && domain != "svc.cluster.local" {
		t.Errorf("jwksUri host %q: want NAME.NAMESPACE.svc[.cluster.local]", u.Hostname())
		return
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if u.Port() != "" {
		port, _ = strconv.Atoi(u.Port())
	}
	o := s.find("Service", ns, name)
	if o == nil {
		t.Errorf("jwksUri %q: no Service %s/%s", raw, ns, name)
		return
	}
	svc := o.Obj.(*corev1.Service)
	if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, issuer.w) {
		t.Errorf("jwksUri %q: %s does not select the issuer", raw, o)
	}
	issuerPort, _ := listenPort(t, issuer, "issuer.listen", issuer.cfg.Issuer.Listen)
	for _, p := range svc.Spec.Ports {
		if int(p.Port) != port {
			continue
		}
		if c, n, ok := podPort(&issuer.w.pod.Spec, p.TargetPort); ok && c == issuer.c && n == issuerPort {
			return
		}
	}
	t.Errorf("jwksUri %q: %s port %d does not lead to the issuer's issuer.listen port %d", raw, o, port, issuerPort)
}
