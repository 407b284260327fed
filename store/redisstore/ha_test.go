package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/conformance"
	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
)

// The whole suite, strict and replica mode, on a three-master Redis Cluster (every multi-key command stays in one
// slot), and what is special about a cluster.
func TestCluster(t *testing.T) {
	target := redisstore.Target{Cluster: &redisstore.Cluster{Addrs: redistest.StartCluster(t)}}
	t.Run("ConformanceStrict", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T, now func() time.Time) conformance.Backend {
			return openTargetSeeded(t, target, now)
		})
	})
	t.Run("ConformanceReplica", func(t *testing.T) {
		conformance.Run(t, func(t *testing.T, now func() time.Time) conformance.Backend {
			s := openTargetSeeded(t, target, now)
			return replicaBackend{Store: s, r: s.StartReplica(redisstore.ReplicaOptions{})}
		})
	})

	ctx := t.Context()
	now := func() time.Time { return time.Now() }
	t.Run("RevokedIsOneMGET", func(t *testing.T) {
		cl, err := redisstore.NewClient(target)
		if err != nil {
			t.Fatal(err)
		}
		var c counter
		cl.AddHook(&c)
		s := redisstore.New(cl, "t:"+t.Name()+":", now)
		t.Cleanup(func() { s.Close() })
		must(t, redisstore.SeedGeneration(ctx, cl, "t:"+t.Name()+":"))
		must(t, s.RevokeUserBefore(ctx, "u", time.Now(), time.Now().Add(time.Hour)))
		c.reset()
		if r, err := s.Revoked(ctx, "j", "s", "u", time.Now().Add(-time.Hour)); err != nil || !r {
			t.Fatalf("Revoked = %v, %v; want true", r, err)
		}
		if got := c.get(); !slices.Equal(got, []string{"mget"}) {
			t.Errorf("Revoked sent %q, want one MGET", got)
		}
	})
	// WAIT goes to the master of the revocation slot; it has no replica here, so the write is not confirmed.
	t.Run("WaitReplicas", func(t *testing.T) {
		s := openTargetSeeded(t, target, now, redisstore.WithWaitReplicas(1, 50*time.Millisecond))
		t.Cleanup(func() { s.Close() })
		if err := s.RevokeToken(ctx, "j", time.Now().Add(time.Hour)); !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Errorf("RevokeToken = %v, want ErrNotReplicated", err)
		}
	})
	// AOF counts as on only when every master has it. Last: it changes the servers.
	t.Run("PersistenceAsksEveryMaster", func(t *testing.T) {
		s, err := redisstore.OpenTarget(target, "", now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		for i, addr := range target.Cluster.Addrs {
			if p, err := s.Persistence(ctx); err != nil || p.AOF {
				t.Errorf("with AOF on %d of 3 masters: %+v, %v; want off", i, p, err)
			}
			c := redis.NewClient(&redis.Options{Addr: addr})
			must(t, c.ConfigSet(ctx, "appendonly", "yes").Err())
			c.Close()
		}
		if p, err := s.Persistence(ctx); err != nil || !p.AOF {
			t.Errorf("with AOF on every master: %+v, %v; want on", p, err)
		}
	})
}

// The suite on a Sentinel group, through the failover client, with every revocation confirmed by the replica.
func TestSentinelConformance(t *testing.T) {
	master, sentinels, _ := redistest.StartSentinel(t)
	target := redisstore.Target{Sentinel: &redisstore.Sentinel{Master: master, Addrs: sentinels}}
	conformance.Run(t, func(t *testing.T, now func() time.Time) conformance.Backend {
		return openTargetSeeded(t, target, now, redisstore.WithWaitReplicas(1, time.Second))
	})
}

