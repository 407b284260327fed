package verify

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// set is one rendered kustomization, every object decoded strictly.
type set struct {
	build string
	objs  []*object
}

var (
	setCache = map[string]*set{}
)

// load renders build and decodes every object strictly; any decoding error fails the test.
func load(t *testing.T, build string) *set {
	t.Helper()
	if s, ok := setCache[build]; ok {
		return s
	}
	r := render(t, build)
	s := &set{build: build}
	seen := map[string]bool{}
	for _, doc := range r.docs {
		o, err := decodeStrict(doc)
		if err != nil {
			t.Fatalf("%s: %v\n%s", build, err, doc)
		}
		if seen[o.String()] {
			t.Fatalf("%s: %s appears twice", build, o)
		}
		seen[o.String()] = true
		s.objs = append(s.objs, o)
	}
	setCache[build] = s
	return s
}

// complete reports whether the build carries its Secrets (the base leaves them to the overlays).
func (s *set) complete() bool { return s.build != "kubernetes/base" }

func (s *set) find(kind, ns, name string) *object {
	for _, o := range s.objs {
		if o.Kind == kind && o.Namespace == ns && o.Name == name {
			return o
		}
	}
	return nil
}

func (s *set) all(kind string) []*object {
	var out []*object
	for _, o := range s.objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func (s *set) configMap(ns, name string) *corev1.ConfigMap {
	if o := s.find("ConfigMap", ns, name); o != nil {
		return o.Obj.(*corev1.ConfigMap)
	}
	return nil
}

func (s *set) secret(ns, name string) *corev1.Secret {
	if o := s.find("Secret", ns, name); o != nil {
		return o.Obj.(*corev1.Secret)
	}
	return nil
}

// workload is a Deployment or StatefulSet: what runs pods.
type workload struct {
	obj      *object
	replicas int32
	selector *metav1.LabelSelector
	pod      *corev1.PodTemplateSpec
}

func (w *workload) String() string { return w.obj.String() }

func (s *set) workloads() []*workload {
	var out []*workload
	for _, o := range s.objs {
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			out = append(out, &workload{o, replicas(v.Spec.Replicas), v.Spec.Selector, &v.Spec.Template})
		case *appsv1.StatefulSet:
			out = append(out, &workload{o, replicas(v.Spec.Replicas), v.Spec.Selector, &v.Spec.Template})
		}
	}
	return out
}

func (s *set) workload(kind, ns, name string) *workload {
	for _, w := range s.workloads() {
		if w.obj.Kind == kind && w.obj.Namespace == ns && w.obj.Name == name {
			return w
		}
	}
	return nil
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1 // the API default
	}
	return *p
}

// selects reports whether a label selector picks the workload's pods.
func selects(t *testing.T, sel *metav1.LabelSelector, w *workload) bool {
	t.Helper()
	ls, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("selector %v: %v", sel, err)
	}
	return !ls.Empty() && ls.Matches(labels.Set(w.pod.Labels))
}

// podsSelected returns the workloads in ns whose pods match the selector.
func (s *set) podsSelected(t *testing.T, ns string, sel *metav1.LabelSelector) []*workload {
	t.Helper()
	var out []*workload
	for _, w := range s.workloads() {
		if w.obj.Namespace == ns && selects(t, sel, w) {
			out = append(out, w)
		}
	}
	return out
}

// containerPort resolves a named or numbered port on a container; ok is false when the container has no such port.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// podPort resolves a port on any container of the pod.
func podPort(pod *corev1.PodSpec, p intstr.IntOrString) (*corev1.Container, int32, bool) {
	for i := range pod.Containers {
		if n, ok := containerPort(&pod.Containers[i], p); ok {
			return &pod.Containers[i], n, true
		}
	}
	return nil, 0, false
}

// source is a ConfigMap or Secret behind a volume.
type source struct {
	kind string // "ConfigMap" or "Secret"
	name string
}

// volumeSources lists what a volume projects.
func volumeSources(v *corev1.Volume) []source {
	var out []source
	switch {
	case v.ConfigMap != nil:
		out = append(out, source{"ConfigMap", v.ConfigMap.Name})
	case v.Secret != nil:
		out = append(out, source{"Secret", v.Secret.SecretName})
	case v.Projected != nil:
		for _, p := range v.Projected.Sources {
			if p.ConfigMap != nil {
				out = append(out, source{"ConfigMap", p.ConfigMap.Name})
			}
			if p.Secret != nil {
				out = append(out, source{"Secret", p.Secret.Name})
			}
		}
	}
	return out
}

// podSources lists every ConfigMap and Secret a pod uses: volumes, env, envFrom, image pull secrets.
func podSources(pod *corev1.PodSpec) []source {
	var out []source
	for i := range pod.Volumes {
		out = append(out, volumeSources(&pod.Volumes[i])...)
	}
	for _, s := range pod.ImagePullSecrets {
		out = append(out, source{"Secret", s.Name})
	}
	for _, c := range allContainers(pod) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				out = append(out, source{"ConfigMap", e.ConfigMapRef.Name})
			}
			if e.SecretRef != nil {
				out = append(out, source{"Secret", e.SecretRef.Name})
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				out = append(out, source{"ConfigMap", r.Name})
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				out = append(out, source{"Secret", r.Name})
			}
		}
	}
	return out
}

func allContainers(pod *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range pod.InitContainers {
		out = append(out, &pod.InitContainers[i])
	}
	for i := range pod.Containers {
		out = append(out, &pod.Containers[i])
	}
	return out
}

