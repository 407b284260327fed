package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the house rule on imports (STYLE.md): policy (stdlib + yaml) ← token, store ←
// extauthz, issuer ← cmd. Only cmd knows which store backend runs. Test files are not counted.
func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}:{{join .Imports \" \"}}", "gatehouse/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ":")
		imports[pkg] = strings.Fields(deps)
	}
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages", len(imports))
	}
	rules := []struct {
		pkg       string
		forbidden []string // prefixes
	}{
		{"gatehouse/policy", []string{"gatehouse/", "github.com/", "golang.org/", "google.golang.org/"}},
		{"gatehouse/token", []string{"gatehouse/store", "gatehouse/extauthz", "gatehouse/issuer", "gatehouse/portal", "gatehouse/cmd"}},
		{"gatehouse/store", []string{"gatehouse/token", "gatehouse/policy", "gatehouse/extauthz", "gatehouse/issuer", "gatehouse/portal", "gatehouse/cmd"}},
		{"gatehouse/extauthz", []string{"gatehouse/issuer", "gatehouse/portal/", "gatehouse/cmd", "gatehouse/store/memstore", "gatehouse/store/redisstore"}},
		{"gatehouse/issuer", []string{"gatehouse/extauthz", "gatehouse/portal", "gatehouse/cmd", "gatehouse/store/memstore", "gatehouse/store/redisstore"}},
		{"gatehouse/portal", []string{"gatehouse/extauthz", "gatehouse/cmd", "gatehouse/store/memstore", "gatehouse/store/redisstore"}},
		{"gatehouse/password", []string{"gatehouse/"}},
		{"gatehouse/mfa", []string{"gatehouse/"}},
		{"gatehouse/config", []string{"gatehouse/"}},
	}
	allowed := map[string]bool{"gopkg.in/yaml.v3": true}
	for pkg, deps := range imports {
		for _, r := range rules {
			// A rule covers the package and its sub-packages (store/memstore is store), except where the
			// sub-package is named as allowed: extauthz may use portal/safeurl, a stdlib-only helper.
			if pkg != r.pkg && !strings.HasPrefix(pkg, r.pkg+"/") {
				continue
			}
			for _, d := range deps {
				if allowed[d] || d == "gatehouse/portal/safeurl" && r.pkg == "gatehouse/extauthz" {
					continue
				}
				for _, f := range r.forbidden {
					if strings.HasPrefix(d, f) && !strings.HasPrefix(d, pkg) && !(r.pkg == "gatehouse/store" && strings.HasPrefix(d, "gatehouse/store")) {
						t.Errorf("%s imports %s (rule for %s)", pkg, d, r.pkg)
					}
				}
			}
		}
	}
}
