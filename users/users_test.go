package users

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"gatehouse/password"
)

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := password.Hash(pw, password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func known(r string) bool { return r == "user" || r == "admin" }

func TestParseAndLookup(t *testing.T) {
	h := hashOf(t, "pw")
	src := fmt.Sprintf("users:\n  - {id: u-1, username: Alice, password_hash: %q, roles: [user]}\n  - {id: u-2, username: bob, password_hash: %q, roles: [admin], disabled: true}\n", h, h)
	d, err := Parse("users.yaml", []byte(src), known)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alice", "ALICE", "Alice"} {
		u, ok := d.Lookup(name)
		if !ok || u.ID != "u-1" {
			t.Errorf("Lookup(%q) = %v, %v", name, u, ok)
		}
	}
	if u, ok := d.ByID("u-2"); !ok || !u.Disabled || u.Roles[0] != "admin" || u.Line != 3 {
		t.Errorf("ByID(u-2) = %+v", u)
	}
	if _, ok := d.Lookup("carol"); ok {
		t.Error("unknown user found")
	}
	if u, _ := d.Lookup("alice"); !u.Hash.Verify("pw") {
		t.Error("hash not usable")
	}
}

func TestParseErrors(t *testing.T) {
	h := hashOf(t, "pw")
	tests := []struct{ name, src, want string }{
		{"duplicate id", fmt.Sprintf("users:\n  - {id: u-1, username: a, password_hash: %q}\n  - {id: u-1, username: b, password_hash: %q}\n", h, h), `users.yaml:3: user "u-1": duplicate id (first at line 2)`},
		{"duplicate username by case", fmt.Sprintf("users:\n  - {id: u-1, username: alice, password_hash: %q}\n  - {id: u-2, username: ALICE, password_hash: %q}\n", h, h), `users.yaml:3: user "u-2": duplicate username "ALICE"`},
		{"unknown role", fmt.Sprintf("users:\n  - {id: u-1, username: a, password_hash: %q, roles: [root]}\n", h), `users.yaml:2: user "u-1": unknown role "root" (not in the policy)`},
		{"malformed hash", "users:\n  - {id: u-1, username: a, password_hash: plaintext}\n", `users.yaml:2: user "u-1": password_hash: malformed password hash`},
		{"missing id", fmt.Sprintf("users:\n  - {username: a, password_hash: %q}\n", h), `users.yaml:2: user 1: id is required`},
		{"unknown key", fmt.Sprintf("users:\n  - {id: u-1, username: a, password: x, password_hash: %q}\n", h), `users.yaml:2: user 1: unknown key "password"`},
		{"space in username", fmt.Sprintf("users:\n  - {id: u-1, username: \"a b\", password_hash: %q}\n", h), `users.yaml:2: user "u-1": username must be non-empty`},
		{"unknown top key", "user: []\n", `users.yaml:1: unknown key "user"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("users.yaml", []byte(tt.src), known)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}
