package policy

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// head is prepended to most cases: a valid role and a route using it, so
// each case shows only its own diagnostics. Lines 1-4; cases start at 5.
const head = `roles:
  user: {permissions: [read]}
routes:
  - {name: used, match: {path: /used}, roles: [user]}
`

// TestDiagnostics pins the exact text and line of every compile error and
// lint warning. Each case lists everything Lint reports for its input.
func TestDiagnostics(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		// Document level.
		{"empty file", ``, []string{`p.yaml:1: empty policy`}},
		{"yaml syntax", "roles: [a\nroutes: x\n", []string{`p.yaml:1: invalid YAML: did not find expected ',' or ']'`}},
		{"two documents", head + "---\nroles: {}\n", []string{`p.yaml:5: more than one YAML document`}},
		{"anchor", head + "  - {name: a, match: &m {path: /a}, public: true}\n", []string{`p.yaml:5: YAML anchors and aliases are not supported`}},
		{"not a mapping", "- a\n", []string{`p.yaml:1: expected a mapping, got a list`}},
		{"unknown top-level key", head + "extra: 1\n", []string{`p.yaml:5: unknown key "extra" (allowed: roles, routes)`}},
		{"duplicate top-level key", head + "roles: {}\n", []string{`p.yaml:5: duplicate key "roles" (first at line 1)`}},
		{"no routes key", "roles: {}\n", []string{`p.yaml:1: no routes: every request would be denied`}},
		{"empty routes", "roles: {}\nroutes: []\n", []string{`p.yaml:2: no routes: every request would be denied`}},
		{"routes not a list", "routes: {a: 1}\n", []string{`p.yaml:1: routes: expected a list of routes, got a mapping`}},

		{"second document invalid", head + "---\n[\n", []string{`p.yaml:6: invalid YAML: did not find expected node content`}},
		{"non-string key", head + "1: x\n", []string{`p.yaml:5: key must be a string, got a number`}},

		// Roles.
		{"role name not a string", "roles:\n  5: {}\nroutes:\n  - {name: a, match: {path: /a}, public: true}\n",
			[]string{`p.yaml:2: roles: role name: expected a string, got a number`}},
		{"roles not a mapping", "roles: [a]\nroutes:\n  - {name: a, match: {path: /}, public: true}\n",
			[]string{`p.yaml:1: roles: expected a mapping of role names to roles, got a list`}},
		{"role key typo", "roles:\n  user: {permission: [read]}\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:2: role "user": unknown key "permission" (allowed: inherits, permissions)`}},
		{"role defined twice", "roles:\n  user: {}\n  user: {}\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:3: role "user": defined twice (first at line 2)`}},
		{"role invalid name", "roles:\n  \"a b\": {}\n  user: {}\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:2: role "a b": invalid name (letters and digits, then also _ . : -; at most 64)`}},
		{"role not a mapping", "roles:\n  user: [read]\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:2: role "user": expected a mapping, got a list`}},
		{"inherits unknown role", "roles:\n  user: {inherits: [ghost]}\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:2: role "user": inherits unknown role "ghost"`}},
		{"inherits not a list", "roles:\n  user: {inherits: guest}\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:2: role "user": inherits: expected a list of roles, got a string`}},
		{"inheritance cycle", "roles:\n  a: {inherits: [c]}\n  b: {inherits: [a]}\n  c: {inherits: [b]}\nroutes:\n  - {name: r, match: {path: /a}, roles: [a]}\n",
			[]string{`p.yaml:2: role "a": inheritance cycle: a -> c -> b -> a`}},
		{"self inheritance", "roles:\n  a: {inherits: [a]}\nroutes:\n  - {name: r, match: {path: /a}, roles: [a]}\n",
			[]string{`p.yaml:2: role "a": inheritance cycle: a -> a`}},
		{"duplicate permission", "roles:\n  user: {permissions: [read, read]}\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:2: role "user": permissions: duplicate permission "read"`}},
		{"invalid permission", "roles:\n  user: {permissions: [\"a b\"]}\nroutes:\n  - {name: a, match: {path: /a}, roles: [user]}\n",
			[]string{`p.yaml:2: role "user": invalid permission name "a b"`}},

		// Routes: shape.
		{"route not a mapping", head + "  - 7\n", []string{`p.yaml:5: routes[1]: expected a mapping, got a number`}},
		{"route missing name", head + "  - {match: {path: /a}, public: true}\n", []string{`p.yaml:5: routes[1]: missing name`}},
		{"route empty name", head + "  - {name: \"\", match: {path: /a}, public: true}\n", []string{`p.yaml:5: routes[1]: invalid name ""`}},
		{"route name not a string", head + "  - {name: 5, match: {path: /a}, public: true}\n", []string{`p.yaml:5: routes[1]: name: expected a string, got a number`}},
		{"route unknown key", head + "  - {name: a, match: {path: /a}, public: true, color: red}\n",
			[]string{`p.yaml:5: route "a": unknown key "color" (allowed: name, match, public, authenticated, permissions, roles)`}},
		{"route missing match", head + "  - {name: a, public: true}\n",
			[]string{`p.yaml:5: route "a": missing match (use match: {path_prefix: /} to match everything)`}},
		{"route empty match", head + "  - {name: a, match: {}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: needs path or path_prefix (use path_prefix: / to match everything)`}},
		{"match without path", head + "  - {name: a, match: {methods: [GET]}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: needs path or path_prefix (use path_prefix: / to match everything)`}},
		{"match not a mapping", head + "  - {name: a, match: /a, public: true}\n",
			[]string{`p.yaml:5: route "a": match: expected a mapping, got a string`}},
		{"match unknown key", head + "  - {name: a, match: {path: /a, method: GET}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: unknown key "method" (allowed: path, path_prefix, methods, hosts)`}},
		{"path and prefix", head + "  - {name: a, match: {path: /a, path_prefix: /b}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: path and path_prefix are mutually exclusive`}},
		{"no access", head + "  - {name: a, match: {path: /a}}\n",
			[]string{`p.yaml:5: route "a": needs exactly one of public, authenticated, permissions, roles`}},
		{"two access keys", head + "  - name: a\n    match: {path: /a}\n    public: true\n    roles: [user]\n",
			[]string{`p.yaml:8: route "a": public and roles are mutually exclusive (needs exactly one of public, authenticated, permissions, roles)`}},
		{"public false", head + "  - {name: a, match: {path: /a}, public: false}\n",
			[]string{`p.yaml:5: route "a": public must be true (omit the key instead)`}},
		{"authenticated not bool", head + "  - {name: a, match: {path: /a}, authenticated: yes}\n",
			[]string{`p.yaml:5: route "a": authenticated: expected true, got a string`}},
		{"empty permissions", head + "  - {name: a, match: {path: /a}, permissions: []}\n",
			[]string{`p.yaml:5: route "a": permissions: empty list`}},
		{"empty roles", head + "  - {name: a, match: {path: /a}, roles: []}\n",
			[]string{`p.yaml:5: route "a": roles: empty list`}},

		// Routes: references.
		{"unknown role", head + "  - name: orders\n    match: {path: /orders}\n    roles: [user,\n      superuser]\n",
			[]string{`p.yaml:8: route "orders": unknown role "superuser"`}},
		{"permission granted by no role", head + "  - {name: a, match: {path: /a}, permissions: [read, fly]}\n",
			[]string{`p.yaml:5: route "a": permission "fly" is granted by no role`}},
		{"duplicate role in route", head + "  - {name: a, match: {path: /a}, roles: [user, user]}\n",
			[]string{`p.yaml:5: route "a": roles: duplicate role "user"`}},

		// Match: methods and hosts.
		{"lower-case method", head + "  - {name: a, match: {path: /a, methods: [get]}, public: true}\n",
			[]string{`p.yaml:5: route "a": method "get": must be upper-case ("GET")`}},
		{"invalid method", head + "  - {name: a, match: {path: /a, methods: [\"G T\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": method "G T": not an HTTP method token`}},
		{"duplicate method", head + "  - {name: a, match: {path: /a, methods: [GET, GET]}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: methods: duplicate method "GET"`}},
		{"methods not a list", head + "  - {name: a, match: {path: /a, methods: GET}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: methods: expected a list of methods, got a string`}},
		{"host with port", head + "  - {name: a, match: {path: /a, hosts: [\"a.com:80\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "a.com:80": must not include a port (ports are ignored when matching)`}},
		{"host star", head + "  - {name: a, match: {path: /a, hosts: [\"*\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "*": '*' alone is not a host pattern (omit hosts to match any host)`}},
		{"host inner wildcard", head + "  - {name: a, match: {path: /a, hosts: [\"a.*.com\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "a.*.com": a wildcard is only allowed as a leading '*.'`}},
		{"host empty label", head + "  - {name: a, match: {path: /a, hosts: [\"a..com\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "a..com": invalid host name (empty or over-long label)`}},
		{"host bad char", head + "  - {name: a, match: {path: /a, hosts: [\"a/b.com\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "a/b.com": invalid host name (letters, digits, '-' and '_' only)`}},
		{"host wildcard IP", head + "  - {name: a, match: {path: /a, hosts: [\"*.10.0.0.1\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "*.10.0.0.1": a wildcard cannot precede an IP address`}},
		{"host bad IPv6", head + "  - {name: a, match: {path: /a, hosts: [\"[::1\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "[::1": invalid IPv6 literal`}},
		{"host non-canonical IPv6", head + "  - {name: a, match: {path: /a, hosts: [\"[0:0::1]\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "[0:0::1]": write the IPv6 address as [::1]`}},
		{"host empty", head + "  - {name: a, match: {path: /a, hosts: [\"*.\"]}, public: true}\n",
			[]string{`p.yaml:5: route "a": host "*.": invalid host name`}},
		{"too many methods", head + "  - {name: a, match: {path: /a, methods: [" + manyMethods(64) + "]}, public: true}\n",
			[]string{`p.yaml:5: route "a": more than 63 distinct methods in the policy`}},
		{"duplicate host ignoring case", head + "  - {name: a, match: {path: /a, hosts: [a.com, A.COM]}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: hosts: duplicate host "A.COM"`}},

		// Match: path patterns.
		{"path dot segment", head + "  - {name: a, match: {path: /a/../b}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a/../b": non-canonical path: dot segment`}},
		{"path encoded slash", head + "  - {name: a, match: {path: /a%2Fb}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a%2Fb": non-canonical path: encoded '/'`}},
		{"path not canonical", head + "  - {name: a, match: {path: /a%7eb}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a%7eb": not canonical (write "/a~b")`}},
		{"path trailing slash", head + "  - {name: a, match: {path: /a/}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a/": trailing slash (canonical paths have none)`}},
		{"path empty segment", head + "  - {name: a, match: {path: /a//b}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a//b": empty segment`}},
		{"path relative", head + "  - {name: a, match: {path: a}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "a": must start with '/'`}},
		{"path ** not final", head + "  - {name: a, match: {path: \"/a/**/b\"}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a/**/b": '**' is only allowed as the final segment`}},
		{"path single star", head + "  - {name: a, match: {path: \"/a/*\"}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a/*": '*' is only allowed as a final /** segment`}},
		{"path empty param", head + "  - {name: a, match: {path: \"/a/{}\"}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a/{}": invalid parameter "{}" (want {name}: a whole segment, name of letters, digits and _)`}},
		{"path partial param", head + "  - {name: a, match: {path: \"/a/x{id}\"}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a/x{id}": a {parameter} must be a whole segment`}},
		{"path duplicate param", head + "  - {name: a, match: {path: \"/a/{id}/{id}\"}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/a/{id}/{id}": duplicate parameter {id}`}},
		{"path not a string", head + "  - {name: a, match: {path: 5}, public: true}\n",
			[]string{`p.yaml:5: route "a": match: path: expected a string, got a number`}},
		{"path too long", head + "  - {name: a, match: {path: /" + strings.Repeat("a", MaxPathLength) + "}, public: true}\n",
			[]string{`p.yaml:5: route "a": path "/` + strings.Repeat("a", MaxPathLength) + `": longer than 8 KiB`}},
		{"prefix relative", head + "  - {name: a, match: {path_prefix: auth}, public: true}\n",
			[]string{`p.yaml:5: route "a": path_prefix "auth": must start with '/'`}},
		{"prefix trailing slash", head + "  - {name: a, match: {path_prefix: /auth/}, public: true}\n",
			[]string{`p.yaml:5: route "a": path_prefix "/auth/": trailing slash (write "/auth"; it already matches what is below it)`}},
		{"prefix with param", head + "  - {name: a, match: {path_prefix: \"/a/{id}\"}, public: true}\n",
			[]string{`p.yaml:5: route "a": path_prefix "/a/{id}": must be a literal path (use path for {param} and /**)`}},
		{"prefix not canonical", head + "  - {name: a, match: {path_prefix: \"/a;b\"}, public: true}\n",
			[]string{`p.yaml:5: route "a": path_prefix "/a;b": non-canonical path: ';' (path parameters)`}},

		// Several problems are all reported, in line order.
		{"many errors", "roles:\n  user: {inherits: [ghost]}\nroutes:\n  - {name: a, match: {path: /a/}, roles: [admin]}\n  - {match: {}, public: true}\n",
			[]string{
				`p.yaml:2: role "user": inherits unknown role "ghost"`,
				`p.yaml:2: warning: role "user" is not used by any route (no roles route admits it and no route requires any of its permissions)`,
				`p.yaml:4: route "a": path "/a/": trailing slash (canonical paths have none)`,
				`p.yaml:4: route "a": unknown role "admin"`,
				`p.yaml:5: routes[1]: missing name`,
				`p.yaml:5: routes[1]: match: needs path or path_prefix (use path_prefix: / to match everything)`,
			}},

		// Warnings.
		{"shadowed by prefix", head + "  - {name: all, match: {path_prefix: /api}, public: true}\n  - {name: one, match: {path: \"/api/{id}\", methods: [GET]}, public: true}\n",
			[]string{`p.yaml:6: warning: route "one" is unreachable: route "all" (line 5) matches every request it matches`}},
		{"shadowed by tail and param", head + "  - {name: t, match: {path: \"/a/{x}/**\"}, public: true}\n  - {name: e, match: {path: /a/b/c}, public: true}\n",
			[]string{`p.yaml:6: warning: route "e" is unreachable: route "t" (line 5) matches every request it matches`}},
		{"shadowed by wildcard host", head + "  - {name: w, match: {path: /a, hosts: [\"*.example.com\"]}, public: true}\n  - {name: e, match: {path: /a, hosts: [api.example.com, \"*.eu.example.com\"]}, public: true}\n",
			[]string{`p.yaml:6: warning: route "e" is unreachable: route "w" (line 5) matches every request it matches`}},
		{"duplicate route", head + "  - {name: a, match: {path: /a}, public: true}\n  - {name: a, match: {path: /a}, authenticated: true}\n",
			[]string{
				`p.yaml:6: warning: route "a": duplicate route name (also at line 5)`,
				`p.yaml:6: warning: route "a" is unreachable: route "a" (line 5) matches every request it matches`,
			}},
		{"not shadowed", head + strings.Join([]string{
			"  - {name: get, match: {path: /a, methods: [GET]}, public: true}",
			"  - {name: any, match: {path: /a}, public: true}",                              // more methods
			"  - {name: host, match: {path: /b, hosts: [a.com]}, public: true}",             // host-restricted first
			"  - {name: anyhost, match: {path: /b}, public: true}",                          // more hosts
			"  - {name: tail, match: {path: \"/c/{x}/**\"}, public: true}",                  // needs a segment
			"  - {name: root, match: {path: \"/c/**\"}, public: true}",                      // also matches /c
			"  - {name: wild, match: {path: /d, hosts: [\"*.example.com\"]}, public: true}", // not example.com
			"  - {name: bare, match: {path: /d, hosts: [example.com]}, public: true}",       //
			"  - {name: lit, match: {path: /e/x}, public: true}",                            //
			"  - {name: param, match: {path: \"/e/{y}\"}, public: true}",                    // param wider than literal
		}, "\n") + "\n", nil},
		{"unused role", "roles:\n  guest: {permissions: [read]}\n  user: {inherits: [guest], permissions: [write]}\n  admin: {inherits: [user]}\n  ops: {permissions: [deploy]}\nroutes:\n  - {name: w, match: {path: /w}, permissions: [write]}\n  - {name: o, match: {path: /o}, authenticated: true}\n",
			[]string{
				`p.yaml:2: warning: role "guest" is not used by any route (no roles route admits it and no route requires any of its permissions)`,
				`p.yaml:5: warning: role "ops" is not used by any route (no roles route admits it and no route requires any of its permissions)`,
			}},
		{"role used through inheritance", "roles:\n  user: {}\n  admin: {inherits: [user]}\nroutes:\n  - {name: u, match: {path: /u}, roles: [user]}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var errs []string
			for _, d := range Lint("p.yaml", []byte(tt.src)) {
				got = append(got, d.String())
				if d.Severity == SeverityError {
					errs = append(errs, d.String())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("Lint:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}

			// Compile fails with exactly the errors, and only with them.
			_, err := Compile("p.yaml", []byte(tt.src))
			if len(errs) == 0 {
				if err != nil {
					t.Fatalf("Compile: unexpected error %v", err)
				}
				return
			}
			var ce *CompileError
			if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Compile error %T %v, want *CompileError wrapping ErrInvalidPolicy", err, err)
			}
			if err.Error() != strings.Join(errs, "\n") {
				t.Fatalf("Compile error:\n%v\nwant:\n%s", err, strings.Join(errs, "\n"))
			}
		})
	}
}

func TestSpecPolicyLint(t *testing.T) {
	// The policy compiles; its only warning is that guest, a
	// building block, is admitted by no route on its own.
	var got []string
	for _, d := range Lint("spec.yaml", mustRead(t, "testdata/spec.yaml")) {
		got = append(got, d.String())
	}
	want := []string{`spec.yaml:3: warning: role "guest" is not used by any route (no roles route admits it and no route requires any of its permissions)`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Lint(spec.yaml):\n%s", strings.Join(got, "\n"))
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func manyMethods(n int) string {
	var ms []string
	for i := range n {
		ms = append(ms, "M"+itoa(i))
	}
	return strings.Join(ms, ", ")
}

// TestLoadReportsEveryError checks messages name the file as given to Load.
func TestLoadReportsEveryError(t *testing.T) {
	_, err := Load("testdata/invalid.yaml")
	want := `testdata/invalid.yaml:7: route "auth": path_prefix "/auth/": trailing slash (write "/auth"; it already matches what is below it)
testdata/invalid.yaml:10: route "profile": method "get": must be upper-case ("GET")
testdata/invalid.yaml:11: route "profile": permission "read:user" is granted by no role
testdata/invalid.yaml:14: route "orders": unknown role "superuser"
testdata/invalid.yaml:15: route "orders": unknown key "colour" (allowed: name, match, public, authenticated, permissions, roles)`
	if err == nil || err.Error() != want {
		t.Fatalf("Load error:\n%v\nwant:\n%s", err, want)
	}
}
