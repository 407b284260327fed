package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// compiler turns a policy file into a Policy, collecting every problem as a
// Diagnostic instead of stopping at the first. Lint reuses its
// intermediate state for warnings.
type compiler struct {
	file   string
	what   string // "policy" or "cases file", for messages about the whole file
	diags  []Diagnostic
	roles  []*roleDef // file order
	byName map[string]*roleDef
	routes []*routeDef // file order
	policy *Policy     // set only when there are no errors

	roleNames  []string
	roleIndex  map[string]int
	roleEff    []bitset
	rolePerms  []bitset
	permNames  []string
	permIndex  map[string]int
	methodBits map[string]uint64
}

type strAt struct {
	s    string
	line int
}

type roleDef struct {
	name     string
	line     int
	inherits []strAt
	perms    []strAt
}

type routeDef struct {
	index   int
	line    int
	name    string
	label   string // `route "name"`, or `routes[i]` when unnamed
	matchOK bool   // match compiled; usable for shadowing analysis
	rule    Rule
	methods []strAt
}

func (c *compiler) errorf(line int, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{File: c.file, Line: line, Severity: SeverityError, Message: fmt.Sprintf(format, args...)})
}

func (c *compiler) warnf(line int, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{File: c.file, Line: line, Severity: SeverityWarning, Message: fmt.Sprintf(format, args...)})
}

func (c *compiler) errors() []Diagnostic {
	var out []Diagnostic
	for _, d := range c.diags {
		if d.Severity == SeverityError {
			out = append(out, d)
		}
	}
	sortDiagnostics(out)
	return out
}

// compile runs every check; c.policy is nil when any error was found.
func compile(filename string, data []byte) *compiler {
	c := &compiler{file: filename, what: "policy", byName: map[string]*roleDef{}}
	root := c.parseDocument(data)
	if root == nil {
		return c
	}
	top, ok := c.mapping(root, "", []string{"roles", "routes"})
	if !ok {
		return c
	}
	if f, ok := top["roles"]; ok {
		c.parseRoles(f.v)
	}
	c.resolveRoles()
	if f, ok := top["routes"]; ok {
		c.parseRoutes(f.v)
	} else {
		c.errorf(root.Line, "no routes: every request would be denied")
	}
	c.methodBits = c.assignMethods()
	if len(c.errors()) == 0 {
		c.policy = c.build()
	}
	return c
}

// parseDocument returns the top-level node of the single YAML document.
func (c *compiler) parseDocument(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.errorf(1, "empty %s", c.what)
		} else {
			c.yamlError(err)
		}
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			c.yamlError(err)
		} else {
			c.errorf(extra.Line, "more than one YAML document")
		}
		return nil
	}
	if len(doc.Content) == 0 {
		c.errorf(1, "empty %s", c.what)
		return nil
	}
	if !c.noAliases(doc.Content[0]) {
		return nil
	}
	return doc.Content[0]
}

// yamlError turns "yaml: line 3: msg" into a diagnostic on line 3.
func (c *compiler) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, after, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, after
			}
		}
	}
	c.errorf(line, "invalid YAML: %s", msg)
}

// noAliases refuses anchors and aliases: they make one node appear in
// several places (and nested aliases can expand exponentially).
func (c *compiler) noAliases(n *yaml.Node) bool {
	ok := true
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode || n.Anchor != "" {
			c.errorf(n.Line, "YAML anchors and aliases are not supported")
			ok = false
			return
		}
		for _, ch := range n.Content {
			walk(ch)
		}
	}
	walk(n)
	return ok
}

type field struct{ k, v *yaml.Node }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "nothing"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
	}
	return "a document"
}

// mapping checks that n is a mapping whose keys are strings from allowed
// (any string key when allowed is nil), each at most once, and returns its
// fields. Problems are reported with prefix ctx.
func (c *compiler) mapping(n *yaml.Node, ctx string, allowed []string) (map[string]field, bool) {
	if n.Kind != yaml.MappingNode {
		c.errorf(n.Line, "%sexpected a mapping, got %s", ctx, kindName(n))
		return nil, false
	}
	out := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			c.errorf(k.Line, "%skey must be a string, got %s", ctx, kindName(k))
			continue
		}
		if prev, dup := out[k.Value]; dup {
			c.errorf(k.Line, "%sduplicate key %q (first at line %d)", ctx, k.Value, prev.k.Line)
			continue
		}
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			c.errorf(k.Line, "%sunknown key %q (allowed: %s)", ctx, k.Value, strings.Join(allowed, ", "))
			continue
		}
		out[k.Value] = field{k, v}
	}
	return out, true
}

