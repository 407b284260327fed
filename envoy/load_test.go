package envoy

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// A cluster small enough to inline in test cases.
const tinyCluster = `static_resources:
  clusters:
  - name: app
    connect_timeout: 1s
`

func TestParseBootstrap(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		kind error  // nil: must load
		want string // error text, prefixed by "x.yaml:LINE: " when line > 0
		line int    // 0: the error names no line
	}{
		{name: "ok", yaml: tinyCluster},
		{name: "json is yaml", yaml: `{"static_resources": {"clusters": [{"name": "app", "connect_timeout": "1s"}]}}`},
		{name: "json field names", yaml: "staticResources:\n  clusters:\n  - name: app\n    connectTimeout: 1s\n"},
		{name: "empty", yaml: "", kind: ErrInvalid, want: "empty document"},
		{name: "comments only", yaml: "# nothing\n", kind: ErrInvalid, want: "empty document"},
		{name: "trailing document marker", yaml: tinyCluster + "---\n# nothing more\n"},
		{name: "yaml syntax", yaml: "static_resources:\n  clusters: [\n", kind: ErrInvalid, line: 2, want: "did not find expected node content"},
		{name: "tab indent", yaml: "\t- x", kind: ErrInvalid, want: "found character that cannot start any token"},
		{name: "two documents", yaml: tinyCluster + "---\n" + tinyCluster, kind: ErrInvalid, line: 6, want: "a second YAML document"},
		{name: "unknown field", yaml: tinyCluster + "    colour: blue\n", kind: ErrInvalid, line: 5, want: `unknown field "colour"`},
		{name: "bad enum", yaml: tinyCluster + "    type: STATICK\n", kind: ErrInvalid, line: 5, want: "STATICK"},
		{name: "duplicate key", yaml: tinyCluster + "    name: other\n", kind: ErrInvalid, line: 5, want: `duplicate key "name"`},
		{name: "odd key", yaml: "static_resources:\n  \"\\x01\\u00e9\": 1\n", kind: ErrInvalid, line: 2, want: `unknown field "\u0001é"`},
		{name: "non-string key", yaml: "static_resources:\n  ? [a]\n  : 1\n", kind: ErrInvalid, line: 2, want: "mapping key is not a plain string"},
		{name: "unknown type", yaml: "static_resources:\n  listeners:\n  - name: l\n    filter_chains:\n    - filters:\n      - name: f\n        typed_config:\n          \"@type\": type.googleapis.com/no.such.Thing\n",
			kind: ErrUnknownType, line: 8, want: `unknown @type "type.googleapis.com/no.such.Thing"`},
		{name: "rule failure at field", yaml: "static_resources:\n  clusters:\n  - name: app\n    connect_timeout: -1s\n", kind: ErrInvalid, line: 4, want: "invalid Cluster.ConnectTimeout"},
		{name: "rule failure inside any", yaml: "static_resources:\n  listeners:\n  - name: l\n    address: {socket_address: {address: 0.0.0.0, port_value: 1}}\n    filter_chains:\n    - filters:\n      - name: f\n        typed_config:\n          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n          route_config: {}\n",
			kind: ErrInvalid, line: 9, want: "invalid HttpConnectionManager.StatPrefix"},
		{name: "nan", yaml: "static_resources:\n  clusters:\n  - name: app\n    connect_timeout: .nan\n", kind: ErrInvalid, line: 4, want: "cannot be represented in JSON"},
		{name: "self alias", yaml: "a: &x\n  b: *x\n", kind: ErrInvalid, line: 1, want: "nests or expands too far"},
		{name: "merge cycle", yaml: "a: &x\n  <<: *x\n", kind: ErrInvalid, line: 1, want: "too far"},
		{name: "alias bomb", yaml: aliasBomb(), kind: ErrInvalid, line: 1, want: "nests or expands too far"},
		{name: "merge bomb", yaml: mergeBomb(), kind: ErrInvalid, line: 1, want: `unknown field "a0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := parseBootstrap("x.yaml", []byte(tt.yaml))
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if b.GetStaticResources().GetClusters()[0].GetName() != "app" {
					t.Fatalf("loaded %v", b)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(err, %v) = false; err = %v", tt.kind, err)
			}
			prefix := "x.yaml: "
			if tt.line > 0 {
				prefix = "x.yaml:" + strconv.Itoa(tt.line) + ": "
			}
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("error = %q\nwant prefix %q and text %q", msg, prefix, tt.want)
			}
		})
	}
}

// Anchors, aliases and merge keys load as YAML defines them.
func TestParseBootstrapAliasesAndMerges(t *testing.T) {
	withAliases := `static_resources:
  clusters:
  - &base
    name: app
    connect_timeout: 1s
    type: STATIC
  - <<: *base
    name: other
  - <<: [*base]
    name: third
    type: STRICT_DNS
`
	plain := `static_resources:
  clusters:
  - {name: app, connect_timeout: 1s, type: STATIC}
  - {name: other, connect_timeout: 1s, type: STATIC}
  - {name: third, connect_timeout: 1s, type: STRICT_DNS}
`
	got, err := parseBootstrap("aliases.yaml", []byte(withAliases))
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseBootstrap("plain.yaml", []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestLoadBootstrapMissingFile(t *testing.T) {
	_, err := LoadBootstrap("testdata/does-not-exist.yaml")
	if err == nil || !strings.Contains(err.Error(), "testdata/does-not-exist.yaml") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestToJSONLineMap(t *testing.T) {
	src := "a: 1\nb:\n  - x\n  - {c: true, d: ~}\ne: \"2\"\n"
	root, err := decodeYAML([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	doc, problems := toJSON(root, newMappingIndex())
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var got any
	if err := json.Unmarshal(doc.json, &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", doc.json, err)
	}
	wantJSON := `{"a":1,"b":["x",{"c":true,"d":null}],"e":"2"}`
	if gb, _ := json.Marshal(got); string(gb) != wantJSON {
		t.Fatalf("JSON = %s, want %s", gb, wantJSON)
	}
	// Every JSON line that holds a key maps to that key's YAML line.
	for i, line := range strings.Split(string(doc.json), "\n") {
		for key, yamlLine := range map[string]int{`"a"`: 1, `"b"`: 2, `"c"`: 4, `"e"`: 5} {
			if strings.HasPrefix(line, key) {
				if got := doc.yamlLine(i + 1); got != yamlLine {
					t.Errorf("JSON line %d (%s) maps to YAML line %d, want %d", i+1, line, got, yamlLine)
				}
			}
		}
	}
}

// Hostile input must produce an error, never a panic or a hang.
func FuzzParseBootstrap(f *testing.F) {
	for _, file := range append([]string{"testdata/minimal-good.yaml", "testdata/duplicate-key.yaml"}, shippedFiles...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(aliasBomb()))
	f.Add([]byte(mergeBomb()))
	f.Add([]byte("a: &x {<<: *x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseBootstrap("fuzz.yaml", data)
	})
}

// mergeBomb chains thirty levels of tenfold merge keys: cheap only when each
// mapping is expanded once.
func mergeBomb() string {
	var sb strings.Builder
	sb.WriteString("a0: &a0 {k0: v}\n")
	for i := 1; i <= 30; i++ {
		p := "*a" + strconv.Itoa(i-1)
		sb.WriteString("a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " {<<: [" + strings.Repeat(p+", ", 9) + p + "], k" + strconv.Itoa(i) + ": v}\n")
	}
	return sb.String()
}

// aliasBomb is a "billion laughs" document: ten levels of tenfold aliases.
func aliasBomb() string {
	var sb strings.Builder
	sb.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 10; i++ {
		p := "*a" + strconv.Itoa(i-1)
		sb.WriteString("a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [" + strings.Repeat(p+", ", 9) + p + "]\n")
	}
	return sb.String()
}
