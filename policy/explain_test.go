package policy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestExplainGolden(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	tests := []struct {
		name               string
		method, host, path string
		roles              []string
		anonymous          bool
	}{
		{"allow-permission", "GET", "api.example.com", "/users/profile?tab=1", []string{"user"}, false},
		{"forbidden", "DELETE", "", "/admin/users/42", []string{"user", "superuser"}, false},
		{"anonymous", "GET", "", "/me", nil, true},
		{"public", "POST", "", "/auth/login", nil, true},
		{"roles-inherited", "HEAD", "Shop.Example.com:443", "/orders/7/items", []string{"admin"}, false},
		{"no-route", "GET", "", "/authz", []string{"admin"}, false},
		{"non-canonical", "GET", "", "/admin%2Fusers/1", []string{"admin"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := p.Explain(tt.method, tt.host, tt.path, tt.roles, tt.anonymous)
			if d := p.Decide(tt.method, tt.host, tt.path, tt.roles, tt.anonymous); d != e.Decision {
				t.Fatalf("Explain decision %+v differs from Decide %+v", e.Decision, d)
			}
			var b strings.Builder
			if err := e.Format(&b); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "explain", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if b.String() != string(want) {
				t.Fatalf("Explain output:\n%s\nwant (%s):\n%s", b.String(), golden, want)
			}
		})
	}
}

func TestExplainFields(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	e := p.Explain("GET", "", "/users/%2e%2e/admin", []string{"user"}, false)
	if !errors.Is(e.PathError, ErrNonCanonicalPath) || e.CanonicalPath != "" || e.Rule != nil || e.Decision.Status != 400 {
		t.Fatalf("explanation = %+v", e)
	}
	e = p.Explain("GET", "", "/users/profile", []string{"admin"}, false)
	if e.Rule == nil || e.Rule.Name != "profile" || strings.Join(e.Roles, ",") != "admin,guest,user" || len(e.Permissions) != 6 {
		t.Fatalf("explanation = %+v", e)
	}
}