func (c *compiler) str(n *yaml.Node, ctx string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		c.errorf(n.Line, "%sexpected a string, got %s", ctx, kindName(n))
		return "", false
	}
	return n.Value, true
}

// strList reads a non-empty list of strings, refusing duplicates.
func (c *compiler) strList(n *yaml.Node, ctx, what string) ([]strAt, bool) {
	if n.Kind != yaml.SequenceNode {
		c.errorf(n.Line, "%sexpected a list of %ss, got %s", ctx, what, kindName(n))
		return nil, false
	}
	if len(n.Content) == 0 {
		c.errorf(n.Line, "%sempty list", ctx)
		return nil, false
	}
	ok := true
	var out []strAt
	for _, e := range n.Content {
		s, good := c.str(e, ctx)
		if !good {
			ok = false
			continue
		}
		if slices.ContainsFunc(out, func(x strAt) bool { return x.s == s }) {
			c.errorf(e.Line, "%sduplicate %s %q", ctx, what, s)
			ok = false
			continue
		}
		out = append(out, strAt{s, e.Line})
	}
	return out, ok
}

// trueFlag reads `public: true` / `authenticated: true`; false is refused
// rather than ignored so that a route always says what it requires.
func (c *compiler) trueFlag(n *yaml.Node, ctx, key string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		c.errorf(n.Line, "%s%s: expected true, got %s", ctx, key, kindName(n))
		return false
	}
	var b bool
	if err := n.Decode(&b); err != nil || !b {
		c.errorf(n.Line, "%s%s must be true (omit the key instead)", ctx, key)
		return false
	}
	return true
}

func validRoleName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		if !alnum && (i == 0 || strings.IndexByte("_.:-", b) < 0) {
			return false
		}
	}
	return true
}

func validPermName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func (c *compiler) parseRoles(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		c.errorf(n.Line, "roles: expected a mapping of role names to roles, got %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := c.str(k, "roles: role name: ")
		if !ok {
			continue
		}
		ctx := fmt.Sprintf("role %q: ", name)
		if first, dup := seen[name]; dup {
			c.errorf(k.Line, "%sdefined twice (first at line %d)", ctx, first)
			continue
		}
		seen[name] = k.Line
		if !validRoleName(name) {
			c.errorf(k.Line, "%sinvalid name (letters and digits, then also _ . : -; at most 64)", ctx)
			continue
		}
		r := &roleDef{name: name, line: k.Line}
		c.roles = append(c.roles, r)
		c.byName[name] = r
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			continue // `guest:` alone: a role with no permissions
		}
		fields, ok := c.mapping(v, ctx, []string{"inherits", "permissions"})
		if !ok {
			continue
		}
		if f, ok := fields["inherits"]; ok {
			r.inherits, _ = c.strList(f.v, ctx+"inherits: ", "role")
		}
		if f, ok := fields["permissions"]; ok {
			perms, _ := c.strList(f.v, ctx+"permissions: ", "permission")
			for _, p := range perms {
				if !validPermName(p.s) {
					c.errorf(p.line, "%sinvalid permission name %q", ctx, p.s)
					continue
				}
				r.perms = append(r.perms, p)
			}
		}
	}
}

