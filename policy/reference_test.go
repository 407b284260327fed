package policy

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// refRule is a route as the naive reference sees it: written independently
// of the trie, from the pattern text, as a regular expression.
type refRule struct {
	methods []string
	hosts   []string
	re      *regexp.Regexp
}

func reference(p *Policy) []refRule {
	var out []refRule
	for _, r := range p.Rules() {
		var re strings.Builder
		re.WriteString("^")
		switch {
		case r.prefix && r.pattern == "/":
			re.WriteString("/.*")
		case r.prefix:
			re.WriteString(regexp.QuoteMeta(r.pattern) + "(/.*)?")
		case r.pattern == "/":
			re.WriteString("/")
		default:
			for _, seg := range strings.Split(r.pattern[1:], "/") {
				switch {
				case seg == "**":
					re.WriteString("(/.*)?")
				case strings.HasPrefix(seg, "{"):
					re.WriteString("/[^/]+")
				default:
					re.WriteString("/" + regexp.QuoteMeta(seg))
				}
			}
		}
		re.WriteString("$")
		out = append(out, refRule{methods: r.methods, hosts: r.hosts, re: regexp.MustCompile(re.String())})
	}
	return out
}

// refHost drops the port and a trailing dot and lower-cases ASCII letters.
func refHost(h string) string {
	if strings.HasPrefix(h, "[") {
		end := strings.Index(h, "]")
		if end >= 0 && (end == len(h)-1 || h[end+1] == ':') {
			h = h[:end+1]
		}
	} else if i := strings.LastIndex(h, ":"); i >= 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, h)
}

func refMatch(rules []refRule, method, host, path string) int {
	h := refHost(host)
	for i, r := range rules {
		if r.methods != nil && !slices.Contains(r.methods, method) {
			continue
		}
		if r.hosts != nil && !slices.ContainsFunc(r.hosts, func(pat string) bool {
			if suffix, ok := strings.CutPrefix(pat, "*."); ok {
				label, ok := strings.CutSuffix(h, "."+suffix)
				return ok && label != "" && !strings.HasSuffix(label, ".")
			}
			return pat == h
		}) {
			continue
		}
		if r.re.MatchString(path) {
			return i
		}
	}
	return -1
}

// randomPolicy writes a small policy whose routes overlap a lot: few
// segment names, params, tails, prefixes, methods and hosts.
func randomPolicy(seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	segs := []string{"a", "b", "c"}
	methods := []string{"GET", "POST", "DELETE"}
	hosts := []string{"a.example.com", "*.example.com", "b.test", "[::1]"}
	var b strings.Builder
	b.WriteString("roles: {}\nroutes:\n")
	n := 1 + rng.IntN(24)
	for i := range n {
		depth := rng.IntN(4)
		var parts []string
		prefix := rng.IntN(6) == 0
		for d := range depth {
			if !prefix && rng.IntN(3) == 0 {
				parts = append(parts, fmt.Sprintf("{p%d}", d))
			} else {
				parts = append(parts, segs[rng.IntN(len(segs))])
			}
		}
		path := "/" + strings.Join(parts, "/")
		key := "path"
		switch {
		case prefix:
			key = "path_prefix"
		case rng.IntN(3) == 0:
			path = strings.TrimSuffix(path, "/") + "/**"
		}
		fmt.Fprintf(&b, "  - name: r%d\n    match: {%s: %q", i, key, path)
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&b, ", methods: [%s]", strings.Join(pick(rng, methods), ", "))
		}
		if rng.IntN(3) == 0 {
			fmt.Fprintf(&b, ", hosts: [\"%s\"]", strings.Join(pick(rng, hosts), `", "`))
		}
		b.WriteString("}\n    public: true\n")
	}
	return b.String()
}

