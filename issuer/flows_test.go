package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/store"
	"gatehouse/token"
)

// flow is one scenario run against every backend.
type flow struct {
	name string
	// timeTravel: moves the clock past store expiries (counter windows), so memstore only.
	timeTravel bool
	opts       []option
	run        func(t *testing.T, e *env)
}

// TestFlows runs the issuer's session, refresh and lockout flows against memstore and a real Redis.
func TestFlows(t *testing.T) {
	flows := []flow{
		{name: "RefreshRotates", run: testRefreshRotates},
		{name: "RefreshReuseRevokesSession", run: testRefreshReuseRevokesSession},
		{name: "RefreshRefusesOtherTokenTypes", run: testRefreshRefusesOtherTypes},
		{name: "RefreshRereadsRoles", run: testRefreshRereadsRoles},
		{name: "RefreshEndsSessionOfDisabledUser", run: testRefreshDisabledUser},
		{name: "RefreshEndsSessionOfRemovedUser", run: testRefreshRemovedUser},
		{name: "AccessTokenExpires", run: testAccessTokenExpires},
		{name: "SessionAbsoluteLifetime", run: testSessionAbsoluteLifetime},
		{name: "Logout", run: testLogout},
		{name: "LogoutAll", run: testLogoutAll},
		{name: "SessionsListAndDelete", run: testSessionsListAndDelete},
		{name: "SessionCapEvictsOldest", run: testSessionCap, opts: []option{func(c *Config) { c.MaxSessions = 3 }}},
		{name: "LockoutGrows", run: testLockoutGrows},
		{name: "LockoutCountsIPAcrossNames", run: testIPLockout},
		{name: "SuccessResetsFailures", run: testSuccessResetsFailures},
		{name: "FailureWindowExpires", run: testFailureWindowExpires, timeTravel: true},
		{name: "StrikesExpireAfter24h", run: testStrikesExpire, timeTravel: true},
		{name: "ConcurrentRefreshOneWinner", run: testConcurrentRefresh},
	}
	runFlows(t, flows)
}

// runFlows runs each flow against every backend, on a fresh store and clock.
func runFlows(t *testing.T, flows []flow) {
	t.Helper()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, f := range flows {
				t.Run(f.name, func(t *testing.T) {
					if f.timeTravel && !b.clockDriven {
						t.Skip("moves the clock past store expiries; this backend expires keys by its own clock")
					}
					clock := newClock()
					st := b.open(t, clock.Now)
					f.run(t, newEnvWith(t, clock, st, f.opts...))
				})
			}
		})
	}
}

