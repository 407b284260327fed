package token

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var updateSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzVerify from the verify table")

var sentinels = []error{ErrTooLarge, ErrMalformed, ErrUnknownKey, ErrAlgorithm, ErrSignature,
	ErrExpired, ErrNotYetValid, ErrWrongType, ErrClaims, ErrIssuer, ErrAudience}

// FuzzVerify: no input panics, every refusal carries a sentinel and a reason
// code, and nothing verifies unless its header and payload were signed by
// these tests with our keys.
func FuzzVerify(f *testing.F) {
	fk := testKeys()
	for _, c := range verifyCases(f) {
		f.Add(c.raw)
	}
	for _, k := range []*key{fk.ed, fk.ec, fk.rsa, fk.hmac} {
		for _, typ := range []Type{Access, Refresh, MFA} {
			f.Add(mustSign(f, k, baseClaims(typ)))
		}
	}
	v := testVerifier(f, keySet(fk.ed, fk.ec, fk.rsa, fk.hmac))
	f.Fuzz(func(t *testing.T, raw string) {
		for _, want := range []Type{Access, Refresh, MFA} {
			c, err := v.Verify(raw, want)
			if err == nil {
				if c == nil || c.Type != want || c.Subject == "" || c.ID == "" || c.SessionID == "" {
					t.Fatalf("verified with incomplete claims %+v", c)
				}
				if !wasSignedByUs(raw) {
					t.Fatalf("verified a token we never signed: %q", raw)
				}
				continue
			}
			if c != nil {
				t.Fatalf("claims with error %v", err)
			}
			found := false
			for _, s := range sentinels {
				found = found || errors.Is(err, s)
			}
			if !found {
				t.Fatalf("error without sentinel: %v", err)
			}
		}
	})
}

// FuzzWalkObject checks the hand-written JSON scanner against encoding/json:
// it never accepts what encoding/json rejects, never accepts duplicates, and
// accepts every valid duplicate-free object within its size limits.
func FuzzWalkObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, `{"a":{"b":[1,2,{"c":null}]}}`,
		`{"a":"\u0061","\u0061":1}`, `{"a":-0.5e+10}`, `[1]`, `{"a":01}`, `{"a":"\x01"}`, `{"a":1}x`, `{"a" : true , "b":false}`,
		`{"k":"\ud800"}`, `{"a":1,}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, ` {"a":[]} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var names []string
		err := walkObject(b, func(name, value []byte) error {
			names = append(names, string(name))
			if !json.Valid(value) {
				t.Fatalf("member %q value %q is not valid JSON", name, value)
			}
			return nil
		})
		ref := refWalk(b)
		switch {
		case err == nil && ref != nil:
			t.Fatalf("walkObject accepted %q; reference: %v", b, ref)
		case err != nil && ref == nil && !errors.Is(err, errJSONTooDeep) && !errors.Is(err, errJSONTooWide):
			t.Fatalf("walkObject refused %q: %v", b, err)
		case err == nil:
			var m map[string]json.RawMessage
			if uerr := json.Unmarshal(b, &m); uerr != nil || len(m) != len(names) {
				t.Fatalf("accepted %q but encoding/json: %v, %d members vs %d", b, uerr, len(m), len(names))
			}
			for _, n := range names {
				if _, ok := m[n]; !ok {
					t.Fatalf("member name %q not what encoding/json decoded", n)
				}
			}
		}
	})
}

// refWalk is the straightforward (and allocation-heavy) json.Decoder token
// walk walkObject replaced; it is the oracle for FuzzWalkObject.
func refWalk(b []byte) error {
	if !utf8.Valid(b) || !json.Valid(b) {
		return errJSONSyntax
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return errNotObject
	}
	type frame struct {
		object bool
		keys   []string
	}
	stack := []frame{{object: true}}
	for len(stack) > 0 {
		top := len(stack) - 1
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			stack = stack[:top]
			continue
		}
		if stack[top].object {
			name := tok.(string)
			for _, k := range stack[top].keys {
				if strings.EqualFold(k, name) {
					return errDuplicate
				}
			}
			stack[top].keys = append(stack[top].keys, name)
			if tok, err = dec.Token(); err != nil {
				return err
			}
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, frame{object: d == '{'})
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailingJSON
	}
	return nil
}

// TestWriteFuzzSeeds regenerates the checked-in seed corpus:
//
//	go test -run TestWriteFuzzSeeds -update-fuzz-seeds ./token/
func TestWriteFuzzSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-fuzz-seeds to rewrite testdata/fuzz/FuzzVerify")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fk := testKeys()
	seeds := map[string]string{}
	for _, c := range verifyCases(t) {
		seeds[c.name] = c.raw
	}
	for _, k := range []*key{fk.ed, fk.ec, fk.rsa, fk.hmac} {
		for _, typ := range []Type{Access, Refresh, MFA} {
			seeds[fmt.Sprintf("signed %s %s", k.alg, typ)] = mustSign(t, k, baseClaims(typ))
		}
	}
	for name, raw := range seeds {
		file := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
				return r
			}
			return '_'
		}, name)
		data := "go test fuzz v1\nstring(" + strconv.Quote(raw) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
