package mfa

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// KeySize is the size of the MFA master key (mfa.encryption_key_file).
const KeySize = 32

// ErrUnseal says a sealed secret could not be decrypted: a wrong key, a tampered record, or one that belongs to
// another user. It is an error, never a reason to skip MFA.
var ErrUnseal = errors.New("mfa: sealed secret does not decrypt")

// Keys are the subkeys derived from the master key, one per purpose, so the AEAD key never doubles as an HMAC key.
type Keys struct {
	aead       cipher.AEAD
	backupHMAC []byte
	rand       io.Reader
}

// NewKeys derives the sealing and backup-code keys from a 32-byte master key. rand supplies GCM nonces.
func NewKeys(master []byte, rand io.Reader) (*Keys, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("mfa: master key must be %d bytes, got %d", KeySize, len(master))
	}
	sealKey, err := hkdf.Key(sha256.New, master, nil, "gatehouse mfa seal v1", 32)
	if err != nil {
		return nil, err
	}
	backupKey, err := hkdf.Key(sha256.New, master, nil, "gatehouse mfa backup codes v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Keys{aead: aead, backupHMAC: backupKey, rand: rand}, nil
}

// LoadKeyFile reads a master key: 32 raw bytes, 64 hex characters or base64 of 32 bytes (whitespace trimmed).
func LoadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mfa.encryption_key_file: %w", err)
	}
	if k, ok := ParseKey(b); ok {
		return k, nil
	}
	return nil, fmt.Errorf("mfa.encryption_key_file %s: want 32 bytes (raw, 64 hex characters or base64); make one with: head -c 32 /dev/urandom | base64", path)
}

// ParseKey decodes a key file's content: 32 raw bytes, 64 hex characters or base64 of 32 bytes (whitespace
// trimmed). Other 32-byte keys (the portal's CSRF key) use the same format.
func ParseKey(b []byte) ([]byte, bool) {
	if len(b) == KeySize {
		return b, true
	}
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, true
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == KeySize {
		return k, true
	}
	return nil, false
}

// Seal encrypts a TOTP secret with AES-256-GCM. The user id is authenticated data: a sealed secret copied onto
// another user's record does not open.
func (k *Keys) Seal(userID string, secret []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(secret)+k.aead.Overhead())
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return nil, fmt.Errorf("mfa: nonce randomness: %w", err)
	}
	return k.aead.Seal(nonce, nonce, secret, []byte(userID)), nil
}

// Open decrypts what Seal produced for userID.
func (k *Keys) Open(userID string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrUnseal
	}
	secret, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(userID))
	if err != nil {
		return nil, ErrUnseal
	}
	return secret, nil
}

// HashBackupCode returns the stored form of a backup code: HMAC-SHA256 under a server key, so a leaked store does
// not reveal usable codes, while lookups stay exact (codes carry 50 random bits, so a slow hash adds nothing).
// Codes are normalised first: case, spaces and dashes do not matter.
func (k *Keys) HashBackupCode(userID, code string) string {
	m := hmac.New(sha256.New, k.backupHMAC)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(NormaliseBackupCode(code)))
	return hex.EncodeToString(m.Sum(nil))
}
