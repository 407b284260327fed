package mfa

import (
	"fmt"
	"io"
	"strings"
)

// BackupCodeCount is how many backup codes a user gets at enrolment.
const BackupCodeCount = 10

// backupAlphabet is Crockford-style base32 without look-alikes (no i, l, o, u): 32 symbols, 5 bits each.
const backupAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewBackupCodes draws n codes of 10 symbols (50 bits), shown as "xxxxx-xxxxx".
func NewBackupCodes(rand io.Reader, n int) ([]string, error) {
	codes := make([]string, n)
	buf := make([]byte, 10)
	for i := range codes {
		if _, err := io.ReadFull(rand, buf); err != nil {
			return nil, fmt.Errorf("mfa: backup code randomness: %w", err)
		}
		var b strings.Builder
		for j, c := range buf {
			if j == 5 {
				b.WriteByte('-')
			}
			b.WriteByte(backupAlphabet[c&31]) // 256 is a multiple of 32: no modulo bias
		}
		codes[i] = b.String()
	}
	return codes, nil
}

// NormaliseBackupCode lower-cases and drops spaces and dashes, so "ABCDE-12345" and "abcde12345" are one code.
func NormaliseBackupCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return r
	}, code)
}

// LooksLikeBackupCode tells a backup code from a TOTP code, so one verify field can take either.
func LooksLikeBackupCode(code string) bool {
	n := NormaliseBackupCode(code)
	if len(n) != 10 {
		return false
	}
	for _, c := range []byte(n) {
		if !strings.ContainsRune(backupAlphabet, rune(c)) {
			return false
		}
	}
	return true
}
