package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/redistest"
)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Millisecond)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuf is a log sink shared by goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) { b.mu.Lock(); defer b.mu.Unlock(); return b.b.Write(p) }
func (b *syncBuf) String() string              { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// fixture is one Redis with a writer (as the issuer holds it) and a replica on its own connections (as a sidecar
// holds it), sharing a prefix and the test's clock.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	srv    *redistest.Server
	raw    *redis.Client
	prefix string
	clock  *clock
	writer *Store
	rs     *Store // the replica's store
	r      *Replica
	logs   *syncBuf
}

func newFixture(t *testing.T, o redistest.Options, ro ReplicaOptions, paused func()) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: t.Context(), srv: redistest.StartServer(t, o), prefix: "t:" + t.Name() + ":",
		clock: newClock(), logs: &syncBuf{}}
	f.raw = redis.NewClient(&redis.Options{Addr: f.srv.Addr})
	t.Cleanup(func() { f.raw.Close() })
	if err := SeedGeneration(f.ctx, f.raw, f.prefix); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(f.logs, nil))
	open := func() *Store {
		s, err := Open("redis://"+f.srv.Addr, f.prefix, f.clock.now, WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	f.writer, f.rs = open(), open()
	if ro.Poll == 0 {
		ro.Poll = 100 * time.Millisecond // quicker heartbeats keep the test short
	}
	r, ctx := f.rs.newReplica(ro)
	r.testHookPoll = paused
	f.r = r
	go r.run(ctx)
	t.Cleanup(func() { r.Close() })
	f.sync()
	return f
}

// pauser parks the follower before its next poll when asked, so a test can change Redis (or the copy) behind its
// back. Pass hook to newFixture.
type pauser struct {
	armed        atomic.Bool
	parked, gate chan struct{}
}

func newPauser() *pauser { return &pauser{parked: make(chan struct{}), gate: make(chan struct{})} }

func (p *pauser) hook() {
	if p.armed.CompareAndSwap(true, false) {
		close(p.parked)
		<-p.gate
	}
}

// hold returns once the follower is parked; it stays parked until release. Once per pauser.
func (p *pauser) hold() {
	p.armed.Store(true)
	<-p.parked
}

func (p *pauser) release() { close(p.gate) }

func (f *fixture) sync() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	if err := f.r.Sync(ctx); err != nil {
		f.t.Fatalf("replica did not catch up: %v (stats %+v)", err, f.r.Stats())
	}
}

// eventually waits, on the follower's progress (a real event, with a deadline), until cond holds.
func (f *fixture) eventually(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ch, _ := f.r.waitProgress()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			f.t.Fatalf("timed out waiting for %s (stats %+v)", what, f.r.Stats())
		}
	}
}

func (f *fixture) revoked(jti, sid, user string, iat time.Time) (bool, error) {
	return f.r.Revoked(f.ctx, jti, sid, user, iat)
}

func (f *fixture) mustRevoked(want bool, jti, sid, user string, iat time.Time) {
	f.t.Helper()
	got, err := f.revoked(jti, sid, user, iat)
	if err != nil || got != want {
		f.t.Errorf("replica Revoked(%q, %q, %q) = %v, %v; want %v", jti, sid, user, got, err, want)
	}
}