// With WithWaitReplicas a revocation is acknowledged only once a replica has it. A replica that stops answering
// (SIGSTOP) makes revocations fail, including a retry that finds the revocation already in place (it must not be
// confirmed on the strength of a write no replica has), while a store that does not wait acknowledges at once:
// exactly the write a failover can lose.
func TestWaitReplicasRefusesUnconfirmedWrites(t *testing.T) {
	primary := redistest.StartServer(t, redistest.Options{})
	replica := redistest.StartServer(t, redistest.Options{ReplicaOf: primary.Addr})
	redistest.WaitInSync(t, replica.Addr)
	ctx := t.Context()
	prefix := "t:" + t.Name() + ":"
	open := func(n int) *redisstore.Store {
		s, err := redisstore.Open("redis://"+primary.Addr, prefix, time.Now, redisstore.WithWaitReplicas(n, 100*time.Millisecond),
			redisstore.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s, other, noWait := open(1), open(1), open(0)
	until := time.Now().Add(time.Hour)
	must(t, s.RevokeToken(ctx, "j0", until))

	replica.Pause()
	t.Cleanup(replica.Resume) // before the Kill registered by StartServer
	for name, revoke := range map[string]func(*redisstore.Store) error{
		"token":   func(s *redisstore.Store) error { return s.RevokeToken(ctx, "j1", until) },
		"session": func(s *redisstore.Store) error { return s.RevokeSession(ctx, "s1", until) },
		"user":    func(s *redisstore.Store) error { return s.RevokeUserBefore(ctx, "u1", time.Now(), until) },
	} {
		if err := revoke(s); !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Errorf("revoke %s with the replica paused: %v, want ErrNotReplicated", name, err)
		}
		// Another connection (a retry on another instance) finds it in place already.
		if err := revoke(other); !errors.Is(err, redisstore.ErrNotReplicated) {
			t.Errorf("retried revoke %s with the replica paused: %v, want ErrNotReplicated", name, err)
		}
	}
	must(t, noWait.RevokeToken(ctx, "j2", until))

	replica.Resume()
	must(t, other.RevokeToken(ctx, "j1", until))
	must(t, other.RevokeSession(ctx, "s1", until))
	must(t, other.RevokeUserBefore(ctx, "u1", time.Now(), until))
}

// A failover under load: a writer revokes tokens without pause (as the issuer would, with wait_replicas 1), the
// primary is killed, the sentinels promote the replica, and the killed server comes back as its replica.
//
// (a) Every revocation acknowledged, before or after the kill, is revoked on the new primary (strict mode) and in
// a replica follower that lived through the failover; none comes back as a store reset.
// (b) Revocation checks answer again through the Sentinel client once the replica is promoted; writes fail
// closed (ErrNotReplicated) while no replica is connected, and succeed again once one is.
func TestSentinelFailoverKeepsAcknowledgedRevocations(t *testing.T) {
	_, sentinels, g := redistest.StartSentinel(t)
	target := redisstore.Target{Sentinel: &redisstore.Sentinel{Master: g.Master, Addrs: sentinels}}
	ctx := t.Context()
	quiet := redisstore.WithLogger(slog.New(slog.DiscardHandler))
	writer := openTargetSeeded(t, target, time.Now, redisstore.WithWaitReplicas(1, 200*time.Millisecond))
	t.Cleanup(func() { writer.Close() })
	sidecar, err := redisstore.OpenTarget(target, "test:"+t.Name()+":", time.Now, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sidecar.Close() })
	follower := sidecar.StartReplica(redisstore.ReplicaOptions{MaxStaleness: time.Second})
	t.Cleanup(func() { follower.Close() })
	iat := time.Now().Add(-time.Minute)

	var mu sync.Mutex
	var acked []string
	var failed int
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			jti := fmt.Sprint("j", i)
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			err := writer.RevokeToken(wctx, jti, time.Now().Add(time.Hour))
			cancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, jti)
			} else {
				failed++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(10 * time.Millisecond) // a client's retry pause, not a wait for time to pass
			}
		}
	}()
	waitFor(t, "50 acknowledged revocations", 10*time.Second, func() bool { return ackedCount() >= 50 })

	old := g.Primary.Addr
	g.Primary.Kill()
	killed := time.Now()
	ackedAtKill := ackedCount()

	// (b) Checks answer again once the sentinels promoted the replica and the client followed them.
	waitFor(t, "a revocation check to answer after the kill", 20*time.Second, func() bool {
		r, err := writer.Revoked(ctx, "j0", "", "", iat)
		return err == nil && r
	})
	readsBack := time.Since(killed)
	primary := g.WaitFailover(t, old)
	if primary != g.Replica.Addr {
		t.Fatalf("sentinels promoted %s, want the replica %s", primary, g.Replica.Addr)
	}
	// Alone, the new primary cannot confirm writes: they fail closed.
	waitFor(t, "a write refused as unreplicated", 10*time.Second, func() bool {
		return errors.Is(writer.RevokeToken(ctx, "probe", time.Now().Add(time.Hour)), redisstore.ErrNotReplicated)
	})
	g.Primary.RestartAsReplicaOf(primary)
	rejoined := time.Now()
	redistest.WaitInSync(t, g.Primary.Addr)
	before := ackedCount()
	waitFor(t, "writes to be acknowledged again", 10*time.Second, func() bool { return ackedCount() >= before+20 })
	writesBack := time.Since(rejoined)
	close(stop)
	<-stopped

	mu.Lock()
	all := slices.Clone(acked)
	nFailed := failed
	mu.Unlock()
	t.Logf("%d revocations acknowledged (%d before the kill), %d refused; reads back %v after the kill, writes %v after the old primary rejoined as a replica",
		len(all), ackedAtKill, nFailed, readsBack.Round(time.Millisecond), writesBack.Round(time.Millisecond))

	// (a) Nothing acknowledged was lost, in strict mode and in the follower.
	for _, jti := range all {
		if r, err := writer.Revoked(ctx, jti, "", "", iat); err != nil || !r {
			t.Errorf("strict Revoked(%s) after the failover = %v, %v; want true", jti, r, err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := follower.Sync(sctx); err != nil {
		t.Fatalf("follower did not catch up after the failover: %v (%+v)", err, follower.Stats())
	}
	for _, jti := range all {
		if r, err := follower.Revoked(ctx, jti, "", "", iat); err != nil || !r {
			t.Errorf("follower Revoked(%s) after the failover = %v, %v; want true", jti, r, err)
		}
	}
	if r, err := follower.Revoked(ctx, "never-revoked", "", "", iat); err != nil || r {
		t.Errorf("follower Revoked(never-revoked) = %v, %v; want false", r, err)
	}
	t.Logf("follower: %+v (Loads 1: it resumed from its last stream id; 2: it reloaded)", follower.Stats())
}

// waitFor polls cond every 20ms until it holds, failing the test after d.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