// resolveRoles checks inheritance and computes each role's effective roles
// and permissions (transitive closure; cycles are reported but the closure
// is still computed so that later checks can go on).
func (c *compiler) resolveRoles() {
	for _, r := range c.roles {
		known := r.inherits[:0:0]
		for _, in := range r.inherits {
			if _, ok := c.byName[in.s]; !ok {
				c.errorf(in.line, "role %q: inherits unknown role %q", r.name, in.s)
				continue
			}
			known = append(known, in)
		}
		r.inherits = known
	}
	c.reportCycles()

	c.roleIndex = map[string]int{}
	for _, r := range c.roles {
		c.roleNames = append(c.roleNames, r.name)
	}
	sort.Strings(c.roleNames)
	for i, n := range c.roleNames {
		c.roleIndex[n] = i
	}
	c.permIndex = map[string]int{}
	for _, r := range c.roles {
		for _, p := range r.perms {
			if _, ok := c.permIndex[p.s]; !ok {
				c.permIndex[p.s] = 0
				c.permNames = append(c.permNames, p.s)
			}
		}
	}
	sort.Strings(c.permNames)
	for i, n := range c.permNames {
		c.permIndex[n] = i
	}

	c.roleEff = make([]bitset, len(c.roleNames))
	c.rolePerms = make([]bitset, len(c.roleNames))
	for i, name := range c.roleNames {
		seen := map[string]bool{name: true}
		queue := []string{name}
		for len(queue) > 0 {
			r := c.byName[queue[0]]
			queue = queue[1:]
			c.roleEff[i].set(c.roleIndex[r.name])
			for _, p := range r.perms {
				c.rolePerms[i].set(c.permIndex[p.s])
			}
			for _, in := range r.inherits {
				if !seen[in.s] {
					seen[in.s] = true
					queue = append(queue, in.s)
				}
			}
		}
	}
}

// reportCycles reports each inheritance cycle once, on the line of the
// cycle's first role in the file.
func (c *compiler) reportCycles() {
	// Tarjan's strongly connected components over the inherits graph.
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var sccs [][]string
	var visit func(name string)
	visit = func(name string) {
		index[name] = len(index)
		low[name] = index[name]
		stack = append(stack, name)
		onStack[name] = true
		for _, in := range c.byName[name].inherits {
			if _, seen := index[in.s]; !seen {
				visit(in.s)
				low[name] = min(low[name], low[in.s])
			} else if onStack[in.s] {
				low[name] = min(low[name], index[in.s])
			}
		}
		if low[name] == index[name] {
			var scc []string
			for {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[top] = false
				scc = append(scc, top)
				if top == name {
					break
				}
			}
			sccs = append(sccs, scc)
		}
	}
	for _, r := range c.roles {
		if _, seen := index[r.name]; !seen {
			visit(r.name)
		}
	}
	for _, scc := range sccs {
		member := map[string]bool{}
		for _, n := range scc {
			member[n] = true
		}
		var first *roleDef
		for _, r := range c.roles {
			if member[r.name] {
				first = r
				break
			}
		}
		if len(scc) == 1 && !slices.ContainsFunc(first.inherits, func(s strAt) bool { return s.s == first.name }) {
			continue
		}
		c.errorf(first.line, "role %q: inheritance cycle: %s", first.name, strings.Join(c.cyclePath(first.name, member), " -> "))
	}
}

// cyclePath finds a shortest path from start back to start inside one
// strongly connected component.
func (c *compiler) cyclePath(start string, member map[string]bool) []string {
	prev := map[string]string{}
	queue := []string{start}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, in := range c.byName[cur].inherits {
			if !member[in.s] {
				continue
			}
			if in.s == start {
				path := []string{start}
				for n := cur; n != start; n = prev[n] {
					path = append(path, n)
				}
				slices.Reverse(path[1:])
				return append(path, start)
			}
			if _, seen := prev[in.s]; !seen {
				prev[in.s] = cur
				queue = append(queue, in.s)
			}
		}
	}
	return []string{start, start}
}

func (c *compiler) parseRoutes(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		c.errorf(n.Line, "routes: expected a list of routes, got %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		c.errorf(n.Line, "no routes: every request would be denied")
		return
	}
	for i, rn := range n.Content {
		rd := &routeDef{index: i, line: rn.Line, label: fmt.Sprintf("routes[%d]", i)}
		c.routes = append(c.routes, rd)
		c.parseRoute(rd, rn)
	}
}

var accessKeys = []string{"public", "authenticated", "permissions", "roles"}

