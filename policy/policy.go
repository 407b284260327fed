package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// Access is what a route asks of the caller.
type Access int

const (
	AccessPublic        Access = iota + 1 // no token needed
	AccessAuthenticated                   // any valid access token
	AccessPermissions                     // every listed permission
	AccessRoles                           // any listed role (inherited roles count)
)

func (a Access) String() string {
	switch a {
	case AccessPublic:
		return "public"
	case AccessAuthenticated:
		return "authenticated"
	case AccessPermissions:
		return "permissions"
	case AccessRoles:
		return "roles"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// Decision reasons: one vocabulary shared by responses, logs and metrics.
const (
	ReasonAllowed          = "allowed"
	ReasonPublic           = "public"
	ReasonNoRoute          = "no_route"
	ReasonNonCanonicalPath = "non_canonical_path"
	ReasonUnauthenticated  = "unauthenticated"
	ReasonForbidden        = "forbidden"
)

// ErrInvalidPolicy is wrapped by every error Compile and Load return for a
// policy file that does not compile (syntax, schema or reference errors).
var ErrInvalidPolicy = errors.New("invalid policy")

// maxPolicySize bounds what Load reads; 10,000 routes fit comfortably.
const maxPolicySize = 16 << 20

// Rule is one compiled route. Rules are owned by their Policy and shared
// between goroutines: callers must not modify them (or their slices).
type Rule struct {
	Name        string
	Index       int // position in the routes list, from 0
	Line        int // line of the route in the policy file
	Access      Access
	Permissions []string // AccessPermissions: all are required
	Roles       []string // AccessRoles: any one suffices

	methods    []string // as written; nil = any method
	methodMask uint64
	hosts      []string // as written (lower-cased); nil = any host
	hostExact  []string // lower-case
	hostSuffix []string // lower-case, with the leading '.', from "*.suffix"
	pattern    string   // path or path_prefix as written
	prefix     bool     // pattern came from path_prefix
	segs       []patSeg
	tail       bool // matches zero or more further segments (/** or path_prefix)
	permBits   bitset
	roleBits   bitset
}

// patSeg is one segment of a compiled path pattern.
type patSeg struct {
	lit   string // literal segment; empty when param
	param string // parameter name for {name}
}

// Requirement describes what the rule asks of the caller, e.g.
// "permissions: all of [read:users]".
func (r *Rule) Requirement() string {
	switch r.Access {
	case AccessPublic:
		return "public: no token needed"
	case AccessAuthenticated:
		return "authenticated: any valid access token"
	case AccessPermissions:
		return "permissions: all of [" + strings.Join(r.Permissions, " ") + "]"
	case AccessRoles:
		return "roles: any of [" + strings.Join(r.Roles, " ") + "]"
	}
	return r.Access.String()
}

// MatchString describes what the rule matches, e.g.
// "methods [GET HEAD] path /orders/** hosts [api.example.com *.example.com]".
func (r *Rule) MatchString() string {
	var b strings.Builder
	if r.methods != nil {
		b.WriteString("methods [" + strings.Join(r.methods, " ") + "] ")
	}
	if r.prefix {
		b.WriteString("path_prefix " + r.pattern)
	} else {
		b.WriteString("path " + r.pattern)
	}
	if r.hosts != nil {
		b.WriteString(" hosts [" + strings.Join(r.hosts, " ") + "]")
	}
	return b.String()
}

// Policy is a compiled policy. It is immutable and safe for concurrent use.
type Policy struct {
	file  string
	rules []Rule
	root  *node

	methodBits map[string]uint64 // methods named by any route; others get otherMethod

	roleNames []string // sorted
	roleIndex map[string]int
	roleEff   []bitset // per role index: itself and every role it inherits
	rolePerms []bitset // per role index: own and inherited permissions
	permNames []string // sorted
	permIndex map[string]int
}

// otherMethod stands for every method no route names; only routes without a
// methods list match it.
const otherMethod = uint64(1) << 63

// File is the file name the policy was compiled from.
func (p *Policy) File() string { return p.file }

// Rules returns the compiled rules in file order.
func (p *Policy) Rules() []*Rule {
	out := make([]*Rule, len(p.rules))
	for i := range p.rules {
		out[i] = &p.rules[i]
	}
	return out
}

// RoleNames returns every defined role, sorted.
func (p *Policy) RoleNames() []string { return slices.Clone(p.roleNames) }

// HasRole reports whether the policy defines the role.
func (p *Policy) HasRole(name string) bool { _, ok := p.roleIndex[name]; return ok }

// Load reads and compiles a policy file; messages name the file as given.
func Load(path string) (*Policy, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return Compile(path, data)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxPolicySize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxPolicySize)
	}
	return data, nil
}

