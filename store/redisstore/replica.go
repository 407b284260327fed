package redisstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
)

// A Replica keeps the revocations of a Store in memory and follows every change through the revocation stream, so
// Revoked answers without a network round trip (the sidecar's hot path).
//
// Following: at start (and after every reload) it reads the generation marker, the stream's last entry and the
// event counter in one transaction, then SCANs the rev:* keys, then reads the stream from that entry on; a change
// made during the SCAN is therefore seen twice, which is harmless because applying an event keeps the later
// cut-off and expiry. Each poll waits for news with a blocking XREAD, then reads the stream from the last applied
// id, the event counter and the generation marker in one MULTI, so it knows exactly whether it holds every event:
// the numbers must follow on from the last one applied, and when the read is complete the last number must be the
// counter. After a dropped connection it resumes from the last id it applied, so nothing is missed. A new
// generation (Redis lost its data), a gap (the stream was trimmed past the last id because the replica was away
// longer than the retention, or it vanished) or a counter that went backwards makes it reload everything.
//
// Staleness: a poll that succeeds means the copy was current when its transaction was sent. When that is longer
// ago than MaxStaleness (Redis unreachable, the process starved), Revoked answers store.ErrStale; the blocking
// XREAD's timeout (Poll, a quarter of MaxStaleness by default) doubles as the heartbeat. While it reloads it is
// stale too.
//
// Memory is bounded by live entries: lookups ignore entries past their expiry and a sweep drops them every
// SweepEvery. Entries are keyed by a 64-bit hash of the id under a per-process random seed (about 30 bytes per
// entry instead of 64 with the id itself): a collision can only make a token look revoked, never the reverse, and
// with 10^6 entries its odds are about 10^-13 per lookup.
type Replica struct {
	s        *Store
	log      *slog.Logger
	maxStale time.Duration
	block    time.Duration
	sweep    time.Duration

	heard atomic.Int64 // injected-clock Unix ns at which the last successful poll began; 0 = stale

	seed maphash.Seed
	mu   sync.RWMutex
	rev  revocations // replaced only by the follower (load); written under mu

	// Owned by the follower goroutine.
	lastID    string      // stream id to read after
	lastIDN   string      // the n field of the entry at lastID, to recognise it (see poll)
	lastN     int64       // number of the last event applied (or covered by the load)
	loaded    *generation // the generation the state belongs to
	nextSweep time.Time
	failing   bool
	caughtUp  bool // false after a load: the next read does not block, so the copy is fresh at once

	// Progress, for WaitFresh and Sync.
	progressMu sync.Mutex
	progress   chan struct{} // closed and replaced after every successful poll
	applied    int64         // lastN as of the last successful poll

	loads, errs atomic.Int64

	testHookPoll func() // called before every poll; tests pause the follower with it

	cancel context.CancelFunc
}

type userCut struct{ before, until int64 } // Unix ms

// revocations is a replica's copy of the revocation keys, by the hash of the id: expiries, and for users the
// cut-off too, as Unix ms.
type revocations struct {
	jtis, sids map[uint64]int64
	users      map[uint64]userCut
}

func newRevocations() revocations {
	return revocations{jtis: map[uint64]int64{}, sids: map[uint64]int64{}, users: map[uint64]userCut{}}
}

// add folds in one revocation of the given kind (before is the user cut-off, ignored for the others), keeping the
// later expiry and the later cut-off as the revoke scripts do: whether the key, its stream event or this
// process's own write arrives first or twice, the copy ends up the same.
func (c revocations) add(kind string, h uint64, before, until int64) {
	switch kind {
	case kindJTI:
		c.jtis[h] = max(c.jtis[h], until)
	case kindSID:
		c.sids[h] = max(c.sids[h], until)
	case kindUser:
		u := c.users[h]
		c.users[h] = userCut{before: max(u.before, before), until: max(u.until, until)}
	}
}

func (c revocations) len() int { return len(c.jtis) + len(c.sids) + len(c.users) }

