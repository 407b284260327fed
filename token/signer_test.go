package token

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestSign(t *testing.T) {
	fk := testKeys()
	s := testSigner(t, fk.ed)
	v := testVerifier(t, keySet(fk.ed))

	t.Run("fills jti and iat", func(t *testing.T) {
		c := baseClaims(Access)
		c.IssuedAt = time.Time{}
		raw, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(raw, Access)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.ID) != 22 || !got.IssuedAt.Equal(testNow) {
			t.Fatalf("jti %q iat %v", got.ID, got.IssuedAt)
		}
	})
	t.Run("keeps given jti", func(t *testing.T) {
		c := baseClaims(Access)
		c.ID = "given"
		got, err := v.Verify(mustSign(t, fk.ed, c), Access)
		if err != nil || got.ID != "given" {
			t.Fatalf("jti %v %v", got, err)
		}
	})
	t.Run("distinct jti per token", func(t *testing.T) {
		a, _ := s.Sign(baseClaims(Access))
		b, _ := s.Sign(baseClaims(Access))
		if a == b {
			t.Fatal("two tokens are identical")
		}
	})

	bad := []struct {
		name string
		edit func(*Claims)
		want string
	}{
		{"unknown type", func(c *Claims) { c.Type = "JWT" }, "unknown type"},
		{"no type", func(c *Claims) { c.Type = "" }, "unknown type"},
		{"no iss", func(c *Claims) { c.Issuer = "" }, "iss"},
		{"no sub", func(c *Claims) { c.Subject = "" }, "sub"},
		{"no aud", func(c *Claims) { c.Audience = "" }, "aud"},
		{"no sid", func(c *Claims) { c.SessionID = "" }, "sid"},
		{"no exp", func(c *Claims) { c.ExpiresAt = time.Time{} }, "exp"},
		{"exp before iat", func(c *Claims) { c.ExpiresAt = c.IssuedAt.Add(-time.Second) }, "exp must be after iat"},
		{"exp equals iat", func(c *Claims) { c.ExpiresAt = c.IssuedAt }, "exp must be after iat"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c := baseClaims(Access)
			tc.edit(&c)
			if _, err := s.Sign(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("jti randomness failure", func(t *testing.T) {
		s, err := NewSigner(keySet(fk.ed), fixedNow, errReader{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign(baseClaims(Access)); err == nil {
			t.Fatal("signed without a jti")
		}
	})
	t.Run("public-only set cannot sign", func(t *testing.T) {
		if _, err := NewSigner(keySet(fk.ed).PublicOnly(), fixedNow, nil); err == nil {
			t.Fatal("NewSigner accepted a public-only set")
		}
		if _, err := NewSigner(nil, fixedNow, nil); err == nil {
			t.Fatal("NewSigner accepted nil")
		}
	})
}

func TestNewID(t *testing.T) {
	a, err := NewID(&detReader{s: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewID(&detReader{s: 1})
	c, _ := NewID(nil) // crypto/rand
	if a != b || a == c {
		t.Fatalf("ids %q %q %q", a, b, c)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(a)
	if err != nil || len(raw) != 16 || len(a) != 22 {
		t.Fatalf("id %q: %d bytes, %v", a, len(raw), err)
	}
	if _, err := NewID(errReader{}); err == nil {
		t.Fatal("NewID ignored a failing reader")
	}
}
