package verify

import (
	"crypto/rand"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"gatehouse/token"
)

// Paths relative to this package's folder (go test runs in it).
const (
	repoRoot  = "../.."
	deployDir = ".."
)

// builds are the kustomizations the test renders, each a folder under deploy/.
var builds = []string{
	"kubernetes/base",
	"kubernetes/overlays/dev",
	"kubernetes/overlays/production",
	"istio",
}

// overlaysWithSecrets are the kustomizations that include a secrets/ folder made by gen-secrets.sh.
var overlaysWithSecrets = []string{"kubernetes/overlays/dev", "kubernetes/overlays/production"}

// secretsFromOverlays are the Secrets the base leaves to the overlays.
var secretsFromOverlays = map[string]bool{
	"gatehouse-signing-key": true, "gatehouse-public-keys": true, "gatehouse-users": true, "gatehouse-mfa-key": true,
}

var (
	treeOnce sync.Once
	treeDir  string
	treeErr  error
	scratch  string // removed by TestMain
)

// keygenEnv makes the test binary act as `gatehouse keys generate` for gen-secrets.sh (see keygenMain).
const keygenEnv = "GATEHOUSE_VERIFY_KEYGEN"

func TestMain(m *testing.M) {
	if os.Getenv(keygenEnv) == "1" {
		os.Exit(keygenMain(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "gatehouse-deploy-verify-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tree returns a scratch copy of deploy/kubernetes and deploy/istio whose overlays have secrets/ folders made by
// the real gen-secrets.sh. A developer's own secrets/ folders are never copied: the rendered Secrets are always
// throwaway ones.
func tree(t *testing.T) string {
	t.Helper()
	treeOnce.Do(func() { treeDir, treeErr = makeTree() })
	if treeErr != nil {
		t.Fatal(treeErr)
	}
	return treeDir
}

func makeTree() (string, error) {
	root := filepath.Join(scratch, "deploy")
	for _, sub := range []string{"kubernetes", "istio"} {
		if err := copyTree(filepath.Join(deployDir, sub), filepath.Join(root, sub)); err != nil {
			return "", err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	users, err := filepath.Abs(filepath.Join(deployDir, "dev", "users.yaml"))
	if err != nil {
		return "", err
	}
	for _, overlay := range overlaysWithSecrets {
		cmd := exec.Command("bash", filepath.Join(root, "kubernetes", "gen-secrets.sh"), filepath.Join(root, overlay), users)
		cmd.Env = append(os.Environ(), "GATEHOUSE="+self, keygenEnv+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("gen-secrets.sh %s: %v\n%s", overlay, err, out)
		}
	}
	return root, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "secrets" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, info.Mode().Perm())
	})
}

// rendered is one kustomization's output: every object's YAML, in kustomize's order.
type rendered struct {
	build string
	docs  [][]byte
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]*rendered{}
)

// render runs kustomize (in-process, krusty) on one build of the scratch tree.
func render(t *testing.T, build string) *rendered {
	t.Helper()
	root := tree(t)
	renderMu.Lock()
	defer renderMu.Unlock()
	if r, ok := renderCache[build]; ok {
		return r
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(root, build))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", build, err)
	}
	r := &rendered{build: build}
	for _, res := range m.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", build, res.CurId(), err)
		}
		r.docs = append(r.docs, y)
	}
	renderCache[build] = r
	return r
}

// splitYAML splits a multi-document YAML file, dropping documents that hold only comments.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, part := range strings.Split("\n"+string(data), "\n---") {
		if !hasContent(part) {
			continue
		}
		docs = append(docs, []byte(part))
	}
	return docs
}

func hasContent(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// keygenMain stands in for `gatehouse keys generate --alg ALG --out DIR` when gen-secrets.sh runs under the test:
// the same flags and the same token.WriteKeyPair, without building the whole gatehouse binary (whose other
// packages this test does not need, and which would tie it to every package of the tree compiling).
func keygenMain(args []string) int {
	if len(args) < 2 || args[0] != "keys" || args[1] != "generate" {
		fmt.Fprintf(os.Stderr, "keygen stand-in: want `keys generate ...`, got %q\n", args)
		return 2
	}
	fs := flag.NewFlagSet("keys generate", flag.ContinueOnError)
	alg := fs.String("alg", "EdDSA", "")
	out := fs.String("out", "", "")
	if err := fs.Parse(args[2:]); err != nil || *out == "" || fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "keygen stand-in: bad arguments %q\n", args)
		return 2
	}
	kid, err := token.WriteKeyPair(*out, *alg, rand.Reader)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("wrote %s key %q to %s\n", *alg, kid, *out)
	return 0
}
