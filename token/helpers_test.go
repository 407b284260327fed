package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testIss = "https://auth.example.test"
	testAud = "gatehouse"
)

var testNow = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return testNow }

// detReader is a deterministic byte stream (an LCG): randomness is injected
// everywhere, and tests want repeatable ids and kids.
type detReader struct{ s uint64 }

func (r *detReader) Read(p []byte) (int, error) {
	for i := range p {
		r.s = r.s*6364136223846793005 + 1442695040888963407
		p[i] = byte(r.s >> 56)
	}
	return len(p), nil
}

// Fixed test keys, so the fuzz seed corpus stays valid between runs.
type fixedKeys struct {
	ed, ec, rsa, hmac *key
	edPriv            ed25519.PrivateKey
	ecPriv            *ecdsa.PrivateKey
}

var testKeys = sync.OnceValue(func() fixedKeys {
	var fk fixedKeys
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	fk.edPriv = ed25519.NewKeyFromSeed(seed)
	fk.ed = mustKey(newKey("ed-1", fk.edPriv))

	scalar := make([]byte, 32)
	for i := range scalar {
		scalar[i] = byte(0x40 + i)
	}
	ecPriv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
	if err != nil {
		panic(err)
	}
	fk.ecPriv = ecPriv
	fk.ec = mustKey(newKey("ec-1", ecPriv))

	pemData, err := os.ReadFile("testdata/rsa-test-only.pem")
	if err != nil {
		panic(err)
	}
	fk.rsa = mustKey(parsePEMKey("rsa-1", pemData))

	hs, err := NewHMACKeySet("hs-1", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	fk.hmac = hs.signing
	return fk
})

func mustKey(k *key, err error) *key {
	if err != nil {
		panic(err)
	}
	return k
}

// keySet builds a set from keys; the first one signs if it can.
func keySet(keys ...*key) *KeySet {
	ks := &KeySet{keys: map[string]*key{}}
	for _, k := range keys {
		ks.keys[k.kid] = k
		ks.kids = append(ks.kids, k.kid)
	}
	if len(keys) > 0 && keys[0].sign != nil {
		ks.signing = keys[0]
	}
	return ks
}

// allKeys verifies with every fixed asymmetric key and signs with ed.
func allKeys() *KeySet {
	fk := testKeys()
	return keySet(fk.ed, fk.ec, fk.rsa)
}

func testVerifier(t testing.TB, ks *KeySet) *Verifier {
	t.Helper()
	return NewVerifier(ks, VerifierOptions{Issuer: testIss, Audience: testAud, Now: fixedNow})
}

func testSigner(t testing.TB, k *key) *Signer {
	t.Helper()
	s, err := NewSigner(keySet(k), fixedNow, &detReader{s: 7})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func baseClaims(typ Type) Claims {
	return Claims{
		Type: typ, Issuer: testIss, Subject: "user-42", Audience: testAud,
		SessionID: "sess-1", Username: "alice", Roles: []string{"user", "admin"},
		IssuedAt: testNow.Add(-time.Minute), ExpiresAt: testNow.Add(10 * time.Minute),
	}
}

func mustSign(t testing.TB, k *key, c Claims) string {
	t.Helper()
	raw, err := testSigner(t, k).Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	recordSigned(raw[:strings.LastIndexByte(raw, '.')])
	return raw
}

var b64 = base64.RawURLEncoding.EncodeToString

// craft hand-builds a token from raw header and payload JSON, signing the
// input with k (or appending sig verbatim when k is nil).
func craft(t testing.TB, header, payload string, k *key, sig string) string {
	t.Helper()
	in := b64([]byte(header)) + "." + b64([]byte(payload))
	if k != nil {
		s, err := k.method.Sign(in, k.sign)
		if err != nil {
			t.Fatal(err)
		}
		sig = b64(s)
		if fk := testKeys(); k == fk.ed || k == fk.ec || k == fk.rsa || k == fk.hmac {
			recordSigned(in)
		}
	}
	return in + "." + sig
}

// signedByUs records every signing input the tests signed with our fixed
// keys: FuzzVerify's oracle says only these may ever verify.
var signedByUs sync.Map

func recordSigned(signingInput string) { signedByUs.Store(signingInput, true) }

func wasSignedByUs(raw string) bool {
	i := strings.LastIndexByte(raw, '.')
	if i < 0 {
		return false
	}
	_, ok := signedByUs.Load(raw[:i])
	return ok
}

type ed25519PublicKey = ed25519.PublicKey

func ed25519Priv(seedByte byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = seedByte
	}
	return ed25519.NewKeyFromSeed(seed)
}
