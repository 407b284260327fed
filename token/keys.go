package token

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithms a KeySet can hold. HS256 only comes from NewHMACKeySet.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
	AlgHS256 = "HS256"
)

const (
	// MinRSABits is the smallest RSA modulus we load or generate.
	MinRSABits = 2048
	// MinHMACSecret is the shortest HS256 secret NewHMACKeySet accepts.
	MinHMACSecret = 32

	maxKeyFileSize = 64 << 10
	maxKidLen      = 128
	signingFile    = "signing"
)

// key is one entry of a KeySet with exactly one algorithm.
type key struct {
	kid    string
	alg    string
	method jwt.SigningMethod
	public crypto.PublicKey // nil for HMAC: never published
	verify any              // what method.Verify wants: the public key or the HMAC secret
	sign   any              // what method.Sign wants; nil when we only verify
}

// KeySet is a set of verification keys, each with its own kid and algorithm,
// of which at most one also signs. Several keys verify at once so that keys
// rotate without downtime. A KeySet is immutable and safe for concurrent use.
type KeySet struct {
	keys    map[string]*key
	kids    []string // sorted, for deterministic JWKS output
	signing *key
}

// LoadKeyDir loads every key in dir.
//
// Naming: each "*.pem" file holds one PEM key and its kid is the file name
// without the extension: "2026-11-a.pem" has kid "2026-11-a" and
// "2026-11-a.pub.pem" has kid "2026-11-a" too, so a private key and its public
// half written side by side by WriteKeyPair are one key (they must match).
// A private key file also yields its public key, so an issuer needs only the
// private files and a decider needs only the ".pub.pem" ones. Kids are limited
// to [A-Za-z0-9._-]; files starting with "." (editor backups, Kubernetes
// "..data" links) and files not ending in ".pem" are ignored, except "signing".
//
// Formats: PKCS#8 "PRIVATE KEY", SEC 1 "EC PRIVATE KEY", PKCS#1
// "RSA PRIVATE KEY", PKIX "PUBLIC KEY" and PKCS#1 "RSA PUBLIC KEY", one block
// per file, unencrypted. Ed25519 keys sign EdDSA, P-256 keys ES256 and RSA
// keys (at least 2048 bits) RS256; other curves and sizes are refused.
//
// Signing key: when the directory holds one private key, it signs. With
// several, the file "signing" (whose content is a kid) picks one; without
// it, the lexically greatest private kid signs. WriteKeyPair's kids start
// with the date, so that is the newest key. Rotation without downtime:
// (1) write a new pair, copy its ".pub.pem" to every decider and reload them;
// (2) then give the issuer the new private key (or point "signing" at it);
// (3) remove the old key once the longest-lived token signed with it expired.
// A directory holding only public keys loads fine and cannot sign.
//
// Errors name the offending file.
func LoadKeyDir(dir string) (*KeySet, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("token: read key dir: %w", err)
	}
	type pair struct{ priv, pub *key }
	found := map[string]*pair{}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".pem") {
			continue
		}
		path := filepath.Join(dir, name)
		wantPublic := strings.HasSuffix(name, ".pub.pem")
		kid := strings.TrimSuffix(name, ".pem")
		if wantPublic {
			kid = strings.TrimSuffix(name, ".pub.pem")
		}
		if err := checkKid(kid); err != nil {
			return nil, fmt.Errorf("token: key file %s: %w", path, err)
		}
		data, err := readSmallFile(path)
		if err != nil {
			return nil, fmt.Errorf("token: key file %s: %w", path, err)
		}
		k, err := parsePEMKey(kid, data)
		if err != nil {
			return nil, fmt.Errorf("token: key file %s: %w", path, err)
		}
		p := found[kid]
		if p == nil {
			p = &pair{}
			found[kid] = p
		}
		switch {
		case k.sign != nil && wantPublic:
			return nil, fmt.Errorf("token: key file %s: holds a private key; *.pub.pem files must hold a public key only", path)
		case k.sign != nil:
			p.priv = k
		case p.pub != nil: // "X.pem" and "X.pub.pem" both public
			if !samePublic(p.pub.public, k.public) {
				return nil, fmt.Errorf("token: key file %s: differs from the other public key with kid %q", path, kid)
			}
		default:
			p.pub = k
		}
	}
	ks := &KeySet{keys: make(map[string]*key, len(found))}
	for kid, p := range found {
		k := p.priv
		if k == nil {
			k = p.pub
		} else if p.pub != nil && !samePublic(p.pub.public, k.public) {
			return nil, fmt.Errorf("token: key dir %s: public key for kid %q does not match its private key", dir, kid)
		}
		ks.keys[kid] = k
		ks.kids = append(ks.kids, kid)
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("token: key dir %s: no *.pem keys", dir)
	}
	slices.Sort(ks.kids)

	signing, err := readSigningChoice(dir)
	if err != nil {
		return nil, err
	}
	if signing != "" {
		k := ks.keys[signing]
		if k == nil || k.sign == nil {
			return nil, fmt.Errorf("token: %s names kid %q, which has no private key in the directory", filepath.Join(dir, signingFile), signing)
		}
		ks.signing = k
	} else {
		for _, kid := range ks.kids { // sorted: the last private key wins
			if k := ks.keys[kid]; k.sign != nil {
				ks.signing = k
			}
		}
	}
	return ks, nil
}

