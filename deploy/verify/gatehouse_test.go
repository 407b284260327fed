package verify

import (
	"bytes"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"gatehouse/config"
	"gatehouse/mfa"
	"gatehouse/policy"
	"gatehouse/token"
	"gatehouse/users"
)

// signingSecretName is the Secret with the issuer's private key; no decider may come near it.
const signingSecretName = "gatehouse-signing-key"

// instance is one Gatehouse container as deployed: its workload, container and parsed config.
type instance struct {
	w    *workload
	c    *corev1.Container
	cfg  *config.Config
	keys *token.KeySet // nil when the build has no Secrets (the base)
}

func (g *instance) String() string { return fmt.Sprintf("%s container %s", g.w, g.c.Name) }

func (g *instance) decider() bool { return g.cfg.Authz.Enabled && !g.cfg.Issuer.Enabled }

// instances parses the config of every Gatehouse container in a build with Gatehouse's own loader, then checks
// what the config names (policy, users, keys, MFA key) is mounted where the config says.
func instances(t *testing.T, s *set) []*instance {
	t.Helper()
	var out []*instance
	for _, w := range s.workloads() {
		for _, c := range gatehouseContainers(&w.pod.Spec) {
			file, err := configArg(c)
			if err != nil {
				t.Errorf("%s: %v", w, err)
				continue
			}
			data, _, err := s.fileFor(w, c, file)
			if err != nil {
				t.Errorf("%s: config: %v", w, err)
				continue
			}
			cfg, err := config.Parse(file, data)
			if err != nil {
				t.Errorf("%s: Gatehouse refuses its config:\n%v", w, err)
				continue
			}
			g := &instance{w: w, c: c, cfg: cfg}
			checkInstanceFiles(t, s, g)
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no Gatehouse containers", s.build)
	}
	return out
}

func checkInstanceFiles(t *testing.T, s *set, g *instance) {
	t.Helper()
	pdata, _, err := s.fileFor(g.w, g.c, g.cfg.Policy)
	if err != nil {
		t.Errorf("%s: policy: %v", g, err)
		return
	}
	if ds := policy.Lint(g.cfg.Policy, pdata); policy.HasErrors(ds) {
		t.Errorf("%s: policy does not compile: %v", g, ds)
		return
	}
	pol, err := policy.Compile(g.cfg.Policy, pdata)
	if err != nil {
		t.Errorf("%s: policy: %v", g, err)
		return
	}
	if g.cfg.Keys == nil || g.cfg.Keys.Dir == "" {
		t.Errorf("%s: keys.dir unset: an ephemeral key (dev only) or HS256, which lets every decider mint tokens", g)
		return
	}
	// Issuer and deciders alike verify with every published public key, so a rotation can publish a new key first.
	vol, err := volumeAt(g.w, g.c, g.cfg.Keys.Dir)
	if err != nil {
		t.Errorf("%s: keys.dir: %v", g, err)
		return
	}
	if !slices.ContainsFunc(volumeSources(vol), func(src source) bool {
		return src.kind == "Secret" && hashless(src.name) == "gatehouse-public-keys"
	}) {
		t.Errorf("%s: keys.dir does not include the gatehouse-public-keys Secret", g)
	}
	if !s.complete() {
		return // the Secrets come with the overlays
	}
	m, err := s.mountFor(g.w, g.c, g.cfg.Keys.Dir)
	if err != nil {
		t.Errorf("%s: keys.dir: %v", g, err)
		return
	}
	if g.keys, err = token.LoadKeyDir(materialize(t, m)); err != nil {
		t.Errorf("%s: keys.dir: %v", g, err)
		return
	}
	if !g.cfg.Issuer.Enabled {
		return
	}
	udata, _, err := s.fileFor(g.w, g.c, g.cfg.Users)
	if err != nil {
		t.Errorf("%s: users: %v", g, err)
	} else if _, err := users.Parse(g.cfg.Users, udata, pol.HasRole); err != nil {
		t.Errorf("%s: users: %v", g, err)
	}
	if g.cfg.MFA.EncryptionKeyFile == "" {
		t.Errorf("%s: mfa.encryption_key_file unset: TOTP secrets would be sealed with an ephemeral key", g)
		return
	}
	kdata, _, err := s.fileFor(g.w, g.c, g.cfg.MFA.EncryptionKeyFile)
	if err != nil {
		t.Errorf("%s: mfa key: %v", g, err)
		return
	}
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, kdata, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mfa.LoadKeyFile(p); err != nil {
		t.Errorf("%s: %v", g, err)
	}
}

func completeBuilds() []string {
	var out []string
	for _, b := range builds {
		if b != "kubernetes/base" {
			out = append(out, b)
		}
	}
	return out
}

// TestGatehouseConfigs: every Gatehouse config parses with Gatehouse's rules, and its ports, probes, files and
// keys match the pod that runs it.
func TestGatehouseConfigs(t *testing.T) {
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			s := load(t, b)
			gs := instances(t, s)
			for _, g := range gs {
				if g.cfg.Redis == nil {
					t.Errorf("%s: no redis: revocations and sessions would not be shared between replicas", g)
				}
				if g.cfg.Keys != nil && g.cfg.Keys.HMACSecretFile != "" {
					t.Errorf("%s: HS256: every holder of the secret can mint tokens", g)
				}
				if g.cfg.Authz.Enabled {
					checkDeciderPorts(t, g)
				}
				if g.cfg.Issuer.Enabled {
					checkIssuerPorts(t, g)
				}
			}
			// The issuer signs what every decider verifies: same iss and aud everywhere.
			for _, g := range gs[1:] {
				if g.cfg.Issuer.URL != gs[0].cfg.Issuer.URL || g.cfg.Tokens.Audience != gs[0].cfg.Tokens.Audience {
					t.Errorf("%s: issuer.url %q / audience %q differ from %s's %q / %q", g, g.cfg.Issuer.URL,
						g.cfg.Tokens.Audience, gs[0], gs[0].cfg.Issuer.URL, gs[0].cfg.Tokens.Audience)
				}
			}
		})
	}
}

