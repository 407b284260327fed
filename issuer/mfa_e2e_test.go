package issuer

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"gatehouse/mfa"
)

// TestMFAEndToEndHTTPRedis enrols, logs in and verifies over real HTTP against a real Redis, then has the
// ext_authz server accept the resulting access token (and refuse the mfa_token).
func TestMFAEndToEndHTTPRedis(t *testing.T) {
	var redis backend
	for _, b := range backends(t) {
		if b.name == "redis" {
			redis = b
		}
	}
	clock := newClock()
	e := newEnvWith(t, clock, redis.open(t, clock.Now)) // skips without redis-server (fails when CI is set)
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()

	call := func(path, bearer, body string, want int) map[string]any {
		t.Helper()
		r, err := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			r.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := ts.Client().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("POST %s: status %d, want %d; body %s", path, resp.StatusCode, want, raw)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("POST %s: Cache-Control %q", path, cc)
		}
		var m map[string]any
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("POST %s: %s: %v", path, raw, err)
			}
		}
		return m
	}
	str := func(m map[string]any, k string) string {
		t.Helper()
		v, ok := m[k].(string)
		if !ok || v == "" {
			t.Fatalf("%s missing in %v", k, m)
		}
		return v
	}

	first := call("/auth/login", "", loginBody("alice", alicePW), 200)
	access := str(first, "access_token")

	// Setup: the QR code is a PNG of the otpauth URI, which carries our parameters.
	setup := call("/auth/mfa/setup", access, "", 200)
	secretB32 := str(setup, "secret")
	pngBytes, err := base64.StdEncoding.DecodeString(str(setup, "qr_png"))
	if err != nil || !bytes.HasPrefix(pngBytes, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("qr_png is not a base64 PNG: %v", err)
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(pngBytes)); err != nil || cfg.Width < 100 || cfg.Width != cfg.Height {
		t.Fatalf("QR PNG %+v: %v", cfg, err)
	}
	u, err := url.Parse(str(setup, "otpauth_uri"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/"+testMFAIssuer+":Alice" {
		t.Errorf("otpauth URI %s: want otpauth://totp/%s:Alice", u, testMFAIssuer)
	}
	for k, want := range map[string]string{"secret": secretB32, "issuer": testMFAIssuer, "digits": "6", "period": "30", "algorithm": "SHA1"} {
		if got := q.Get(k); got != want {
			t.Errorf("otpauth %s=%q, want %q", k, got, want)
		}
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secretB32)
	if err != nil {
		t.Fatal(err)
	}

	// Confirm with a code computed from the secret, as an authenticator app would.
	code, err := mfa.Code(secret, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	confirmed := call("/auth/mfa/confirm", access, codeBody(code), 200)
	if codes, _ := confirmed["backup_codes"].([]any); len(codes) != mfa.BackupCodeCount {
		t.Fatalf("backup codes %v", confirmed)
	}

	// Log in: only a challenge; verify with the next step's code: a new session.
	challenge := call("/auth/login", "", loginBody("alice", alicePW), 200)
	if challenge["mfa_required"] != true || challenge["access_token"] != nil || challenge["refresh_token"] != nil {
		t.Fatalf("login with MFA on: %v", challenge)
	}
	mfaToken := str(challenge, "mfa_token")
	clock.Advance(mfa.Period)
	code, _ = mfa.Code(secret, clock.Now())
	call("/auth/refresh", "", refreshBody(mfaToken), 401)
	tokens := call("/auth/mfa/verify", "", verifyBody(mfaToken, code), 200)
	if str(tokens, "session_id") == str(first, "session_id") {
		t.Error("MFA login reused a session id")
	}

	sidecar := e.sidecar()
	if got := sidecarStatus(t, sidecar, str(tokens, "access_token")); got != 200 {
		t.Errorf("ext_authz refused the access token after MFA: %d", got)
	}
	if got := sidecarStatus(t, sidecar, mfaToken); got != 401 {
		t.Errorf("ext_authz answered %d for the mfa_token", got)
	}
	call("/auth/mfa/verify", "", verifyBody(mfaToken, code), 401) // single use
}
