package verify

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// unreferenced lists the files under deploy/kubernetes and deploy/istio that no kustomization uses, and why.
var unreferenced = map[string]string{
	"kubernetes/gen-secrets.sh": "makes an overlay's secrets/ folder",
	"kubernetes/.gitignore":     "keeps secrets/ out of git",
	"istio/istiod-values.yaml":  "Helm values for istiod (TestIstioMeshConfig)",
	"istio/istio-operator.yaml": "the same meshConfig for istioctl (TestIstioMeshConfig)",
}

// jsonPatchOp is one RFC 6902 operation, for patches that are not strategic merges.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	From  string `json:"from,omitempty"`
	Value any    `json:"value,omitempty"`
}

// TestSourcesDecodeStrictly decodes the files as written: every kustomization strictly into kustomize's own
// type, every resource and strategic-merge patch document strictly into its upstream API type (patches are
// partial objects, which typed decoding accepts, but an unknown or misspelt field is still an error), every
// JSON 6902 patch into operations. It also refuses files no kustomization uses. The scratch tree is used so the
// secrets/ kustomizations gen-secrets.sh writes are covered too.
func TestSourcesDecodeStrictly(t *testing.T) {
	root := tree(t)
	used := map[string]bool{}
	var kustomizations []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			kustomizations = append(kustomizations, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range kustomizations {
		rel, _ := filepath.Rel(root, k)
		t.Run(filepath.Dir(rel), func(t *testing.T) {
			used[rel] = true
			for _, f := range checkKustomization(t, k) {
				r, err := filepath.Rel(root, f)
				if err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s reaches outside deploy/: %s", rel, f)
					continue
				}
				used[r] = true
			}
		})
	}
	// Orphans are looked for in the real tree, not the scratch copy.
	for _, sub := range []string{"kubernetes", "istio"} {
		err := filepath.WalkDir(filepath.Join(deployDir, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "secrets" {
				return filepath.SkipDir
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(deployDir, p)
			if !used[rel] && unreferenced[rel] == "" {
				t.Errorf("%s: no kustomization uses it; reference it or list it in unreferenced", rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// checkKustomization decodes one kustomization and the files it names; it returns every file it uses.
func checkKustomization(t *testing.T, file string) []string {
	t.Helper()
	dir := filepath.Dir(file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	wantKind := map[string]string{types.KustomizationKind: types.KustomizationVersion, types.ComponentKind: types.ComponentVersion}
	if v, ok := wantKind[k.Kind]; !ok || k.APIVersion != v {
		t.Errorf("%s: apiVersion %q kind %q", file, k.APIVersion, k.Kind)
	}
	for _, name := range []struct {
		deprecated bool
		what       string
	}{
		{len(k.PatchesStrategicMerge) > 0, "patchesStrategicMerge"}, {len(k.PatchesJson6902) > 0, "patchesJson6902"},
		{len(k.CommonLabels) > 0, "commonLabels"}, {len(k.Bases) > 0, "bases"}, {len(k.Vars) > 0, "vars"},
	} {
		if name.deprecated {
			t.Errorf("%s: %s is deprecated; use patches/labels/resources/replacements", file, name.what)
		}
	}
	var used []string
	for _, r := range append(slices.Clone(k.Resources), k.Components...) {
		p := filepath.Join(dir, r)
		info, err := os.Stat(p)
		switch {
		case err != nil:
			t.Errorf("%s: %s: %v", file, r, err)
		case info.IsDir():
			if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
				t.Errorf("%s: %s has no kustomization.yaml", file, r)
			}
		default:
			used = append(used, p)
			decodeResourceFile(t, p)
		}
	}
	for _, patch := range k.Patches {
		if patch.Path == "" {
			if patch.Patch != "" {
				decodePatch(t, file+" (inline patch)", []byte(patch.Patch))
			}
			continue
		}
		p := filepath.Join(dir, patch.Path)
		used = append(used, p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		decodePatch(t, p, data)
	}
	var gens []types.GeneratorArgs
	for _, g := range k.ConfigMapGenerator {
		gens = append(gens, g.GeneratorArgs)
	}
	for _, g := range k.SecretGenerator {
		gens = append(gens, g.GeneratorArgs)
	}
	for _, g := range gens {
		for _, f := range append(slices.Clone(g.FileSources), g.EnvSources...) {
			if _, src, ok := strings.Cut(f, "="); ok {
				f = src
			}
			used = append(used, filepath.Join(dir, f))
		}
	}
	return used
}

func decodeResourceFile(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	docs := splitYAML(data)
	if len(docs) == 0 {
		t.Errorf("%s: no objects", file)
	}
	for i, doc := range docs {
		if _, err := decodeStrict(doc); err != nil {
			t.Errorf("%s: document %d: %v", file, i+1, err)
		}
	}
}

func decodePatch(t *testing.T, file string, data []byte) {
	t.Helper()
	if trimmed := bytes.TrimSpace(stripComments(data)); bytes.HasPrefix(trimmed, []byte("- ")) || bytes.HasPrefix(trimmed, []byte("[")) {
		var ops []jsonPatchOp
		if err := yaml.UnmarshalStrict(data, &ops); err != nil {
			t.Errorf("%s: JSON 6902 patch: %v", file, err)
		}
		for _, op := range ops {
			if !slices.Contains([]string{"add", "remove", "replace", "move", "copy", "test"}, op.Op) || !strings.HasPrefix(op.Path, "/") {
				t.Errorf("%s: bad operation %+v", file, op)
			}
		}
		return
	}
	for i, doc := range splitYAML(data) {
		if _, err := decodeStrict(doc); err != nil {
			t.Errorf("%s: document %d: %v", file, i+1, err)
		}
	}
}

func stripComments(data []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

// TestGenSecretsRefusesToOverwrite: running gen-secrets.sh twice must not replace an overlay's keys.
func TestGenSecretsRefusesToOverwrite(t *testing.T) {
	root := tree(t)
	overlay := filepath.Join(root, overlaysWithSecrets[0])
	before, err := os.ReadFile(filepath.Join(overlay, "secrets", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "kubernetes", "gen-secrets.sh"), overlay, filepath.Join(deployDir, "dev", "users.yaml"))
	cmd.Env = append(os.Environ(), "GATEHOUSE=false")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to overwrite") {
		t.Errorf("second run: err %v, output %q; want a refusal", err, out)
	}
	after, _ := os.ReadFile(filepath.Join(overlay, "secrets", "kustomization.yaml"))
	if !bytes.Equal(before, after) {
		t.Error("secrets/ changed")
	}
	info, err := os.Stat(filepath.Join(overlay, "secrets"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		t.Errorf("secrets/ mode %v: want no group or other access", info.Mode().Perm())
	}
}