// CompileError lists every problem found in a policy, one
// "FILE:LINE: message" per line. It wraps ErrInvalidPolicy.
type CompileError struct {
	Diagnostics []Diagnostic // errors only, in line order
}

func (e *CompileError) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

func (e *CompileError) Unwrap() error { return ErrInvalidPolicy }

// Compile parses and compiles a policy. filename is only used in messages.
// On failure the error is a *CompileError listing every problem found.
func Compile(filename string, data []byte) (*Policy, error) {
	c := compile(filename, data)
	if errs := c.errors(); len(errs) > 0 {
		return nil, &CompileError{Diagnostics: errs}
	}
	return c.policy, nil
}

// Match returns the first rule, in file order, that matches the request, or
// nil. canonicalPath must come from CanonicalPath. host is the request
// authority; a port and one trailing dot are ignored and it is compared
// case-insensitively (ASCII only). Methods are case-sensitive. Match does
// not allocate and its cost depends on the path's depth and on the routes
// that share its segments, not on the total number of routes.
func (p *Policy) Match(method, host, canonicalPath string) *Rule {
	if p == nil || p.root == nil {
		return nil
	}
	rest := canonicalPath
	if rest == "/" {
		rest = ""
	} else if rest == "" || rest[0] != '/' {
		return nil
	}
	mbit, ok := p.methodBits[method]
	if !ok {
		mbit = otherMethod
	}
	m := matcher{p: p, method: mbit, host: normalizeHost(host)}
	best := m.walk(p.root, rest, len(p.rules))
	if best >= len(p.rules) {
		return nil
	}
	return &p.rules[best]
}

// Decision is the policy-only outcome for a request: it knows whether the
// caller is anonymous and which roles it claims, not whether a token is
// valid.
type Decision struct {
	Allow         bool
	Status        int
	Reason        string
	Rule          *Rule  // nil when no rule matched or the path was refused
	CanonicalPath string // "" when the path was refused
}

// Decide runs the whole policy decision: canonical path, first matching
// rule, then the rule's requirement against the caller. An anonymous
// caller's roles are ignored.
func (p *Policy) Decide(method, host, rawPath string, roles []string, anonymous bool) Decision {
	cp, err := CanonicalPath(rawPath)
	if err != nil {
		return Decision{Status: 400, Reason: ReasonNonCanonicalPath}
	}
	r := p.Match(method, host, cp)
	switch {
	case r == nil:
		return Decision{Status: 403, Reason: ReasonNoRoute, CanonicalPath: cp}
	case r.Access == AccessPublic:
		return Decision{Allow: true, Status: 200, Reason: ReasonPublic, Rule: r, CanonicalPath: cp}
	case anonymous:
		return Decision{Status: 401, Reason: ReasonUnauthenticated, Rule: r, CanonicalPath: cp}
	case p.Authorized(r, p.Grants(roles)):
		return Decision{Allow: true, Status: 200, Reason: ReasonAllowed, Rule: r, CanonicalPath: cp}
	}
	return Decision{Status: 403, Reason: ReasonForbidden, Rule: r, CanonicalPath: cp}
}

// Grants is an authenticated caller's effective roles (its own and every
// role they inherit) and permissions, as bitsets of the Policy that made it.
// The zero value grants nothing. Grants from one Policy grant nothing on
// another (e.g. after a reload), so they must be recomputed.
type Grants struct {
	p     *Policy
	roles bitset
	perms bitset
}

// Grants resolves role names. Unknown roles grant nothing. It does not
// allocate while the policy has at most 64 roles and 64 permissions.
func (p *Policy) Grants(roles []string) Grants {
	g := Grants{p: p}
	if p == nil {
		return g
	}
	for _, name := range roles {
		i, ok := p.roleIndex[name]
		if !ok {
			continue
		}
		g.roles.or(p.roleEff[i])
		g.perms.or(p.rolePerms[i])
	}
	return g
}

// Roles returns the effective role names, sorted.
func (g Grants) Roles() []string {
	if g.p == nil {
		return nil
	}
	return g.roles.names(g.p.roleNames)
}

// Permissions returns the effective permission names, sorted.
func (g Grants) Permissions() []string {
	if g.p == nil {
		return nil
	}
	return g.perms.names(g.p.permNames)
}

// Authorized reports whether an authenticated caller with grants g meets
// r's requirement. Public and authenticated rules admit every authenticated
// caller; a nil rule or Grants from another Policy admit nobody else.
func (p *Policy) Authorized(r *Rule, g Grants) bool {
	if r == nil {
		return false
	}
	switch r.Access {
	case AccessPublic, AccessAuthenticated:
		return true
	case AccessPermissions:
		return g.p == p && r.permBits.subsetOf(g.perms)
	case AccessRoles:
		return g.p == p && r.roleBits.intersects(g.roles)
	}
	return false
}