// listenPort returns the port of a host:port listen address and whether the pod IP can reach it.
func listenPort(t *testing.T, g *instance, key, addr string) (int32, bool) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %s %q: %v", g, key, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s: %s %q: %v", g, key, addr, err)
	}
	ip := net.ParseIP(host)
	return int32(n), host == "" || ip != nil && ip.IsUnspecified()
}

func checkDeciderPorts(t *testing.T, g *instance) {
	t.Helper()
	port, reachable := listenPort(t, g, "authz.listen", g.cfg.Authz.Listen)
	if !reachable {
		t.Errorf("%s: authz.listen %s: the kubelet's gRPC probe dials the pod IP; listen on 0.0.0.0", g, g.cfg.Authz.Listen)
	}
	if _, ok := containerPort(g.c, intstr.FromInt32(port)); !ok {
		t.Errorf("%s: authz.listen port %d is not a containerPort", g, port)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": g.c.ReadinessProbe, "liveness": g.c.LivenessProbe} {
		if p == nil || p.GRPC == nil || p.GRPC.Port != port {
			t.Errorf("%s: want a gRPC %s probe (grpc.health.v1) on port %d", g, name, port)
		}
	}
}

func checkIssuerPorts(t *testing.T, g *instance) {
	t.Helper()
	port, reachable := listenPort(t, g, "issuer.listen", g.cfg.Issuer.Listen)
	if !reachable {
		t.Errorf("%s: issuer.listen %s: the Service and probes dial the pod IP; listen on 0.0.0.0", g, g.cfg.Issuer.Listen)
	}
	if _, ok := containerPort(g.c, intstr.FromInt32(port)); !ok {
		t.Errorf("%s: issuer.listen port %d is not a containerPort", g, port)
	}
	for _, tt := range []struct {
		name string
		p    *corev1.Probe
		path string
	}{{"readiness", g.c.ReadinessProbe, "/readyz"}, {"liveness", g.c.LivenessProbe, "/healthz"}} {
		if tt.p == nil || tt.p.HTTPGet == nil || tt.p.HTTPGet.Path != tt.path {
			t.Errorf("%s: want an HTTP %s probe on %s", g, tt.name, tt.path)
			continue
		}
		if n, _ := containerPort(g.c, tt.p.HTTPGet.Port); n != port {
			t.Errorf("%s: %s probe on port %s, issuer.listen is %d", g, tt.name, tt.p.HTTPGet.Port.String(), port)
		}
	}
	if g.cfg.Login.HashConcurrency < 1 {
		t.Errorf("%s: set login.hash_concurrency: sized to the node's cores it can exceed the memory limit", g)
		return
	}
	// argon2id holds its memory cost per concurrent hash; leave 64 MiB for everything else.
	need := resource.NewQuantity(int64(g.cfg.Login.HashConcurrency)*64<<20+64<<20, resource.BinarySI)
	if lim := g.c.Resources.Limits.Memory(); lim.Cmp(*need) < 0 {
		t.Errorf("%s: memory limit %s < %s (login.hash_concurrency %d x 64 MiB argon2id + 64 MiB)", g, lim, need,
			g.cfg.Login.HashConcurrency)
	}
}

