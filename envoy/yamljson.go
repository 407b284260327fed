package envoy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/reflect/protoregistry"
	"gopkg.in/yaml.v3"
)

// Limits on what a YAML document may expand to. Aliases let a small file
// describe an exponentially large tree ("billion laughs"); a hand-written
// Envoy bootstrap is a few thousand nodes, so this leaves room for big
// generated ones while bounding the work.
const (
	maxNodes = 1 << 18
	maxDepth = 256
)

// jsonDoc is a YAML document re-encoded as JSON for protojson, with enough
// bookkeeping to point protojson's complaints back at YAML lines.
type jsonDoc struct {
	json []byte
	// lines[i] is the YAML line that JSON line i+1 came from. Every JSON
	// member and sequence item starts a line of its own, so protojson's
	// "(line L:C)" positions map to the YAML key or item that caused them.
	lines []int
}

// yamlLine maps a JSON line reported by protojson to the YAML line it came from.
func (d *jsonDoc) yamlLine(jsonLine int) int {
	if jsonLine < 1 || jsonLine > len(d.lines) {
		return 0
	}
	return d.lines[jsonLine-1]
}

// decodeYAML reads exactly one YAML document. A second document is refused
// rather than ignored, so that no part of a file goes unchecked; empty ones
// (a trailing "---") are harmless and skipped.
func decodeYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root *yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if emptyDocument(&doc) {
			continue
		}
		if root != nil {
			return nil, fmt.Errorf("line %d: a second YAML document; an Envoy bootstrap is one document", doc.Content[0].Line)
		}
		root = doc.Content[0]
	}
	if root == nil {
		return nil, errors.New("empty document")
	}
	return root, nil
}

func emptyDocument(doc *yaml.Node) bool {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return true
	}
	n := doc.Content[0]
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" && n.Value == ""
}

// problemAt is one conversion problem, located by YAML line.
type problemAt struct {
	line int
	kind error // ErrInvalid or ErrUnknownType
	msg  string
}

type converter struct {
	ix       *mappingIndex
	buf      bytes.Buffer
	lines    []int
	nodes    int
	tooBig   bool
	problems []problemAt
}

// toJSON re-encodes a YAML tree as JSON. Keys become strings (Envoy YAML keys
// always are), aliases and merge keys (<<) are expanded, duplicate keys are
// refused (YAML parsers disagree on which copy wins, and a config must mean
// one thing), and every "@type" is looked up in the protobuf registry so an
// unknown extension is reported by name and line.
func toJSON(root *yaml.Node, ix *mappingIndex) (*jsonDoc, []problemAt) {
	c := &converter{ix: ix, lines: []int{root.Line}}
	c.value(root, 0)
	if len(c.problems) > 0 {
		return nil, c.problems
	}
	return &jsonDoc{json: c.buf.Bytes(), lines: c.lines}, nil
}

func (c *converter) fail(line int, kind error, format string, args ...any) {
	c.problems = append(c.problems, problemAt{line: line, kind: kind, msg: fmt.Sprintf(format, args...)})
}

// newline starts a JSON line that belongs to the given YAML line.
func (c *converter) newline(yamlLine int) {
	c.buf.WriteByte('\n')
	c.lines = append(c.lines, yamlLine)
}

func (c *converter) value(n *yaml.Node, depth int) {
	c.nodes++
	if c.nodes > maxNodes || depth > maxDepth {
		if !c.tooBig {
			c.tooBig = true
			c.fail(n.Line, ErrInvalid, "document nests or expands too far (YAML aliases?)")
		}
		c.buf.WriteString("null")
		return
	}
	switch n.Kind {
	case yaml.AliasNode:
		c.value(n.Alias, depth+1)
	case yaml.MappingNode:
		c.mapping(n, depth)
	case yaml.SequenceNode:
		c.buf.WriteByte('[')
		for i, item := range n.Content {
			if i > 0 {
				c.buf.WriteByte(',')
			}
			c.newline(item.Line)
			c.value(item, depth+1)
		}
		c.newline(n.Line)
		c.buf.WriteByte(']')
	case yaml.ScalarNode:
		c.scalar(n)
	default:
		c.fail(n.Line, ErrInvalid, "unsupported YAML node")
		c.buf.WriteString("null")
	}
}