// pick returns a non-empty random subset, in order.
func pick(rng *rand.Rand, from []string) []string {
	for {
		var out []string
		for _, s := range from {
			if rng.IntN(2) == 0 {
				out = append(out, s)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
}

var (
	reqSegs    = []string{"a", "b", "c", "d"}
	reqMethods = []string{"GET", "POST", "DELETE", "PUT", "get"}
	reqHosts   = []string{"", "a.example.com", "A.Example.COM:443", "x.y.example.com", "example.com", "b.test.", "c.test", "[::1]:8080", "[::1]x"}
)

func randomRequest(rng *rand.Rand) (method, host, path string) {
	var parts []string
	for range rng.IntN(5) {
		parts = append(parts, reqSegs[rng.IntN(len(reqSegs))])
	}
	return reqMethods[rng.IntN(len(reqMethods))], reqHosts[rng.IntN(len(reqHosts))], "/" + strings.Join(parts, "/")
}

func checkAgainstReference(t *testing.T, p *Policy, ref []refRule, method, host, path string) {
	t.Helper()
	want := refMatch(ref, method, host, path)
	got := -1
	if r := p.Match(method, host, path); r != nil {
		got = r.Index
	}
	if got != want {
		t.Fatalf("Match(%q, %q, %q) = rule %d, reference says %d", method, host, path, got, want)
	}
}

func TestMatchAgreesWithReferenceRandomized(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for seed := range uint64(300) {
		src := randomPolicy(seed)
		p, err := Compile("random.yaml", []byte(src))
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, src)
		}
		ref := reference(p)
		for range 300 {
			m, h, path := randomRequest(rng)
			want := refMatch(ref, m, h, path)
			got := -1
			if r := p.Match(m, h, path); r != nil {
				got = r.Index
			}
			if got != want {
				t.Fatalf("seed %d: Match(%q, %q, %q) = rule %d, reference says %d; policy:\n%s", seed, m, h, path, got, want, src)
			}
		}
	}
}

func TestMatchAgreesWithReferenceFixed(t *testing.T) {
	p := mustCompile(t, matchPolicy)
	ref := reference(p)
	rng := rand.New(rand.NewPCG(3, 4))
	paths := []string{"/", "/a/b", "/users/1", "/users/1/posts", "/orders", "/orders/x/y", "/auth", "/authz",
		"/m", "/h", "/k", "/pf/lit", "/lf/lit", "/lf/x", "/t/a/b", "/t/a", "/p/1/2/3", "/files/a%20b", "/zzz"}
	for _, path := range paths {
		for range 20 {
			m := reqMethods[rng.IntN(len(reqMethods))]
			h := []string{"", "api.example.com", "k.test", "catchall.test:80", "10.0.0.1", "[::1]", "x.example.com"}[rng.IntN(7)]
			checkAgainstReference(t, p, ref, m, h, path)
		}
	}
}

type compiledRandom struct {
	p   *Policy
	ref []refRule
}

var fuzzPolicies sync.Map // uint8 -> compiledRandom

func fuzzPolicy(t *testing.T, shape uint8) compiledRandom {
	if v, ok := fuzzPolicies.Load(shape); ok {
		return v.(compiledRandom)
	}
	src := matchPolicy
	if shape != 0 {
		src = randomPolicy(uint64(shape))
	}
	p, err := Compile("fuzz.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	c := compiledRandom{p, reference(p)}
	fuzzPolicies.Store(shape, c)
	return c
}

// FuzzMatch checks that the trie agrees with the linear reference on
// hostile requests, for the fixed matchPolicy (shape 0) and 255 random
// policies.
func FuzzMatch(f *testing.F) {
	f.Add(uint8(0), "GET", "api.example.com", "/orders/1")
	f.Add(uint8(0), "POST", "catchall.test:80", "/users/1/posts")
	f.Add(uint8(7), "DELETE", "a.example.com", "/a/b/c")
	f.Add(uint8(42), "GET", "[::1]:443", "/c/%7B/a")
	f.Fuzz(func(t *testing.T, shape uint8, method, host, path string) {
		c := fuzzPolicy(t, shape)
		_ = c.p.Match(method, host, path) // any input: no panic
		cp, err := CanonicalPath(path)
		if err != nil {
			return
		}
		checkAgainstReference(t, c.p, c.ref, method, host, cp)
	})
}
