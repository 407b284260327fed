// Package envoy loads and checks the Envoy configurations that put Gatehouse
// in front of applications: the shipped sidecar.yaml and front-proxy.yaml, and
// a user's own bootstrap (`gatehouse envoy check FILE`).
//
// Loading is strict, so that what we check is what Envoy would run: one YAML
// document, no duplicate keys, no unknown fields, every typed config resolved
// and validated with Envoy's own protoc-gen-validate rules, and problems
// reported as FILE:LINE. Checking then looks for settings that would let a
// request reach an application without Gatehouse's decision, or with a path
// Gatehouse did not judge.
package envoy

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"
)

var (
	// ErrInvalid marks a file that is not a valid Envoy v3 bootstrap:
	// YAML syntax, unknown fields, wrong value types, failed validation rules.
	ErrInvalid = errors.New("invalid Envoy config")
	// ErrUnknownType marks an "@type" that names no extension we link in.
	ErrUnknownType = errors.New("unknown Envoy extension type")
)

// maxProblems bounds how many problems one load reports; past a few dozen the
// rest are usually echoes of the first.
const maxProblems = 50

// problem is one located error in a config file.
type problem struct {
	file string
	line int // 0 when unknown
	kind error
	msg  string
}

func (p *problem) Error() string {
	if p.line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.msg)
	}
	return p.file + ": " + p.msg
}

func (p *problem) Unwrap() error { return p.kind }

// LoadBootstrap reads an Envoy v3 bootstrap from a YAML (or JSON) file and
// validates it, including every typed extension config inside it. Every error
// names the file, and the line where one is known; errors.Is reports
// ErrUnknownType or ErrInvalid.
func LoadBootstrap(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("envoy config: %w", err)
	}
	return parseBootstrap(path, data)
}

func parseBootstrap(file string, data []byte) (*bootstrapv3.Bootstrap, error) {
	root, err := decodeYAML(data)
	if err != nil {
		line, msg := yamlPosition(err)
		return nil, &problem{file: file, line: line, kind: ErrInvalid, msg: msg}
	}
	ix := newMappingIndex()
	doc, convProblems := toJSON(root, ix)
	if len(convProblems) > 0 {
		ps := make([]*problem, 0, len(convProblems))
		for _, cp := range convProblems {
			ps = append(ps, &problem{file: file, line: cp.line, kind: cp.kind, msg: cp.msg})
		}
		return nil, joinProblems(ps)
	}

	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(doc.json, b); err != nil {
		line, msg := protojsonPosition(err)
		if strings.HasPrefix(msg, "unexpected token") {
			msg = "value of the wrong kind (" + msg + ")" // e.g. a duration written without its unit
		}
		return nil, &problem{file: file, line: doc.yamlLine(line), kind: ErrInvalid, msg: msg}
	}

	v := &validator{file: file, ix: ix}
	v.message(b.ProtoReflect(), root, root.Line)
	if len(v.problems) > 0 {
		return nil, joinProblems(v.problems)
	}
	return b, nil
}

// yaml.v3 (and decodeYAML) put the position in front: "yaml: line 3: ...".
var yamlPos = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func yamlPosition(err error) (line int, msg string) {
	s := err.Error()
	loc := yamlPos.FindStringSubmatchIndex(s)
	if loc == nil {
		return 0, strings.TrimPrefix(s, "yaml: ")
	}
	n, _ := strconv.Atoi(s[loc[2]:loc[3]])
	return n, s[loc[1]:]
}

// protojson reports positions in its input as "(line L:C)"; the input is our
// generated JSON, whose lines map back to YAML lines. The message format is
// not an API, so anything unexpected is passed through whole.
var protojsonPos = regexp.MustCompile(`\(line (\d+):\d+\):[\s\x{00a0}]*`)

func protojsonPosition(err error) (jsonLine int, msg string) {
	s := err.Error()
	loc := protojsonPos.FindStringSubmatchIndex(s)
	if loc == nil {
		return 0, s
	}
	n, _ := strconv.Atoi(s[loc[2]:loc[3]])
	return n, s[loc[1]:]
}

func joinProblems(ps []*problem) error {
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].line < ps[j].line })
	errs := make([]error, 0, len(ps))
	for i, p := range ps {
		if i == maxProblems {
			errs = append(errs, &problem{file: p.file, kind: p.kind, msg: fmt.Sprintf("... and %d more problems", len(ps)-i)})
			break
		}
		errs = append(errs, p)
	}
	return errors.Join(errs...)
}

