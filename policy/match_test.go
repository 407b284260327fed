package policy

import (
	"os"
	"slices"
	"testing"
)

func mustCompile(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Compile("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Compile:\n%v", err)
	}
	return p
}

func mustLoad(t testing.TB, path string) *Policy {
	t.Helper()
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	return p
}

const matchPolicy = `
roles:
  r: {permissions: [p]}
routes:
  - {name: exact,      match: {path: /a/b}, public: true}
  - {name: param,      match: {path: "/users/{id}"}, public: true}
  - {name: param-mid,  match: {path: "/users/{id}/posts"}, public: true}
  - {name: tail,       match: {path: "/orders/**"}, public: true}
  - {name: prefix,     match: {path_prefix: /auth}, public: true}
  - {name: root,       match: {path: /}, public: true}
  - {name: get-only,   match: {methods: [GET], path: /m}, public: true}
  - {name: post-put,   match: {methods: [POST, PUT], path: /m}, public: true}
  - {name: any-method, match: {path: /m}, public: true}
  - {name: host-exact, match: {path: /h, hosts: [api.example.com]}, public: true}
  - {name: host-wild,  match: {path: /h, hosts: ["*.example.com"]}, public: true}
  - {name: host-ip,    match: {path: /h, hosts: ["10.0.0.1", "[::1]"]}, public: true}
  - {name: host-k,     match: {path: /k, hosts: [k.test]}, public: true}
  - {name: param-first, match: {path: "/pf/{x}"}, public: true}
  - {name: lit-second,  match: {path: /pf/lit}, public: true}
  - {name: lit-first,   match: {path: /lf/lit}, public: true}
  - {name: param-second, match: {path: "/lf/{x}"}, public: true}
  - {name: deep-exact,  match: {path: /t/a/b}, public: true}
  - {name: shallow-tail, match: {path: "/t/**"}, public: true}
  - {name: deep-tail-later, match: {path: "/t/a/**"}, public: true}
  - {name: params-tail, match: {path: "/p/{a}/{b}/**"}, public: true}
  - {name: encoded,     match: {path: "/files/a%20b"}, public: true}
  - {name: root-tail,   match: {path: "/**", hosts: [catchall.test]}, public: true}
`

