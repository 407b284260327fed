// Package memstore is the in-memory store backend: a single process, no persistence (dev mode and tests).
//
// Entries expire by the injected clock: reads ignore and drop expired entries, and writes trigger a sweep once the
// number of writes since the last sweep reaches the number of entries then alive (at least sweepMin), so memory stays
// proportional to live entries at amortised O(1) cost and no goroutine is needed.
package memstore

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"gatehouse/store"
)

var (
	_ store.Revocations = (*Store)(nil)
	_ store.Sessions    = (*Store)(nil)
	_ store.Counters    = (*Store)(nil)
	_ store.MFA         = (*Store)(nil)
	_ store.Once        = (*Store)(nil)
	_ store.Pinger      = (*Store)(nil)
)

const sweepMin = 256

type userCutoff struct{ before, until time.Time }

type counter struct {
	n     int64
	until time.Time
}

type secret struct {
	b     []byte
	until time.Time
}

type stepRecord struct {
	step  int64
	until time.Time
}

type enrollment struct {
	secret    []byte
	backup    map[string]struct{}
	enabledAt time.Time
}

// Store is an in-memory backend, safe for concurrent use.
type Store struct {
	now func() time.Time

	mu           sync.Mutex
	jtis         map[string]time.Time // jti -> until
	sids         map[string]time.Time // sid -> until
	users        map[string]userCutoff
	sessions     map[string]store.Session
	userSessions map[string]map[string]struct{} // userID -> session ids
	counters     map[string]counter
	locks        map[string]time.Time
	pending      map[string]secret
	mfa          map[string]enrollment
	steps        map[string]stepRecord
	once         map[string]time.Time
	writes       int // since the last sweep
	sweepAt      int // writes that trigger the next sweep
}

// New returns an empty store whose entries expire by now.
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:          now,
		jtis:         map[string]time.Time{},
		sids:         map[string]time.Time{},
		users:        map[string]userCutoff{},
		sessions:     map[string]store.Session{},
		userSessions: map[string]map[string]struct{}{},
		counters:     map[string]counter{},
		locks:        map[string]time.Time{},
		pending:      map[string]secret{},
		mfa:          map[string]enrollment{},
		steps:        map[string]stepRecord{},
		once:         map[string]time.Time{},
		sweepAt:      sweepMin,
	}
}

// Close releases nothing; it exists so memstore and redisstore are interchangeable.
func (s *Store) Close() error { return nil }

// Local reports that Revoked answers from memory without I/O (the decider then skips its per-request deadline).
func (s *Store) Local() bool { return true }

// Ping always answers (unless ctx is done).
func (s *Store) Ping(ctx context.Context) error { return ctx.Err() }

// live reports whether an entry expiring at until is alive at now.
func live(now, until time.Time) bool { return now.Before(until) }

// wrote counts a write and sweeps when due. Called with s.mu held.
func (s *Store) wrote(now time.Time) {
	s.writes++
	if s.writes >= s.sweepAt {
		s.sweepLocked(now)
	}
}

// Sweep drops every expired entry now instead of waiting for enough writes.
func (s *Store) Sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(s.now())
}

// Len returns the number of entries held, expired or not (for tests and metrics).
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lenLocked()
}

func (s *Store) lenLocked() int {
	n := len(s.jtis) + len(s.sids) + len(s.users) + len(s.sessions) + len(s.userSessions) + len(s.counters) +
		len(s.locks) + len(s.pending) + len(s.mfa) + len(s.steps) + len(s.once)
	return n
}

func (s *Store) sweepLocked(now time.Time) {
	untilIs := func(t time.Time) time.Time { return t }
	sweep(s.jtis, now, untilIs)
	sweep(s.sids, now, untilIs)
	sweep(s.locks, now, untilIs)
	sweep(s.once, now, untilIs)
	sweep(s.users, now, func(c userCutoff) time.Time { return c.until })
	sweep(s.counters, now, func(c counter) time.Time { return c.until })
	sweep(s.pending, now, func(p secret) time.Time { return p.until })
	sweep(s.steps, now, func(r stepRecord) time.Time { return r.until })
	for id, sess := range s.sessions {
		if !live(now, sess.ExpiresAt) {
			s.deleteSessionLocked(id, sess.UserID) // also drops it from the user's index
		}
	}
	s.writes = 0
	s.sweepAt = max(sweepMin, s.lenLocked())
}

// sweep deletes the entries of m whose expiry (read by until) has passed.
func sweep[V any](m map[string]V, now time.Time, until func(V) time.Time) {
	for k, v := range m {
		if !live(now, until(v)) {
			delete(m, k)
		}
	}
}

// begin checks ctx and locks; callers defer s.mu.Unlock().
func (s *Store) begin(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	return s.now(), nil
}

func required(what, v string) error {
	if v == "" {
		return fmt.Errorf("memstore: empty %s", what)
	}
	return nil
}

// --- Revocations ---

func (s *Store) RevokeToken(ctx context.Context, jti string, until time.Time) error {
	return s.revoke(ctx, s.jtis, "jti", jti, until)
}

