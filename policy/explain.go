package policy

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Explanation is Decide with its working shown, for `gatehouse policy
// explain`.
type Explanation struct {
	File          string
	Method        string
	Host          string
	RawPath       string
	Anonymous     bool
	CanonicalPath string   // "" when refused
	PathError     error    // why the path is not canonical
	Rule          *Rule    // nil when no rule matched
	Claimed       []string // roles the caller claims
	Roles         []string // effective roles: claimed and inherited, sorted
	Permissions   []string // effective permissions, sorted
	UnknownRoles  []string // claimed roles the policy does not define
	Decision      Decision
}

// Explain decides like Decide and records every step.
func (p *Policy) Explain(method, host, rawPath string, roles []string, anonymous bool) Explanation {
	e := Explanation{
		File:      p.file,
		Method:    method,
		Host:      host,
		RawPath:   rawPath,
		Anonymous: anonymous,
		Decision:  p.Decide(method, host, rawPath, roles, anonymous),
	}
	e.CanonicalPath, e.PathError = CanonicalPath(rawPath)
	e.Rule = e.Decision.Rule // no second Match: Decide reports the rule whenever one matched
	if !anonymous {
		e.Claimed = append([]string(nil), roles...)
		g := p.Grants(roles)
		e.Roles, e.Permissions = g.Roles(), g.Permissions()
		for _, r := range roles {
			if !p.HasRole(r) {
				e.UnknownRoles = append(e.UnknownRoles, r)
			}
		}
	}
	return e
}

// Format writes the explanation as aligned "key: value" lines.
func (e Explanation) Format(w io.Writer) error {
	var b strings.Builder
	line := func(k, format string, args ...any) {
		if k != "" {
			k += ":"
		}
		fmt.Fprintf(&b, "%-10s %s\n", k, fmt.Sprintf(format, args...))
	}
	host := e.Host
	if host == "" {
		host = "(none)"
	}
	line("request", "%s %s host %s", printable(e.Method), printable(e.RawPath), printable(host))
	if e.PathError != nil {
		line("canonical", "refused: %v", e.PathError)
	} else {
		line("canonical", "%s", e.CanonicalPath)
		if e.Rule == nil {
			line("rule", "none (no route matches)")
		} else {
			r := e.Rule
			line("rule", "%q (routes[%d], %s:%d)", r.Name, r.Index, e.File, r.Line)
			line("match", "%s", r.MatchString())
			line("requires", "%s", r.Requirement())
		}
	}
	if e.Anonymous {
		line("caller", "anonymous (no token)")
	} else {
		line("caller", "authenticated, roles [%s]", strings.Join(e.Claimed, " "))
		line("effective", "roles [%s]", strings.Join(e.Roles, " "))
		line("", "permissions [%s]", strings.Join(e.Permissions, " "))
		if len(e.UnknownRoles) > 0 {
			line("unknown", "roles [%s] (not in the policy; they grant nothing)", strings.Join(e.UnknownRoles, " "))
		}
	}
	d := e.Decision
	verdict := "deny"
	if d.Allow {
		verdict = "allow"
	}
	line("decision", "%s %d %s", verdict, d.Status, d.Reason)
	_, err := io.WriteString(w, b.String())
	return err
}

// printable quotes s when it holds anything but printable ASCII, so that
// a hostile path cannot write control sequences to a terminal.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] >= 0x7f || s[i] == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}
