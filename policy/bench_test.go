package policy

import (
	"fmt"
	"strings"
	"testing"
)

// benchPolicy writes n routes in four shapes (param, tail, prefix, host-
// and method-restricted), each under its own first segment, plus a
// catch-all-ish route that every shape shares.
func benchPolicy(n int) string {
	var b strings.Builder
	b.WriteString("roles:\n  user: {permissions: [read]}\nroutes:\n")
	for i := range n {
		switch (n - 1 - i) % 4 { // the last route is always the host-restricted one
		case 0:
			fmt.Fprintf(&b, "  - {name: r%d, match: {methods: [GET, POST], path: \"/s%d/users/{id}/profile\", hosts: [api.example.com, \"*.example.org\"]}, authenticated: true}\n", i, i/4)
		case 1:
			fmt.Fprintf(&b, "  - {name: r%d, match: {path: \"/s%d/orders/**\"}, roles: [user]}\n", i, i/4)
		case 2:
			fmt.Fprintf(&b, "  - {name: r%d, match: {path_prefix: /s%d/static}, public: true}\n", i, i/4)
		case 3:
			fmt.Fprintf(&b, "  - {name: r%d, match: {methods: [GET], path: \"/s%d/items/{id}\"}, permissions: [read]}\n", i, i/4)
		}
	}
	return b.String()
}

// BenchmarkMatch shows that match cost does not grow with the number of
// routes: the matching route is the last one in the file.
func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		p, err := Compile("bench.yaml", []byte(benchPolicy(n)))
		if err != nil {
			b.Fatal(err)
		}
		last := (n - 1) / 4
		hit := fmt.Sprintf("/s%d/users/42/profile", last)
		if r := p.Match("POST", "www.example.org:443", hit); r == nil {
			b.Fatalf("%d routes: %s does not match", n, hit)
		}
		b.Run(fmt.Sprintf("routes=%d/hit", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Match("POST", "www.example.org:443", hit)
			}
		})
		b.Run(fmt.Sprintf("routes=%d/miss", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Match("DELETE", "api.example.com", "/nowhere/at/all")
			}
		})
	}
}

func BenchmarkCanonicalPath(b *testing.B) {
	for _, path := range []string{"/s12/users/42/profile?x=1", "/s12/us%65rs/42/caf%c3%a9"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = CanonicalPath(path)
			}
		})
	}
}

func BenchmarkDecide(b *testing.B) {
	p, err := Compile("bench.yaml", []byte(benchPolicy(1000)))
	if err != nil {
		b.Fatal(err)
	}
	roles := []string{"user"}
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Decide("GET", "api.example.com", "/s200/items/7?q=1", roles, false)
	}
}

// TestMatchScales is the benchmark's claim as a (coarse) test: the last
// of 10,000 routes is found without scanning, i.e. with the same number of
// trie nodes visited as the last of 10.
func TestMatchScales(t *testing.T) {
	for _, n := range []int{10, 10000} {
		p := mustCompile(t, benchPolicy(n))
		hit := fmt.Sprintf("/s%d/users/42/profile", (n-1)/4)
		if r := p.Match("GET", "api.example.com", hit); r == nil || r.Index != n-1 {
			t.Fatalf("%d routes: Match(%s) = %v, want rule %d", n, hit, r, n-1)
		}
		allocs := testing.AllocsPerRun(50, func() { _ = p.Match("GET", "api.example.com", hit) })
		if allocs != 0 {
			t.Fatalf("%d routes: %v allocs", n, allocs)
		}
	}
}
