package token

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var algs = []string{AlgEdDSA, AlgES256, AlgRS256}

func TestWriteKeyPairLoadKeyDir(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			kid, err := WriteKeyPair(dir, alg, &detReader{s: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := checkKid(kid); err != nil || len(kid) != len("2006-01-02-0123456789") {
				t.Fatalf("kid %q: %v", kid, err)
			}
			for path, want := range map[string]os.FileMode{
				dir:                                0o700 | os.ModeDir,
				filepath.Join(dir, kid+".pem"):     0o600,
				filepath.Join(dir, kid+".pub.pem"): 0o644,
			} {
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode() != want {
					t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
				}
			}

			ks, err := LoadKeyDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !ks.CanSign() || ks.SigningAlg() != alg || ks.SigningKid() != kid {
				t.Fatalf("CanSign %v alg %q kid %q", ks.CanSign(), ks.SigningAlg(), ks.SigningKid())
			}
			raw := signWith(t, ks)

			// A decider gets only the public half.
			pubDir := t.TempDir()
			copyFile(t, filepath.Join(dir, kid+".pub.pem"), filepath.Join(pubDir, kid+".pub.pem"))
			pub, err := LoadKeyDir(pubDir)
			if err != nil {
				t.Fatal(err)
			}
			if pub.CanSign() || pub.SigningAlg() != "" {
				t.Fatal("public-only dir can sign")
			}
			if _, err := testVerifier(t, pub).Verify(raw, Access); err != nil {
				t.Fatalf("public-only verify: %v", err)
			}
			if _, err := testVerifier(t, ks.PublicOnly()).Verify(raw, Access); err != nil || ks.PublicOnly().CanSign() {
				t.Fatalf("PublicOnly: %v", err)
			}

			// Same randomness, same day: same kid; never overwrite.
			if _, err := WriteKeyPair(dir, alg, &detReader{s: 1}); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
				t.Fatalf("second write: %v", err)
			}
		})
	}
}

func TestWriteKeyPairErrors(t *testing.T) {
	if _, err := WriteKeyPair(t.TempDir(), AlgHS256, rand.Reader); err == nil {
		t.Error("HS256 key pair written")
	}
	if _, err := WriteKeyPair(t.TempDir(), "none", rand.Reader); err == nil {
		t.Error("alg none key pair written")
	}
	if _, err := WriteKeyPair(t.TempDir(), AlgEdDSA, errReader{}); err == nil {
		t.Error("failing rand ignored")
	}
}

func TestGenerateKeySet(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			ks, err := GenerateKeySet(alg, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if ks.SigningAlg() != alg || len(ks.Kids()) != 1 {
				t.Fatalf("alg %q kids %v", ks.SigningAlg(), ks.Kids())
			}
			signWith(t, ks)
		})
	}
	if _, err := GenerateKeySet("HS256", rand.Reader); err == nil {
		t.Error("GenerateKeySet(HS256) succeeded")
	}
}

func TestLoadKeyDirMixed(t *testing.T) {
	fk := testKeys()
	dir := t.TempDir()
	writePEM(t, dir, "a.pem", privPEM(t, fk.edPriv))
	writePEM(t, dir, "a.pub.pem", pubPEMOf(t, fk.edPriv.Public()))
	writePEM(t, dir, "b.pub.pem", pubPEMOf(t, fk.ecPriv.Public()))
	writePEM(t, dir, "c.pem", privPEM(t, fk.rsa.sign))
	writePEM(t, dir, "d.pem", pubPEMOf(t, ed25519Priv(5).Public())) // public key without .pub
	writePEM(t, dir, "notes.txt", []byte("ignored"))
	writePEM(t, dir, ".backup.pem", []byte("ignored: dotfile"))
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o700); err != nil {
		t.Fatal(err)
	}

	ks, err := LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ks.Kids(), ","); got != "a,b,c,d" {
		t.Fatalf("kids %s", got)
	}
	if ks.SigningKid() != "c" || ks.SigningAlg() != AlgRS256 {
		t.Fatalf("signing %s/%s, want the greatest private kid c", ks.SigningKid(), ks.SigningAlg())
	}
	for kid, alg := range map[string]string{"a": AlgEdDSA, "b": AlgES256, "c": AlgRS256, "d": AlgEdDSA} {
		if ks.keys[kid].alg != alg {
			t.Errorf("kid %s alg %s, want %s", kid, ks.keys[kid].alg, alg)
		}
	}
	// Tokens by the old key still verify after rotation.
	old := mustSign(t, ks.keys["a"], baseClaims(Access))
	if _, err := testVerifier(t, ks).Verify(old, Access); err != nil {
		t.Fatal(err)
	}

	writePEM(t, dir, signingFile, []byte("a\n"))
	ks, err = LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ks.SigningKid() != "a" {
		t.Fatalf("signing file ignored: %s", ks.SigningKid())
	}
	for _, bad := range []string{"b", "zzz", "../a"} {
		writePEM(t, dir, signingFile, []byte(bad))
		if _, err := LoadKeyDir(dir); err == nil {
			t.Errorf("signing file %q accepted", bad)
		}
	}
}