func (s *set) sourceData(ns string, src source) (map[string][]byte, bool) {
	switch src.kind {
	case "ConfigMap":
		cm := s.configMap(ns, src.name)
		if cm == nil {
			return nil, false
		}
		out := map[string][]byte{}
		for k, v := range cm.Data {
			out[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			out[k] = v
		}
		return out, true
	case "Secret":
		sec := s.secret(ns, src.name)
		if sec == nil {
			return nil, false
		}
		out := map[string][]byte{}
		for k, v := range sec.Data {
			out[k] = v
		}
		for k, v := range sec.StringData {
			out[k] = []byte(v)
		}
		return out, true
	}
	return nil, false
}

// mount is a directory a container sees, with the files the kubelet would put there.
type mount struct {
	dir     string
	volume  *corev1.Volume
	sources []source
	files   map[string][]byte
}

// mountFor finds the volume mounted at dir in container c and the files in it. items/subPath mounts are not
// used by these manifests and are refused, so a file name is always its key.
func (s *set) mountFor(w *workload, c *corev1.Container, dir string) (*mount, error) {
	vol, err := volumeAt(w, c, dir)
	if err != nil {
		return nil, err
	}
	m := &mount{dir: dir, volume: vol, sources: volumeSources(vol), files: map[string][]byte{}}
	if len(m.sources) == 0 {
		return nil, fmt.Errorf("container %s: volume %q at %s is not a ConfigMap or Secret", c.Name, vol.Name, dir)
	}
	for _, src := range m.sources {
		data, ok := s.sourceData(w.obj.Namespace, src)
		if !ok {
			return nil, fmt.Errorf("container %s: %s %q (mounted at %s) is not in the build", c.Name, src.kind, src.name, dir)
		}
		for k, v := range data {
			if _, dup := m.files[k]; dup {
				return nil, fmt.Errorf("container %s: %s/%s is projected twice", c.Name, dir, k)
			}
			m.files[k] = v
		}
	}
	return m, nil
}

// volumeAt finds the volume container c mounts at dir.
func volumeAt(w *workload, c *corev1.Container, dir string) (*corev1.Volume, error) {
	var vm *corev1.VolumeMount
	for i := range c.VolumeMounts {
		if path.Clean(c.VolumeMounts[i].MountPath) == path.Clean(dir) {
			vm = &c.VolumeMounts[i]
		}
	}
	if vm == nil {
		return nil, fmt.Errorf("container %s mounts nothing at %s", c.Name, dir)
	}
	if vm.SubPath != "" || vm.SubPathExpr != "" {
		return nil, fmt.Errorf("container %s: %s is a subPath mount, which never sees updates", c.Name, dir)
	}
	var vol *corev1.Volume
	for i := range w.pod.Spec.Volumes {
		if w.pod.Spec.Volumes[i].Name == vm.Name {
			vol = &w.pod.Spec.Volumes[i]
		}
	}
	if vol == nil {
		return nil, fmt.Errorf("container %s: volume %q is not declared", c.Name, vm.Name)
	}
	return vol, nil
}

// fileFor returns the content of an absolute file path as container c would read it.
func (s *set) fileFor(w *workload, c *corev1.Container, p string) ([]byte, *mount, error) {
	m, err := s.mountFor(w, c, path.Dir(p))
	if err != nil {
		return nil, nil, err
	}
	data, ok := m.files[path.Base(p)]
	if !ok {
		return nil, m, fmt.Errorf("container %s: %s: no key %q in %v", c.Name, p, path.Base(p), m.sources)
	}
	return data, m, nil
}

// materialize writes a mount's files into a temporary folder, for loaders that read directories.
func materialize(t *testing.T, m *mount) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range m.files {
		if strings.ContainsAny(name, `/\`) {
			t.Fatalf("key %q is not a file name", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// gatehouseContainers returns the pod's containers that run the Gatehouse image.
func gatehouseContainers(pod *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for _, c := range allContainers(pod) {
		if imageRepo(c.Image) == "gatehouse" || strings.HasSuffix(imageRepo(c.Image), "/gatehouse") {
			out = append(out, c)
		}
	}
	return out
}

func findContainer(pod *corev1.PodSpec, name string) *corev1.Container {
	for _, c := range allContainers(pod) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// imageRepo strips the tag and digest from an image reference.
func imageRepo(image string) string {
	repo, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo
}

// imageTag returns the tag ("" when absent) and whether the reference carries a digest.
func imageTag(image string) (tag string, digest bool) {
	repo, d, hasDigest := strings.Cut(image, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		tag = repo[i+1:]
	}
	return tag, hasDigest && strings.HasPrefix(d, "sha256:")
}

// configArg returns FILE from `serve --config FILE` (either spelling of the flag).
func configArg(c *corev1.Container) (string, error) {
	args := append(slices.Clone(c.Command), c.Args...)
	if len(args) == 0 || args[0] != "serve" {
		return "", fmt.Errorf("container %s: want args `serve --config FILE`, got %q", c.Name, args)
	}
	for i, a := range args {
		switch {
		case (a == "--config" || a == "-config") && i+1 < len(args):
			return args[i+1], nil
		case strings.HasPrefix(a, "--config="):
			return strings.TrimPrefix(a, "--config="), nil
		}
	}
	return "", fmt.Errorf("container %s: `serve` without --config runs dev mode (demo users, ephemeral key)", c.Name)
}