func readSigningChoice(dir string) (string, error) {
	path := filepath.Join(dir, signingFile)
	b, err := readSmallFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("token: %s: %w", path, err)
	}
	kid := strings.TrimSpace(string(b))
	if err := checkKid(kid); err != nil {
		return "", fmt.Errorf("token: %s: %w", path, err)
	}
	return kid, nil
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFileSize)
	}
	return b, nil
}

// checkKid keeps kids boring: they appear in headers, logs and file names.
func checkKid(kid string) error {
	if kid == "" || len(kid) > maxKidLen {
		return fmt.Errorf("kid must be 1 to %d characters", maxKidLen)
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("kid %q: only letters, digits, '-', '_' and '.' are allowed", kid)
		}
	}
	return nil
}

func samePublic(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

func parsePEMKey(kid string, data []byte) (*key, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the first PEM block (one key per file)")
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("PEM headers (encrypted keys) are not supported")
	}
	var (
		parsed any
		err    error
	)
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PUBLIC KEY":
		parsed, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		parsed, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block type %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return newKey(kid, parsed)
}

// newKey binds a parsed key to the one algorithm it may be used with.
func newKey(kid string, parsed any) (*key, error) {
	switch k := parsed.(type) {
	case ed25519.PrivateKey:
		pub := k.Public().(ed25519.PublicKey)
		return &key{kid: kid, alg: AlgEdDSA, method: jwt.SigningMethodEdDSA, public: pub, verify: pub, sign: k}, nil
	case ed25519.PublicKey:
		return &key{kid: kid, alg: AlgEdDSA, method: jwt.SigningMethodEdDSA, public: k, verify: k}, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s not supported (ES256 needs P-256)", k.Curve.Params().Name)
		}
		return &key{kid: kid, alg: AlgES256, method: jwt.SigningMethodES256, public: &k.PublicKey, verify: &k.PublicKey, sign: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA curve %s not supported (ES256 needs P-256)", k.Curve.Params().Name)
		}
		return &key{kid: kid, alg: AlgES256, method: jwt.SigningMethodES256, public: k, verify: k}, nil
	case *rsa.PrivateKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, need at least %d", n, MinRSABits)
		}
		return &key{kid: kid, alg: AlgRS256, method: jwt.SigningMethodRS256, public: &k.PublicKey, verify: &k.PublicKey, sign: k}, nil
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return nil, fmt.Errorf("RSA key has %d bits, need at least %d", n, MinRSABits)
		}
		return &key{kid: kid, alg: AlgRS256, method: jwt.SigningMethodRS256, public: k, verify: k}, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", parsed)
}

// GenerateKeySet returns a KeySet holding one fresh key pair that signs, for
// development mode: tokens die with the process. alg is "EdDSA", "ES256" or
// "RS256". rand feeds the kid and, for Ed25519, the key itself (since Go 1.26
// crypto/ecdsa and crypto/rsa always draw from crypto/rand).
func GenerateKeySet(alg string, rand io.Reader) (*KeySet, error) {
	priv, err := generateKey(alg, rand)
	if err != nil {
		return nil, err
	}
	kid, err := newKid(time.Now(), rand)
	if err != nil {
		return nil, err
	}
	k, err := newKey(kid, priv)
	if err != nil {
		return nil, err
	}
	return &KeySet{keys: map[string]*key{kid: k}, kids: []string{kid}, signing: k}, nil
}

func generateKey(alg string, rand io.Reader) (crypto.Signer, error) {
	switch alg {
	case AlgEdDSA:
		_, priv, err := ed25519.GenerateKey(rand)
		return priv, err
	case AlgES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand)
	case AlgRS256:
		return rsa.GenerateKey(rand, MinRSABits)
	}
	return nil, fmt.Errorf("token: cannot generate keys for algorithm %q (want %s, %s or %s)", alg, AlgEdDSA, AlgES256, AlgRS256)
}

// newKid is the UTC date (so lexical order is age order, see LoadKeyDir)
// plus 40 random bits so two keys made the same day differ.
func newKid(now time.Time, rand io.Reader) (string, error) {
	var b [5]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("token: kid randomness: %w", err)
	}
	return now.UTC().Format("2006-01-02") + "-" + hex.EncodeToString(b[:]), nil
}