// TestKeysStayWithTheIssuer: deciders hold public keys only and no path to the private key; the issuer can sign;
// a token the issuer signs verifies at every decider with the decider's own iss/aud settings.
func TestKeysStayWithTheIssuer(t *testing.T) {
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			s := load(t, b)
			gs := instances(t, s)
			privateSecrets := secretsWithPrivateKeys(s)
			var issuers, deciders []*instance
			for _, g := range gs {
				if g.cfg.Issuer.Enabled {
					issuers = append(issuers, g)
				}
				if !g.decider() {
					continue
				}
				deciders = append(deciders, g)
				for _, src := range podSources(&g.w.pod.Spec) {
					if src.kind == "Secret" && (src.name == signingSecretName || privateSecrets[src.name]) {
						t.Errorf("%s: a decider's pod uses Secret %q, which holds a private key", g, src.name)
					}
				}
				if s.complete() {
					m, err := s.mountFor(g.w, g.c, g.cfg.Keys.Dir)
					if err != nil {
						t.Errorf("%s: %v", g, err)
						continue
					}
					for name, data := range m.files {
						if !strings.HasSuffix(name, ".pub.pem") || !onlyPublicPEM(data) {
							t.Errorf("%s: keys.dir holds %s, which is not a public key (.pub.pem)", g, name)
						}
					}
				}
				if g.keys != nil && g.keys.CanSign() {
					t.Errorf("%s: a decider can sign tokens", g)
				}
			}
			if len(issuers) == 0 || len(deciders) == 0 && b != "kubernetes/overlays/production" && b != "kubernetes/base" {
				t.Fatalf("want an issuer and (except production and base) deciders; got %d and %d", len(issuers), len(deciders))
			}
			if !s.complete() {
				return
			}
			// Every Gatehouse trusts every published public key (during a rotation the issuer still verifies
			// refresh tokens signed with the old key), and the key the issuer signs with is published.
			published := publishedKids(t, s)
			for _, g := range gs {
				for _, kid := range published {
					if g.keys != nil && !slices.Contains(g.keys.Kids(), kid) {
						t.Errorf("%s: does not trust published kid %s (its keys.dir lacks gatehouse-public-keys?)", g, kid)
					}
				}
			}
			for _, is := range issuers {
				if is.keys == nil || !is.keys.CanSign() {
					t.Errorf("%s: the issuer has no private key to sign with", is)
					continue
				}
				if !slices.Contains(published, is.keys.SigningKid()) {
					t.Errorf("%s: signs with kid %s, which gatehouse-public-keys does not publish to the deciders", is, is.keys.SigningKid())
				}
				raw := signAccessToken(t, is)
				for _, d := range deciders {
					if d.keys == nil {
						continue
					}
					v := token.NewVerifier(d.keys, token.VerifierOptions{Issuer: d.cfg.Issuer.URL,
						Audience: d.cfg.Tokens.Audience, Leeway: d.cfg.Tokens.Leeway.D()})
					if _, err := v.Verify(raw, token.Access); err != nil {
						t.Errorf("%s rejects an access token from %s: %v", d, is, err)
					}
				}
			}
		})
	}
}