// ReplicaOptions tune a Replica. The zero value is the default.
type ReplicaOptions struct {
	// MaxStaleness bounds how old the copy may be before Revoked refuses to answer; default 2s.
	MaxStaleness time.Duration
	// Poll is the blocking XREAD's timeout, the heartbeat when nothing changes; default MaxStaleness/4.
	Poll time.Duration
	// SweepEvery is how often expired entries are dropped; default one minute.
	SweepEvery time.Duration
	// Logger receives the replica's state changes; default the store's logger.
	Logger *slog.Logger
}

// Replica tuning that needs no knob.
const (
	readCount    = 1000                   // stream entries per XREAD
	scanCount    = 1000                   // keys per SCAN step
	pollSlack    = 500 * time.Millisecond // a poll's deadline beyond its BLOCK timeout
	loadTimeout  = 5 * time.Minute        // a full reload of millions of keys takes seconds
	minBackoff   = 20 * time.Millisecond
	maxBackoff   = 500 * time.Millisecond
	streamOrigin = "0-0"
)

// errReload asks the follower for a full reload.
var errReload = errors.New("reload")

var _ store.Revocations = (*Replica)(nil)

// StartReplica starts following the store's revocations in a goroutine; Close stops it. Until the first load
// completes the replica is stale. The replica's writes (Revoke*) go to the store; close the replica before it.
func (s *Store) StartReplica(o ReplicaOptions) *Replica {
	r, ctx := s.newReplica(o)
	go r.run(ctx)
	return r
}

func (s *Store) newReplica(o ReplicaOptions) (*Replica, context.Context) {
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = 2 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = o.MaxStaleness / 4
	}
	// XREAD BLOCK counts in milliseconds and 0 would block forever.
	o.Poll = max(o.Poll, time.Millisecond)
	if o.SweepEvery <= 0 {
		o.SweepEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = s.log
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replica{
		s: s, log: o.Logger, maxStale: o.MaxStaleness, block: o.Poll, sweep: o.SweepEvery,
		seed: maphash.MakeSeed(), rev: newRevocations(),
		lastID: streamOrigin, progress: make(chan struct{}), cancel: cancel,
	}
	s.replicasMu.Lock()
	s.replicas = append(s.replicas, r)
	s.replicasMu.Unlock()
	return r, ctx
}

// Close stops following and returns at once; the goroutine ends when its blocking read returns, within the poll
// timeout, or as soon as the store is closed. Close does not close the store.
func (r *Replica) Close() error {
	r.cancel()
	r.s.replicasMu.Lock()
	r.s.replicas = slices.DeleteFunc(r.s.replicas, func(x *Replica) bool { return x == r })
	r.s.replicasMu.Unlock()
	return nil
}

// Local reports that Revoked answers from memory without I/O.
func (r *Replica) Local() bool { return true }

// RevokeToken, RevokeSession and RevokeUserBefore write through to Redis; the replica sees the change when the
// stream delivers it.
func (r *Replica) RevokeToken(ctx context.Context, jti string, until time.Time) error {
	return r.s.RevokeToken(ctx, jti, until)
}

func (r *Replica) RevokeSession(ctx context.Context, sid string, until time.Time) error {
	return r.s.RevokeSession(ctx, sid, until)
}

func (r *Replica) RevokeUserBefore(ctx context.Context, userID string, before, until time.Time) error {
	return r.s.RevokeUserBefore(ctx, userID, before, until)
}

