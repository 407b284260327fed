package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestRunCasesSpec(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	cases, err := LoadCases("testdata/cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 13 {
		t.Fatalf("loaded %d cases, want 13", len(cases))
	}
	results := RunCases(p, cases)
	var out strings.Builder
	if failed := WriteCaseReport(&out, results); failed != 0 {
		t.Fatalf("%d cases failed:\n%s", failed, out.String())
	}
	if got, want := out.String(), "13 passed, 0 failed\n"; got != want {
		t.Fatalf("report = %q, want %q", got, want)
	}
}

func TestWriteCaseReportFailures(t *testing.T) {
	p := mustLoad(t, "testdata/spec.yaml")
	cases, err := LoadCases("testdata/cases_failing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	results := RunCases(p, cases)
	var out strings.Builder
	failed := WriteCaseReport(&out, results)
	want := `FAIL testdata/cases_failing.yaml:3: "wrong decision": decision: want allow, got deny (got deny 403 forbidden, rule "profile")
FAIL testdata/cases_failing.yaml:4: "wrong status": status: want 403, got 401 (got deny 401 unauthenticated, rule "profile")
FAIL testdata/cases_failing.yaml:5: "wrong rule": rule: want "me", got "" (got deny 403 no_route, rule "")
1 passed, 3 failed
`
	if failed != 3 || out.String() != want {
		t.Fatalf("failed = %d, report:\n%s\nwant:\n%s", failed, out.String(), want)
	}
	r := results[1]
	if r.Passed || r.Decision.Allow || !r.Case.ExpectAllow || len(r.Failures) != 1 {
		t.Fatalf("result = %+v", r)
	}
}

func TestParseCases(t *testing.T) {
	got, err := ParseCases("c.yaml", []byte(`cases:
  - name: full
    method: GET
    host: a.example.com
    path: /x
    roles: [a, b]
    expect: allow
    status: 200
    reason: allowed
    rule: r
  - {method: GET, path: /x, expect: deny, rule: ""}
  - {method: GET, path: /x, roles: [], expect: deny}
  - {method: GET, path: /x, roles: [a], anonymous: true, expect: deny}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Case{
		{File: "c.yaml", Line: 2, Name: "full", Method: "GET", Host: "a.example.com", Path: "/x", Roles: []string{"a", "b"},
			ExpectAllow: true, Status: 200, Reason: "allowed", Rule: "r", CheckRule: true},
		{File: "c.yaml", Line: 11, Name: "cases[1]", Method: "GET", Path: "/x", Anonymous: true, CheckRule: true},
		{File: "c.yaml", Line: 12, Name: "cases[2]", Method: "GET", Path: "/x"},
		{File: "c.yaml", Line: 13, Name: "cases[3]", Method: "GET", Path: "/x", Roles: []string{"a"}, Anonymous: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d cases", len(got))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.File != w.File || g.Line != w.Line || g.Name != w.Name || g.Method != w.Method || g.Host != w.Host ||
			g.Path != w.Path || strings.Join(g.Roles, ",") != strings.Join(w.Roles, ",") || g.Anonymous != w.Anonymous ||
			g.ExpectAllow != w.ExpectAllow || g.Status != w.Status || g.Reason != w.Reason || g.Rule != w.Rule || g.CheckRule != w.CheckRule {
			t.Errorf("case %d = %+v\nwant %+v", i, g, w)
		}
	}
}

func TestParseCasesErrors(t *testing.T) {
	tests := []struct {
		name, src string
		want      []string
	}{
		{"empty", ``, []string{`c.yaml:1: empty cases file`}},
		{"no cases", "other: 1\n", []string{`c.yaml:1: unknown key "other" (allowed: cases)`, `c.yaml:1: no cases`}},
		{"cases not a list", "cases: {}\n", []string{`c.yaml:1: cases: expected a non-empty list of cases, got a mapping`}},
		{"unknown key", "cases:\n  - {method: GET, path: /, expect: allow, role: [a]}\n",
			[]string{`c.yaml:2: cases[0]: unknown key "role" (allowed: name, method, host, path, roles, anonymous, expect, status, reason, rule)`}},
		{"missing fields", "cases:\n  - {name: x}\n",
			[]string{`c.yaml:2: cases[0]: missing method`, `c.yaml:2: cases[0]: missing path`, `c.yaml:2: cases[0]: missing expect`}},
		{"bad expect", "cases:\n  - {method: GET, path: /, expect: maybe}\n",
			[]string{`c.yaml:2: cases[0]: expect: want allow or deny, got "maybe"`}},
		{"bad status", "cases:\n  - {method: GET, path: /, expect: deny, status: teapot}\n",
			[]string{`c.yaml:2: cases[0]: status: expected an HTTP status code`}},
		{"bad roles", "cases:\n  - {method: GET, path: /, expect: deny,\n     roles: admin}\n",
			[]string{`c.yaml:3: cases[0]: roles: expected a list of roles, got a string`}},
		{"bad anonymous", "cases:\n  - {method: GET, path: /, expect: deny, anonymous: 1}\n",
			[]string{`c.yaml:2: cases[0]: anonymous: expected true or false, got a number`}},
		{"all reported", "cases:\n  - {method: GET, path: /, expect: maybe}\n  - {method: GET, path: 5, expect: deny}\n",
			[]string{`c.yaml:2: cases[0]: expect: want allow or deny, got "maybe"`, `c.yaml:3: cases[1]: path: expected a string, got a number`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCases("c.yaml", []byte(tt.src))
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CompileError", err)
			}
			if got := err.Error(); got != strings.Join(tt.want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", got, strings.Join(tt.want, "\n"))
			}
		})
	}
}