// parseRoute fills rd. A route must be named: the name identifies it in
// explanations, test cases and logs.
func (c *compiler) parseRoute(rd *routeDef, n *yaml.Node) {
	r := &rd.rule
	r.Index, r.Line = rd.index, rd.line
	if n.Kind != yaml.MappingNode {
		c.errorf(n.Line, "%s: expected a mapping, got %s", rd.label, kindName(n))
		return
	}
	// The name comes first so that every other message can use it.
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Value == "name" && k.ShortTag() == "!!str" {
			if name, ok := c.str(n.Content[i+1], rd.label+": name: "); ok {
				if !validRouteName(name) {
					c.errorf(n.Content[i+1].Line, "%s: invalid name %q", rd.label, name)
				} else {
					rd.name, r.Name = name, name
					rd.label = fmt.Sprintf("route %q", name)
				}
			}
			break
		}
	}
	ctx := rd.label + ": "
	fields, ok := c.mapping(n, ctx, []string{"name", "match", "public", "authenticated", "permissions", "roles"})
	if !ok {
		return
	}
	if _, ok := fields["name"]; !ok {
		c.errorf(n.Line, "%smissing name", ctx)
	}
	if f, ok := fields["match"]; ok {
		rd.matchOK = c.parseMatch(rd, f.v)
	} else {
		c.errorf(n.Line, "%smissing match (use match: {path_prefix: /} to match everything)", ctx)
	}

	var present []field
	var names []string
	for _, k := range accessKeys {
		if f, ok := fields[k]; ok {
			present = append(present, f)
			names = append(names, k)
		}
	}
	switch len(present) {
	case 0:
		c.errorf(n.Line, "%sneeds exactly one of public, authenticated, permissions, roles", ctx)
		return
	case 1:
	default:
		c.errorf(present[1].k.Line, "%s%s are mutually exclusive (needs exactly one of public, authenticated, permissions, roles)", ctx, strings.Join(names, " and "))
		return
	}
	f := present[0]
	switch names[0] {
	case "public":
		if c.trueFlag(f.v, ctx, "public") {
			r.Access = AccessPublic
		}
	case "authenticated":
		if c.trueFlag(f.v, ctx, "authenticated") {
			r.Access = AccessAuthenticated
		}
	case "permissions":
		if c.resolveNames(f.v, ctx, "permission", c.permIndex, "%spermission %q is granted by no role", &r.permBits, &r.Permissions) {
			r.Access = AccessPermissions
		}
	case "roles":
		if c.resolveNames(f.v, ctx, "role", c.roleIndex, "%sunknown role %q", &r.roleBits, &r.Roles) {
			r.Access = AccessRoles
		}
	}
}

// resolveNames reads a route's permissions or roles list, setting each name's bit and keeping the names; a name
// missing from index is reported with unknownMsg (ctx, name) and makes the result false.
func (c *compiler) resolveNames(n *yaml.Node, ctx, what string, index map[string]int, unknownMsg string, bits *bitset, names *[]string) bool {
	list, ok := c.strList(n, ctx+what+"s: ", what)
	for _, x := range list {
		i, known := index[x.s]
		if !known {
			c.errorf(x.line, unknownMsg, ctx, x.s)
			ok = false
			continue
		}
		bits.set(i)
		*names = append(*names, x.s)
	}
	return ok
}

