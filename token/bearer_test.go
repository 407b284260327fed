package token

import "testing"

func TestBearer(t *testing.T) {
	for _, c := range []struct {
		value, tok string
		ok         bool
	}{
		{"Bearer a.b.c", "a.b.c", true},
		{"bEaReR a.b.c", "a.b.c", true},
		{"Bearer   a.b.c", "a.b.c", true},
		{"Bearer a.b.c d.e.f", "a.b.c d.e.f", true}, // IsB64Token refuses it
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer    ", "", false},
		{"Basic a.b.c", "", false},
		{"Bearera.b.c", "", false},
		{"a.b.c", "", false},
		{"", "", false},
	} {
		if tok, ok := Bearer(c.value); tok != c.tok || ok != c.ok {
			t.Errorf("Bearer(%q) = %q, %v; want %q, %v", c.value, tok, ok, c.tok, c.ok)
		}
	}
}

func TestIsB64Token(t *testing.T) {
	for tok, want := range map[string]bool{
		"eyJhbGciOiJFZERTQSJ9.e30.c2ln": true,
		"AZaz09-._~+/=":                 true,
		"":                              true, // Bearer refuses an empty token before this is asked
		"a.b.c d.e.f":                   false,
		"a.b.c,Bearer d.e.f":            false,
		"a.b.c\x00":                     false,
		"a.b.c\xff":                     false,
		"a\"b":                          false,
	} {
		if got := IsB64Token(tok); got != want {
			t.Errorf("IsB64Token(%q) = %v, want %v", tok, got, want)
		}
	}
}