// Revoked answers from memory: store.ErrStale when the copy is too old to vouch for, (true, store.ErrStoreReset)
// for a token issued before the current generation, else whether a live revocation applies. It allocates nothing.
func (r *Replica) Revoked(ctx context.Context, jti, sid, userID string, issuedAt time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if jti == "" && sid == "" && userID == "" {
		return false, nil // nothing to match, as in strict mode
	}
	now := r.s.now()
	if !r.fresh(now) {
		return false, store.ErrStale
	}
	g := r.s.gen.Load()
	if g == nil {
		return false, store.ErrStale
	}
	iat := floorMilli(issuedAt)
	if iat < g.Since {
		return true, store.ErrStoreReset
	}
	nowMs := now.UnixMilli()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if jti != "" {
		if until, ok := r.rev.jtis[r.hash(jti)]; ok && nowMs < until {
			return true, nil
		}
	}
	if sid != "" {
		if until, ok := r.rev.sids[r.hash(sid)]; ok && nowMs < until {
			return true, nil
		}
	}
	if userID != "" {
		if c, ok := r.rev.users[r.hash(userID)]; ok && nowMs < c.until && iat < c.before {
			return true, nil
		}
	}
	return false, nil
}

func (r *Replica) hash(id string) uint64 { return maphash.String(r.seed, id) }

func (r *Replica) fresh(now time.Time) bool {
	heard := r.heard.Load()
	return heard != 0 && now.UnixNano()-heard <= int64(r.maxStale)
}

// Len returns the number of entries held, expired or not.
func (r *Replica) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rev.len()
}

// ReplicaStats counts what the follower did.
type ReplicaStats struct {
	Loads  int64 // full loads, the first one included
	Errors int64 // failed polls and loads
}

// Stats returns the follower's counters.
func (r *Replica) Stats() ReplicaStats {
	return ReplicaStats{Loads: r.loads.Load(), Errors: r.errs.Load()}
}

// WaitFresh waits until the replica can answer (its copy is within MaxStaleness).
func (r *Replica) WaitFresh(ctx context.Context) error {
	for {
		ch, _ := r.waitProgress()
		if r.fresh(r.s.now()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sync waits until the replica has applied every revocation written to Redis before the call and is fresh:
// read-your-writes for tests and tools.
func (r *Replica) Sync(ctx context.Context) error {
	target, err := r.s.client.Get(ctx, r.s.seqKey()).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return wrap("replica: sync", err)
	}
	for {
		ch, applied := r.waitProgress()
		if applied >= target && r.fresh(r.s.now()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *Replica) waitProgress() (<-chan struct{}, int64) {
	r.progressMu.Lock()
	defer r.progressMu.Unlock()
	return r.progress, r.applied
}

func (r *Replica) signalProgress() {
	r.progressMu.Lock()
	close(r.progress)
	r.progress = make(chan struct{})
	r.applied = r.lastN
	r.progressMu.Unlock()
}

// --- the follower ---

func (r *Replica) run(ctx context.Context) {
	backoff := minBackoff
	needLoad := true
	for ctx.Err() == nil {
		var err error
		if needLoad {
			err = r.load(ctx)
			needLoad = err != nil
		} else {
			err = r.poll(ctx)
			if errors.Is(err, errReload) {
				needLoad = true
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.errs.Add(1)
			if !r.failing {
				r.failing = true
				r.log.LogAttrs(ctx, slog.LevelWarn, "revocation replica cannot reach Redis; protected routes fail closed once it is stale",
					slog.String("event", "replica.error"), slog.String("error", err.Error()))
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		if r.failing {
			r.failing = false
			r.log.LogAttrs(ctx, slog.LevelInfo, "revocation replica reconnected", slog.String("event", "replica.recovered"))
		}
		backoff = minBackoff
		r.maybeSweep()
	}
}

// poll waits for news (blocking up to the poll timeout), then reads the events after the last applied id, the
// event counter and the generation marker in one transaction, and applies the events if they are complete. It
// marks the copy fresh as of the transaction.
func (r *Replica) poll(ctx context.Context) error {
	if r.testHookPoll != nil {
		r.testHookPoll()
	}
	ctx, cancel := context.WithTimeout(ctx, r.block+pollSlack)
	defer cancel()
	key := r.s.streamKey()
	if r.caughtUp {
		// Only a wake-up: the transaction below reads what the copy is built from.
		err := r.s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{key, r.lastID}, Count: 1, Block: r.block}).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			return wrap("replica: wait for events", err)
		}
	}
	start := r.s.now()
	var read *redis.XStreamSliceCmd
	var at *redis.XMessageSliceCmd
	var seq, gen *redis.StringCmd
	// Per-command results are read below: a missing stream, counter or marker is an answer, not a failure.
	_, _ = r.s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if r.lastID != streamOrigin {
			at = p.XRangeN(ctx, key, r.lastID, r.lastID, 1)
		}
		read = p.XRead(ctx, &redis.XReadArgs{Streams: []string{key, r.lastID}, Count: readCount, Block: -1})
		seq = p.Get(ctx, r.s.seqKey())
		gen = p.Get(ctx, r.s.genKey())
		return nil
	})
	g, err := r.generation(ctx, gen)
	if err != nil {
		return err
	}
	if g != r.loaded {
		return r.reload(ctx, "generation changed")
	}
	// The entry last applied must still be there, as it was: after a failover the new primary's stream may lack
	// the last events the old one acknowledged (replication is asynchronous) and then grow new ones under the same
	// numbers, which the checks on numbers below would take for events already applied. The entry is also gone
	// when the stream was trimmed past it or deleted; both need a reload too.
	if at != nil {
		msgs, err := at.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return wrap("replica: read the last applied event", err)
		}
		if len(msgs) == 0 || stringField(msgs[0].Values, "n") != r.lastIDN {
			return r.reload(ctx, "the last applied event is gone: the stream was trimmed or deleted, or Redis failed over to a copy without it")
		}
	}
	head, err := seq.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return wrap("replica: read event counter", err)
	}
	res, err := read.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return wrap("replica: read stream", err)
	}
	var msgs []redis.XMessage
	if len(res) > 0 {
		msgs = res[0].Messages
	}
	if err := r.apply(ctx, msgs); err != nil {
		return err
	}
	complete := len(msgs) < readCount
	if complete && head != r.lastN {
		return r.reload(ctx, fmt.Sprintf("events lost: the counter is at %d, the stream ended at %d", head, r.lastN))
	}
	r.caughtUp = complete
	r.heard.Store(start.UnixNano())
	r.signalProgress()
	return nil
}

