package issuer

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAuditLinesCarryNoSecrets runs every audited flow, then checks each line is one JSON object with the audit
// fields, and that no password, hash or token appears anywhere in the log.
func TestAuditLinesCarryNoSecrets(t *testing.T) {
	e := newEnv(t)
	var secrets []string
	for _, pw := range []string{alicePW, bobPW, carolPW} {
		secrets = append(secrets, pw, testHashes(t)[pw])
	}
	keep := func(tr Tokens) Tokens {
		secrets = append(secrets, tr.AccessToken, tr.RefreshToken)
		return tr
	}
	const typo = "a-password-typed-as-password"
	secrets = append(secrets, typo)

	a := keep(e.login("alice", alicePW))
	e.loginRaw("alice", typo)
	e.loginRaw("bob", bobPW)
	e.loginRaw("nobody", typo)
	b := keep(e.tokens(e.refreshRaw(a.RefreshToken)))
	e.refreshRaw(a.RefreshToken) // reuse: ends the session
	e.refreshRaw(b.RefreshToken) // session gone
	c := keep(e.login("alice", alicePW))
	d := keep(e.login("alice", alicePW))
	e.do(req{method: "DELETE", path: "/auth/sessions/" + c.SessionID, bearer: d.AccessToken})
	e.do(req{method: "POST", path: "/auth/logout", bearer: d.AccessToken})
	f := keep(e.login("carol", carolPW))
	e.do(req{method: "POST", path: "/auth/logout/all", bearer: f.AccessToken})
	for range 5 {
		e.loginRaw("carol", typo)
	}
	e.loginRaw("carol", carolPW) // locked

	log := e.logs.String()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log contains a secret (%.12s...)", s)
		}
		// A token's signature alone is a secret too.
		if i := strings.LastIndexByte(s, '.'); i > 0 && strings.Contains(log, s[i+1:]) {
			t.Errorf("the log contains a token signature")
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object per line: %q", line)
		}
		for _, k := range []string{"event", "user_id", "username", "client_ip", "outcome", "reason", "session_id"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line lacks %s: %s", k, line)
			}
		}
		seen[m["event"].(string)+"/"+m["outcome"].(string)] = true
	}
	for _, want := range []string{
		"login/success", "login/invalid_credentials", "login/disabled", "login/locked",
		"refresh/success", "refresh/reused", "refresh/invalid", "refresh_reuse/reused",
		"logout/success", "logout_all/success", "session_revoke/success", "lockout/locked",
	} {
		if !seen[want] {
			t.Errorf("no %s audit line", want)
		}
	}
	// Usernames are logged canonical.
	for _, l := range e.auditLines(EventLogin) {
		if u := l["username"].(string); u != strings.ToLower(u) {
			t.Errorf("username %q not canonical", u)
		}
	}
}