func (c *converter) mapping(n *yaml.Node, depth int) {
	e := c.ix.members(n)
	if !e.ok && !c.tooBig {
		c.tooBig = true
		c.fail(n.Line, ErrInvalid, "merge keys (<<) refer to themselves or expand too far")
	}
	for _, d := range e.dups {
		c.fail(d.Line, ErrInvalid, "duplicate key %q", d.Value)
	}
	c.buf.WriteByte('{')
	for i, m := range e.members {
		if i > 0 {
			c.buf.WriteByte(',')
		}
		c.newline(m.key.Line)
		if m.key.Kind != yaml.ScalarNode {
			c.fail(m.key.Line, ErrInvalid, "mapping key is not a plain string")
		}
		key, _ := json.Marshal(m.key.Value) // strconv.Quote escapes are not all JSON
		c.buf.Write(key)
		c.buf.WriteByte(':')
		if m.key.Value == "@type" {
			c.checkType(m.value)
		}
		c.value(m.value, depth+1)
	}
	c.newline(n.Line)
	c.buf.WriteByte('}')
}

// checkType refuses an "@type" that no linked-in package registered, before
// protojson sees it: protojson would stop at the first one with a message
// that points into our generated JSON rather than at the user's file.
func (c *converter) checkType(v *yaml.Node) {
	v = resolve(v)
	if v.Kind != yaml.ScalarNode {
		c.fail(v.Line, ErrInvalid, "@type must be a string")
		return
	}
	if _, err := protoregistry.GlobalTypes.FindMessageByURL(v.Value); err != nil {
		c.fail(v.Line, ErrUnknownType, "unknown @type %q: not an Envoy extension this gatehouse knows (misspelt, or newer than its go-control-plane)", v.Value)
	}
}

func (c *converter) scalar(n *yaml.Node) {
	switch n.ShortTag() {
	case "!!null":
		c.buf.WriteString("null")
		return
	case "!!bool", "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err == nil {
			if b, err := json.Marshal(v); err == nil {
				c.buf.Write(b)
				return
			}
		}
		c.fail(n.Line, ErrInvalid, "value %q cannot be represented in JSON", n.Value)
		c.buf.WriteString("null")
		return
	}
	// Strings, and anything else (timestamps, binary, custom tags), travel as
	// the text the user wrote; protojson decides whether it fits the field.
	b, _ := json.Marshal(n.Value)
	c.buf.Write(b)
}

type member struct{ key, value *yaml.Node }

// mappingIndex expands each YAML mapping once: aliases resolved, merge keys
// (<<) applied. Memoising matters for hostile input, where merges of merges
// would otherwise cost exponential time, and the total work is bounded too.
type mappingIndex struct {
	done map[*yaml.Node]expansion
	busy map[*yaml.Node]bool
	work int
}

type expansion struct {
	members []member
	dups    []*yaml.Node // keys written twice in the mapping itself
	ok      bool         // false: merges form a cycle or expand too far
}

func newMappingIndex() *mappingIndex {
	return &mappingIndex{done: map[*yaml.Node]expansion{}, busy: map[*yaml.Node]bool{}}
}

// members lists a mapping's members. Keys written in the mapping win over
// merged ones, and earlier merge sources over later ones, as YAML specifies.
func (ix *mappingIndex) members(n *yaml.Node) expansion {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return expansion{ok: true}
	}
	if e, ok := ix.done[n]; ok {
		return e
	}
	if ix.busy[n] {
		return expansion{} // a mapping that merges itself
	}
	ix.busy[n] = true
	defer delete(ix.busy, n)

	e := expansion{ok: true}
	seen := map[string]bool{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
			merges = append(merges, v)
		case seen[k.Value]:
			e.dups = append(e.dups, k)
		default:
			seen[k.Value] = true
			e.members = append(e.members, member{key: k, value: v})
		}
	}
	for _, m := range merges {
		m = resolve(m)
		sources := []*yaml.Node{m}
		if m != nil && m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, src := range sources {
			inherited := ix.members(src)
			e.ok = e.ok && inherited.ok
			ix.work += len(inherited.members)
			for _, im := range inherited.members {
				if !seen[im.key.Value] {
					seen[im.key.Value] = true
					e.members = append(e.members, im)
				}
			}
		}
	}
	if ix.work > maxNodes {
		e.ok = false
	}
	ix.done[n] = e
	return e
}

// lookup returns the value of key in a mapping, or nil.
func (ix *mappingIndex) lookup(n *yaml.Node, keys ...string) *yaml.Node {
	if n == nil {
		return nil
	}
	for _, m := range ix.members(n).members {
		for _, k := range keys {
			if m.key.Value == k {
				return m.value
			}
		}
	}
	return nil
}

// resolve follows aliases, with a bound in case of a cycle.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}