func signAccessToken(t *testing.T, is *instance) string {
	t.Helper()
	signer, err := token.NewSigner(is.keys, time.Now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := signer.Sign(token.Claims{Type: token.Access, Issuer: is.cfg.Issuer.URL, Audience: is.cfg.Tokens.Audience,
		Subject: "u-1", SessionID: "s-1", Username: "alice", Roles: []string{"user"}, IssuedAt: now,
		ExpiresAt: now.Add(is.cfg.Tokens.AccessTTL.D())})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// publishedKids lists the kids in the public-key Secret (KID.pub.pem).
func publishedKids(t *testing.T, s *set) []string {
	t.Helper()
	var kids []string
	for _, o := range s.all("Secret") {
		if hashless(o.Name) != "gatehouse-public-keys" {
			continue
		}
		data, _ := s.sourceData(o.Namespace, source{"Secret", o.Name})
		for k := range data {
			kids = append(kids, strings.TrimSuffix(k, ".pub.pem"))
		}
	}
	if len(kids) == 0 {
		t.Fatalf("%s: no gatehouse-public-keys Secret with keys", s.build)
	}
	return kids
}

// hashless strips kustomize's 10-character content hash suffix from a generated name.
func hashless(name string) string {
	if i := strings.LastIndex(name, "-"); i > 0 && len(name)-i == 11 {
		return name[:i]
	}
	return name
}

// onlyPublicPEM reports whether data is one or more PEM blocks, none of them a private key.
func onlyPublicPEM(data []byte) bool {
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return n > 0 && len(bytes.TrimSpace(data)) == 0
		}
		if b.Type != "PUBLIC KEY" {
			return false
		}
		n++
	}
}

func secretsWithPrivateKeys(s *set) map[string]bool {
	out := map[string]bool{}
	for _, o := range s.all("Secret") {
		data, _ := s.sourceData(o.Namespace, source{"Secret", o.Name})
		for _, v := range data {
			if bytes.Contains(v, []byte("PRIVATE KEY-----")) {
				out[o.Name] = true
			}
		}
	}
	return out
}

// TestSecretsHoldWhatTheirNamesSay: the public-key Secret carries no private key, and only the signing Secret
// carries one.
func TestSecretsHoldWhatTheirNamesSay(t *testing.T) {
	for _, b := range completeBuilds() {
		t.Run(b, func(t *testing.T) {
			s := load(t, b)
			for _, o := range s.all("Secret") {
				base := hashless(o.Name)
				data, _ := s.sourceData(o.Namespace, source{"Secret", o.Name})
				switch base {
				case "gatehouse-public-keys":
					for k, v := range data {
						if !strings.HasSuffix(k, ".pub.pem") || !onlyPublicPEM(v) {
							t.Errorf("%s: %s is not a public key", o, k)
						}
					}
				case signingSecretName:
					for k, v := range data {
						if strings.HasSuffix(k, ".pub.pem") || !bytes.Contains(v, []byte("PRIVATE KEY-----")) {
							t.Errorf("%s: %s is not a private key (public keys belong in gatehouse-public-keys)", o, k)
						}
					}
				default:
					if secretsWithPrivateKeys(s)[o.Name] {
						t.Errorf("%s: holds a private key", o)
					}
				}
			}
		})
	}
}

// TestRedis: the store is durable (AOF, fsync every second), never evicts, is reachable from every Gatehouse at
// the address its config names, and admits them through its NetworkPolicy.
func TestRedis(t *testing.T) {
	for _, b := range builds {
		t.Run(b, func(t *testing.T) {
			s := load(t, b)
			w := s.workload("StatefulSet", "gatehouse", "gatehouse-redis")
			if w == nil {
				t.Fatal("no gatehouse-redis StatefulSet")
			}
			checkRedisServer(t, s, w)
			for _, g := range instances(t, s) {
				if g.cfg.Redis == nil {
					continue
				}
				checkRedisClient(t, s, g, w)
			}
		})
	}
}