func (f *fixture) revokeJTIs(from, to int) {
	f.t.Helper()
	for i := from; i < to; i++ {
		if err := f.writer.RevokeToken(f.ctx, fmt.Sprint("j", i), f.clock.now().Add(time.Hour)); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) mustRevokedJTIs(from, to int, iat time.Time) {
	f.t.Helper()
	for i := from; i < to; i++ {
		f.mustRevoked(true, fmt.Sprint("j", i), "", "", iat)
	}
}

func TestReplicaFollowsAndExpires(t *testing.T) {
	f := newFixture(t, redistest.Options{}, ReplicaOptions{}, nil)
	now := f.clock.now()
	iat := now.Add(-time.Minute)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.mustRevoked(false, "j", "s", "u", iat)
	must(f.writer.RevokeToken(f.ctx, "j", now.Add(time.Hour)))
	must(f.writer.RevokeSession(f.ctx, "s", now.Add(2*time.Hour)))
	must(f.writer.RevokeUserBefore(f.ctx, "u", now, now.Add(30*time.Minute)))
	must(f.writer.RevokeUserBefore(f.ctx, "u", now.Add(-time.Hour), now.Add(10*time.Minute))) // earlier: kept
	f.sync()
	for _, c := range []struct {
		jti, sid, user string
		iat            time.Time
		want           bool
	}{
		{"j", "", "", iat, true},
		{"", "s", "", iat, true},
		{"", "", "u", iat, true},
		{"", "", "u", now, false}, // issued at the cut-off
		{"x", "y", "z", iat, false},
		{"s", "j", "", iat, false}, // namespaces are separate
	} {
		f.mustRevoked(c.want, c.jti, c.sid, c.user, c.iat)
	}

	// Entries expire by the injected clock, and the sweep frees them. Moving the clock makes the copy look old
	// until the next poll, a real event we wait for.
	f.clock.advance(time.Hour)
	if err := f.r.WaitFresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.mustRevoked(false, "j", "", "", iat)
	f.mustRevoked(true, "", "s", "", iat)
	f.mustRevoked(false, "", "", "u", iat)
	f.eventually("the sweep", func() bool { return f.r.Len() == 1 })
}

// A Redis restart (with persistence) costs nothing but a reconnect: the replica resumes from its last id, sees
// every revocation written after the restart, and needs no reload.
func TestReplicaCatchesUpAfterRedisRestart(t *testing.T) {
	f := newFixture(t, redistest.Options{AppendOnly: true}, ReplicaOptions{}, nil)
	iat := f.clock.now().Add(-time.Minute)
	f.revokeJTIs(0, 10)
	f.sync()
	f.srv.Kill()
	f.srv.Restart()
	f.revokeJTIs(10, 60) // while the replica is still reconnecting
	f.sync()
	f.mustRevokedJTIs(0, 60, iat)
	f.mustRevoked(false, "j60", "", "", iat)
	if st := f.r.Stats(); st.Loads != 1 {
		t.Errorf("stats %+v: want no reload after a restart that kept the data", st)
	}
}

// A dropped connection (CLIENT KILL) loses nothing: the replica resumes from the last id it applied.
func TestReplicaCatchesUpAfterDroppedConnection(t *testing.T) {
	f := newFixture(t, redistest.Options{}, ReplicaOptions{}, nil)
	iat := f.clock.now().Add(-time.Minute)
	f.revokeJTIs(0, 10)
	f.sync()
	for range 3 {
		// Every connection but ours: the replica's blocking XREAD and the writer's pool.
		if err := f.raw.Do(f.ctx, "client", "kill", "type", "normal", "skipme", "yes").Err(); err != nil {
			t.Fatal(err)
		}
		f.revokeJTIs(10, 40)
	}
	f.sync()
	f.mustRevokedJTIs(0, 40, iat)
	if st := f.r.Stats(); st.Loads != 1 {
		t.Errorf("stats %+v: want no reload after a dropped connection", st)
	}
}

// Past MaxStaleness without a successful poll, the replica refuses to answer; once Redis is back it catches up.
// The clock is injected: the test moves it instead of sleeping.
func TestReplicaFailsClosedWhenStale(t *testing.T) {
	f := newFixture(t, redistest.Options{AppendOnly: true}, ReplicaOptions{MaxStaleness: 2 * time.Second}, nil)
	iat := f.clock.now().Add(-time.Minute)
	f.revokeJTIs(0, 1)
	f.sync()
	f.mustRevoked(true, "j0", "", "", iat)
	f.mustRevoked(false, "ok", "", "", iat)

	f.srv.Kill() // no poll can succeed from here: only one that starts after the move below would count
	f.clock.advance(2*time.Second + time.Millisecond)
	for _, jti := range []string{"j0", "ok"} {
		if r, err := f.revoked(jti, "", "", iat); !errors.Is(err, store.ErrStale) || r {
			t.Errorf("stale Revoked(%s) = %v, %v; want ErrStale", jti, r, err)
		}
	}

	f.srv.Restart()
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	if err := f.r.WaitFresh(ctx); err != nil {
		t.Fatalf("replica did not recover: %v", err)
	}
	f.mustRevoked(true, "j0", "", "", iat)
	f.mustRevoked(false, "ok", "", "", iat)
}

// Away longer than the retention (the stream was trimmed past the last applied id) or with the stream gone, the
// replica reloads the keys and misses nothing.
func TestReplicaReloads(t *testing.T) {
	for _, c := range []struct {
		name   string
		break_ func(f *fixture, lastID string)
	}{
		{"trimmed past the last id", func(f *fixture, lastID string) {
			ms, seq, _ := strings.Cut(lastID, "-")
			n, _ := strconv.Atoi(seq)
			minid := fmt.Sprintf("%s-%d", ms, n+1) // everything up to the last entry goes
			if err := f.raw.XTrimMinID(f.ctx, f.prefix+"{rev}:log", minid).Err(); err != nil {
				f.t.Fatal(err)
			}
		}},
		{"stream gone", func(f *fixture, _ string) {
			if err := f.raw.Del(f.ctx, f.prefix+"{rev}:log").Err(); err != nil {
				f.t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPauser()
			f := newFixture(t, redistest.Options{}, ReplicaOptions{}, p.hook)
			iat := f.clock.now().Add(-time.Minute)
			f.revokeJTIs(0, 5)
			f.sync()
			// Hold the follower before its next poll, then write and lose the events it has not read.
			p.hold()
			f.revokeJTIs(0, 1) // changes nothing (same expiry): no event
			f.revokeJTIs(5, 10)
			last, err := f.raw.XRevRangeN(f.ctx, f.prefix+"{rev}:log", "+", "-", 1).Result()
			if err != nil || len(last) != 1 {
				t.Fatalf("stream head: %v %v", last, err)
			}
			c.break_(f, last[0].ID)
			p.release()
			f.sync()
			f.mustRevokedJTIs(0, 10, iat)
			if st := f.r.Stats(); st.Loads != 2 {
				t.Errorf("stats %+v: want one reload", st)
			}
			if !strings.Contains(f.logs.String(), `"event":"replica.reload"`) {
				t.Errorf("reload not logged: %s", f.logs)
			}
		})
	}
}

// A failover to a replica that lacks the last events the follower applied (asynchronous replication): the new
// primary numbers its next events as the lost ones were numbered, so numbers alone look gap-free and the follower
// would skip them as applied. It must notice that its last entry is gone and reload. Simulated on one server: the
// lost events and their keys are deleted and the counter set back, as the promoted replica would hold them.
func TestReplicaReloadsWhenHistoryIsRewritten(t *testing.T) {
	p := newPauser()
	f := newFixture(t, redistest.Options{}, ReplicaOptions{}, p.hook)
	iat := f.clock.now().Add(-time.Minute)
	f.revokeJTIs(0, 5)
	f.sync() // applied events 1..5
	p.hold()

	stream := f.prefix + "{rev}:log"
	last, err := f.raw.XRevRangeN(f.ctx, stream, "+", "-", 2).Result()
	if err != nil || len(last) != 2 {
		t.Fatalf("stream head: %v %v", last, err)
	}
	for _, m := range last { // events 5 and 4 (j4, j3) never reached the replica
		if err := f.raw.XDel(f.ctx, stream, m.ID).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.raw.Del(f.ctx, f.prefix+"{rev}:jti:j3", f.prefix+"{rev}:jti:j4").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.raw.Set(f.ctx, f.prefix+"{rev}:seq", 3, 0).Err(); err != nil {
		t.Fatal(err)
	}
	f.revokeJTIs(5, 7) // numbered 4 and 5 again, with stream ids after the deleted ones
	p.release()

	f.eventually("a reload", func() bool { return f.r.Stats().Loads == 2 })
	f.sync()
	f.mustRevokedJTIs(0, 3, iat)
	f.mustRevokedJTIs(5, 7, iat)
	f.mustRevoked(false, "j3", "", "", iat) // lost with the old primary, as strict mode sees it
	if !strings.Contains(f.logs.String(), "the last applied event is gone") {
		t.Errorf("reload reason not logged: %s", f.logs)
	}
}

// After Redis loses its data (FLUSHALL here), every token issued before the loss was detected is refused, in both
// modes, and a revoked token never becomes valid again. One new marker is written and the reset is audited.
func TestStoreResetAfterFlushall(t *testing.T) {
	f := newFixture(t, redistest.Options{}, ReplicaOptions{}, nil)
	old := f.clock.now().Add(-time.Minute)
	f.revokeJTIs(0, 1)
	f.sync()
	if r, err := f.writer.Revoked(f.ctx, "j0", "", "", old); err != nil || !r {
		t.Fatalf("strict Revoked before the loss = %v, %v", r, err)
	}
	f.mustRevoked(true, "j0", "", "", old)

	if err := f.raw.FlushAll(f.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, jti := range []string{"j0", "never-revoked"} {
		if r, err := f.writer.Revoked(f.ctx, jti, "", "", old); !errors.Is(err, store.ErrStoreReset) || !r {
			t.Errorf("strict Revoked(%s) after the loss = %v, %v; want true, ErrStoreReset", jti, r, err)
		}
	}
	f.eventually("the replica to see the reset", func() bool {
		_, err := f.revoked("never-revoked", "", "", old)
		return errors.Is(err, store.ErrStoreReset)
	})
	f.sync()
	if r, err := f.revoked("j0", "", "", old); !errors.Is(err, store.ErrStoreReset) || !r {
		t.Errorf("replica Revoked(j0) after the loss = %v, %v; want true, ErrStoreReset", r, err)
	}

	// Both saw the same new generation; tokens issued from its start on are judged normally again.
	g := f.writer.gen.Load()
	if rg := f.rs.gen.Load(); rg == nil || rg.ID != g.ID {
		t.Fatalf("writer and replica disagree on the generation: %+v %+v", g, rg)
	}
	issued := time.UnixMilli(g.Since)
	if r, err := f.writer.Revoked(f.ctx, "j0", "", "", issued); err != nil || r {
		t.Errorf("strict Revoked of a token issued at the reset = %v, %v", r, err)
	}
	f.mustRevoked(false, "j0", "", "", issued)
	f.revokeJTIs(0, 1)
	f.sync()
	f.mustRevoked(true, "j0", "", "", issued)

	logs := f.logs.String()
	if n := strings.Count(logs, `"event":"store.reset"`); n != 2 {
		t.Errorf("want one store.reset line per store, got %d:\n%s", n, logs)
	}
	if strings.Count(logs, `"created":true`) != 1 {
		t.Errorf("want exactly one detector to create the marker:\n%s", logs)
	}
}

// Concurrent lookups while revocations stream in (run with -race): answers never flip back from revoked, and
// every revocation is seen once the replica caught up.
func TestReplicaConcurrentLookups(t *testing.T) {
	f := newFixture(t, redistest.Options{}, ReplicaOptions{}, nil)
	iat := f.clock.now().Add(-time.Minute)
	const n = 200
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var flips atomic.Int64
	for g := range 4 {
		wg.Go(func() {
			seen := make([]bool, n)
			for i := g; ; i = (i + 1) % n {
				select {
				case <-stop:
					return
				default:
				}
				r, err := f.revoked(fmt.Sprint("j", i), "s", "u", iat)
				if err != nil {
					continue // stale for a moment on a loaded machine: not an answer
				}
				if seen[i] && !r {
					flips.Add(1)
				}
				seen[i] = seen[i] || r
				if i%64 == 0 {
					runtime.Gosched()
				}
			}
		})
	}
	f.revokeJTIs(0, n)
	f.sync()
	close(stop)
	wg.Wait()
	f.mustRevokedJTIs(0, n, iat)
	if flips.Load() != 0 {
		t.Errorf("%d answers went from revoked back to not revoked", flips.Load())
	}
}

// Memory per revocation held by the replica (a 22-character jti, as token.NewID makes them).
func TestReplicaMemoryPerEntry(t *testing.T) {
	const n = 100_000
	s := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), "", nil)
	defer s.Close()
	r, _ := s.newReplica(ReplicaOptions{})
	before := heapInUse()
	r.mu.Lock()
	for i := range n {
		r.rev.jtis[r.hash(fmt.Sprintf("%022d", i))] = 1 << 60
	}
	r.mu.Unlock()
	per := float64(heapInUse()-before) / n
	t.Logf("replica: %.0f bytes per revoked jti (%d entries)", per, n)
	if per > 64 {
		t.Errorf("%.0f bytes per entry; budget 64 (10^6 entries must fit well under 256 MiB)", per)
	}
	runtime.KeepAlive(r)
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func TestEscapeGlob(t *testing.T) {
	if got := escapeGlob(`a*b?[c]\\`); got != `a\*b\?\[c\]\\\\` {
		t.Errorf("escapeGlob = %q", got)
	}
}

// A sidecar sharing the process with the issuer denies a token as soon as logout returned, without waiting for
// the stream.
func TestReplicaSeesOwnProcessWritesAtOnce(t *testing.T) {
	p := newPauser()
	f := newFixture(t, redistest.Options{}, ReplicaOptions{}, p.hook)
	now := f.clock.now()
	iat := now.Add(-time.Minute)
	// The follower is held, so the stream cannot be what tells the replica. The clock does not move: the copy
	// stays fresh meanwhile.
	p.hold()
	// Writes through the replica's own store, with no Sync in between.
	if err := f.rs.RevokeToken(f.ctx, "j", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.mustRevoked(true, "j", "", "", iat)
	if err := f.rs.RevokeSession(f.ctx, "s", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.mustRevoked(true, "", "s", "", iat)
	if err := f.rs.RevokeUserBefore(f.ctx, "u", now, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.mustRevoked(true, "", "", "u", iat)
	f.mustRevoked(false, "", "", "u", now)
	p.release()
	f.sync() // and the stream's copy of the same changes agrees
	f.mustRevoked(true, "j", "s", "u", iat)
}

// Revoked is the sidecar's hot path in replica mode: a lookup allocates nothing, hit or miss (BenchmarkCheck's
// one allocation per request assumes it).
func TestReplicaRevokedAllocatesNothing(t *testing.T) {
	clock := newClock()
	s := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), "", clock.now)
	defer s.Close()
	r, _ := s.newReplica(ReplicaOptions{})
	g, err := newGeneration(time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	s.gen.Store(g)
	r.heard.Store(clock.now().UnixNano())
	r.applyLocal(kindJTI, "j", 0, clock.now().Add(time.Hour).UnixMilli())
	r.applyLocal(kindUser, "u", clock.now().UnixMilli(), clock.now().Add(time.Hour).UnixMilli())
	ctx := t.Context()
	iat := clock.now().Add(-time.Minute)
	for _, c := range []struct {
		name           string
		jti, sid, user string
		want           bool
	}{
		{"jti hit", "j", "s", "u", true},
		{"user hit", "x", "s", "u", true},
		{"miss", "x", "s", "v", false},
	} {
		var got bool
		var err error
		allocs := testing.AllocsPerRun(100, func() { got, err = r.Revoked(ctx, c.jti, c.sid, c.user, iat) })
		if err != nil || got != c.want {
			t.Errorf("%s: Revoked = %v, %v; want %v", c.name, got, err, c.want)
		}
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per Revoked, want 0", c.name, allocs)
		}
	}
}