func (s *Store) RevokeSession(ctx context.Context, sid string, until time.Time) error {
	return s.revoke(ctx, s.sids, "sid", sid, until)
}

func (s *Store) revoke(ctx context.Context, m map[string]time.Time, what, id string, until time.Time) error {
	if err := required(what, id); err != nil {
		return err
	}
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !live(now, until) {
		return nil
	}
	if cur, ok := m[id]; !ok || cur.Before(until) {
		m[id] = until
	}
	s.wrote(now)
	return nil
}

func (s *Store) RevokeUserBefore(ctx context.Context, userID string, before, until time.Time) error {
	if err := required("user id", userID); err != nil {
		return err
	}
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !live(now, until) {
		return nil
	}
	// Millisecond precision, as on Redis, so both backends draw the line at the same instant.
	before = before.Truncate(time.Millisecond)
	if cur, ok := s.users[userID]; ok && live(now, cur.until) {
		if cur.before.After(before) {
			before = cur.before
		}
		if cur.until.After(until) {
			until = cur.until
		}
	}
	s.users[userID] = userCutoff{before: before, until: until}
	s.wrote(now)
	return nil
}

func (s *Store) Revoked(ctx context.Context, jti, sid, userID string, issuedAt time.Time) (bool, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if jti != "" {
		if until, ok := s.jtis[jti]; ok {
			if live(now, until) {
				return true, nil
			}
			delete(s.jtis, jti)
		}
	}
	if sid != "" {
		if until, ok := s.sids[sid]; ok {
			if live(now, until) {
				return true, nil
			}
			delete(s.sids, sid)
		}
	}
	if userID != "" {
		if c, ok := s.users[userID]; ok {
			if live(now, c.until) {
				return issuedAt.Truncate(time.Millisecond).Before(c.before), nil
			}
			delete(s.users, userID)
		}
	}
	return false, nil
}

// --- Sessions ---

func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	if err := errors.Join(required("session id", sess.ID), required("session user id", sess.UserID)); err != nil {
		return err
	}
	if sess.ExpiresAt.IsZero() {
		return errors.New("memstore: session without expiry")
	}
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.getSessionLocked(now, sess.ID); ok {
		return store.ErrAlreadyExists
	}
	if !live(now, sess.ExpiresAt) {
		return nil
	}
	s.sessions[sess.ID] = sess
	ids := s.userSessions[sess.UserID]
	if ids == nil {
		ids = map[string]struct{}{}
		s.userSessions[sess.UserID] = ids
	}
	ids[sess.ID] = struct{}{}
	s.wrote(now)
	return nil
}

// getSessionLocked returns the live session, dropping it when expired.
func (s *Store) getSessionLocked(now time.Time, id string) (store.Session, bool) {
	sess, ok := s.sessions[id]
	if !ok {
		return store.Session{}, false
	}
	if !live(now, sess.ExpiresAt) {
		s.deleteSessionLocked(id, sess.UserID)
		return store.Session{}, false
	}
	return sess, true
}

func (s *Store) deleteSessionLocked(id, userID string) {
	delete(s.sessions, id)
	if ids := s.userSessions[userID]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(s.userSessions, userID)
		}
	}
}

func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return store.Session{}, err
	}
	defer s.mu.Unlock()
	sess, ok := s.getSessionLocked(now, id)
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}

func (s *Store) ListSessions(ctx context.Context, userID string) ([]store.Session, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []store.Session
	for id := range s.userSessions[userID] {
		if sess, ok := s.getSessionLocked(now, id); ok {
			out = append(out, sess)
		}
	}
	store.SortSessions(out)
	return out, nil
}

func (s *Store) RotateRefresh(ctx context.Context, id, oldRefreshID, newRefreshID string, now time.Time) (store.Session, error) {
	if err := errors.Join(required("old refresh id", oldRefreshID), required("new refresh id", newRefreshID)); err != nil {
		return store.Session{}, err
	}
	clock, err := s.begin(ctx)
	if err != nil {
		return store.Session{}, err
	}
	defer s.mu.Unlock()
	sess, ok := s.getSessionLocked(clock, id)
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	// Presenting the new id again is a retry of the winning call (only the winner knows it): same answer.
	if subtle.ConstantTimeCompare([]byte(sess.RefreshID), []byte(oldRefreshID)) != 1 &&
		subtle.ConstantTimeCompare([]byte(sess.RefreshID), []byte(newRefreshID)) != 1 {
		return store.Session{}, store.ErrRefreshReused
	}
	sess.RefreshID = newRefreshID
	sess.LastUsed = now
	s.sessions[id] = sess
	return sess, nil
}

func (s *Store) TouchSession(ctx context.Context, id string, now time.Time) error {
	clock, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	sess, ok := s.getSessionLocked(clock, id)
	if !ok {
		return store.ErrNotFound
	}
	sess.LastUsed = now
	s.sessions[id] = sess
	return nil
}

func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if sess, ok := s.sessions[id]; ok {
		s.deleteSessionLocked(id, sess.UserID)
	}
	return nil
}

