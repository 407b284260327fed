package token

import (
	cryptorand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// idBytes is the entropy in a jti or sid: 128 bits.
const idBytes = 16

// NewID returns 16 random bytes from rand as unpadded base64url (22
// characters), for jti and sid. A nil rand means crypto/rand.
func NewID(rand io.Reader) (string, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	var b [idBytes]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("token: id randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Signer mints tokens with a KeySet's signing key.
type Signer struct {
	k    *key
	now  func() time.Time
	rand io.Reader
}

// NewSigner returns a Signer for ks's signing key. now and rand default to
// time.Now and crypto/rand when nil.
func NewSigner(ks *KeySet, now func() time.Time, rand io.Reader) (*Signer, error) {
	if !ks.CanSign() {
		return nil, errors.New("token: key set has no signing key")
	}
	if now == nil {
		now = time.Now
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	return &Signer{k: ks.signing, now: now, rand: rand}, nil
}

// Kid is the kid Sign puts in the header.
func (s *Signer) Kid() string { return s.k.kid }

// Sign returns a compact JWS with header {"alg","kid","typ": c.Type}. It fills
// ID with NewID and IssuedAt with now when they are empty, and refuses claims
// Verify would refuse anyway (missing iss, sub, aud, sid or exp, unknown type,
// exp not after iat), so such a bug shows at the issuer, not at every decider.
// Times are whole seconds.
func (s *Signer) Sign(c Claims) (string, error) {
	if !c.Type.valid() {
		return "", fmt.Errorf("token: sign: unknown type %q", c.Type)
	}
	for _, f := range [...]struct{ name, v string }{
		{"iss", c.Issuer}, {"sub", c.Subject}, {"aud", c.Audience}, {"sid", c.SessionID},
	} {
		if f.v == "" {
			return "", fmt.Errorf("token: sign: claim %s is required", f.name)
		}
	}
	if c.ExpiresAt.IsZero() {
		return "", errors.New("token: sign: claim exp is required")
	}
	if c.ID == "" {
		id, err := NewID(s.rand)
		if err != nil {
			return "", err
		}
		c.ID = id
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = s.now()
	}
	iat, exp := c.IssuedAt.Unix(), c.ExpiresAt.Unix()
	if exp <= iat {
		return "", errors.New("token: sign: exp must be after iat")
	}
	t := &jwt.Token{
		Method: s.k.method,
		Header: map[string]any{"alg": s.k.alg, "kid": s.k.kid, "typ": string(c.Type)},
		Claims: outClaims{
			Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
			ExpiresAt: exp, IssuedAt: iat, ID: c.ID, SessionID: c.SessionID,
			Username: c.Username, Roles: c.Roles,
		},
	}
	raw, err := t.SignedString(s.k.sign)
	if err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	return raw, nil
}
