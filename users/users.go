// Package users loads the issuer's users file.
//
//	users:
//	  - {id: u-1001, username: alice, password_hash: "$argon2id$v=19$m=65536,t=3,p=2$...", roles: [user]}
//	  - {id: u-1002, username: bob, password_hash: "$2b$12$...", roles: [admin], disabled: true}
//
// Usernames match case-insensitively: "alice" and "ALICE" are one canonical account, so they share one lockout
// counter and cannot be registered twice.
package users

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"gatehouse/password"
)

// User is one account.
type User struct {
	ID       string
	Username string // as written in the file
	Roles    []string
	Disabled bool
	Hash     *password.Hashed
	Line     int
}

// Directory is an immutable set of users; reloads build a new one.
type Directory struct {
	byName map[string]*User
	byID   map[string]*User
}

// MaxUsernameBytes bounds a username in the users file; the issuer and the portal refuse longer input with it.
const MaxUsernameBytes = 256

// Canonical returns the account key for a username: Unicode simple case folding via lower-casing.
func Canonical(username string) string { return strings.ToLower(username) }

// Lookup finds a user by username, case-insensitively.
func (d *Directory) Lookup(username string) (*User, bool) {
	u, ok := d.byName[Canonical(username)]
	return u, ok
}

// ByID finds a user by id.
func (d *Directory) ByID(id string) (*User, bool) {
	u, ok := d.byID[id]
	return u, ok
}

// Len is the number of users.
func (d *Directory) Len() int { return len(d.byID) }

// MaxHashMemoryKiB is the largest memory one password verification takes, for sizing the hashing semaphore.
func (d *Directory) MaxHashMemoryKiB() uint32 {
	var m uint32
	for _, u := range d.byID {
		m = max(m, u.Hash.MemoryKiB())
	}
	return m
}

// Load reads and validates a users file. roleKnown reports whether the policy defines a role.
func Load(path string, roleKnown func(string) bool) (*Directory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return Parse(path, data, roleKnown)
}

type entry struct {
	ID           string   `yaml:"id"`
	Username     string   `yaml:"username"`
	PasswordHash string   `yaml:"password_hash"`
	Roles        []string `yaml:"roles"`
	Disabled     bool     `yaml:"disabled"`
}

// Parse validates a users file already read; every problem is reported with file and line.
func Parse(file string, data []byte, roleKnown func(string) bool) (*Directory, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	list, err := usersList(file, &root)
	if err != nil {
		return nil, err
	}
	d := &Directory{byName: map[string]*User{}, byID: map[string]*User{}}
	var errs []error
	bad := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
	}
	for i, n := range list {
		var e entry
		if err := decodeStrict(n, &e); err != nil {
			bad(n.Line, "user %d: %v", i+1, err)
			continue
		}
		switch {
		case e.ID == "":
			bad(n.Line, "user %d: id is required", i+1)
			continue
		case !validName(e.Username):
			bad(n.Line, "user %q: username must be non-empty without spaces or control characters", e.ID)
			continue
		}
		if prev, dup := d.byID[e.ID]; dup {
			bad(n.Line, "user %q: duplicate id (first at line %d)", e.ID, prev.Line)
			continue
		}
		if prev, dup := d.byName[Canonical(e.Username)]; dup {
			bad(n.Line, "user %q: duplicate username %q (same account as %q at line %d)", e.ID, e.Username, prev.Username, prev.Line)
			continue
		}
		h, err := password.Parse(e.PasswordHash)
		if err != nil {
			bad(n.Line, "user %q: password_hash: %v", e.ID, err)
			continue
		}
		for _, r := range e.Roles {
			if !roleKnown(r) {
				bad(n.Line, "user %q: unknown role %q (not in the policy)", e.ID, r)
			}
		}
		u := &User{ID: e.ID, Username: e.Username, Roles: e.Roles, Disabled: e.Disabled, Hash: h, Line: n.Line}
		d.byID[u.ID] = u
		d.byName[Canonical(u.Username)] = u
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// usersList finds the `users:` sequence, refusing anything else at the top level.
func usersList(file string, root *yaml.Node) ([]*yaml.Node, error) {
	if len(root.Content) == 0 {
		return nil, nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping with a users list", file, top.Line)
	}
	var list []*yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		if k.Value != "users" {
			return nil, fmt.Errorf("%s:%d: unknown key %q", file, k.Line, k.Value)
		}
		if v.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("%s:%d: users: want a list", file, v.Line)
		}
		list = v.Content
	}
	return list, nil
}

func decodeStrict(n *yaml.Node, e *entry) error {
	if n.Kind != yaml.MappingNode {
		return errors.New("want a mapping")
	}
	known := map[string]bool{"id": true, "username": true, "password_hash": true, "roles": true, "disabled": true}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !known[n.Content[i].Value] {
			return fmt.Errorf("unknown key %q", n.Content[i].Value)
		}
	}
	if err := n.Decode(e); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > MaxUsernameBytes {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}
