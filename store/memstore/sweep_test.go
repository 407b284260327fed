package memstore

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"gatehouse/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Memory stays proportional to live entries even when nothing reads the expired ones.
func TestWritesSweepExpiredEntries(t *testing.T) {
	ctx := t.Context()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := New(clock.now)
	const n = 5000
	for i := range n {
		until := clock.now().Add(time.Minute)
		id := fmt.Sprint(i)
		if err := s.RevokeToken(ctx, id, until); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSession(ctx, store.Session{ID: id, UserID: "u" + id, ExpiresAt: until}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Hit(ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		clock.advance(time.Second) // about 60 entries of each kind alive at any time
	}
	// 60 live seconds x (jti + session + user index + counter), plus what accumulated since the last sweep.
	if got, limit := s.Len(), 2*max(sweepMin, 4*61); got > limit {
		t.Errorf("Len() = %d after %d writes with ~%d live entries, want <= %d", got, 3*n, 4*60, limit)
	}
	clock.advance(time.Minute)
	s.Sweep()
	if got := s.Len(); got != 0 {
		t.Errorf("Len() after everything expired and Sweep = %d, want 0", got)
	}
}

// Reads drop the expired entry they find.
func TestReadsDropExpiredEntries(t *testing.T) {
	ctx := t.Context()
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s := New(clock.now)
	until := clock.now().Add(time.Minute)
	if err := s.CreateSession(ctx, store.Session{ID: "s", UserID: "u", ExpiresAt: until}); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "k", until); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)
	if _, err := s.ListSessions(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LockedUntil(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got := s.Len(); got != 0 {
		t.Errorf("Len() = %d, want 0", got)
	}
}