func (r *Replica) reload(ctx context.Context, why string) error {
	r.log.LogAttrs(ctx, slog.LevelWarn, "revocation replica reloads everything", slog.String("event", "replica.reload"),
		slog.String("reason", why), slog.String("last_id", r.lastID))
	return errReload
}

func (r *Replica) generation(ctx context.Context, cmd *redis.StringCmd) (*generation, error) {
	raw, err := cmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrap("replica: read generation", err)
	}
	return r.s.observeGeneration(ctx, raw, err == nil)
}

// load replaces the copy with what Redis holds: marker, the stream's last entry and the counter (one snapshot),
// then the keys, so that every change after the snapshot is also in the stream after that entry. The copy stays stale until the next poll
// has applied those changes; it is dropped first, because a reload means it cannot be trusted (and so memory
// never holds two copies).
func (r *Replica) load(ctx context.Context) error {
	r.heard.Store(0)
	r.mu.Lock()
	r.rev = newRevocations()
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, loadTimeout)
	defer cancel()
	var gen, seq *redis.StringCmd
	var last *redis.XMessageSliceCmd
	_, _ = r.s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		gen = p.Get(ctx, r.s.genKey())
		last = p.XRevRangeN(ctx, r.s.streamKey(), "+", "-", 1)
		seq = p.Get(ctx, r.s.seqKey())
		return nil
	})
	g, err := r.generation(ctx, gen)
	if err != nil {
		return err
	}
	head, err := seq.Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return wrap("replica: read event counter", err)
	}
	tail, err := last.Result()
	if err != nil {
		return wrap("replica: read stream", err)
	}
	// Events still in the stream up to its last entry, and any deleted after it, are covered by the SCAN.
	from, fromN := streamOrigin, ""
	if len(tail) > 0 {
		from, fromN = tail[0].ID, stringField(tail[0].Values, "n")
	}
	rev := newRevocations()
	nowMs := r.s.now().UnixMilli()
	revPrefix := r.s.prefix + revTag
	pattern := escapeGlob(revPrefix) + "*"
	// SCAN walks one node: on a cluster, the one holding the revocation slot.
	node, err := r.s.revNode(ctx)
	if err != nil {
		return err
	}
	var cursor uint64
	for {
		keys, next, err := node.Scan(ctx, cursor, pattern, scanCount).Result()
		if err != nil {
			return wrap("replica: scan", err)
		}
		if err := r.loadKeys(ctx, revPrefix, keys, nowMs, rev); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	entries := rev.len() // once published, the maps are written under r.mu (applyLocal)
	r.mu.Lock()
	r.rev = rev
	r.mu.Unlock()
	r.lastID, r.lastIDN, r.lastN, r.loaded, r.caughtUp = from, fromN, head, g, false
	r.nextSweep = r.s.now().Add(r.sweep)
	r.loads.Add(1)
	r.log.LogAttrs(ctx, slog.LevelInfo, "revocation replica loaded", slog.String("event", "replica.loaded"),
		slog.Int("entries", entries), slog.Int64("event", head))
	return nil
}

