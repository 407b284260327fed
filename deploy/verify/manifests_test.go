package verify

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestRenderedObjectsDecodeStrictly renders every kustomization with kustomize (in-process) and decodes each
// object strictly into its upstream API type (load fails the test on the first error).
func TestRenderedObjectsDecodeStrictly(t *testing.T) {
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			s := load(t, b)
			if len(s.workloads()) == 0 {
				t.Fatal("no workloads rendered")
			}
		})
	}
}

// TestReferences: every selector selects something, every port and every ConfigMap/Secret a pod needs exists in
// the same build.
func TestReferences(t *testing.T) {
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			s := load(t, b)
			for _, w := range s.workloads() {
				if !selects(t, w.selector, w) {
					t.Errorf("%s: selector %v does not match its own pod labels %v", w, w.selector.MatchLabels, w.pod.Labels)
				}
				checkPodReferences(t, s, w)
			}
			for _, o := range s.all("Service") {
				checkService(t, s, o, o.Obj.(*corev1.Service))
			}
			for _, o := range s.all("PodDisruptionBudget") {
				pdb := o.Obj.(*policyv1.PodDisruptionBudget)
				if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
					t.Errorf("%s: want exactly one of minAvailable and maxUnavailable", o)
				}
				if len(s.podsSelected(t, o.Namespace, pdb.Spec.Selector)) == 0 {
					t.Errorf("%s: selector %v matches no workload", o, pdb.Spec.Selector.MatchLabels)
				}
			}
			for _, o := range s.all("NetworkPolicy") {
				checkNetworkPolicy(t, s, o, o.Obj.(*networkingv1.NetworkPolicy))
			}
		})
	}
}

func checkPodReferences(t *testing.T, s *set, w *workload) {
	t.Helper()
	pod := &w.pod.Spec
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	claims := map[string]bool{}
	for _, pvc := range statefulSetClaims(w) {
		claims[pvc] = true
	}
	for _, c := range allContainers(pod) {
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] && !claims[vm.Name] {
				t.Errorf("%s: container %s mounts undeclared volume %q", w, c.Name, vm.Name)
			}
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p == nil {
				continue
			}
			var port intstr.IntOrString
			switch {
			case p.HTTPGet != nil:
				port = p.HTTPGet.Port
			case p.TCPSocket != nil:
				port = p.TCPSocket.Port
			case p.GRPC != nil:
				port = intstr.FromInt32(p.GRPC.Port)
			default:
				continue // exec
			}
			if _, ok := containerPort(c, port); !ok {
				t.Errorf("%s: container %s probes port %s, which it does not declare", w, c.Name, port.String())
			}
		}
	}
	for _, src := range podSources(pod) {
		if _, ok := s.sourceData(w.obj.Namespace, src); ok {
			continue
		}
		if !s.complete() && src.kind == "Secret" && secretsFromOverlays[src.name] {
			continue
		}
		t.Errorf("%s: uses %s %q, which is not in the build", w, src.kind, src.name)
	}
}

func checkService(t *testing.T, s *set, o *object, svc *corev1.Service) {
	t.Helper()
	if len(svc.Spec.Selector) == 0 {
		t.Errorf("%s: no selector", o)
		return
	}
	pods := s.podsSelected(t, o.Namespace, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
	if len(pods) == 0 {
		t.Errorf("%s: selector %v matches no workload's pods", o, svc.Spec.Selector)
	}
	for _, p := range svc.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, w := range pods {
			if _, _, ok := podPort(&w.pod.Spec, target); !ok {
				t.Errorf("%s: port %q targets %s, which no container of %s declares", o, p.Name, target.String(), w)
			}
		}
	}
}

func checkNetworkPolicy(t *testing.T, s *set, o *object, np *networkingv1.NetworkPolicy) {
	t.Helper()
	pods := s.podsSelected(t, o.Namespace, &np.Spec.PodSelector)
	if len(pods) == 0 {
		t.Errorf("%s: podSelector matches no workload", o)
	}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				continue
			}
			for _, w := range pods {
				if _, _, ok := podPort(&w.pod.Spec, *p.Port); !ok {
					t.Errorf("%s: admits port %s, which %s does not declare", o, p.Port.String(), w)
				}
			}
		}
		for _, peer := range rule.From {
			if peer.PodSelector != nil && peer.NamespaceSelector == nil && len(s.podsSelected(t, o.Namespace, peer.PodSelector)) == 0 {
				t.Errorf("%s: admits pods %v, but no workload in %s has them", o, peer.PodSelector.MatchLabels, o.Namespace)
			}
		}
	}
}