func (c *compiler) parseMatch(rd *routeDef, n *yaml.Node) bool {
	r := &rd.rule
	ctx := rd.label + ": match: "
	fields, ok := c.mapping(n, ctx, []string{"path", "path_prefix", "methods", "hosts"})
	if !ok {
		return false
	}
	pf, hasPath := fields["path"]
	xf, hasPrefix := fields["path_prefix"]
	switch {
	case hasPath && hasPrefix:
		c.errorf(xf.k.Line, "%spath and path_prefix are mutually exclusive", ctx)
		ok = false
	case !hasPath && !hasPrefix:
		c.errorf(n.Line, "%sneeds path or path_prefix (use path_prefix: / to match everything)", ctx)
		ok = false
	case hasPath:
		if s, good := c.str(pf.v, ctx+"path: "); good {
			r.pattern = s
			r.segs, r.tail, ok = c.parsePath(pf.v.Line, rd.label, s)
		} else {
			ok = false
		}
	default:
		if s, good := c.str(xf.v, ctx+"path_prefix: "); good {
			r.pattern, r.prefix = s, true
			r.segs, ok = c.parsePrefix(xf.v.Line, rd.label, s)
			r.tail = true
		} else {
			ok = false
		}
	}

	r.methodMask = ^uint64(0)
	if f, has := fields["methods"]; has {
		methods, good := c.strList(f.v, ctx+"methods: ", "method")
		for _, m := range methods {
			if why := checkMethod(m.s); why != "" {
				c.errorf(m.line, "%s: method %q: %s", rd.label, m.s, why)
				good = false
				continue
			}
			rd.methods = append(rd.methods, m)
			r.methods = append(r.methods, m.s)
		}
		ok = ok && good
	}
	if f, has := fields["hosts"]; has {
		hosts, good := c.strList(f.v, ctx+"hosts: ", "host")
		for _, h := range hosts {
			lower := strings.ToLower(h.s)
			if why := checkHost(lower); why != "" {
				c.errorf(h.line, "%s: host %q: %s", rd.label, h.s, why)
				good = false
				continue
			}
			if slices.Contains(r.hosts, lower) {
				c.errorf(h.line, "%s: match: hosts: duplicate host %q", rd.label, h.s)
				good = false
				continue
			}
			r.hosts = append(r.hosts, lower)
			if s, wild := strings.CutPrefix(lower, "*"); wild {
				r.hostSuffix = append(r.hostSuffix, s)
			} else {
				r.hostExact = append(r.hostExact, lower)
			}
		}
		ok = ok && good
	}
	return ok
}

// parsePath compiles a path pattern: literal segments in canonical form,
// {name} for exactly one non-empty segment, and an optional final /**.
func (c *compiler) parsePath(line int, label, s string) ([]patSeg, bool, bool) {
	bad := func(why string) ([]patSeg, bool, bool) {
		c.errorf(line, "%s: path %q: %s", label, s, why)
		return nil, false, false
	}
	if s == "" || s[0] != '/' {
		return bad("must start with '/'")
	}
	if len(s) > MaxPathLength {
		return bad("longer than 8 KiB")
	}
	if s == "/" {
		return nil, false, true
	}
	var segs []patSeg
	tail := false
	parts := strings.Split(s[1:], "/")
	for i, part := range parts {
		last := i == len(parts)-1
		switch {
		case part == "**":
			if !last {
				return bad("'**' is only allowed as the final segment")
			}
			tail = true
		case strings.HasPrefix(part, "{"):
			name, ok := strings.CutSuffix(part[1:], "}")
			if !ok || !validParam(name) {
				return bad(fmt.Sprintf("invalid parameter %q (want {name}: a whole segment, name of letters, digits and _)", part))
			}
			if slices.ContainsFunc(segs, func(p patSeg) bool { return p.param == name }) {
				return bad(fmt.Sprintf("duplicate parameter {%s}", name))
			}
			segs = append(segs, patSeg{param: name})
		case strings.Contains(part, "*"):
			return bad("'*' is only allowed as a final /** segment")
		case strings.ContainsAny(part, "{}"):
			return bad("a {parameter} must be a whole segment")
		case part == "" && last:
			return bad("trailing slash (canonical paths have none)")
		case part == "":
			return bad("empty segment")
		default:
			if why := checkCanonical("/" + part); why != "" {
				return bad(why)
			}
			segs = append(segs, patSeg{lit: part})
		}
	}
	return segs, tail, true
}

// parsePrefix compiles a path_prefix: a literal canonical path that
// matches itself and everything below it, segment by segment.
func (c *compiler) parsePrefix(line int, label, s string) ([]patSeg, bool) {
	bad := func(why string) ([]patSeg, bool) {
		c.errorf(line, "%s: path_prefix %q: %s", label, s, why)
		return nil, false
	}
	if s == "" || s[0] != '/' {
		return bad("must start with '/'")
	}
	if strings.ContainsAny(s, "*{}") {
		return bad("must be a literal path (use path for {param} and /**)")
	}
	if s == "/" {
		return nil, true
	}
	if strings.HasSuffix(s, "/") {
		return bad(fmt.Sprintf("trailing slash (write %q; it already matches what is below it)", strings.TrimSuffix(s, "/")))
	}
	if why := checkCanonical(s); why != "" {
		return bad(why)
	}
	var segs []patSeg
	for _, part := range strings.Split(s[1:], "/") {
		segs = append(segs, patSeg{lit: part})
	}
	return segs, true
}