// loadKeys reads the expiry (and the user cut-off) of one SCAN step's keys in one pipeline into rev.
func (r *Replica) loadKeys(ctx context.Context, revPrefix string, keys []string, nowMs int64, rev revocations) error {
	// The stream, its counter and the marker share the prefix (and the slot) with the entries.
	keys = slices.DeleteFunc(keys, func(k string) bool {
		kind, _, _ := strings.Cut(strings.TrimPrefix(k, revPrefix), ":")
		return kind != kindJTI && kind != kindSID && kind != kindUser
	})
	if len(keys) == 0 {
		return nil
	}
	exps := make([]*redis.Cmd, len(keys))
	cuts := make([]*redis.StringCmd, len(keys))
	if _, err := r.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			exps[i] = p.Do(ctx, "pexpiretime", k)
			if strings.HasPrefix(k, revPrefix+kindUser+":") {
				cuts[i] = p.Get(ctx, k)
			}
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		return wrap("replica: load", err)
	}
	for i, k := range keys {
		until, err := exps[i].Int64()
		if err != nil {
			return wrap("replica: load", err)
		}
		switch until {
		case -2: // expired since the SCAN
			continue
		case -1: // no expiry: not written by us; keep it for as long as we run
			until = math.MaxInt64
		}
		if until <= nowMs {
			continue
		}
		kind, id, ok := strings.Cut(strings.TrimPrefix(k, revPrefix), ":")
		if !ok {
			continue
		}
		var before int64
		if kind == kindUser {
			v, err := cuts[i].Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return wrap("replica: load", err)
			}
			if before, err = strconv.ParseInt(v, 10, 64); err != nil {
				// Fail closed for this user only: every token of theirs is refused until the key expires.
				r.log.LogAttrs(ctx, slog.LevelError, "corrupt user revocation: refusing all of the user's tokens",
					slog.String("event", "replica.corrupt"), slog.String("key", k))
				before = math.MaxInt64
			}
		}
		rev.add(kind, r.hash(id), before, until)
	}
	return nil
}

// apply folds stream events into the copy. An event it cannot read asks for a reload, which reads the keys.
func (r *Replica) apply(ctx context.Context, msgs []redis.XMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		n, err := strconv.ParseInt(stringField(m.Values, "n"), 10, 64)
		switch {
		case err != nil:
			return r.reload(ctx, fmt.Sprintf("unreadable event %s: no number", m.ID))
		case n <= r.lastN: // already covered by the load
		case n > r.lastN+1:
			return r.reload(ctx, fmt.Sprintf("events lost: %d follows %d", n, r.lastN))
		default:
			if err := r.applyLocked(m.Values); err != nil {
				return r.reload(ctx, fmt.Sprintf("unreadable event %s: %v", m.ID, err))
			}
			r.lastN = n
		}
		r.lastID, r.lastIDN = m.ID, stringField(m.Values, "n")
	}
	return nil
}