func TestMatch(t *testing.T) {
	p := mustCompile(t, matchPolicy)
	tests := []struct {
		method, host, path string
		want               string // rule name, "" for none
	}{
		{"GET", "", "/a/b", "exact"},
		{"GET", "", "/a", ""},
		{"GET", "", "/a/b/c", ""},
		{"GET", "", "/A/B", ""}, // case-sensitive
		{"GET", "", "/users/1", "param"},
		{"GET", "", "/users/1/posts", "param-mid"},
		{"GET", "", "/users", ""}, // {id} needs exactly one segment
		{"GET", "", "/users/1/2", ""},
		{"GET", "", "/orders", "tail"}, // /** matches zero segments
		{"GET", "", "/orders/1", "tail"},
		{"GET", "", "/orders/1/items", "tail"},
		{"GET", "", "/ordersx", ""},
		{"GET", "", "/auth", "prefix"},
		{"GET", "", "/auth/login", "prefix"},
		{"GET", "", "/auth/a/b/c", "prefix"},
		{"GET", "", "/authz", ""}, // segment-aware prefix
		{"GET", "", "/", "root"},
		{"GET", "", "/m", "get-only"},
		{"POST", "", "/m", "post-put"},
		{"PUT", "", "/m", "post-put"},
		{"DELETE", "", "/m", "any-method"},
		{"PROPFIND", "", "/m", "any-method"}, // a method no route names
		{"get", "", "/m", "any-method"},      // methods are case-sensitive
		{"GET", "api.example.com", "/h", "host-exact"},
		{"GET", "API.Example.COM:8443", "/h", "host-exact"}, // case and port ignored
		{"GET", "api.example.com.", "/h", "host-exact"},     // trailing dot ignored
		{"GET", "shop.example.com", "/h", "host-wild"},
		{"GET", "a.b.example.com", "/h", "host-wild"}, // one or more labels
		{"GET", "example.com", "/h", ""},              // not the bare suffix
		{"GET", "evilexample.com", "/h", ""},
		{"GET", ".example.com", "/h", ""},
		{"GET", "a..example.com", "/h", ""},
		{"GET", "api.example.com.evil", "/h", ""},
		{"GET", "K.TEST", "/k", "host-k"},
		{"GET", "\u212a.test", "/k", ""}, // the Kelvin sign is not k (no Unicode folding)
		{"GET", "10.0.0.1:80", "/h", "host-ip"},
		{"GET", "[::1]:8080", "/h", "host-ip"},
		{"GET", "", "/h", ""}, // no host, host-restricted routes do not match
		{"GET", "", "/pf/lit", "param-first"},
		{"GET", "", "/lf/lit", "lit-first"},
		{"GET", "", "/lf/other", "param-second"},
		{"GET", "", "/t/a/b", "deep-exact"},
		{"GET", "", "/t/a", "shallow-tail"},
		{"GET", "", "/t/a/b/c", "shallow-tail"},
		{"GET", "", "/p/1/2", "params-tail"},
		{"GET", "", "/p/1/2/3/4", "params-tail"},
		{"GET", "", "/p/1", ""},
		{"GET", "", "/files/a%20b", "encoded"},
		{"GET", "catchall.test", "/nothing/else", "root-tail"},
		{"GET", "catchall.test", "/", "root"},
		{"GET", "", "", ""},      // not a canonical path
		{"GET", "", "users", ""}, // not a canonical path
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+" "+tt.path, func(t *testing.T) {
			got := ruleName(p.Match(tt.method, tt.host, tt.path))
			if got != tt.want {
				t.Fatalf("Match(%q, %q, %q) = %q, want %q", tt.method, tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestMatchPrefixRoot(t *testing.T) {
	p := mustCompile(t, `
roles: {}
routes:
  - {name: all, match: {path_prefix: /}, authenticated: true}
`)
	for _, path := range []string{"/", "/a", "/a/b/c"} {
		if r := p.Match("GET", "", path); r == nil || r.Name != "all" {
			t.Errorf("Match(%q) = %v, want all", path, r)
		}
	}
}

func TestMatchRuleFields(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	r := p.Match("GET", "api.example.com", "/orders/1")
	if r == nil {
		t.Fatal("no match")
	}
	if r.Name != "orders" || r.Index != 3 || r.Line != 16 || r.Access != AccessRoles || !slices.Equal(r.Roles, []string{"user", "admin"}) {
		t.Fatalf("rule = %+v", *r)
	}
	if got, want := r.MatchString(), "methods [GET HEAD] path /orders/** hosts [api.example.com *.example.com]"; got != want {
		t.Errorf("MatchString = %q, want %q", got, want)
	}
	if got, want := r.Requirement(), "roles: any of [user admin]"; got != want {
		t.Errorf("Requirement = %q, want %q", got, want)
	}
	if got := p.Rules(); len(got) != 5 || got[3] != r {
		t.Errorf("Rules() does not return the compiled rules")
	}
}

func TestMatchNoAllocs(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	allocs := testing.AllocsPerRun(200, func() {
		if p.Match("HEAD", "Shop.Example.com:443", "/orders/1/items") == nil {
			t.Fatal("no match")
		}
		if p.Match("GET", "", "/nothing") != nil {
			t.Fatal("match")
		}
		if p.Match("DELETE", "", "/admin/users/7") == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocated %v times per run", allocs)
	}
}

func TestDecide(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	tests := []struct {
		name                 string
		method, host, path   string
		roles                []string
		anonymous            bool
		allow                bool
		status               int
		reason, rule, canonp string
	}{
		{"public anonymous", "POST", "", "/auth/login", nil, true, true, 200, ReasonPublic, "auth", "/auth/login"},
		{"public authenticated", "POST", "", "/auth/login", []string{"user"}, false, true, 200, ReasonPublic, "auth", "/auth/login"},
		{"permission held", "GET", "", "/users/profile", []string{"user"}, false, true, 200, ReasonAllowed, "profile", "/users/profile"},
		{"permission inherited", "GET", "", "/users/profile", []string{"admin"}, false, true, 200, ReasonAllowed, "profile", "/users/profile"},
		{"permission missing", "GET", "", "/users/profile", []string{"guest"}, false, false, 403, ReasonForbidden, "profile", "/users/profile"},
		{"anonymous on protected", "GET", "", "/users/profile", nil, true, false, 401, ReasonUnauthenticated, "profile", "/users/profile"},
		{"anonymous roles ignored", "GET", "", "/users/profile", []string{"admin"}, true, false, 401, ReasonUnauthenticated, "profile", "/users/profile"},
		{"unknown role grants nothing", "GET", "", "/users/profile", []string{"superuser"}, false, false, 403, ReasonForbidden, "profile", "/users/profile"},
		{"role route direct", "GET", "api.example.com", "/orders", []string{"user"}, false, true, 200, ReasonAllowed, "orders", "/orders"},
		{"role route via inheritance", "GET", "x.example.com", "/orders/9", []string{"admin"}, false, true, 200, ReasonAllowed, "orders", "/orders/9"},
		{"role route lacking role", "GET", "x.example.com", "/orders/9", []string{"guest"}, false, false, 403, ReasonForbidden, "orders", "/orders/9"},
		{"authenticated no roles", "GET", "", "/me", nil, false, true, 200, ReasonAllowed, "me", "/me"},
		{"no route", "GET", "", "/admin", []string{"admin"}, false, false, 403, ReasonNoRoute, "", "/admin"},
		{"wrong method", "POST", "", "/users/profile", []string{"admin"}, false, false, 403, ReasonNoRoute, "", "/users/profile"},
		{"case-sensitive path", "GET", "", "/ME", []string{"admin"}, false, false, 403, ReasonNoRoute, "", "/ME"},
		{"traversal", "GET", "", "/auth/../users/profile", nil, true, false, 400, ReasonNonCanonicalPath, "", ""},
		{"encoded traversal", "GET", "", "/auth/%2e%2e/me", nil, true, false, 400, ReasonNonCanonicalPath, "", ""},
		{"encoded slash", "DELETE", "", "/admin%2Fusers/1", []string{"admin"}, false, false, 400, ReasonNonCanonicalPath, "", ""},
		{"double slash", "GET", "", "//me", []string{"admin"}, false, false, 400, ReasonNonCanonicalPath, "", ""},
		{"path parameter", "GET", "", "/me;x=1", []string{"admin"}, false, false, 400, ReasonNonCanonicalPath, "", ""},
		{"backslash", "GET", "", "\\me", []string{"admin"}, false, false, 400, ReasonNonCanonicalPath, "", ""},
		{"overlong", "GET", "", "/auth%c0%af..%c0%afme", nil, true, false, 400, ReasonNonCanonicalPath, "", ""},
		{"encoded letters reach the route", "GET", "", "/%75sers/profile?x=1", []string{"user"}, false, true, 200, ReasonAllowed, "profile", "/users/profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Decide(tt.method, tt.host, tt.path, tt.roles, tt.anonymous)
			if d.Allow != tt.allow || d.Status != tt.status || d.Reason != tt.reason || ruleName(d.Rule) != tt.rule || d.CanonicalPath != tt.canonp {
				t.Fatalf("Decide = {allow %v, %d %s, rule %q, path %q}; want {allow %v, %d %s, rule %q, path %q}",
					d.Allow, d.Status, d.Reason, ruleName(d.Rule), d.CanonicalPath, tt.allow, tt.status, tt.reason, tt.rule, tt.canonp)
			}
		})
	}
}

func TestGrants(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	tests := []struct {
		roles     []string
		wantRoles []string
		wantPerms []string
	}{
		{nil, nil, nil},
		{[]string{"guest"}, []string{"guest"}, []string{"read:orders"}},
		{[]string{"user"}, []string{"guest", "user"}, []string{"read:orders", "read:users", "write:orders"}},
		{[]string{"admin"}, []string{"admin", "guest", "user"},
			[]string{"admin:access", "delete:users", "read:orders", "read:users", "write:orders", "write:users"}},
		{[]string{"nobody", "guest"}, []string{"guest"}, []string{"read:orders"}},
	}
	for _, tt := range tests {
		g := p.Grants(tt.roles)
		if got := g.Roles(); !slices.Equal(got, tt.wantRoles) {
			t.Errorf("Grants(%v).Roles() = %v, want %v", tt.roles, got, tt.wantRoles)
		}
		if got := g.Permissions(); !slices.Equal(got, tt.wantPerms) {
			t.Errorf("Grants(%v).Permissions() = %v, want %v", tt.roles, got, tt.wantPerms)
		}
	}
	if got := p.RoleNames(); !slices.Equal(got, []string{"admin", "guest", "user"}) {
		t.Errorf("RoleNames = %v", got)
	}
	if !p.HasRole("guest") || p.HasRole("superuser") {
		t.Error("HasRole wrong")
	}

	allocs := testing.AllocsPerRun(100, func() { _ = p.Grants([]string{"admin", "user"}) })
	if allocs != 0 {
		t.Errorf("Grants allocated %v times", allocs)
	}
}

func TestAuthorizedRefusesForeignGrants(t *testing.T) {
	p1 := mustLoad(t, "testdata/spec.yaml")
	p2 := mustLoad(t, "testdata/spec.yaml")
	r := p1.Match("GET", "", "/users/profile")
	if !p1.Authorized(r, p1.Grants([]string{"admin"})) {
		t.Fatal("admin refused")
	}
	if p1.Authorized(r, p2.Grants([]string{"admin"})) {
		t.Fatal("Grants from another policy accepted")
	}
	if p1.Authorized(r, Grants{}) {
		t.Fatal("zero Grants accepted")
	}
	if p1.Authorized(nil, p1.Grants([]string{"admin"})) {
		t.Fatal("nil rule accepted")
	}
	if me := p1.Match("GET", "", "/me"); !p1.Authorized(me, Grants{}) {
		t.Fatal("authenticated rule refused an authenticated caller")
	}
}

// More than 64 roles and permissions take the slow path of bitset.
func TestGrantsManyRoles(t *testing.T) {
	src := "roles:\n"
	for i := range 70 {
		src += "  r" + itoa(i) + ": {permissions: [p" + itoa(i) + "]"
		if i > 0 {
			src += ", inherits: [r" + itoa(i-1) + "]"
		}
		src += "}\n"
	}
	src += "routes:\n  - {name: needs-p69, match: {path: /x}, permissions: [p69, p0]}\n" +
		"  - {name: needs-r68, match: {path: /y}, roles: [r68]}\n"
	p := mustCompile(t, src)
	x, y := p.Match("GET", "", "/x"), p.Match("GET", "", "/y")
	if !p.Authorized(x, p.Grants([]string{"r69"})) || p.Authorized(x, p.Grants([]string{"r68"})) {
		t.Error("permission bits beyond 64 wrong")
	}
	if !p.Authorized(y, p.Grants([]string{"r69"})) || p.Authorized(y, p.Grants([]string{"r67"})) {
		t.Error("role bits beyond 64 wrong")
	}
	if n := len(p.Grants([]string{"r69"}).Permissions()); n != 70 {
		t.Errorf("r69 has %d permissions, want 70", n)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load("testdata/does-not-exist.yaml"); !os.IsNotExist(err) {
		t.Errorf("Load(missing) = %v, want not-exist", err)
	}
}
