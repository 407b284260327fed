package issuer

import (
	"context"
	"errors"
	"runtime"
	"time"
)

// hashMemoryBudgetKiB is the memory all concurrent password verifications together may take: 512 MiB.
const hashMemoryBudgetKiB = 512 << 10

// hashSlots sizes the hashing semaphore. A configured value wins; 0 means
// max(1, min(2·GOMAXPROCS, budget / per-hash memory)): argon2id is CPU-bound, so more than about two per core only
// queues inside the scheduler while holding memory, and the budget keeps a login flood from exhausting memory
// (64 MiB default params: 8 slots by memory; on 2 cores, 4 by CPU).
func hashSlots(configured int, perHashKiB uint32) int {
	if configured > 0 {
		return configured
	}
	n := 2 * runtime.GOMAXPROCS(0)
	if perHashKiB > 0 {
		n = min(n, int(hashMemoryBudgetKiB/perHashKiB))
	}
	return max(1, n)
}

// errHashBusy: no hashing slot became free in time.
var errHashBusy = errors.New("password hashing at capacity")

// hashGate is a counting semaphore around password verification. Waiting is bounded in wall-clock time (it
// bounds a real resource, so it does not use the injected clock).
type hashGate struct {
	slots chan struct{}
	wait  time.Duration
}

func newHashGate(n int, wait time.Duration) *hashGate {
	return &hashGate{slots: make(chan struct{}, n), wait: wait}
}

// acquire takes a slot, waiting up to g.wait; the caller must call release exactly once on success.
func (g *hashGate) acquire(ctx context.Context) (release func(), err error) {
	release = func() { <-g.slots }
	select {
	case g.slots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, errHashBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
