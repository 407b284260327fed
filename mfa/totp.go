// Package mfa holds the pieces of TOTP multi-factor authentication that do not depend on HTTP or storage:
// RFC 6238 code matching that reports the matched time step (so the caller can refuse replays atomically in the
// store), enrolment material (secret, otpauth URI, QR PNG), backup codes, and sealing of secrets at rest.
package mfa

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"image/png"
	"io"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
)

// RFC 6238 parameters every authenticator app supports.
const (
	Period     = 30 * time.Second
	Digits     = 6
	SecretSize = 20 // bytes: the RFC 4226 recommendation for SHA1
	// Skew is how many steps either side of the current one are accepted: one, for clocks a little off.
	Skew = 1
)

// Step returns the TOTP time step (counter) for t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// StepEnd returns when step stops being acceptable: the end of the last window that still accepts it.
func StepEnd(step int64) time.Time {
	return time.Unix((step+1+Skew)*int64(Period/time.Second), 0)
}

// Match reports whether code is the TOTP code of secret for the step of now or one step either side, and which
// step it matched. It compares every candidate in constant time. Match is stateless: accepting a step at most
// once is the caller's job (store.MFA.UseTOTPStep), which pquerna/otp's Validate does not do.
func Match(secret []byte, code string, now time.Time) (step int64, ok bool) {
	if len(code) != Digits {
		return 0, false
	}
	for _, c := range []byte(code) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	enc := encodeSecret(secret)
	current := Step(now)
	matched := 0
	for s := current - Skew; s <= current+Skew; s++ {
		want, err := codeAt(enc, s)
		if err != nil {
			return 0, false
		}
		// No early exit: every candidate costs the same whatever matches.
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && matched == 0 {
			step, matched = s, 1
		}
	}
	return step, matched == 1
}

// Code returns the code for secret at t (tests and the portal's examples use it).
func Code(secret []byte, t time.Time) (string, error) {
	return codeAt(encodeSecret(secret), Step(t))
}

func codeAt(encodedSecret string, step int64) (string, error) {
	if step < 0 {
		return "", fmt.Errorf("mfa: negative step")
	}
	return hotp.GenerateCodeCustom(encodedSecret, uint64(step), hotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func encodeSecret(secret []byte) string { return b32.EncodeToString(secret) }

// NewSecret draws a TOTP seed from rand (crypto/rand in production).
func NewSecret(rand io.Reader) ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := io.ReadFull(rand, s); err != nil {
		return nil, fmt.Errorf("mfa: secret randomness: %w", err)
	}
	return s, nil
}

// Enrolment is what a user needs to add the secret to an authenticator app.
type Enrolment struct {
	Secret     string // base32, for manual entry
	OTPAuthURI string // otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
	QRPNG      []byte // the URI as a QR code
}

// NewEnrolment renders secret for issuer (shown by the app) and account (the username).
func NewEnrolment(secret []byte, issuer, account string) (Enrolment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Secret: secret,
		Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrolment{}, fmt.Errorf("mfa: enrolment: %w", err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return Enrolment{}, fmt.Errorf("mfa: qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrolment{}, fmt.Errorf("mfa: qr png: %w", err)
	}
	return Enrolment{Secret: key.Secret(), OTPAuthURI: key.URL(), QRPNG: buf.Bytes()}, nil
}