// validator runs Envoy's protoc-gen-validate rules on every message,
// including the contents of each google.protobuf.Any. Bootstrap.ValidateAll
// alone stops at Any fields, and every extension (the HTTP connection
// manager, ext_authz, the router...) lives behind one.
//
// It walks the proto and the YAML tree together, so each failure is reported
// at the line of the offending field, or of the enclosing message when the
// field is missing.
type validator struct {
	file     string
	ix       *mappingIndex
	problems []*problem
}

type multiError interface{ AllErrors() []error }

type fieldError interface {
	error
	Field() string
	Reason() string
}

const embeddedFailure = "embedded message failed validation"

func (v *validator) message(m protoreflect.Message, n *yaml.Node, line int) {
	if n != nil {
		line = n.Line
	}
	if val, ok := m.Interface().(interface{ ValidateAll() error }); ok {
		if err := val.ValidateAll(); err != nil {
			v.report(m, n, line, err)
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		child := v.ix.field(n, fd)
		childLine := line
		if child != nil {
			childLine = child.Line
		}
		switch {
		case fd.IsList():
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			list := val.List()
			for i := range list.Len() {
				v.element(list.Get(i).Message(), indexNode(child, i), childLine)
			}
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			val.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				v.element(mv.Message(), v.ix.lookup(child, k.String()), childLine)
				return true
			})
		case fd.Kind() == protoreflect.MessageKind:
			v.element(val.Message(), child, childLine)
		}
		return true
	})
}

func (v *validator) element(m protoreflect.Message, n *yaml.Node, line int) {
	name := m.Descriptor().FullName()
	if name == "google.protobuf.Any" {
		inner, err := m.Interface().(*anypb.Any).UnmarshalNew()
		if err != nil {
			// protojson resolved this type moments ago, so this is unexpected.
			v.add(nodeLine(n, line), fmt.Sprintf("cannot decode %s: %v", m.Interface().(*anypb.Any).GetTypeUrl(), err))
			return
		}
		// A typed config's fields sit beside "@type" in the same YAML mapping.
		v.message(inner.ProtoReflect(), n, line)
		return
	}
	if strings.HasPrefix(string(name), "google.protobuf.") {
		return // well-known types carry no rules of their own
	}
	v.message(m, n, line)
}

// report records a message's own rule failures. Failures of embedded messages
// are skipped: the walk reaches those messages and reports them at their own line.
func (v *validator) report(m protoreflect.Message, n *yaml.Node, line int, err error) {
	errs := []error{err}
	if me, ok := err.(multiError); ok {
		errs = me.AllErrors()
	}
	for _, e := range errs {
		fe, ok := e.(fieldError)
		if !ok {
			v.add(line, e.Error())
			continue
		}
		if fe.Reason() == embeddedFailure {
			continue
		}
		v.add(nodeLine(v.ix.goField(m, n, fe.Field()), line), fe.Error())
	}
}

func (v *validator) add(line int, msg string) {
	v.problems = append(v.problems, &problem{file: v.file, line: line, kind: ErrInvalid, msg: msg})
}

func nodeLine(n *yaml.Node, fallback int) int {
	if n != nil {
		return n.Line
	}
	return fallback
}

// field finds a field's value in a YAML mapping; protojson accepts both the
// proto name (stat_prefix) and the JSON name (statPrefix).
func (ix *mappingIndex) field(n *yaml.Node, fd protoreflect.FieldDescriptor) *yaml.Node {
	return ix.lookup(n, string(fd.Name()), fd.JSONName())
}

// goField finds the YAML node of a field named the way protoc-gen-validate
// names it: the Go field name, maybe followed by "[index]" or "[key]".
func (ix *mappingIndex) goField(m protoreflect.Message, n *yaml.Node, goName string) *yaml.Node {
	index := ""
	if i := strings.IndexByte(goName, '['); i >= 0 {
		goName, index = goName[:i], strings.Trim(goName[i:], "[]")
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !strings.EqualFold(strings.ReplaceAll(string(fd.Name()), "_", ""), goName) {
			continue
		}
		child := ix.field(n, fd)
		if index == "" || child == nil {
			return child
		}
		var item *yaml.Node
		if idx, err := strconv.Atoi(index); err == nil && fd.IsList() {
			item = indexNode(child, idx)
		} else if fd.IsMap() {
			item = ix.lookup(child, index)
		}
		if item != nil {
			return item
		}
		return child
	}
	return nil
}

func indexNode(n *yaml.Node, i int) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
		return nil
	}
	return n.Content[i]
}
