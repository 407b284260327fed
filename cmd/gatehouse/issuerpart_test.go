package main

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatehouse/config"
)

// TestMFAKeys: mfa.encryption_key_file is loaded when set (a bad one stops serve), and without it an ephemeral key
// is made with a warning that says what is lost, louder when Redis would outlive the key.
func TestMFAKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := os.WriteFile(good, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("too short"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, file string
		redis      bool
		wantErr    string
		wantWarn   []string // substrings of the log; nil means no warning
	}{
		{name: "key file", file: good},
		{name: "bad key file", file: short, wantErr: "mfa.encryption_key_file"},
		{name: "missing key file", file: filepath.Join(dir, "nope"), wantErr: "mfa.encryption_key_file"},
		{name: "unset", wantWarn: []string{`"event":"serve.ephemeral_mfa_key"`, "unusable when the process restarts"}},
		{name: "unset with redis", redis: true, wantWarn: []string{`"event":"serve.ephemeral_mfa_key"`, "although Redis keeps them"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := config.Defaults()
			cfg.MFA.EncryptionKeyFile = c.file
			if c.redis {
				cfg.Redis = &config.Redis{URL: "redis://127.0.0.1:1"}
			}
			a := &app{cfg: &cfg, log: slog.New(slog.NewJSONHandler(&logs, nil))}
			keys, err := a.mfaKeys()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sealed, err := keys.Seal("u-1", []byte("seed"))
			if err != nil {
				t.Fatal(err)
			}
			if plain, err := keys.Open("u-1", sealed); err != nil || string(plain) != "seed" {
				t.Fatalf("round trip: %q %v", plain, err)
			}
			for _, w := range c.wantWarn {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log lacks %s: %s", w, logs.String())
				}
			}
			if c.wantWarn == nil && logs.Len() != 0 {
				t.Errorf("unexpected log: %s", logs.String())
			}
		})
	}
}
