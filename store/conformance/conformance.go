// Package conformance is the behaviour every store backend must show. Each backend's test calls Run with a
// constructor; the suite owns the clock it passes in.
//
// The clock starts at the real current time, so backends that expire entries by their own clock (Redis) agree with it
// as long as the suite does not move it. Checks that need time to pass (an entry expiring) advance the clock and
// therefore run only on backends wrapped with ClockDriven; everywhere else expiry is checked with expiries already in
// the past, which every backend must treat as "store nothing".
package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gatehouse/store"
)

// Backend is everything a store backend provides.
type Backend interface {
	store.Revocations
	store.Sessions
	store.Counters
	store.MFA
	store.Once
	store.Pinger
	Close() error
}

// ClockDriven marks b as expiring entries by the injected clock alone (memstore), so the suite may also advance the
// clock past expiries.
func ClockDriven(b Backend) Backend { return clockDriven{b} }

type clockDriven struct{ Backend }

// racers is how many goroutines contend in the race checks.
const racers = 20

// clock is a settable clock; Now is safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	b     Backend
	clock *clock
	ctx   context.Context
}

func (e *env) now() time.Time { return e.clock.Now() }

type subTest struct {
	name string
	run  func(t *testing.T, e *env)
	// timeTravel: advances the clock, so only for ClockDriven backends.
	timeTravel bool
}

// Run runs the suite; newBackend must return an empty backend whose clock is now. The suite closes it.
func Run(t *testing.T, newBackend func(t *testing.T, now func() time.Time) Backend) {
	tests := []subTest{
		{name: "RevokeTokenAndSession", run: testRevokeTokenAndSession},
		{name: "RevokeUserBeforeBoundary", run: testRevokeUserBeforeBoundary},
		{name: "RevokeUserBeforeKeepsLatest", run: testRevokeUserBeforeKeepsLatest},
		{name: "RevokeInvalid", run: testRevokeInvalid},
		{name: "RevocationExpires", run: testRevocationExpires, timeTravel: true},
		{name: "RevocationKeepsLatestUntil", run: testRevocationKeepsLatestUntil, timeTravel: true},
		{name: "SessionCRUD", run: testSessionCRUD},
		{name: "SessionInvalid", run: testSessionInvalid},
		{name: "ListSessions", run: testListSessions},
		{name: "SessionAlreadyExpired", run: testSessionAlreadyExpired},
		{name: "SessionExpires", run: testSessionExpires, timeTravel: true},
		{name: "RotateRefresh", run: testRotateRefresh},
		{name: "RotateRefreshRace", run: testRotateRefreshRace},
		{name: "TouchSession", run: testTouchSession},
		{name: "Counters", run: testCounters},
		{name: "CounterRace", run: testCounterRace},
		{name: "CounterWindow", run: testCounterWindow, timeTravel: true},
		{name: "Lock", run: testLock},
		{name: "LockExpires", run: testLockExpires, timeTravel: true},
		{name: "PendingMFA", run: testPendingMFA},
		{name: "PendingMFAExpires", run: testPendingMFAExpires, timeTravel: true},
		{name: "MFAEnrollment", run: testMFAEnrollment},
		{name: "TOTPStep", run: testTOTPStep},
		{name: "TOTPStepRace", run: testTOTPStepRace},
		{name: "TOTPStepExpires", run: testTOTPStepExpires, timeTravel: true},
		{name: "DeleteMFA", run: testDeleteMFA},
		{name: "BackupCodes", run: testBackupCodes},
		{name: "BackupCodeRace", run: testBackupCodeRace},
		{name: "Once", run: testOnce},
		{name: "OnceRace", run: testOnceRace},
		{name: "OnceExpires", run: testOnceExpires, timeTravel: true},
		{name: "Ping", run: testPing},
		{name: "CancelledContext", run: testCancelledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Millisecond-aligned so no backend's rounding is in play unless a test asks for it.
			clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
			b := newBackend(t, clk.Now)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			if _, ok := b.(clockDriven); tc.timeTravel && !ok {
				t.Skip("advances the clock; this backend expires entries by its own clock")
			}
			tc.run(t, &env{b: b, clock: clk, ctx: t.Context()})
		})
	}
}

