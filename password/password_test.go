package password

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// cheap keeps the test suite fast; DefaultParams is exercised once below.
var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerifyRoundTrip(t *testing.T) {
	enc, err := Hash("correct horse", cheap, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("not a PHC argon2id string: %s", enc)
	}
	h, err := Parse(enc)
	if err != nil {
		t.Fatal(err)
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horse ": false, "Correct horse": false, "": false} {
		if got := h.Verify(pw); got != want {
			t.Errorf("Verify(%q) = %v, want %v", pw, got, want)
		}
	}
}

func TestDefaultParamsProduceParseableHash(t *testing.T) {
	enc, err := Hash("pw", DefaultParams, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(enc, "$m=65536,t=3,p=2$") {
		t.Errorf("default params changed: %s", enc)
	}
	h, err := Parse(enc)
	if err != nil || !h.Verify("pw") || h.MemoryKiB() != 65536 {
		t.Fatalf("parse/verify default hash: %v", err)
	}
}

func TestSaltFromInjectedReader(t *testing.T) {
	a, _ := Hash("pw", cheap, bytes.NewReader(make([]byte, 16)))
	b, _ := Hash("pw", cheap, bytes.NewReader(make([]byte, 16)))
	c, _ := Hash("pw", cheap, rand.Reader)
	if a != b || a == c {
		t.Errorf("salt must come from the injected reader")
	}
	if _, err := Hash("pw", cheap, bytes.NewReader(nil)); err == nil {
		t.Errorf("short randomness must fail")
	}
}

func TestBcryptAcceptedForMigration(t *testing.T) {
	enc, err := bcrypt.GenerateFromPassword([]byte("legacy"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Parse(string(enc))
	if err != nil {
		t.Fatal(err)
	}
	if !h.Verify("legacy") || h.Verify("legacy2") {
		t.Errorf("bcrypt verify wrong")
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	for _, enc := range []string{
		"", "plaintext", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$c2hvcnQ",
		"$2b$99$abcdefghijklmnopqrstuv",
	} {
		if _, err := Parse(enc); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", enc, err)
		}
	}
}