// WriteKeyPair generates a key pair for alg and writes it to dir as
// "<kid>.pem" (PKCS#8 private key, mode 0600) and "<kid>.pub.pem" (PKIX public
// key, mode 0644), creating dir with mode 0700 when missing. It never
// overwrites an existing file. The kid is "YYYY-MM-DD-<10 hex digits>".
// Copy only the ".pub.pem" file to deciders.
func WriteKeyPair(dir, alg string, rand io.Reader) (kid string, err error) {
	priv, err := generateKey(alg, rand)
	if err != nil {
		return "", err
	}
	kid, err = newKid(time.Now(), rand)
	if err != nil {
		return "", err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("token: encode private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return "", fmt.Errorf("token: encode public key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("token: create key dir: %w", err)
	}
	privPath := filepath.Join(dir, kid+".pem")
	pubPath := filepath.Join(dir, kid+".pub.pem")
	// Refuse before writing anything, so a clash leaves no half pair behind.
	for _, p := range []string{privPath, pubPath} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("token: %s already exists; refusing to overwrite", p)
		}
	}
	if err := writeNew(privPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		return "", err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		os.Remove(privPath)
		return "", err
	}
	return kid, nil
}

// writeNew creates path exclusively and sets mode exactly (the umask could
// otherwise loosen nothing but tighten the public file).
func writeNew(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("token: create %s: %w", path, err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("token: close %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("token: chmod %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("token: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("token: sync %s: %w", path, err)
	}
	return nil
}

// NewHMACKeySet returns a KeySet with one HS256 key that signs and verifies.
// Use it only when configured explicitly (callers should log a warning): every
// verifier then holds a key that can mint tokens. The secret must be at least
// 32 bytes; it is copied, and never appears in JWKS output.
func NewHMACKeySet(kid string, secret []byte) (*KeySet, error) {
	if err := checkKid(kid); err != nil {
		return nil, fmt.Errorf("token: HMAC key: %w", err)
	}
	if len(secret) < MinHMACSecret {
		return nil, fmt.Errorf("token: HMAC secret has %d bytes, need at least %d", len(secret), MinHMACSecret)
	}
	s := bytes.Clone(secret)
	k := &key{kid: kid, alg: AlgHS256, method: jwt.SigningMethodHS256, verify: s, sign: s}
	return &KeySet{keys: map[string]*key{kid: k}, kids: []string{kid}, signing: k}, nil
}

// CanSign reports whether the set holds a signing key.
func (ks *KeySet) CanSign() bool { return ks != nil && ks.signing != nil }

// SigningAlg is the signing key's algorithm, or "" when the set cannot sign.
func (ks *KeySet) SigningAlg() string {
	if !ks.CanSign() {
		return ""
	}
	return ks.signing.alg
}

// SigningKid is the signing key's kid, or "" when the set cannot sign.
func (ks *KeySet) SigningKid() string {
	if !ks.CanSign() {
		return ""
	}
	return ks.signing.kid
}

// Kids lists every kid in the set, sorted.
func (ks *KeySet) Kids() []string {
	if ks == nil {
		return nil
	}
	return slices.Clone(ks.kids)
}

// PublicOnly returns the set a decider needs: the same verification keys and
// no signing key (CanSign is false). An HMAC key keeps its secret, since it
// is needed to verify.
func (ks *KeySet) PublicOnly() *KeySet {
	if ks == nil {
		return nil
	}
	out := &KeySet{keys: make(map[string]*key, len(ks.keys)), kids: slices.Clone(ks.kids)}
	for kid, k := range ks.keys {
		c := *k
		c.sign = nil // for HMAC, verify still holds the secret
		out.keys[kid] = &c
	}
	return out
}

type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKS renders the public keys as a JSON Web Key Set (RFC 7517, OKP keys per
// RFC 8037), sorted by kid. HMAC keys are never published.
func (ks *KeySet) JWKS() ([]byte, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	if ks == nil {
		return json.Marshal(set)
	}
	for _, kid := range ks.kids {
		k := ks.keys[kid]
		j := jwk{Use: "sig", Kid: kid, Alg: k.alg}
		switch pub := k.public.(type) {
		case ed25519.PublicKey:
			j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(pub)
		case *ecdsa.PublicKey:
			raw, err := pub.Bytes() // 0x04 || X || Y, fixed width
			if err != nil {
				return nil, fmt.Errorf("token: JWKS kid %q: %w", kid, err)
			}
			j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(raw[1:33]), b64(raw[33:65])
		case *rsa.PublicKey:
			j.Kty, j.N, j.E = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
		default: // HMAC
			continue
		}
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}