// --- Counters ---

func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	if err := required("counter key", key); err != nil {
		return 0, err
	}
	if window <= 0 {
		return 0, fmt.Errorf("memstore: counter window %v is not positive", window)
	}
	now, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	c, ok := s.counters[key]
	if !ok || !live(now, c.until) {
		c = counter{until: now.Add(window)}
	}
	c.n++
	s.counters[key] = c
	s.wrote(now)
	return c.n, nil
}

func (s *Store) Count(ctx context.Context, key string) (int64, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	c, ok := s.counters[key]
	if !ok {
		return 0, nil
	}
	if !live(now, c.until) {
		delete(s.counters, key)
		return 0, nil
	}
	return c.n, nil
}

func (s *Store) Clear(ctx context.Context, key string) error {
	if _, err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.counters, key)
	return nil
}

func (s *Store) Lock(ctx context.Context, key string, until time.Time) error {
	if err := required("lock key", key); err != nil {
		return err
	}
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !live(now, until) {
		delete(s.locks, key)
		return nil
	}
	s.locks[key] = until
	s.wrote(now)
	return nil
}

func (s *Store) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer s.mu.Unlock()
	until, ok := s.locks[key]
	if !ok {
		return time.Time{}, nil
	}
	if !live(now, until) {
		delete(s.locks, key)
		return time.Time{}, nil
	}
	return until, nil
}

// --- MFA ---

func (s *Store) PutPendingMFA(ctx context.Context, userID string, sec []byte, until time.Time) error {
	if err := errors.Join(required("user id", userID), required("secret", string(sec))); err != nil {
		return err
	}
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !live(now, until) {
		delete(s.pending, userID)
		return nil
	}
	s.pending[userID] = secret{b: slices.Clone(sec), until: until}
	s.wrote(now)
	return nil
}

func (s *Store) GetPendingMFA(ctx context.Context, userID string) ([]byte, error) {
	now, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	p, ok := s.pending[userID]
	if !ok {
		return nil, store.ErrNotFound
	}
	if !live(now, p.until) {
		delete(s.pending, userID)
		return nil, store.ErrNotFound
	}
	return slices.Clone(p.b), nil
}

func (s *Store) DeletePendingMFA(ctx context.Context, userID string) error {
	if _, err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.pending, userID)
	return nil
}

func (s *Store) PutMFA(ctx context.Context, userID string, e store.MFAEnrollment) error {
	if err := errors.Join(required("user id", userID), required("secret", string(e.Secret))); err != nil {
		return err
	}
	now, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer s.mu.Unlock()
	backup := make(map[string]struct{}, len(e.BackupCodes))
	for _, c := range e.BackupCodes {
		backup[c] = struct{}{}
	}
	s.mfa[userID] = enrollment{secret: slices.Clone(e.Secret), backup: backup, enabledAt: e.EnabledAt}
	s.wrote(now)
	return nil
}

func (s *Store) GetMFA(ctx context.Context, userID string) (store.MFAEnrollment, error) {
	if _, err := s.begin(ctx); err != nil {
		return store.MFAEnrollment{}, err
	}
	defer s.mu.Unlock()
	e, ok := s.mfa[userID]
	if !ok {
		return store.MFAEnrollment{}, store.ErrNotFound
	}
	out := store.MFAEnrollment{Secret: slices.Clone(e.secret), EnabledAt: e.enabledAt}
	for c := range e.backup {
		out.BackupCodes = append(out.BackupCodes, c)
	}
	slices.Sort(out.BackupCodes)
	return out, nil
}

func (s *Store) DeleteMFA(ctx context.Context, userID string) error {
	if _, err := s.begin(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.mfa, userID)
	delete(s.steps, userID)
	return nil
}

func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64, until time.Time) (bool, error) {
	if err := required("user id", userID); err != nil {
		return false, err
	}
	if step < 0 {
		return false, fmt.Errorf("memstore: negative TOTP step %d", step)
	}
	now, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if !live(now, until) {
		return false, nil
	}
	last, ok := s.steps[userID]
	if ok && live(now, last.until) {
		if step <= last.step {
			return false, nil
		}
		if last.until.After(until) {
			until = last.until
		}
	}
	s.steps[userID] = stepRecord{step: step, until: until}
	s.wrote(now)
	return true, nil
}

func (s *Store) UseBackupCode(ctx context.Context, userID, codeHash string) (bool, error) {
	if _, err := s.begin(ctx); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	e, ok := s.mfa[userID]
	if !ok {
		return false, nil
	}
	if _, ok := e.backup[codeHash]; !ok {
		return false, nil
	}
	delete(e.backup, codeHash)
	return true, nil
}

// --- Once ---

func (s *Store) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := required("claim key", key); err != nil {
		return false, err
	}
	now, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if !live(now, until) {
		return false, nil
	}
	if cur, ok := s.once[key]; ok && live(now, cur) {
		return false, nil
	}
	s.once[key] = until
	s.wrote(now)
	return true, nil
}