func TestLoadKeyDirErrors(t *testing.T) {
	fk := testKeys()
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(fk.ecPriv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files map[string][]byte
		want  string // in the error
	}{
		{"empty dir", nil, "no *.pem keys"},
		{"garbage", map[string][]byte{"bad.pem": []byte("not a key")}, "bad.pem: no PEM block"},
		{"bad DER", map[string][]byte{"bad.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})}, "bad.pem: parse PRIVATE KEY"},
		{"two blocks", map[string][]byte{"two.pem": append(privPEM(t, fk.edPriv), privPEM(t, fk.edPriv)...)}, "two.pem: data after the first PEM block"},
		{"certificate", map[string][]byte{"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})}, `cert.pem: unsupported PEM block type "CERTIFICATE"`},
		{"encrypted", map[string][]byte{"enc.pem": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}})}, "enc.pem: PEM headers"},
		{"rsa 1024", map[string][]byte{"small.pem": privPEM(t, rsa1024)}, "small.pem: RSA key has 1024 bits"},
		{"rsa 1024 public", map[string][]byte{"small.pub.pem": pubPEMOf(t, rsa1024.Public())}, "small.pub.pem: RSA key has 1024 bits"},
		{"p384", map[string][]byte{"p384.pem": privPEM(t, p384)}, "p384.pem: ECDSA curve P-384 not supported"},
		{"private in pub file", map[string][]byte{"x.pub.pem": privPEM(t, fk.edPriv)}, "x.pub.pem: holds a private key"},
		{"mismatched pair", map[string][]byte{"x.pem": privPEM(t, fk.edPriv), "x.pub.pem": pubPEMOf(t, ed25519Priv(3).Public())}, `kid "x" does not match`},
		{"mismatched publics", map[string][]byte{"x.pem": pubPEMOf(t, fk.edPriv.Public()), "x.pub.pem": pubPEMOf(t, ed25519Priv(3).Public())}, "differs from the other public key"},
		{"bad kid", map[string][]byte{"a b.pem": privPEM(t, fk.edPriv)}, "a b.pem: kid"},
		{"garbage odd name", map[string][]byte{"-.pem": []byte("x")}, "-.pem: no PEM block"},
		{"oversize", map[string][]byte{"big.pem": bytes.Repeat([]byte("A"), maxKeyFileSize+1)}, "big.pem: larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.files {
				writePEM(t, dir, name, data)
			}
			_, err := LoadKeyDir(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	t.Run("SEC1 and PKCS1 formats load", func(t *testing.T) {
		dir := t.TempDir()
		writePEM(t, dir, "ec.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
		writePEM(t, dir, "rsa.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(fk.rsa.sign.(*rsa.PrivateKey))}))
		writePEM(t, dir, "rsa2.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(fk.rsa.public.(*rsa.PublicKey))}))
		ks, err := LoadKeyDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(ks.Kids(), ","); got != "ec,rsa,rsa2" || ks.SigningKid() != "rsa" {
			t.Fatalf("kids %s signing %s", got, ks.SigningKid())
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		if _, err := LoadKeyDir(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Fatal("missing dir loaded")
		}
	})
}

func TestNewHMACKeySet(t *testing.T) {
	if _, err := NewHMACKeySet("hs", make([]byte, 31)); err == nil {
		t.Error("31-byte secret accepted")
	}
	if _, err := NewHMACKeySet("", make([]byte, 32)); err == nil {
		t.Error("empty kid accepted")
	}
	secret := bytes.Repeat([]byte{7}, 32)
	ks, err := NewHMACKeySet("hs", secret)
	if err != nil {
		t.Fatal(err)
	}
	secret[0] = 8 // the set keeps its own copy
	if ks.SigningAlg() != AlgHS256 {
		t.Fatalf("alg %s", ks.SigningAlg())
	}
	raw := signWith(t, ks)
	if _, err := testVerifier(t, ks.PublicOnly()).Verify(raw, Access); err != nil || ks.PublicOnly().CanSign() {
		t.Fatalf("PublicOnly HMAC: %v", err)
	}
	j, err := ks.JWKS()
	if err != nil || string(j) != `{"keys":[]}` {
		t.Fatalf("JWKS %s %v", j, err)
	}
}

func TestJWKS(t *testing.T) {
	fk := testKeys()
	ks := keySet(fk.ed, fk.ec, fk.rsa, fk.hmac)
	out, err := ks.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("hs-1")) || bytes.Contains(out, []byte(`"d"`)) {
		t.Fatalf("JWKS leaks secret or private material: %s", out)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(out, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3 {
		t.Fatalf("%d keys: %s", len(set.Keys), out)
	}
	dec := func(s string) []byte {
		b, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	byKid := map[string]map[string]string{}
	for _, k := range set.Keys {
		if k["use"] != "sig" {
			t.Errorf("kid %s use %q", k["kid"], k["use"])
		}
		byKid[k["kid"]] = k
	}
	if k := byKid["ed-1"]; k["kty"] != "OKP" || k["crv"] != "Ed25519" || k["alg"] != "EdDSA" ||
		!ed25519.PublicKey(dec(k["x"])).Equal(fk.ed.public) {
		t.Errorf("ed25519 jwk %v", k)
	}
	if k := byKid["ec-1"]; k["kty"] != "EC" || k["crv"] != "P-256" || k["alg"] != "ES256" {
		t.Errorf("ec jwk %v", k)
	} else {
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, dec(k["x"])...), dec(k["y"])...))
		if err != nil || !pub.Equal(fk.ec.public) {
			t.Errorf("ec jwk does not round trip: %v", err)
		}
	}
	if k := byKid["rsa-1"]; k["kty"] != "RSA" || k["alg"] != "RS256" {
		t.Errorf("rsa jwk %v", k)
	} else {
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(dec(k["n"])), E: int(new(big.Int).SetBytes(dec(k["e"])).Int64())}
		if !pub.Equal(fk.rsa.public) || k["e"] != "AQAB" {
			t.Errorf("rsa jwk does not round trip: %v", k)
		}
	}
}

func signWith(t *testing.T, ks *KeySet) string {
	t.Helper()
	s, err := NewSigner(ks, fixedNow, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.Sign(baseClaims(Access))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testVerifier(t, ks).Verify(raw, Access); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	return raw
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func writePEM(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Dir(to), filepath.Base(to), b)
}

func privPEM(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pubPEMOf(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