// checkCanonical explains why a pattern's literal part is not a canonical
// path, or returns "". Patterns must be written canonically: a pattern
// that could never equal a canonical request path would silently never
// match.
func checkCanonical(s string) string {
	cp, err := CanonicalPath(s)
	if err != nil {
		return err.Error()
	}
	if cp != s {
		return fmt.Sprintf("not canonical (write %q)", cp)
	}
	return ""
}

func validRouteName(s string) bool {
	if s == "" || len(s) > 128 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func validParam(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || b == '_' || i > 0 && '0' <= b && b <= '9') {
			return false
		}
	}
	return true
}

// checkMethod accepts an RFC 9110 token written in upper case (methods are
// case-sensitive; every registered method is upper-case).
func checkMethod(m string) string {
	if m == "" || len(m) > 32 {
		return "not an HTTP method token"
	}
	for i := 0; i < len(m); i++ {
		b := m[i]
		switch {
		case 'a' <= b && b <= 'z':
			return fmt.Sprintf("must be upper-case (%q)", strings.ToUpper(m))
		case 'A' <= b && b <= 'Z', '0' <= b && b <= '9', strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return "not an HTTP method token"
		}
	}
	return ""
}

// checkHost validates a lower-cased host pattern: a DNS name, "*." and a
// DNS name, an IPv4 address or a bracketed IPv6 address; never a port.
func checkHost(h string) string {
	if h == "*" {
		return "'*' alone is not a host pattern (omit hosts to match any host)"
	}
	if strings.HasPrefix(h, "[") {
		addr, ok := strings.CutSuffix(h[1:], "]")
		if a, err := netip.ParseAddr(addr); !ok || err != nil || !a.Is6() || a.Zone() != "" {
			return "invalid IPv6 literal"
		}
		if a, _ := netip.ParseAddr(addr); a.String() != addr {
			return fmt.Sprintf("write the IPv6 address as [%s]", a)
		}
		return ""
	}
	name, wild := strings.CutPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return "a wildcard is only allowed as a leading '*.'"
	}
	if strings.Contains(name, ":") {
		return "must not include a port (ports are ignored when matching)"
	}
	if len(name) == 0 || len(name) > 253 {
		return "invalid host name"
	}
	if _, err := netip.ParseAddr(name); err == nil {
		if wild {
			return "a wildcard cannot precede an IP address"
		}
		return ""
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "invalid host name (empty or over-long label)"
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
				return "invalid host name (letters, digits, '-' and '_' only)"
			}
		}
	}
	return ""
}

// assignMethods gives each distinct method a bit; a route without methods
// matches every bit, including otherMethod.
func (c *compiler) assignMethods() map[string]uint64 {
	bitsOf := map[string]uint64{}
	for _, rd := range c.routes {
		if rd.rule.methods == nil {
			continue
		}
		var mask uint64
		for _, m := range rd.methods {
			b, ok := bitsOf[m.s]
			if !ok {
				if len(bitsOf) == 63 {
					c.errorf(m.line, "%s: more than 63 distinct methods in the policy", rd.label)
					continue
				}
				b = uint64(1) << uint(len(bitsOf))
				bitsOf[m.s] = b
			}
			mask |= b
		}
		rd.rule.methodMask = mask
	}
	return bitsOf
}

func (c *compiler) build() *Policy {
	p := &Policy{
		file:      c.file,
		roleNames: c.roleNames,
		roleIndex: c.roleIndex,
		roleEff:   c.roleEff,
		rolePerms: c.rolePerms,
		permNames: c.permNames,
		permIndex: c.permIndex,
	}
	p.methodBits = c.methodBits
	p.rules = make([]Rule, len(c.routes))
	for i, rd := range c.routes {
		p.rules[i] = rd.rule
	}
	p.root = buildTrie(p.rules)
	return p
}