// TestPodHardening: every container runs as non-root, read-only, without capabilities or privilege escalation,
// under the RuntimeDefault seccomp profile, with resources, from a pinned image; no pod gets an API token.
func TestPodHardening(t *testing.T) {
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			s := load(t, b)
			for _, w := range s.workloads() {
				pod := &w.pod.Spec
				if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
					t.Errorf("%s: automountServiceAccountToken must be false (nothing here calls the API)", w)
				}
				if pod.HostNetwork || pod.HostPID || pod.HostIPC {
					t.Errorf("%s: host namespaces", w)
				}
				psc := pod.SecurityContext
				if psc == nil {
					psc = &corev1.PodSecurityContext{}
				}
				for _, c := range allContainers(pod) {
					checkContainerHardening(t, w, psc, c)
				}
			}
		})
	}
}

func checkContainerHardening(t *testing.T, w *workload, psc *corev1.PodSecurityContext, c *corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: container %s has no securityContext", w, c.Name)
		return
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: container %s: runAsNonRoot must be true", w, c.Name)
	}
	for _, uid := range []*int64{sc.RunAsUser, psc.RunAsUser} {
		if uid != nil && *uid == 0 {
			t.Errorf("%s: container %s: runAsUser 0", w, c.Name)
		}
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: container %s: readOnlyRootFilesystem must be true", w, c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: container %s: allowPrivilegeEscalation must be false", w, c.Name)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: container %s: privileged", w, c.Name)
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 || !containsCap(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: container %s: capabilities must drop ALL and add none", w, c.Name)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: container %s: seccompProfile must be RuntimeDefault", w, c.Name)
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Errorf("%s: container %s: want cpu and memory requests and a memory limit", w, c.Name)
	}
	tag, digest := imageTag(c.Image)
	if !digest && (tag == "" || tag == "latest") {
		t.Errorf("%s: container %s: image %q is not pinned (want a version tag or a digest, never latest)", w, c.Name, c.Image)
	}
}

func containsCap(caps []corev1.Capability, want corev1.Capability) bool {
	for _, c := range caps {
		if c == want {
			return true
		}
	}
	return false
}

// TestAvailability: the replica counts, budgets and spreading each build promises.
func TestAvailability(t *testing.T) {
	tests := []struct {
		build       string
		minReplicas int32
		maxReplicas int32
		production  bool
	}{
		{"kubernetes/base", 2, 2, false},
		{"kubernetes/overlays/dev", 1, 1, false},
		{"kubernetes/overlays/production", 3, 100, true},
		{"istio", 3, 100, true},
	}
	for _, tt := range tests {
		t.Run(tt.build, func(t *testing.T) {
			s := load(t, tt.build)
			w := s.workload("Deployment", "gatehouse", "gatehouse-issuer")
			if w == nil {
				t.Fatal("no gatehouse-issuer Deployment")
			}
			if w.replicas < tt.minReplicas || w.replicas > tt.maxReplicas {
				t.Errorf("issuer replicas %d, want %d..%d", w.replicas, tt.minReplicas, tt.maxReplicas)
			}
			pdb := s.find("PodDisruptionBudget", "gatehouse", "gatehouse-issuer")
			if pdb == nil {
				t.Fatal("no PodDisruptionBudget for the issuer")
			}
			if !tt.production {
				return
			}
			spec := pdb.Obj.(*policyv1.PodDisruptionBudget).Spec
			if spec.MinAvailable == nil || spec.MinAvailable.IntValue() < 2 || int32(spec.MinAvailable.IntValue()) >= w.replicas {
				t.Errorf("issuer PDB minAvailable %v: want at least 2 and below the %d replicas", spec.MinAvailable, w.replicas)
			}
			for _, d := range []*workload{w, s.workload("Deployment", "gatehouse", "gatehouse-authz")} {
				if d == nil {
					continue
				}
				checkSpread(t, d)
			}
		})
	}
}

func checkSpread(t *testing.T, w *workload) {
	t.Helper()
	pod := &w.pod.Spec
	if pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil {
		t.Errorf("%s: no pod anti-affinity", w)
	} else {
		terms := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		ok := false
		for _, term := range terms {
			if term.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && selects(t, term.PodAffinityTerm.LabelSelector, w) {
				ok = true
			}
		}
		for _, term := range pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && selects(t, term.LabelSelector, w) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: anti-affinity does not keep its own pods apart by hostname", w)
		}
	}
	zone := false
	for _, c := range pod.TopologySpreadConstraints {
		if !selects(t, c.LabelSelector, w) {
			t.Errorf("%s: topology spread on %s selects other pods", w, c.TopologyKey)
		}
		if c.TopologyKey == "topology.kubernetes.io/zone" {
			zone = true
		}
	}
	if !zone {
		t.Errorf("%s: no topology spread over zones", w)
	}
}