func stringField(v map[string]any, k string) string {
	s, _ := v[k].(string)
	return s
}

func (r *Replica) applyLocked(v map[string]any) error {
	field := func(k string) (string, bool) {
		s := stringField(v, k)
		return s, s != ""
	}
	kind, ok1 := field("k")
	id, ok2 := field("id")
	u, ok3 := field("u")
	if !ok1 || !ok2 || !ok3 {
		return errors.New("missing fields")
	}
	until, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return err
	}
	var before int64
	switch kind {
	case kindJTI, kindSID:
	case kindUser:
		b, ok := field("b")
		if !ok {
			return errors.New("user event without cut-off")
		}
		if before, err = strconv.ParseInt(b, 10, 64); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	r.rev.add(kind, r.hash(id), before, until)
	return nil
}

// applyLocal folds in a write this process made through the store.
func (r *Replica) applyLocal(kind, id string, before, until int64) {
	h := r.hash(id)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rev.add(kind, h, before, until)
}

// maybeSweep drops expired entries when a sweep is due. It finds them under the read lock, so lookups go on, and
// deletes them a few thousand at a time under the write lock.
func (r *Replica) maybeSweep() {
	now := r.s.now()
	if now.Before(r.nextSweep) {
		return
	}
	r.nextSweep = now.Add(r.sweep)
	r.sweepNow(now.UnixMilli())
}

func (r *Replica) sweepNow(nowMs int64) {
	r.mu.RLock()
	rev := r.rev // replaced only by this goroutine (load)
	deadJTI := expired(rev.jtis, func(u int64) bool { return u <= nowMs })
	deadSID := expired(rev.sids, func(u int64) bool { return u <= nowMs })
	deadUser := expired(rev.users, func(c userCut) bool { return c.until <= nowMs })
	r.mu.RUnlock()
	deleteChunked(&r.mu, rev.jtis, deadJTI, func(u int64) bool { return u <= nowMs })
	deleteChunked(&r.mu, rev.sids, deadSID, func(u int64) bool { return u <= nowMs })
	deleteChunked(&r.mu, rev.users, deadUser, func(c userCut) bool { return c.until <= nowMs })
}

func expired[V any](m map[uint64]V, dead func(V) bool) []uint64 {
	var keys []uint64
	for k, v := range m {
		if dead(v) {
			keys = append(keys, k)
		}
	}
	return keys
}

// deleteChunked deletes keys from m holding mu a few thousand deletions at a time, so readers never wait long.
// An entry extended since it was found dead (a new revocation) stays.
func deleteChunked[V any](mu *sync.RWMutex, m map[uint64]V, keys []uint64, dead func(V) bool) {
	const chunk = 4096
	for len(keys) > 0 {
		n := min(chunk, len(keys))
		mu.Lock()
		for _, k := range keys[:n] {
			if v, ok := m[k]; ok && dead(v) {
				delete(m, k)
			}
		}
		mu.Unlock()
		keys = keys[n:]
	}
}

// escapeGlob quotes the glob metacharacters of a literal key prefix for SCAN MATCH.
func escapeGlob(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Lag is how long ago the replica last heard from Redis (the start of its last successful poll), by the store's
// clock; ok is false while it has not caught up at all (loading, or after an error reset it). Exported as a metric:
// it is the bound on how late a revocation can reach this decider.
func (r *Replica) Lag() (lag time.Duration, ok bool) {
	heard := r.heard.Load()
	if heard == 0 {
		return 0, false
	}
	return time.Duration(r.s.now().UnixNano() - heard), true
}
