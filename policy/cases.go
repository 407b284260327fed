package policy

import (
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"
)

// Case is one expectation from a cases file (`gatehouse policy test`):
//
//	cases:
//	  - {name: alice reads profile, method: GET, path: /users/profile, roles: [user], expect: allow}
//	  - {name: anonymous profile, method: GET, path: /users/profile, expect: deny, status: 401}
//
// method, path and expect are required. A case without roles is anonymous;
// `roles: []` is an authenticated caller with no roles, and `anonymous`
// (true or false) overrides either. status, reason and rule are checked
// only when present; `rule: ""` expects that no rule matches.
type Case struct {
	File        string
	Line        int
	Name        string
	Method      string
	Host        string
	Path        string
	Roles       []string
	Anonymous   bool
	ExpectAllow bool
	Status      int    // 0: not checked
	Reason      string // "": not checked
	Rule        string // checked when CheckRule
	CheckRule   bool
}

// CaseResult compares a case's expectations with the policy's decision.
type CaseResult struct {
	Case     Case
	Decision Decision
	Passed   bool
	Failures []string // one per mismatching expectation
}

// LoadCases reads a cases file; problems are reported as "FILE:LINE:
// message", all of them.
func LoadCases(path string) ([]Case, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return ParseCases(path, data)
}

// ParseCases parses a cases file; filename is only used in messages.
func ParseCases(filename string, data []byte) ([]Case, error) {
	c := &compiler{file: filename, what: "cases file"}
	root := c.parseDocument(data)
	var cases []Case
	if root != nil {
		if top, ok := c.mapping(root, "", []string{"cases"}); ok {
			if f, ok := top["cases"]; !ok {
				c.errorf(root.Line, "no cases")
			} else if f.v.Kind != yaml.SequenceNode || len(f.v.Content) == 0 {
				c.errorf(f.v.Line, "cases: expected a non-empty list of cases, got %s", kindName(f.v))
			} else {
				for i, n := range f.v.Content {
					if tc, ok := c.parseCase(i, n); ok {
						cases = append(cases, tc)
					}
				}
			}
		}
	}
	if errs := c.errors(); len(errs) > 0 {
		return nil, &CompileError{Diagnostics: errs}
	}
	return cases, nil
}

func (c *compiler) parseCase(i int, n *yaml.Node) (Case, bool) {
	tc := Case{File: c.file, Line: n.Line, Name: fmt.Sprintf("cases[%d]", i)}
	ctx := tc.Name + ": "
	fields, ok := c.mapping(n, ctx, []string{"name", "method", "host", "path", "roles", "anonymous", "expect", "status", "reason", "rule"})
	if !ok {
		return tc, false
	}
	str := func(key string, required bool) (string, bool) {
		f, has := fields[key]
		if !has {
			if required {
				c.errorf(n.Line, "%smissing %s", ctx, key)
				return "", false
			}
			return "", true
		}
		return c.str(f.v, ctx+key+": ")
	}
	var good [6]bool
	var name string
	name, good[0] = str("name", false)
	if name != "" {
		tc.Name = name
	}
	tc.Method, good[1] = str("method", true)
	tc.Host, good[2] = str("host", false)
	tc.Path, good[3] = str("path", true)
	tc.Reason, good[4] = str("reason", false)
	var expect string
	expect, good[5] = str("expect", true)
	ok = good == [6]bool{true, true, true, true, true, true}
	if ok {
		switch expect {
		case "allow":
			tc.ExpectAllow = true
		case "deny":
		default:
			c.errorf(fields["expect"].v.Line, "%sexpect: want allow or deny, got %q", ctx, expect)
			ok = false
		}
	}

	tc.Anonymous = true
	if f, has := fields["roles"]; has {
		tc.Anonymous = false
		if f.v.Kind != yaml.SequenceNode {
			c.errorf(f.v.Line, "%sroles: expected a list of roles, got %s", ctx, kindName(f.v))
			ok = false
		}
		for _, e := range f.v.Content {
			s, good := c.str(e, ctx+"roles: ")
			ok = ok && good
			tc.Roles = append(tc.Roles, s)
		}
	}
	if f, has := fields["anonymous"]; has {
		if f.v.Kind != yaml.ScalarNode || f.v.ShortTag() != "!!bool" || f.v.Decode(&tc.Anonymous) != nil {
			c.errorf(f.v.Line, "%sanonymous: expected true or false, got %s", ctx, kindName(f.v))
			ok = false
		}
	}
	if f, has := fields["status"]; has {
		if f.v.Kind != yaml.ScalarNode || f.v.ShortTag() != "!!int" || f.v.Decode(&tc.Status) != nil ||
			tc.Status < 100 || tc.Status > 599 {
			c.errorf(f.v.Line, "%sstatus: expected an HTTP status code", ctx)
			ok = false
		}
	}
	if f, has := fields["rule"]; has {
		tc.Rule, good[0] = c.str(f.v, ctx+"rule: ")
		tc.CheckRule = true
		ok = ok && good[0]
	}
	return tc, ok
}

// RunCases decides every case against p.
func RunCases(p *Policy, cases []Case) []CaseResult {
	out := make([]CaseResult, len(cases))
	for i, tc := range cases {
		d := p.Decide(tc.Method, tc.Host, tc.Path, tc.Roles, tc.Anonymous)
		res := CaseResult{Case: tc, Decision: d}
		if d.Allow != tc.ExpectAllow {
			res.Failures = append(res.Failures, fmt.Sprintf("decision: want %s, got %s", verdict(tc.ExpectAllow), verdict(d.Allow)))
		}
		if tc.Status != 0 && d.Status != tc.Status {
			res.Failures = append(res.Failures, fmt.Sprintf("status: want %d, got %d", tc.Status, d.Status))
		}
		if tc.Reason != "" && d.Reason != tc.Reason {
			res.Failures = append(res.Failures, fmt.Sprintf("reason: want %s, got %s", tc.Reason, d.Reason))
		}
		if got := ruleName(d.Rule); tc.CheckRule && got != tc.Rule {
			res.Failures = append(res.Failures, fmt.Sprintf("rule: want %q, got %q", tc.Rule, got))
		}
		res.Passed = len(res.Failures) == 0
		out[i] = res
	}
	return out
}

func verdict(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func ruleName(r *Rule) string {
	if r == nil {
		return ""
	}
	return r.Name
}

// WriteCaseReport writes one line per failing case, e.g.
//
//	FAIL cases.yaml:3: "anonymous profile": status: want 401, got 403 (got deny 403 forbidden, rule "profile")
//
// then "N passed, M failed", and returns M.
func WriteCaseReport(w io.Writer, results []CaseResult) (failed int) {
	var b strings.Builder
	for _, r := range results {
		if r.Passed {
			continue
		}
		failed++
		d := r.Decision
		fmt.Fprintf(&b, "FAIL %s:%d: %q: %s (got %s %d %s, rule %q)\n",
			r.Case.File, r.Case.Line, r.Case.Name, strings.Join(r.Failures, "; "),
			verdict(d.Allow), d.Status, d.Reason, ruleName(d.Rule))
	}
	fmt.Fprintf(&b, "%d passed, %d failed\n", len(results)-failed, failed)
	_, _ = io.WriteString(w, b.String())
	return failed
}
