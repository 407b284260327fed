package policy

import (
	"math"
	"strings"
)

// node is one segment position in the route trie. A request path walks
// the literal child named by its next segment and the {param} child; a
// node reached by the same choices is reached once, so a lookup visits at
// most one node per pattern prefix that fits the path, however many routes
// there are.
type node struct {
	lit   map[string]*node
	param *node
	exact []int // rules whose pattern ends here, ascending
	tail  []int // rules ending here with /** (or path_prefix), ascending
	min   int   // lowest rule index in this subtree, for pruning
}

func newNode() *node { return &node{min: math.MaxInt} }

func buildTrie(rules []Rule) *node {
	root := newNode()
	for i := range rules {
		r := &rules[i]
		n := root
		n.min = min(n.min, i)
		for _, s := range r.segs {
			var next *node
			if s.param != "" {
				if n.param == nil {
					n.param = newNode()
				}
				next = n.param
			} else {
				if n.lit == nil {
					n.lit = make(map[string]*node)
				}
				next = n.lit[s.lit]
				if next == nil {
					next = newNode()
					n.lit[s.lit] = next
				}
			}
			n = next
			n.min = min(n.min, i)
		}
		if r.tail {
			n.tail = append(n.tail, i)
		} else {
			n.exact = append(n.exact, i)
		}
	}
	return root
}

type matcher struct {
	p      *Policy
	method uint64
	host   string
}

// walk returns the lowest index of a rule under n that matches rest (""
// or "/seg/..."), or best if none is lower than best.
func (m *matcher) walk(n *node, rest string, best int) int {
	if n.min >= best {
		return best
	}
	best = m.pick(n.tail, best)
	if rest == "" {
		return m.pick(n.exact, best)
	}
	seg, next := rest[1:], ""
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, next = seg[:i], seg[i:]
	}
	if c := n.lit[seg]; c != nil {
		best = m.walk(c, next, best)
	}
	if n.param != nil && seg != "" {
		best = m.walk(n.param, next, best)
	}
	return best
}

// pick returns the first rule in list (ascending) below best whose methods
// and hosts admit the request.
func (m *matcher) pick(list []int, best int) int {
	for _, i := range list {
		if i >= best {
			break
		}
		r := &m.p.rules[i]
		if r.methodMask&m.method != 0 && r.matchHost(m.host) {
			return i
		}
	}
	return best
}

// normalizeHost drops the port and one trailing dot from an authority,
// without allocating.
func normalizeHost(h string) string {
	if strings.HasPrefix(h, "[") {
		// An IPv6 literal: "]" must end the host or precede the port.
		if i := strings.IndexByte(h, ']'); i >= 0 && (i+1 == len(h) || h[i+1] == ':') {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}

// matchHost compares ASCII case-insensitively (strings.EqualFold would also
// fold Unicode, letting e.g. the Kelvin sign stand for 'k').
func (r *Rule) matchHost(h string) bool {
	if r.hosts == nil {
		return true
	}
	for _, e := range r.hostExact {
		if asciiEqualFold(h, e) {
			return true
		}
	}
	for _, s := range r.hostSuffix {
		if n := len(h) - len(s); n > 0 && h[n-1] != '.' && asciiEqualFold(h[n:], s) {
			return true
		}
	}
	return false
}

// asciiEqualFold reports whether a equals the lower-case b, ignoring ASCII
// case in a.
func asciiEqualFold(a, lowerB string) bool {
	if len(a) != len(lowerB) {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lowerB[i] {
			return false
		}
	}
	return true
}
