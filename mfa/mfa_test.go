package mfa

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var rfcSecret = []byte("12345678901234567890") // RFC 6238 Appendix B, SHA1

func TestCodeMatchesRFC6238Vectors(t *testing.T) {
	// The RFC lists 8-digit codes; 6-digit codes are their last six digits.
	for _, v := range []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		got, err := Code(rfcSecret, time.Unix(v.unix, 0))
		if err != nil || got != v.want {
			t.Errorf("Code(%d) = %q, %v; want %q", v.unix, got, err, v.want)
		}
	}
}

func TestMatchWindow(t *testing.T) {
	now := time.Unix(1_800_000_015, 0)
	cur := Step(now)
	codeFor := func(offset int64) string {
		c, err := Code(rfcSecret, now.Add(time.Duration(offset)*Period))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		offset int64
		ok     bool
	}{
		{"current step", 0, true},
		{"one step behind", -1, true},
		{"one step ahead", 1, true},
		{"two steps behind", -2, false},
		{"two steps ahead", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step, ok := Match(rfcSecret, codeFor(tt.offset), now)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && step != cur+tt.offset {
				t.Errorf("matched step %d, want %d", step, cur+tt.offset)
			}
		})
	}
	for _, bad := range []string{"", "12345", "1234567", "12345a", " 12345", "１２３４５６"} {
		if _, ok := Match(rfcSecret, bad, now); ok {
			t.Errorf("Match(%q) accepted", bad)
		}
	}
}

func TestStepEndCoversTheAcceptanceWindow(t *testing.T) {
	now := time.Unix(1_800_000_015, 0)
	s := Step(now)
	end := StepEnd(s)
	// The step is still accepted (as "one behind") until the step after next begins.
	if _, ok := Match(rfcSecret, mustCode(t, s), end.Add(-time.Second)); !ok {
		t.Error("step refused before StepEnd")
	}
	if _, ok := Match(rfcSecret, mustCode(t, s), end); ok {
		t.Error("step accepted at StepEnd")
	}
}

func mustCode(t *testing.T, step int64) string {
	t.Helper()
	c, err := codeAt(encodeSecret(rfcSecret), step)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnrolment(t *testing.T) {
	secret, err := NewSecret(rand.Reader)
	if err != nil || len(secret) != SecretSize {
		t.Fatalf("secret: %v %d", err, len(secret))
	}
	e, err := NewEnrolment(secret, "Gatehouse Demo", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(e.QRPNG, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("qr is not a PNG")
	}
	u, err := url.Parse(e.OTPAuthURI)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("uri %q: %v", e.OTPAuthURI, err)
	}
	q := u.Query()
	if q.Get("secret") != e.Secret || q.Get("issuer") != "Gatehouse Demo" || q.Get("digits") != "6" ||
		q.Get("period") != "30" || q.Get("algorithm") != "SHA1" || !strings.Contains(u.Path, "alice") {
		t.Errorf("uri fields: %s", e.OTPAuthURI)
	}
	decoded, err := b32.DecodeString(e.Secret)
	if err != nil || !bytes.Equal(decoded, secret) {
		t.Errorf("manual-entry secret does not decode to the seed")
	}
	if _, err := NewSecret(bytes.NewReader(nil)); err == nil {
		t.Error("short randomness accepted")
	}
}

func TestSealOpen(t *testing.T) {
	master := bytes.Repeat([]byte{7}, KeySize)
	k, err := NewKeys(master, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal("u-1", rfcSecret)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, rfcSecret) {
		t.Fatal("secret visible in sealed form")
	}
	got, err := k.Open("u-1", sealed)
	if err != nil || !bytes.Equal(got, rfcSecret) {
		t.Fatalf("open: %v", err)
	}
	other, _ := NewKeys(bytes.Repeat([]byte{8}, KeySize), rand.Reader)
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, f := range map[string]func() ([]byte, error){
		"other user": func() ([]byte, error) { return k.Open("u-2", sealed) },
		"other key":  func() ([]byte, error) { return other.Open("u-1", sealed) },
		"tampered":   func() ([]byte, error) { return k.Open("u-1", tampered) },
		"truncated":  func() ([]byte, error) { return k.Open("u-1", sealed[:5]) },
	} {
		if _, err := f(); !errors.Is(err, ErrUnseal) {
			t.Errorf("%s: err = %v, want ErrUnseal", name, err)
		}
	}
	if _, err := NewKeys(master[:16], rand.Reader); err == nil {
		t.Error("short master key accepted")
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte{0xab}, 32)
	for name, content := range map[string]string{
		"raw": string(raw), "hex": strings.Repeat("ab", 32) + "\n", "b64": "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKeyFile(p)
		if err != nil || !bytes.Equal(k, raw) {
			t.Errorf("%s: %x %v", name, k, err)
		}
	}
	p := filepath.Join(dir, "short")
	_ = os.WriteFile(p, []byte("abc"), 0o600)
	if _, err := LoadKeyFile(p); err == nil || !strings.Contains(err.Error(), "want 32 bytes") {
		t.Errorf("short key: %v", err)
	}
}

func TestBackupCodes(t *testing.T) {
	codes, err := NewBackupCodes(rand.Reader, BackupCodeCount)
	if err != nil || len(codes) != BackupCodeCount {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 11 || c[5] != '-' || !LooksLikeBackupCode(c) || seen[c] {
			t.Errorf("bad or repeated code %q", c)
		}
		seen[c] = true
	}
	k, _ := NewKeys(bytes.Repeat([]byte{1}, KeySize), rand.Reader)
	h := k.HashBackupCode("u-1", codes[0])
	if h != k.HashBackupCode("u-1", strings.ToUpper(strings.ReplaceAll(codes[0], "-", " "))) {
		t.Error("normalisation: case and separators must not matter")
	}
	if h == k.HashBackupCode("u-2", codes[0]) || h == k.HashBackupCode("u-1", codes[1]) {
		t.Error("hash must depend on user and code")
	}
	if strings.Contains(h, NormaliseBackupCode(codes[0])) {
		t.Error("hash reveals the code")
	}
	if LooksLikeBackupCode("123456") || LooksLikeBackupCode("abcde-1234l") {
		t.Error("TOTP code or look-alike taken for a backup code")
	}
}