func checkRedisServer(t *testing.T, s *set, w *workload) {
	t.Helper()
	c := findContainer(&w.pod.Spec, "redis")
	if c == nil {
		t.Fatalf("%s: no redis container", w)
	}
	args := append(append([]string{}, c.Command...), c.Args...)
	if len(args) != 2 || args[0] != "redis-server" {
		t.Fatalf("%s: want `redis-server CONF`, got %q", w, args)
	}
	data, _, err := s.fileFor(w, c, args[1])
	if err != nil {
		t.Fatalf("%s: %v", w, err)
	}
	conf := redisConf(data)
	for key, want := range map[string]string{
		"appendonly":       "yes",
		"appendfsync":      "everysec",
		"maxmemory-policy": "noeviction",
	} {
		if conf[key] != want {
			t.Errorf("%s: redis.conf %s = %q, want %q", w, key, conf[key], want)
		}
	}
	// The AOF must live on the claim, not in the container.
	dir := conf["dir"]
	onClaim := false
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) == filepath.Clean(dir) {
			for _, pvc := range statefulSetClaims(w) {
				onClaim = onClaim || pvc == vm.Name
			}
		}
	}
	if !onClaim {
		t.Errorf("%s: redis.conf dir %q is not a volumeClaimTemplate mount", w, dir)
	}
	if mm, err := resource.ParseQuantity(strings.TrimSuffix(strings.ToUpper(conf["maxmemory"]), "B") + "i"); err != nil {
		t.Errorf("%s: redis.conf maxmemory %q: want a size like 200mb", w, conf["maxmemory"])
	} else if lim := c.Resources.Limits.Memory(); lim.Cmp(mm) <= 0 {
		t.Errorf("%s: maxmemory %s must stay below the memory limit %s", w, conf["maxmemory"], lim)
	}
}

func statefulSetClaims(w *workload) []string {
	var out []string
	if st, ok := w.obj.Obj.(*appsv1.StatefulSet); ok {
		for _, pvc := range st.Spec.VolumeClaimTemplates {
			out = append(out, pvc.Name)
		}
	}
	return out
}

// redisConf reads `directive value` lines (last one wins, as in Redis).
func redisConf(data []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		out[strings.ToLower(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return out
}

func checkRedisClient(t *testing.T, s *set, g *instance, redis *workload) {
	t.Helper()
	u, err := url.Parse(g.cfg.Redis.URL)
	if err != nil {
		t.Fatalf("%s: redis.url: %v", g, err)
	}
	host, ns := u.Hostname(), g.w.obj.Namespace
	name, rest, _ := strings.Cut(host, ".")
	if rest != "" {
		var svcDomain string
		ns, svcDomain, _ = strings.Cut(rest, ".")
		if svcDomain != "svc" && svcDomain != "svc.cluster.local" {
			t.Errorf("%s: redis.url host %q: want NAME[.NAMESPACE.svc[.cluster.local]]", g, host)
			return
		}
	}
	port := u.Port()
	if port == "" {
		port = "6379"
	}
	o := s.find("Service", ns, name)
	if o == nil {
		t.Errorf("%s: redis.url %s names Service %s/%s, which is not in the build", g, g.cfg.Redis.URL, ns, name)
		return
	}
	svc := o.Obj.(*corev1.Service)
	if !selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, redis) {
		t.Errorf("%s: Service %s does not select the Redis pods", g, o)
	}
	found := false
	for _, p := range svc.Spec.Ports {
		found = found || strconv.Itoa(int(p.Port)) == port
	}
	if !found {
		t.Errorf("%s: redis.url port %s is not a port of %s", g, port, o)
	}
	// Every NetworkPolicy guarding Redis must admit this pod.
	for _, npo := range s.all("NetworkPolicy") {
		np := npo.Obj.(*networkingv1.NetworkPolicy)
		if npo.Namespace != redis.obj.Namespace || !selects(t, &np.Spec.PodSelector, redis) {
			continue
		}
		if !admits(t, np, g.w, npo.Namespace) {
			t.Errorf("%s: NetworkPolicy %s does not admit this pod to Redis (labels %v)", g, npo, g.w.pod.Labels)
		}
	}
}

func admits(t *testing.T, np *networkingv1.NetworkPolicy, from *workload, npNamespace string) bool {
	t.Helper()
	for _, rule := range np.Spec.Ingress {
		if len(rule.From) == 0 {
			return true
		}
		for _, peer := range rule.From {
			if peer.PodSelector == nil || peer.NamespaceSelector != nil || peer.IPBlock != nil {
				continue // only same-namespace pod selectors are used here
			}
			sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil {
				t.Fatal(err)
			}
			if from.obj.Namespace == npNamespace && sel.Matches(labels.Set(from.pod.Labels)) {
				return true
			}
		}
	}
	return false
}