func testRefreshRotates(t *testing.T, e *env) {
	first := e.login("alice", alicePW)
	e.clock.Advance(time.Minute)
	second := e.tokens(e.refreshRaw(first.RefreshToken))
	if second.SessionID != first.SessionID || second.RefreshToken == first.RefreshToken || second.AccessToken == first.AccessToken {
		t.Fatalf("refresh did not rotate within the session: %+v", second)
	}
	sess, err := e.store.GetSession(context.Background(), first.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if !sess.LastUsed.Equal(e.clock.Now()) || sess.RefreshID != e.claims(second.RefreshToken, token.Refresh).ID {
		t.Errorf("session after refresh: %+v", sess)
	}
	if !e.sidecarAllows(second.AccessToken) || !e.sidecarAllows(first.AccessToken) {
		t.Error("a normal refresh revoked access tokens")
	}
	third := e.tokens(e.refreshRaw(second.RefreshToken))
	if !e.sidecarAllows(third.AccessToken) {
		t.Error("third access token refused")
	}
}

func testRefreshReuseRevokesSession(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	other := e.login("carol", carolPW)
	rotated := e.tokens(e.refreshRaw(login.RefreshToken))

	rec := e.refreshRaw(login.RefreshToken) // spent: theft
	if rec.Code != 401 || errorOf(t, rec) != CodeInvalidToken {
		t.Fatalf("reuse: status %d body %s", rec.Code, rec.Body)
	}
	for name, tok := range map[string]string{"login access": login.AccessToken, "rotated access": rotated.AccessToken} {
		if e.sidecarAllows(tok) {
			t.Errorf("%s token still allowed after reuse detection", name)
		}
	}
	if rec := e.refreshRaw(rotated.RefreshToken); rec.Code != 401 {
		t.Errorf("the latest refresh token of a revoked session: status %d", rec.Code)
	}
	if _, err := e.store.GetSession(context.Background(), login.SessionID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session still stored: %v", err)
	}
	if !e.sidecarAllows(other.AccessToken) {
		t.Error("another user's session was revoked")
	}
	if rec := e.do(req{method: "GET", path: "/auth/sessions", bearer: rotated.AccessToken}); rec.Code != 401 {
		t.Errorf("issuer accepted a revoked access token: %d", rec.Code)
	}
	if got := e.auditLines(EventRefreshReuse); len(got) != 1 || got[0]["session_id"] != login.SessionID {
		t.Errorf("reuse audit lines: %v", got)
	}
}

func testRefreshRefusesOtherTypes(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	c := e.claims(login.RefreshToken, token.Refresh)
	mfa, err := e.signer.Sign(token.Claims{Type: token.MFA, Issuer: testIssuer, Subject: c.Subject, Audience: testAudience,
		SessionID: c.SessionID, ID: c.ID, ExpiresAt: e.clock.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"access": login.AccessToken, "mfa": mfa} {
		if rec := e.refreshRaw(tok); rec.Code != 401 {
			t.Errorf("%s token accepted for refresh: %d", name, rec.Code)
		}
	}
	// The refusals spent nothing: the real refresh token still works.
	e.tokens(e.refreshRaw(login.RefreshToken))
}

func testRefreshRereadsRoles(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	h := testHashes(t)
	e.srv.SetUsers(directory(t, fmt.Sprintf(`{id: u-alice, username: alice, password_hash: %q, roles: [user, auditor]}`, h[alicePW])))
	next := e.tokens(e.refreshRaw(login.RefreshToken))
	if got := e.claims(next.AccessToken, token.Access).Roles; strings.Join(got, ",") != "user,auditor" {
		t.Errorf("roles after refresh %v", got)
	}
}

func testRefreshDisabledUser(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	h := testHashes(t)
	e.srv.SetUsers(directory(t, fmt.Sprintf(`{id: u-alice, username: alice, password_hash: %q, disabled: true}`, h[alicePW])))
	if rec := e.refreshRaw(login.RefreshToken); rec.Code != 401 {
		t.Fatalf("disabled user refreshed: %d", rec.Code)
	}
	if e.sidecarAllows(login.AccessToken) {
		t.Error("the disabled user's session was not revoked")
	}
	if got := e.auditLines(EventSessionRevoke); len(got) != 1 || got[0]["reason"] != "user_disabled" {
		t.Errorf("audit %v", got)
	}
}

func testRefreshRemovedUser(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	e.srv.SetUsers(directory(t, fmt.Sprintf(`{id: u-carol, username: carol, password_hash: %q}`, testHashes(t)[carolPW])))
	if rec := e.refreshRaw(login.RefreshToken); rec.Code != 401 {
		t.Fatalf("removed user refreshed: %d", rec.Code)
	}
	if e.sidecarAllows(login.AccessToken) {
		t.Error("the removed user's session was not revoked")
	}
	if rec := e.loginRaw("alice", alicePW); rec.Code != 401 {
		t.Errorf("removed user logged in: %d", rec.Code)
	}
}

func testAccessTokenExpires(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	list := req{method: "GET", path: "/auth/sessions", bearer: login.AccessToken}
	e.clock.Advance(15*time.Minute + 29*time.Second) // within exp + leeway
	if rec := e.do(list); rec.Code != 200 {
		t.Fatalf("within exp+leeway: %d", rec.Code)
	}
	e.clock.Advance(time.Second)
	if rec := e.do(list); rec.Code != 401 {
		t.Fatalf("expired access token accepted: %d", rec.Code)
	}
	// The session outlives its access tokens: refresh brings a fresh one.
	next := e.tokens(e.refreshRaw(login.RefreshToken))
	list.bearer = next.AccessToken
	if rec := e.do(list); rec.Code != 200 {
		t.Fatalf("fresh access token: %d", rec.Code)
	}
}

func testSessionAbsoluteLifetime(t *testing.T, e *env) {
	start := e.clock.Now()
	end := start.Add(24 * time.Hour) // RefreshTTL
	cur := e.login("alice", alicePW)
	for i := 0; ; i++ {
		e.clock.Advance(14 * time.Minute)
		if !e.clock.Now().Before(end) {
			break
		}
		cur = e.tokens(e.refreshRaw(cur.RefreshToken))
		rc := e.claims(cur.RefreshToken, token.Refresh)
		ac := e.claims(cur.AccessToken, token.Access)
		if rc.ExpiresAt.After(end) || ac.ExpiresAt.After(end) {
			t.Fatalf("refresh %d: tokens outlive the session: refresh exp %v, access exp %v, session end %v", i, rc.ExpiresAt, ac.ExpiresAt, end)
		}
		if want := time.Duration(cur.ExpiresIn) * time.Second; ac.ExpiresAt.Sub(e.clock.Now()) != want {
			t.Fatalf("expires_in %d does not match access exp", cur.ExpiresIn)
		}
	}
	if rec := e.refreshRaw(cur.RefreshToken); rec.Code != 401 {
		t.Fatalf("refresh past the absolute session end: %d", rec.Code)
	}
}

func testLogout(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	other := e.login("alice", alicePW)
	if rec := e.do(req{method: "POST", path: "/auth/logout", bearer: login.AccessToken}); rec.Code != 204 || rec.Body.Len() != 0 {
		t.Fatalf("logout: %d %s", rec.Code, rec.Body)
	}
	if e.sidecarAllows(login.AccessToken) {
		t.Error("access token still allowed after logout")
	}
	if rec := e.refreshRaw(login.RefreshToken); rec.Code != 401 {
		t.Errorf("refresh after logout: %d", rec.Code)
	}
	if rec := e.do(req{method: "POST", path: "/auth/logout", bearer: login.AccessToken}); rec.Code != 401 {
		t.Errorf("second logout with a revoked token: %d", rec.Code)
	}
	if !e.sidecarAllows(other.AccessToken) {
		t.Error("logout ended another session")
	}
}

func testLogoutAll(t *testing.T, e *env) {
	var all []Tokens
	for range 3 {
		all = append(all, e.login("alice", alicePW))
		e.clock.Advance(time.Second)
	}
	carol := e.login("carol", carolPW)
	e.clock.Advance(300 * time.Millisecond) // within a second: the cut-off truncation matters
	if rec := e.do(req{method: "POST", path: "/auth/logout/all", bearer: all[1].AccessToken}); rec.Code != 204 {
		t.Fatalf("logout all: %d %s", rec.Code, rec.Body)
	}
	for i, tr := range all {
		if e.sidecarAllows(tr.AccessToken) {
			t.Errorf("session %d: access token still allowed", i)
		}
		if rec := e.refreshRaw(tr.RefreshToken); rec.Code != 401 {
			t.Errorf("session %d: refresh after logout all: %d", i, rec.Code)
		}
	}
	if list, _ := e.store.ListSessions(context.Background(), "u-alice"); len(list) != 0 {
		t.Errorf("%d sessions left", len(list))
	}
	if !e.sidecarAllows(carol.AccessToken) {
		t.Error("another user's session was revoked")
	}
	// A login later in the same second is a new session and must work.
	e.clock.Advance(100 * time.Millisecond)
	fresh := e.login("alice", alicePW)
	if !e.sidecarAllows(fresh.AccessToken) {
		t.Error("a login after logout-all (same second) is revoked")
	}
	e.tokens(e.refreshRaw(fresh.RefreshToken))
}

func testSessionsListAndDelete(t *testing.T, e *env) {
	first := e.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", alicePW),
		header: map[string]string{"User-Agent": strings.Repeat("u", 300)}})
	a := e.tokens(first)
	e.clock.Advance(time.Minute)
	b := e.login("alice", alicePW)
	rec := e.do(req{method: "GET", path: "/auth/sessions", bearer: b.AccessToken})
	var got struct{ Sessions []map[string]any }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || len(got.Sessions) != 2 {
		t.Fatalf("list: %s (%v)", rec.Body, err)
	}
	s0, s1 := got.Sessions[0], got.Sessions[1]
	if s0["id"] != a.SessionID || s1["id"] != b.SessionID || s0["current"] != false || s1["current"] != true {
		t.Errorf("sessions %v", got.Sessions)
	}
	if ua, _ := s0["user_agent"].(string); len(ua) != maxUserAgentBytes {
		t.Errorf("user agent of %d bytes stored, want clipped to %d", len(ua), maxUserAgentBytes)
	}
	for _, k := range []string{"created", "last_used"} {
		if _, err := time.Parse(time.RFC3339, s0[k].(string)); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	if s0["client_ip"] != testIP || len(s0) != 6 {
		t.Errorf("session view %v", s0)
	}
	carol := e.login("carol", carolPW)
	del := func(id, bearer string) int {
		return e.do(req{method: "DELETE", path: "/auth/sessions/" + id, bearer: bearer}).Code
	}
	if code := del(carol.SessionID, b.AccessToken); code != 403 {
		t.Errorf("deleting someone else's session: %d", code)
	}
	if !e.sidecarAllows(carol.AccessToken) {
		t.Error("a 403 revoked the session anyway")
	}
	if code := del("no-such-session", b.AccessToken); code != 404 {
		t.Errorf("deleting an unknown session: %d", code)
	}
	if code := del(a.SessionID, b.AccessToken); code != 204 {
		t.Errorf("deleting own session: %d", code)
	}
	if e.sidecarAllows(a.AccessToken) || !e.sidecarAllows(b.AccessToken) {
		t.Error("the wrong session was revoked")
	}
	if code := del(a.SessionID, b.AccessToken); code != 404 {
		t.Errorf("deleting it again: %d", code)
	}
}

func testSessionCap(t *testing.T, e *env) {
	var all []Tokens
	for range 4 {
		all = append(all, e.login("alice", alicePW))
		e.clock.Advance(time.Second)
	}
	if e.sidecarAllows(all[0].AccessToken) {
		t.Error("the oldest session survived the cap")
	}
	for i, tr := range all[1:] {
		if !e.sidecarAllows(tr.AccessToken) {
			t.Errorf("session %d revoked", i+1)
		}
	}
	list, err := e.store.ListSessions(context.Background(), "u-alice")
	if err != nil || len(list) != 3 || list[0].ID != all[1].SessionID {
		t.Errorf("sessions after cap: %v (%v)", list, err)
	}
	if got := e.auditLines(EventSessionRevoke); len(got) != 1 || got[0]["reason"] != "session_cap" || got[0]["session_id"] != all[0].SessionID {
		t.Errorf("audit %v", got)
	}
}

// failLogins makes n failed logins for user from the default address.
func failLogins(t *testing.T, e *env, user string, n int) {
	t.Helper()
	for i := range n {
		if rec := e.loginRaw(user, "wrong"); rec.Code != 401 {
			t.Fatalf("failure %d: status %d", i+1, rec.Code)
		}
	}
}

// lockedFor asserts a login of alice with the right password is refused with Retry-After secs.
func lockedFor(t *testing.T, e *env, secs int) {
	t.Helper()
	rec := e.loginRaw("alice", alicePW)
	if rec.Code != 429 || errorOf(t, rec) != CodeRateLimited {
		t.Fatalf("status %d body %s, want 429 rate_limited", rec.Code, rec.Body)
	}
	if got, want := rec.Header().Get("Retry-After"), fmt.Sprint(secs); got != want {
		t.Fatalf("Retry-After %s, want %s", got, want)
	}
}

func testLockoutGrows(t *testing.T, e *env) {
	// 1m, 2m, 4m ... capped at 1h. Each lockout starts the failure count over.
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, m := range want {
		d := m * time.Minute
		failLogins(t, e, "Alice", 5) // any case: one account
		lockedFor(t, e, int(d/time.Second))
		e.clock.Advance(d - 1500*time.Millisecond)
		lockedFor(t, e, 2) // 1.5 s left rounds up
		e.clock.Advance(1500 * time.Millisecond)
		if i < len(want)-1 {
			continue
		}
		e.login("alice", alicePW)
	}
	lines := e.auditLines(EventLockout)
	if len(lines) != 2*len(want) { // the user and the address each time
		t.Fatalf("%d lockout lines, want %d", len(lines), 2*len(want))
	}
	if lines[len(lines)-2]["duration"] != "1h0m0s" || lines[len(lines)-2]["strike"] != float64(len(want)) {
		t.Errorf("last lockout %v", lines[len(lines)-2])
	}
}

func testIPLockout(t *testing.T, e *env) {
	for i := range 5 { // five names, one address
		if rec := e.loginRaw(fmt.Sprintf("probe%d", i), "x"); rec.Code != 401 {
			t.Fatalf("probe %d: %d", i, rec.Code)
		}
	}
	if rec := e.loginRaw("alice", alicePW); rec.Code != 429 {
		t.Fatalf("login from a locked address: %d", rec.Code)
	}
	if rec := e.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", alicePW), remote: "198.51.100.9:5"}); rec.Code != 200 {
		t.Fatalf("login from another address: %d", rec.Code)
	}
}