// race starts n goroutines at once and waits for them.
func race(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// wins races racers calls of try (each told its index) and returns how many reported success; any error fails
// the test.
func wins(t *testing.T, what string, try func(i int) (bool, error)) int {
	t.Helper()
	oks := make([]bool, racers)
	errs := make([]error, racers)
	race(racers, func(i int) { oks[i], errs[i] = try(i) })
	must(t, what, errors.Join(errs...))
	n := 0
	for _, ok := range oks {
		if ok {
			n++
		}
	}
	return n
}

func mustRevoked(t *testing.T, e *env, want bool, jti, sid, userID string, issuedAt time.Time) {
	t.Helper()
	got, err := e.b.Revoked(e.ctx, jti, sid, userID, issuedAt)
	if err != nil {
		t.Fatalf("Revoked(%q, %q, %q, %v): %v", jti, sid, userID, issuedAt, err)
	}
	if got != want {
		t.Errorf("Revoked(jti=%q, sid=%q, user=%q, iat=%v) = %v, want %v", jti, sid, userID, issuedAt, got, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func mustBe(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

// mustFail wants an error that is not one of the store sentinels (invalid input or an unavailable backend).
func mustFail(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, s := range []error{store.ErrNotFound, store.ErrAlreadyExists, store.ErrRefreshReused} {
		if errors.Is(err, s) {
			t.Errorf("%s: got sentinel %v, want a plain error", what, err)
		}
	}
}

// --- Revocations ---

func testRevokeTokenAndSession(t *testing.T, e *env) {
	iat := e.now().Add(-time.Minute)
	hour := e.now().Add(time.Hour)
	past := e.now().Add(-time.Millisecond)

	mustRevoked(t, e, false, "j1", "s1", "u1", iat)
	must(t, "RevokeToken", e.b.RevokeToken(e.ctx, "j1", hour))
	must(t, "RevokeSession", e.b.RevokeSession(e.ctx, "s2", hour))
	// Already-expired revocations store nothing: the token they name cannot be used anyway.
	must(t, "RevokeToken past", e.b.RevokeToken(e.ctx, "j3", past))
	must(t, "RevokeSession past", e.b.RevokeSession(e.ctx, "s3", past))
	must(t, "RevokeToken now", e.b.RevokeToken(e.ctx, "j4", e.now()))

	for _, c := range []struct {
		jti, sid, user string
		want           bool
	}{
		{"j1", "s1", "u1", true},
		{"j1", "", "", true},
		{"j2", "s1", "u1", false},
		{"j2", "s2", "u1", true},
		{"", "s2", "", true},
		{"s2", "j1", "", false}, // namespaces are separate
		{"j3", "s3", "u1", false},
		{"j4", "", "", false},
		{"", "", "", false},
	} {
		mustRevoked(t, e, c.want, c.jti, c.sid, c.user, iat)
	}
	// Revoking twice is fine.
	must(t, "RevokeToken again", e.b.RevokeToken(e.ctx, "j1", hour))
	mustRevoked(t, e, true, "j1", "", "", iat)
}

// Tokens issued strictly before the cut-off are revoked; at the cut-off or later they are fine, so a user can log
// in again right after "log out everywhere" (with cut-off = the time of the call).
func testRevokeUserBeforeBoundary(t *testing.T, e *env) {
	cut := e.now().Add(-time.Minute).Truncate(time.Second)
	must(t, "RevokeUserBefore", e.b.RevokeUserBefore(e.ctx, "alice", cut, e.now().Add(time.Hour)))
	for _, c := range []struct {
		name string
		iat  time.Time
		want bool
	}{
		{"long before", cut.Add(-time.Hour), true},
		{"second before", cut.Add(-time.Second), true},
		{"millisecond before", cut.Add(-time.Millisecond), true},
		{"at cut-off", cut, false},
		{"millisecond after", cut.Add(time.Millisecond), false},
		{"second after", cut.Add(time.Second), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			mustRevoked(t, e, c.want, "j", "s", "alice", c.iat)
		})
	}
	mustRevoked(t, e, false, "j", "s", "bob", cut.Add(-time.Hour))
	mustRevoked(t, e, false, "alice", "alice", "", cut.Add(-time.Hour))

	// An already-expired cut-off stores nothing.
	must(t, "RevokeUserBefore past", e.b.RevokeUserBefore(e.ctx, "carol", cut, e.now().Add(-time.Second)))
	mustRevoked(t, e, false, "", "", "carol", cut.Add(-time.Hour))
}

func testRevokeUserBeforeKeepsLatest(t *testing.T, e *env) {
	t1 := e.now().Add(-2 * time.Hour).Truncate(time.Second)
	t2 := t1.Add(time.Hour)
	t3 := t2.Add(30 * time.Minute)
	until := e.now().Add(time.Hour)

	must(t, "revoke t2", e.b.RevokeUserBefore(e.ctx, "u", t2, until))
	must(t, "revoke t1", e.b.RevokeUserBefore(e.ctx, "u", t1, until))
	mustRevoked(t, e, true, "", "", "u", t1.Add(time.Minute)) // between t1 and t2: t2 must still hold
	mustRevoked(t, e, false, "", "", "u", t2)

	must(t, "revoke t3", e.b.RevokeUserBefore(e.ctx, "u", t3, until))
	mustRevoked(t, e, true, "", "", "u", t2.Add(time.Minute))
	mustRevoked(t, e, false, "", "", "u", t3)
}

func testRevokeInvalid(t *testing.T, e *env) {
	hour := e.now().Add(time.Hour)
	mustFail(t, "RevokeToken empty", e.b.RevokeToken(e.ctx, "", hour))
	mustFail(t, "RevokeSession empty", e.b.RevokeSession(e.ctx, "", hour))
	mustFail(t, "RevokeUserBefore empty", e.b.RevokeUserBefore(e.ctx, "", e.now(), hour))
	mustRevoked(t, e, false, "", "", "", time.Time{})
}

func testRevocationExpires(t *testing.T, e *env) {
	iat := e.now().Add(-time.Minute)
	until := e.now().Add(time.Minute)
	must(t, "RevokeToken", e.b.RevokeToken(e.ctx, "j", until))
	must(t, "RevokeSession", e.b.RevokeSession(e.ctx, "s", until))
	must(t, "RevokeUserBefore", e.b.RevokeUserBefore(e.ctx, "u", e.now(), until))

	e.clock.Advance(time.Minute - time.Millisecond)
	mustRevoked(t, e, true, "j", "", "", iat)
	mustRevoked(t, e, true, "", "s", "", iat)
	mustRevoked(t, e, true, "", "", "u", iat)

	e.clock.Advance(time.Millisecond) // at until: gone
	mustRevoked(t, e, false, "j", "", "", iat)
	mustRevoked(t, e, false, "", "s", "", iat)
	mustRevoked(t, e, false, "", "", "u", iat)
}

func testRevocationKeepsLatestUntil(t *testing.T, e *env) {
	iat := e.now().Add(-time.Minute)
	long, short := e.now().Add(time.Hour), e.now().Add(time.Minute)
	must(t, "RevokeToken long", e.b.RevokeToken(e.ctx, "j", long))
	must(t, "RevokeToken short", e.b.RevokeToken(e.ctx, "j", short))
	must(t, "RevokeSession long", e.b.RevokeSession(e.ctx, "s", long))
	must(t, "RevokeSession short", e.b.RevokeSession(e.ctx, "s", short))
	must(t, "RevokeUserBefore long", e.b.RevokeUserBefore(e.ctx, "u", e.now(), long))
	must(t, "RevokeUserBefore short", e.b.RevokeUserBefore(e.ctx, "u", e.now(), short))

	e.clock.Advance(2 * time.Minute)
	mustRevoked(t, e, true, "j", "", "", iat)
	mustRevoked(t, e, true, "", "s", "", iat)
	mustRevoked(t, e, true, "", "", "u", iat)

	e.clock.Advance(time.Hour)
	mustRevoked(t, e, false, "j", "s", "u", iat)
}

// --- Sessions ---

func newSession(e *env, id, user string, created time.Time) store.Session {
	return store.Session{
		ID:        id,
		UserID:    user,
		Username:  "name-" + user,
		ClientIP:  "192.0.2.7",
		UserAgent: "test/1.0 (x; y)",
		RefreshID: "r0-" + id,
		CreatedAt: created,
		LastUsed:  created,
		ExpiresAt: e.now().Add(time.Hour),
	}
}

func sameSession(a, b store.Session) bool {
	return a.ID == b.ID && a.UserID == b.UserID && a.Username == b.Username && a.ClientIP == b.ClientIP &&
		a.UserAgent == b.UserAgent && a.RefreshID == b.RefreshID && a.CreatedAt.Equal(b.CreatedAt) &&
		a.LastUsed.Equal(b.LastUsed) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func mustGetSession(t *testing.T, e *env, want store.Session) {
	t.Helper()
	got, err := e.b.GetSession(e.ctx, want.ID)
	if err != nil {
		t.Fatalf("GetSession(%q): %v", want.ID, err)
	}
	if !sameSession(got, want) {
		t.Errorf("GetSession(%q) = %+v, want %+v", want.ID, got, want)
	}
}

func mustList(t *testing.T, e *env, user string, wantIDs ...string) {
	t.Helper()
	got, err := e.b.ListSessions(e.ctx, user)
	if err != nil {
		t.Fatalf("ListSessions(%q): %v", user, err)
	}
	ids := make([]string, 0, len(got))
	for _, s := range got {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(ids, wantIDs) { // nil and empty are equal
		t.Errorf("ListSessions(%q) = %q, want %q", user, ids, wantIDs)
	}
}

func testSessionCRUD(t *testing.T, e *env) {
	s1 := newSession(e, "sess-1", "alice", e.now().Add(-time.Second).Add(123456*time.Nanosecond))
	s1.LastUsed = time.Time{} // the zero time survives too
	must(t, "CreateSession", e.b.CreateSession(e.ctx, s1))
	mustGetSession(t, e, s1)

	dup := s1
	dup.UserID = "mallory"
	mustBe(t, "CreateSession duplicate", e.b.CreateSession(e.ctx, dup), store.ErrAlreadyExists)
	mustGetSession(t, e, s1)
	mustList(t, e, "mallory")

	_, err := e.b.GetSession(e.ctx, "missing")
	mustBe(t, "GetSession missing", err, store.ErrNotFound)

	must(t, "DeleteSession", e.b.DeleteSession(e.ctx, s1.ID))
	_, err = e.b.GetSession(e.ctx, s1.ID)
	mustBe(t, "GetSession deleted", err, store.ErrNotFound)
	mustList(t, e, "alice")
	must(t, "DeleteSession again", e.b.DeleteSession(e.ctx, s1.ID))
	must(t, "DeleteSession never existed", e.b.DeleteSession(e.ctx, "never"))

	// The id is free again.
	must(t, "CreateSession after delete", e.b.CreateSession(e.ctx, s1))
	mustGetSession(t, e, s1)
}

func testSessionInvalid(t *testing.T, e *env) {
	good := newSession(e, "id", "user", e.now())
	for _, c := range []struct {
		name   string
		mutate func(*store.Session)
	}{
		{"empty id", func(s *store.Session) { s.ID = "" }},
		{"empty user", func(s *store.Session) { s.UserID = "" }},
		{"no expiry", func(s *store.Session) { s.ExpiresAt = time.Time{} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := good
			c.mutate(&s)
			mustFail(t, "CreateSession", e.b.CreateSession(e.ctx, s))
		})
	}
	mustList(t, e, "user")
	_, err := e.b.RotateRefresh(e.ctx, good.ID, "", "new", e.now())
	mustFail(t, "RotateRefresh empty old", err)
	must(t, "CreateSession", e.b.CreateSession(e.ctx, good))
	_, err = e.b.RotateRefresh(e.ctx, good.ID, good.RefreshID, "", e.now())
	mustFail(t, "RotateRefresh empty new", err)
	mustGetSession(t, e, good)
}

func testListSessions(t *testing.T, e *env) {
	t0 := e.now().Add(-time.Hour)
	a2 := newSession(e, "a2", "alice", t0.Add(2*time.Second))
	a1 := newSession(e, "a1", "alice", t0.Add(1*time.Second))
	a3 := newSession(e, "a3", "alice", t0.Add(3*time.Second))
	a0 := newSession(e, "z0", "alice", t0.Add(1*time.Second)) // same instant as a1: ties by id
	b1 := newSession(e, "b1", "bob", t0)
	for _, s := range []store.Session{a2, a1, a3, b1, a0} {
		must(t, "CreateSession "+s.ID, e.b.CreateSession(e.ctx, s))
	}
	mustList(t, e, "alice", "a1", "z0", "a2", "a3")
	mustList(t, e, "bob", "b1")
	mustList(t, e, "nobody")
	mustList(t, e, "")

	got, err := e.b.ListSessions(e.ctx, "bob")
	must(t, "ListSessions", err)
	if len(got) != 1 || !sameSession(got[0], b1) {
		t.Errorf("ListSessions(bob) = %+v, want [%+v]", got, b1)
	}

	must(t, "DeleteSession a2", e.b.DeleteSession(e.ctx, "a2"))
	mustList(t, e, "alice", "a1", "z0", "a3")
}

func testSessionAlreadyExpired(t *testing.T, e *env) {
	s := newSession(e, "old", "alice", e.now().Add(-time.Hour))
	s.ExpiresAt = e.now().Add(-time.Millisecond)
	must(t, "CreateSession expired", e.b.CreateSession(e.ctx, s))
	_, err := e.b.GetSession(e.ctx, s.ID)
	mustBe(t, "GetSession", err, store.ErrNotFound)
	mustList(t, e, "alice")
	_, err = e.b.RotateRefresh(e.ctx, s.ID, s.RefreshID, "r1", e.now())
	mustBe(t, "RotateRefresh", err, store.ErrNotFound)
	mustBe(t, "TouchSession", e.b.TouchSession(e.ctx, s.ID, e.now()), store.ErrNotFound)

	s.ExpiresAt = e.now().Add(time.Hour)
	must(t, "CreateSession live", e.b.CreateSession(e.ctx, s))
	mustGetSession(t, e, s)
}

func testSessionExpires(t *testing.T, e *env) {
	short := newSession(e, "short", "alice", e.now())
	short.ExpiresAt = e.now().Add(time.Minute)
	long := newSession(e, "long", "alice", e.now().Add(time.Second))
	must(t, "CreateSession short", e.b.CreateSession(e.ctx, short))
	must(t, "CreateSession long", e.b.CreateSession(e.ctx, long))
	mustList(t, e, "alice", "short", "long")

	e.clock.Advance(time.Minute)
	_, err := e.b.GetSession(e.ctx, short.ID)
	mustBe(t, "GetSession expired", err, store.ErrNotFound)
	mustList(t, e, "alice", "long")
	_, err = e.b.RotateRefresh(e.ctx, short.ID, short.RefreshID, "r1", e.now())
	mustBe(t, "RotateRefresh expired", err, store.ErrNotFound)
	mustBe(t, "TouchSession expired", e.b.TouchSession(e.ctx, short.ID, e.now()), store.ErrNotFound)

	short.ExpiresAt = e.now().Add(time.Minute)
	must(t, "CreateSession reuses expired id", e.b.CreateSession(e.ctx, short))
	mustGetSession(t, e, short)
}

func testRotateRefresh(t *testing.T, e *env) {
	s := newSession(e, "sess", "alice", e.now().Add(-time.Minute))
	must(t, "CreateSession", e.b.CreateSession(e.ctx, s))

	used := e.now().Add(1500 * time.Microsecond)
	got, err := e.b.RotateRefresh(e.ctx, s.ID, s.RefreshID, "r1", used)
	must(t, "RotateRefresh", err)
	want := s
	want.RefreshID, want.LastUsed = "r1", used
	if !sameSession(got, want) {
		t.Errorf("RotateRefresh = %+v, want %+v", got, want)
	}
	mustGetSession(t, e, want)

	// The spent id again: reuse, and nothing changes.
	_, err = e.b.RotateRefresh(e.ctx, s.ID, s.RefreshID, "r2", used.Add(time.Second))
	mustBe(t, "RotateRefresh spent id", err, store.ErrRefreshReused)
	_, err = e.b.RotateRefresh(e.ctx, s.ID, "forged", "r2", used.Add(time.Second))
	mustBe(t, "RotateRefresh unknown id", err, store.ErrRefreshReused)
	mustGetSession(t, e, want)

	// A retry of the winning call (same old and new ids, e.g. after a lost reply) gets the same answer.
	got, err = e.b.RotateRefresh(e.ctx, s.ID, s.RefreshID, "r1", used)
	must(t, "RotateRefresh retry", err)
	if !sameSession(got, want) {
		t.Errorf("RotateRefresh retry = %+v, want %+v", got, want)
	}

	// The chain goes on from the current id; after that the retry is reuse.
	want.RefreshID, want.LastUsed = "r2", used.Add(time.Minute)
	got, err = e.b.RotateRefresh(e.ctx, s.ID, "r1", "r2", want.LastUsed)
	must(t, "RotateRefresh r1->r2", err)
	if !sameSession(got, want) {
		t.Errorf("RotateRefresh r1->r2 = %+v, want %+v", got, want)
	}
	_, err = e.b.RotateRefresh(e.ctx, s.ID, s.RefreshID, "r1", used)
	mustBe(t, "RotateRefresh stale retry", err, store.ErrRefreshReused)

	_, err = e.b.RotateRefresh(e.ctx, "missing", "r0", "r1", used)
	mustBe(t, "RotateRefresh missing", err, store.ErrNotFound)
	must(t, "DeleteSession", e.b.DeleteSession(e.ctx, s.ID))
	_, err = e.b.RotateRefresh(e.ctx, s.ID, "r2", "r3", used)
	mustBe(t, "RotateRefresh deleted", err, store.ErrNotFound)
}

func testRotateRefreshRace(t *testing.T, e *env) {
	s := newSession(e, "sess", "alice", e.now())
	must(t, "CreateSession", e.b.CreateSession(e.ctx, s))
	errs := make([]error, racers)
	race(racers, func(i int) {
		_, errs[i] = e.b.RotateRefresh(e.ctx, s.ID, s.RefreshID, fmt.Sprintf("new-%d", i), e.now())
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("both %d and %d rotated the same refresh id", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrRefreshReused):
			t.Errorf("racer %d: %v, want ErrRefreshReused", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no racer rotated")
	}
	got, err := e.b.GetSession(e.ctx, s.ID)
	must(t, "GetSession", err)
	if want := fmt.Sprintf("new-%d", winner); got.RefreshID != want {
		t.Errorf("RefreshID = %q, want the winner's %q", got.RefreshID, want)
	}
}

func testTouchSession(t *testing.T, e *env) {
	s := newSession(e, "sess", "alice", e.now().Add(-time.Minute))
	must(t, "CreateSession", e.b.CreateSession(e.ctx, s))
	s.LastUsed = e.now().Add(42 * time.Microsecond)
	must(t, "TouchSession", e.b.TouchSession(e.ctx, s.ID, s.LastUsed))
	mustGetSession(t, e, s)
	mustBe(t, "TouchSession missing", e.b.TouchSession(e.ctx, "missing", e.now()), store.ErrNotFound)
	must(t, "DeleteSession", e.b.DeleteSession(e.ctx, s.ID))
	mustBe(t, "TouchSession deleted", e.b.TouchSession(e.ctx, s.ID, e.now()), store.ErrNotFound)
	mustList(t, e, "alice")
}

// --- Counters ---

func mustCount(t *testing.T, e *env, key string, want int64) {
	t.Helper()
	got, err := e.b.Count(e.ctx, key)
	if err != nil {
		t.Fatalf("Count(%q): %v", key, err)
	}
	if got != want {
		t.Errorf("Count(%q) = %d, want %d", key, got, want)
	}
}

func mustHit(t *testing.T, e *env, key string, window time.Duration, want int64) {
	t.Helper()
	got, err := e.b.Hit(e.ctx, key, window)
	if err != nil {
		t.Fatalf("Hit(%q): %v", key, err)
	}
	if got != want {
		t.Errorf("Hit(%q) = %d, want %d", key, got, want)
	}
}

func testCounters(t *testing.T, e *env) {
	const k = "user:alice"
	mustCount(t, e, k, 0)
	for want := int64(1); want <= 3; want++ {
		mustHit(t, e, k, time.Hour, want)
	}
	mustCount(t, e, k, 3)
	mustCount(t, e, "user:bob", 0)
	must(t, "Clear", e.b.Clear(e.ctx, k))
	mustCount(t, e, k, 0)
	mustHit(t, e, k, time.Hour, 1)
	must(t, "Clear missing", e.b.Clear(e.ctx, "nothing"))

	_, err := e.b.Hit(e.ctx, k, 0)
	mustFail(t, "Hit zero window", err)
	_, err = e.b.Hit(e.ctx, k, -time.Second)
	mustFail(t, "Hit negative window", err)
	_, err = e.b.Hit(e.ctx, "", time.Hour)
	mustFail(t, "Hit empty key", err)
	mustCount(t, e, k, 1)
}

func testCounterRace(t *testing.T, e *env) {
	got := make([]int64, racers)
	errs := make([]error, racers)
	race(racers, func(i int) { got[i], errs[i] = e.b.Hit(e.ctx, "ip:192.0.2.1", time.Hour) })
	must(t, "Hit", errors.Join(errs...))
	slices.Sort(got)
	for i, n := range got {
		if n != int64(i+1) {
			t.Fatalf("concurrent Hit results %v, want 1..%d each once", got, racers)
		}
	}
	mustCount(t, e, "ip:192.0.2.1", racers)
}

func testCounterWindow(t *testing.T, e *env) {
	const k = "user:alice"
	mustHit(t, e, k, time.Minute, 1)
	e.clock.Advance(30 * time.Second)
	mustHit(t, e, k, time.Minute, 2) // does not extend the window
	e.clock.Advance(30*time.Second - time.Millisecond)
	mustCount(t, e, k, 2)
	e.clock.Advance(time.Millisecond)
	mustCount(t, e, k, 0)
	mustHit(t, e, k, time.Minute, 1)
	e.clock.Advance(59 * time.Second)
	mustCount(t, e, k, 1)
	// A hit after the window (with no read in between) starts a new one.
	e.clock.Advance(time.Second)
	mustHit(t, e, k, time.Minute, 1)
}

func mustLockedUntil(t *testing.T, e *env, key string, want time.Time) {
	t.Helper()
	got, err := e.b.LockedUntil(e.ctx, key)
	if err != nil {
		t.Fatalf("LockedUntil(%q): %v", key, err)
	}
	if !got.Equal(want) || got.IsZero() != want.IsZero() {
		t.Errorf("LockedUntil(%q) = %v, want %v", key, got, want)
	}
}

func testLock(t *testing.T, e *env) {
	const k = "user:alice"
	mustLockedUntil(t, e, k, time.Time{})
	until := e.now().Add(5*time.Minute + 1234567*time.Nanosecond)
	must(t, "Lock", e.b.Lock(e.ctx, k, until))
	mustLockedUntil(t, e, k, until)
	mustLockedUntil(t, e, "user:bob", time.Time{})

	// Counters and locks are separate: clearing the counter keeps the lock, hits do not touch it.
	mustHit(t, e, k, time.Hour, 1)
	must(t, "Clear", e.b.Clear(e.ctx, k))
	mustLockedUntil(t, e, k, until)
	mustCount(t, e, k, 0)

	later := e.now().Add(10 * time.Minute)
	must(t, "Lock later", e.b.Lock(e.ctx, k, later))
	mustLockedUntil(t, e, k, later)
	sooner := e.now().Add(time.Minute)
	must(t, "Lock sooner", e.b.Lock(e.ctx, k, sooner))
	mustLockedUntil(t, e, k, sooner)

	// An until that is not in the future unlocks.
	must(t, "Lock past", e.b.Lock(e.ctx, k, e.now()))
	mustLockedUntil(t, e, k, time.Time{})
	must(t, "Lock past again", e.b.Lock(e.ctx, k, e.now().Add(-time.Hour)))
	mustLockedUntil(t, e, k, time.Time{})
	mustFail(t, "Lock empty key", e.b.Lock(e.ctx, "", later))
}

func testLockExpires(t *testing.T, e *env) {
	until := e.now().Add(time.Minute)
	must(t, "Lock", e.b.Lock(e.ctx, "k", until))
	e.clock.Advance(time.Minute - time.Millisecond)
	mustLockedUntil(t, e, "k", until)
	e.clock.Advance(time.Millisecond)
	mustLockedUntil(t, e, "k", time.Time{})
}

// --- MFA ---

func mustPending(t *testing.T, e *env, user string, want []byte) {
	t.Helper()
	got, err := e.b.GetPendingMFA(e.ctx, user)
	if want == nil {
		mustBe(t, "GetPendingMFA "+user, err, store.ErrNotFound)
		return
	}
	if err != nil {
		t.Fatalf("GetPendingMFA(%q): %v", user, err)
	}
	if string(got) != string(want) {
		t.Errorf("GetPendingMFA(%q) = %x, want %x", user, got, want)
	}
}

func testPendingMFA(t *testing.T, e *env) {
	hour := e.now().Add(time.Hour)
	mustPending(t, e, "alice", nil)
	s1 := []byte{0, 1, 2, 0xff, 'a'}
	must(t, "PutPendingMFA", e.b.PutPendingMFA(e.ctx, "alice", s1, hour))
	mustPending(t, e, "alice", s1)
	mustPending(t, e, "bob", nil)

	// Neither the caller's slice nor a returned one aliases what is stored.
	s1[0] = 9
	got, err := e.b.GetPendingMFA(e.ctx, "alice")
	must(t, "GetPendingMFA", err)
	got[1] = 9
	mustPending(t, e, "alice", []byte{0, 1, 2, 0xff, 'a'})

	s2 := []byte("second")
	must(t, "PutPendingMFA replace", e.b.PutPendingMFA(e.ctx, "alice", s2, hour))
	mustPending(t, e, "alice", s2)

	must(t, "DeletePendingMFA", e.b.DeletePendingMFA(e.ctx, "alice"))
	mustPending(t, e, "alice", nil)
	must(t, "DeletePendingMFA again", e.b.DeletePendingMFA(e.ctx, "alice"))

	// A past until stores nothing and drops what was there.
	must(t, "PutPendingMFA", e.b.PutPendingMFA(e.ctx, "alice", s2, hour))
	must(t, "PutPendingMFA past", e.b.PutPendingMFA(e.ctx, "alice", s1, e.now().Add(-time.Second)))
	mustPending(t, e, "alice", nil)
	mustFail(t, "PutPendingMFA empty user", e.b.PutPendingMFA(e.ctx, "", s1, hour))
	mustFail(t, "PutPendingMFA empty secret", e.b.PutPendingMFA(e.ctx, "bob", nil, hour))
	mustPending(t, e, "bob", nil)
}

func testPendingMFAExpires(t *testing.T, e *env) {
	must(t, "PutPendingMFA", e.b.PutPendingMFA(e.ctx, "alice", []byte("s"), e.now().Add(time.Minute)))
	e.clock.Advance(time.Minute - time.Millisecond)
	mustPending(t, e, "alice", []byte("s"))
	e.clock.Advance(time.Millisecond)
	mustPending(t, e, "alice", nil)
}

func mustMFA(t *testing.T, e *env, user string, want store.MFAEnrollment) {
	t.Helper()
	got, err := e.b.GetMFA(e.ctx, user)
	if err != nil {
		t.Fatalf("GetMFA(%q): %v", user, err)
	}
	if string(got.Secret) != string(want.Secret) || !slices.Equal(got.BackupCodes, want.BackupCodes) ||
		!got.EnabledAt.Equal(want.EnabledAt) {
		t.Errorf("GetMFA(%q) = %+v, want %+v", user, got, want)
	}
}

func testMFAEnrollment(t *testing.T, e *env) {
	_, err := e.b.GetMFA(e.ctx, "alice")
	mustBe(t, "GetMFA missing", err, store.ErrNotFound)

	enabled := e.now().Add(-time.Minute).Add(987654321 * time.Nanosecond)
	in := store.MFAEnrollment{Secret: []byte{0, 0xfe, 'x'}, BackupCodes: []string{"h-c", "h-a", "h-b"}, EnabledAt: enabled}
	must(t, "PutMFA", e.b.PutMFA(e.ctx, "alice", in))
	in.Secret[0] = 7 // not aliased
	mustMFA(t, e, "alice", store.MFAEnrollment{
		Secret: []byte{0, 0xfe, 'x'}, BackupCodes: []string{"h-a", "h-b", "h-c"}, EnabledAt: enabled,
	})
	_, err = e.b.GetMFA(e.ctx, "bob")
	mustBe(t, "GetMFA other user", err, store.ErrNotFound)

	// PutMFA replaces everything, backup codes included.
	re := store.MFAEnrollment{Secret: []byte("s2"), BackupCodes: []string{"h-d"}, EnabledAt: e.now()}
	must(t, "PutMFA replace", e.b.PutMFA(e.ctx, "alice", re))
	mustMFA(t, e, "alice", re)
	if ok, err := e.b.UseBackupCode(e.ctx, "alice", "h-a"); err != nil || ok {
		t.Errorf("UseBackupCode(replaced code) = %v, %v; want false", ok, err)
	}

	none := store.MFAEnrollment{Secret: []byte("s3"), EnabledAt: e.now()}
	must(t, "PutMFA no codes", e.b.PutMFA(e.ctx, "alice", none))
	mustMFA(t, e, "alice", none)
	mustFail(t, "PutMFA empty user", e.b.PutMFA(e.ctx, "", none))
	mustFail(t, "PutMFA empty secret", e.b.PutMFA(e.ctx, "alice", store.MFAEnrollment{BackupCodes: []string{"h"}}))
	mustMFA(t, e, "alice", none)
}

func mustStep(t *testing.T, e *env, user string, step int64, until time.Time, want bool) {
	t.Helper()
	got, err := e.b.UseTOTPStep(e.ctx, user, step, until)
	if err != nil {
		t.Fatalf("UseTOTPStep(%q, %d): %v", user, step, err)
	}
	if got != want {
		t.Errorf("UseTOTPStep(%q, %d) = %v, want %v", user, step, got, want)
	}
}

func testTOTPStep(t *testing.T, e *env) {
	until := e.now().Add(2 * time.Minute)
	for _, c := range []struct {
		user string
		step int64
		want bool
	}{
		{"alice", 100, true},
		{"alice", 100, false}, // replay
		{"alice", 99, false},  // older
		{"alice", 101, true},
		{"alice", 105, true},
		{"alice", 104, false},
		{"bob", 100, true}, // per user
		{"bob", 0, false},
	} {
		mustStep(t, e, c.user, c.step, until, c.want)
	}
	// A step that could not be remembered is refused.
	mustStep(t, e, "carol", 100, e.now(), false)
	mustStep(t, e, "carol", 100, e.now().Add(-time.Second), false)
	mustStep(t, e, "carol", 100, until, true)

	_, err := e.b.UseTOTPStep(e.ctx, "alice", -1, until)
	mustFail(t, "UseTOTPStep negative", err)
	_, err = e.b.UseTOTPStep(e.ctx, "", 200, until)
	mustFail(t, "UseTOTPStep empty user", err)
}

func testTOTPStepRace(t *testing.T, e *env) {
	until := e.now().Add(2 * time.Minute)
	count := func(step func(i int) int64) int {
		return wins(t, "UseTOTPStep", func(i int) (bool, error) { return e.b.UseTOTPStep(e.ctx, "alice", step(i), until) })
	}
	if n := count(func(int) int64 { return 1000 }); n != 1 {
		t.Errorf("%d racers used the same step, want 1", n)
	}
	// Different steps at once: some win, and afterwards nothing up to the highest is accepted.
	if n := count(func(i int) int64 { return 2000 + int64(i) }); n < 1 {
		t.Errorf("no racer used a fresh step")
	}
	mustStep(t, e, "alice", 2000+racers-1, until, false)
	mustStep(t, e, "alice", 2000+racers, until, true)
}

func testTOTPStepExpires(t *testing.T, e *env) {
	mustStep(t, e, "alice", 100, e.now().Add(time.Minute), true)
	e.clock.Advance(time.Minute - time.Millisecond)
	mustStep(t, e, "alice", 100, e.now().Add(time.Minute), false)
	e.clock.Advance(time.Millisecond)
	// The record is gone once its until passed: the caller promised the step could no longer be accepted by then.
	mustStep(t, e, "alice", 100, e.now().Add(time.Minute), true)

	// A later step with a shorter until does not shorten what is remembered.
	mustStep(t, e, "bob", 200, e.now().Add(10*time.Minute), true)
	mustStep(t, e, "bob", 201, e.now().Add(time.Minute), true)
	e.clock.Advance(2 * time.Minute)
	mustStep(t, e, "bob", 201, e.now().Add(time.Minute), false)
}

func testDeleteMFA(t *testing.T, e *env) {
	until := e.now().Add(time.Hour)
	must(t, "PutMFA", e.b.PutMFA(e.ctx, "alice", store.MFAEnrollment{Secret: []byte("s"), BackupCodes: []string{"h"}, EnabledAt: e.now()}))
	must(t, "PutPendingMFA", e.b.PutPendingMFA(e.ctx, "alice", []byte("p"), until))
	mustStep(t, e, "alice", 100, until, true)
	must(t, "PutMFA bob", e.b.PutMFA(e.ctx, "bob", store.MFAEnrollment{Secret: []byte("b"), EnabledAt: e.now()}))
	mustStep(t, e, "bob", 100, until, true)

	must(t, "DeleteMFA", e.b.DeleteMFA(e.ctx, "alice"))
	_, err := e.b.GetMFA(e.ctx, "alice")
	mustBe(t, "GetMFA deleted", err, store.ErrNotFound)
	if ok, err := e.b.UseBackupCode(e.ctx, "alice", "h"); err != nil || ok {
		t.Errorf("UseBackupCode after DeleteMFA = %v, %v; want false", ok, err)
	}
	mustStep(t, e, "alice", 100, until, true) // step forgotten
	mustPending(t, e, "alice", []byte("p"))   // pending secret is not part of the enrollment
	must(t, "DeleteMFA again", e.b.DeleteMFA(e.ctx, "alice"))

	mustMFA(t, e, "bob", store.MFAEnrollment{Secret: []byte("b"), EnabledAt: e.now()})
	mustStep(t, e, "bob", 100, until, false)
}

func mustUseCode(t *testing.T, e *env, user, code string, want bool) {
	t.Helper()
	got, err := e.b.UseBackupCode(e.ctx, user, code)
	if err != nil {
		t.Fatalf("UseBackupCode(%q, %q): %v", user, code, err)
	}
	if got != want {
		t.Errorf("UseBackupCode(%q, %q) = %v, want %v", user, code, got, want)
	}
}

func testBackupCodes(t *testing.T, e *env) {
	enabled := e.now()
	must(t, "PutMFA", e.b.PutMFA(e.ctx, "alice", store.MFAEnrollment{Secret: []byte("s"), BackupCodes: []string{"a", "b", "c"}, EnabledAt: enabled}))
	mustUseCode(t, e, "alice", "b", true)
	mustUseCode(t, e, "alice", "b", false)
	mustUseCode(t, e, "alice", "z", false)
	mustUseCode(t, e, "alice", "", false)
	mustUseCode(t, e, "bob", "a", false)
	mustMFA(t, e, "alice", store.MFAEnrollment{Secret: []byte("s"), BackupCodes: []string{"a", "c"}, EnabledAt: enabled})
	mustUseCode(t, e, "alice", "a", true)
	mustUseCode(t, e, "alice", "c", true)
	mustMFA(t, e, "alice", store.MFAEnrollment{Secret: []byte("s"), EnabledAt: enabled})
}

func testBackupCodeRace(t *testing.T, e *env) {
	must(t, "PutMFA", e.b.PutMFA(e.ctx, "alice", store.MFAEnrollment{Secret: []byte("s"), BackupCodes: []string{"a", "b"}, EnabledAt: e.now()}))
	n := wins(t, "UseBackupCode", func(int) (bool, error) { return e.b.UseBackupCode(e.ctx, "alice", "a") })
	if n != 1 {
		t.Errorf("%d racers used the same backup code, want 1", n)
	}
	mustUseCode(t, e, "alice", "b", true)
}

// --- Once ---

func mustClaim(t *testing.T, e *env, key string, until time.Time, want bool) {
	t.Helper()
	got, err := e.b.Claim(e.ctx, key, until)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	if got != want {
		t.Errorf("Claim(%q) = %v, want %v", key, got, want)
	}
}

func testOnce(t *testing.T, e *env) {
	hour := e.now().Add(time.Hour)
	mustClaim(t, e, "mfa:jti-1", hour, true)
	mustClaim(t, e, "mfa:jti-1", hour, false)
	mustClaim(t, e, "mfa:jti-2", hour, true)
	// A claim that would already be over cannot be won, and leaves nothing behind.
	mustClaim(t, e, "mfa:jti-3", e.now(), false)
	mustClaim(t, e, "mfa:jti-3", e.now().Add(-time.Second), false)
	mustClaim(t, e, "mfa:jti-3", hour, true)
	_, err := e.b.Claim(e.ctx, "", hour)
	mustFail(t, "Claim empty key", err)
}

func testOnceRace(t *testing.T, e *env) {
	n := wins(t, "Claim", func(int) (bool, error) { return e.b.Claim(e.ctx, "k", e.now().Add(time.Hour)) })
	if n != 1 {
		t.Errorf("%d racers claimed the same key, want 1", n)
	}
}

func testOnceExpires(t *testing.T, e *env) {
	mustClaim(t, e, "k", e.now().Add(time.Minute), true)
	e.clock.Advance(time.Minute - time.Millisecond)
	mustClaim(t, e, "k", e.now().Add(time.Minute), false)
	e.clock.Advance(time.Millisecond)
	mustClaim(t, e, "k", e.now().Add(time.Minute), true)
}

// --- Backend ---

func testPing(t *testing.T, e *env) {
	must(t, "Ping", e.b.Ping(e.ctx))
}

// A cancelled context is an error from every method, never an answer: callers turn errors into denials, and an
// answer computed after the caller gave up (or a default "not revoked") would be wrong in the fail-open direction.
func testCancelledContext(t *testing.T, e *env) {
	hour := e.now().Add(time.Hour)
	s := newSession(e, "sess", "alice", e.now())
	must(t, "CreateSession", e.b.CreateSession(e.ctx, s))
	must(t, "PutMFA", e.b.PutMFA(e.ctx, "alice", store.MFAEnrollment{Secret: []byte("s"), BackupCodes: []string{"a"}}))
	must(t, "PutPendingMFA", e.b.PutPendingMFA(e.ctx, "alice", []byte("p"), hour))
	must(t, "RevokeToken", e.b.RevokeToken(e.ctx, "j", hour))

	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"RevokeToken", func() error { return e.b.RevokeToken(ctx, "j2", hour) }},
		{"RevokeSession", func() error { return e.b.RevokeSession(ctx, "s2", hour) }},
		{"RevokeUserBefore", func() error { return e.b.RevokeUserBefore(ctx, "alice", e.now(), hour) }},
		{"Revoked", func() error { _, err := e.b.Revoked(ctx, "j", "sess", "alice", e.now()); return err }},
		{"Revoked no ids", func() error { _, err := e.b.Revoked(ctx, "", "", "", e.now()); return err }},
		{"CreateSession", func() error { return e.b.CreateSession(ctx, newSession(e, "other", "alice", e.now())) }},
		{"GetSession", func() error { _, err := e.b.GetSession(ctx, s.ID); return err }},
		{"ListSessions", func() error { _, err := e.b.ListSessions(ctx, "alice"); return err }},
		{"RotateRefresh", func() error { _, err := e.b.RotateRefresh(ctx, s.ID, s.RefreshID, "r1", e.now()); return err }},
		{"TouchSession", func() error { return e.b.TouchSession(ctx, s.ID, e.now()) }},
		{"DeleteSession", func() error { return e.b.DeleteSession(ctx, s.ID) }},
		{"Hit", func() error { _, err := e.b.Hit(ctx, "k", time.Hour); return err }},
		{"Count", func() error { _, err := e.b.Count(ctx, "k"); return err }},
		{"Clear", func() error { return e.b.Clear(ctx, "k") }},
		{"Lock", func() error { return e.b.Lock(ctx, "k", hour) }},
		{"LockedUntil", func() error { _, err := e.b.LockedUntil(ctx, "k"); return err }},
		{"PutPendingMFA", func() error { return e.b.PutPendingMFA(ctx, "alice", []byte("x"), hour) }},
		{"GetPendingMFA", func() error { _, err := e.b.GetPendingMFA(ctx, "alice"); return err }},
		{"DeletePendingMFA", func() error { return e.b.DeletePendingMFA(ctx, "alice") }},
		{"PutMFA", func() error { return e.b.PutMFA(ctx, "alice", store.MFAEnrollment{Secret: []byte("x")}) }},
		{"GetMFA", func() error { _, err := e.b.GetMFA(ctx, "alice"); return err }},
		{"DeleteMFA", func() error { return e.b.DeleteMFA(ctx, "alice") }},
		{"UseTOTPStep", func() error { _, err := e.b.UseTOTPStep(ctx, "alice", 5, hour); return err }},
		{"UseBackupCode", func() error { _, err := e.b.UseBackupCode(ctx, "alice", "a"); return err }},
		{"Claim", func() error { _, err := e.b.Claim(ctx, "k", hour); return err }},
		{"Ping", func() error { return e.b.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: %v, want context.Canceled", c.name, err)
			}
		})
	}

	// Nothing happened.
	mustGetSession(t, e, s)
	mustPending(t, e, "alice", []byte("p"))
	mustUseCode(t, e, "alice", "a", true)
	mustStep(t, e, "alice", 5, hour, true)
	mustClaim(t, e, "k", hour, true)
	mustCount(t, e, "k", 0)
	mustLockedUntil(t, e, "k", time.Time{})
	mustRevoked(t, e, false, "j2", "s2", "", e.now())
}
