package policy

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a Diagnostic.
type Severity int

const (
	SeverityError   Severity = iota + 1 // the policy does not compile
	SeverityWarning                     // compiles, but probably not what was meant
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a policy or cases file.
type Diagnostic struct {
	File     string
	Line     int
	Severity Severity
	Message  string
}

// String is "FILE:LINE: message", or "FILE:LINE: warning: message".
func (d Diagnostic) String() string {
	if d.Severity == SeverityWarning {
		return fmt.Sprintf("%s:%d: warning: %s", d.File, d.Line, d.Message)
	}
	return fmt.Sprintf("%s:%d: %s", d.File, d.Line, d.Message)
}

func sortDiagnostics(ds []Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Line < ds[j].Line })
}

// HasErrors reports whether any diagnostic is an error.
func HasErrors(ds []Diagnostic) bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Lint returns every compile error plus these warnings, in line order:
//
//   - a route is unreachable: one earlier route alone matches every
//     request it could match (every method, host and path). Routes covered
//     only by several earlier routes together are not detected.
//   - two routes share a name (explanations and test cases name routes).
//   - a role is unused: no route admits a caller holding only that role,
//     i.e. no roles-route lists it or a role it inherits, and no
//     permissions-route requires any permission it grants (own or
//     inherited). Public and authenticated routes do not count.
//
// A permission that a route requires but no role grants is a compile error
// (the route could never be satisfied), so Lint reports it as an error.
// Permissions granted but required by no route are not reported: upstream
// services may check them.
func Lint(filename string, data []byte) []Diagnostic {
	c := compile(filename, data)
	c.lintDuplicateNames()
	c.lintShadowed()
	c.lintUnusedRoles()
	ds := c.diags
	sortDiagnostics(ds)
	return ds
}

func (c *compiler) lintDuplicateNames() {
	first := map[string]*routeDef{}
	for _, rd := range c.routes {
		if rd.name == "" {
			continue
		}
		if f, dup := first[rd.name]; dup {
			c.warnf(rd.line, "%s: duplicate route name (also at line %d)", rd.label, f.line)
			continue
		}
		first[rd.name] = rd
	}
}

func (c *compiler) lintShadowed() {
	for j, rj := range c.routes {
		if !rj.matchOK {
			continue
		}
		for _, ri := range c.routes[:j] {
			if ri.matchOK && covers(&ri.rule, &rj.rule) {
				c.warnf(rj.line, "%s is unreachable: route %q (line %d) matches every request it matches", rj.label, ri.name, ri.line)
				break
			}
		}
	}
}

// covers reports whether every request b matches is also matched by a.
func covers(a, b *Rule) bool {
	if b.methodMask&^a.methodMask != 0 {
		return false
	}
	if a.hosts != nil {
		if b.hosts == nil {
			return false
		}
		for _, h := range b.hosts {
			if !hostCovered(a, h) {
				return false
			}
		}
	}
	return pathCovers(a.segs, a.tail, b.segs, b.tail)
}

// hostCovered reports whether every host matched by pattern h (exact or
// "*.suffix") is matched by a.
func hostCovered(a *Rule, h string) bool {
	if s, wild := strings.CutPrefix(h, "*"); wild { // s is ".suffix"
		for _, as := range a.hostSuffix {
			if s == as || strings.HasSuffix(s, as) {
				return true
			}
		}
		return false
	}
	return a.matchHost(h)
}

// pathCovers reports whether pattern a matches every path pattern b does.
func pathCovers(a []patSeg, aTail bool, b []patSeg, bTail bool) bool {
	for i := 0; ; i++ {
		if i == len(a) && aTail {
			return true // a accepts anything from here on
		}
		if i == len(b) {
			// b may stop here (and, with a tail, go on arbitrarily); a must
			// stop here too and must not need anything more.
			return i == len(a) && !bTail
		}
		if i == len(a) {
			return false // b needs more segments than a allows
		}
		switch {
		case a[i].param != "":
			// a {param} accepts any segment b can put here.
		case b[i].param != "" || a[i].lit != b[i].lit:
			return false
		}
	}
}

func (c *compiler) lintUnusedRoles() {
	if c.roleIndex == nil {
		return
	}
	var roleRoutes, required bitset // roles listed by roles-routes; permissions required
	for _, rd := range c.routes {
		roleRoutes.or(rd.rule.roleBits)
		required.or(rd.rule.permBits)
	}
	for _, r := range c.roles {
		i := c.roleIndex[r.name]
		if c.roleEff[i].intersects(roleRoutes) || c.rolePerms[i].intersects(required) {
			continue
		}
		c.warnf(r.line, "role %q is not used by any route (no roles route admits it and no route requires any of its permissions)", r.name)
	}
}