func testSuccessResetsFailures(t *testing.T, e *env) {
	failLogins(t, e, "alice", 4)
	e.login("alice", alicePW)
	// The account counter started over; give the address a fresh counter too by coming from elsewhere.
	for i := range 4 {
		if rec := e.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", "wrong"), remote: "198.51.100.9:5"}); rec.Code != 401 {
			t.Fatalf("failure %d after success: %d", i, rec.Code)
		}
	}
	if rec := e.do(req{method: "POST", path: "/auth/login", body: loginBody("alice", alicePW), remote: "198.51.100.9:5"}); rec.Code != 200 {
		t.Fatalf("4+4 failures around a success locked the account: %d", rec.Code)
	}
}

func testFailureWindowExpires(t *testing.T, e *env) {
	failLogins(t, e, "alice", 4)
	e.clock.Advance(10 * time.Minute)
	failLogins(t, e, "alice", 4)
	e.login("alice", alicePW)
}

func testStrikesExpire(t *testing.T, e *env) {
	failLogins(t, e, "alice", 5)
	lockedFor(t, e, 60)
	e.clock.Advance(time.Minute)
	failLogins(t, e, "alice", 5)
	lockedFor(t, e, 120)
	e.clock.Advance(24 * time.Hour)
	failLogins(t, e, "alice", 5)
	lockedFor(t, e, 60)
}

// testConcurrentRefresh: 20 goroutines present the same refresh token at once. Exactly one wins; the losers are
// indistinguishable from a thief replaying it, so they end the session (documented on handleRefresh).
func testConcurrentRefresh(t *testing.T, e *env) {
	login := e.login("alice", alicePW)
	const n = 20
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		codes = make([]int, n)
		won   Tokens
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			hr := e.refreshRaw(login.RefreshToken)
			codes[i] = hr.Code
			if hr.Code == 200 {
				_ = json.Unmarshal(hr.Body.Bytes(), &won)
			}
		}()
	}
	close(start)
	wg.Wait()
	ok, unauthorized := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 401:
			unauthorized++
		}
	}
	if ok != 1 || unauthorized != n-1 {
		t.Fatalf("codes %v: want one 200 and %d 401", codes, n-1)
	}
	if e.sidecarAllows(won.AccessToken) || e.sidecarAllows(login.AccessToken) {
		t.Error("session survived a refresh race")
	}
	if rec := e.refreshRaw(won.RefreshToken); rec.Code != 401 {
		t.Errorf("winner's refresh token after the race: %d", rec.Code)
	}
	if len(e.auditLines(EventRefreshReuse)) == 0 {
		t.Error("no reuse audit line")
	}
}
