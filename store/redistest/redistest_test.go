package redistest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store/redistest"
)

func TestStartKillRestart(t *testing.T) {
	for _, c := range []struct {
		name     string
		aof      bool
		wantKept bool
	}{
		{"no persistence", false, false},
		{"appendonly", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := redistest.StartServer(t, redistest.Options{AppendOnly: c.aof})
			cl := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1})
			t.Cleanup(func() { cl.Close() })
			ctx := t.Context()
			if err := cl.Set(ctx, "k", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			srv.Kill()
			if err := cl.Ping(ctx).Err(); err == nil {
				t.Fatal("PING answered after Kill")
			}
			srv.Restart()
			n, err := cl.Exists(ctx, "k").Result()
			if err != nil {
				t.Fatal(err)
			}
			if kept := n == 1; kept != c.wantKept {
				t.Errorf("key kept across restart = %v, want %v", kept, c.wantKept)
			}
		})
	}
}

func TestStartReturnsAddr(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	if a == b {
		t.Fatalf("two servers on %s", a)
	}
	for _, addr := range []string{a, b} {
		cl := redis.NewClient(&redis.Options{Addr: addr})
		if err := cl.Ping(t.Context()).Err(); err != nil {
			t.Errorf("PING %s: %v", addr, err)
		}
		cl.Close()
	}
}

// fakeTB records how Start gives up; every other TB method panics (it must not be reached).
type fakeTB struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) {
	f.failed, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}

func TestMissingServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server here
	for _, c := range []struct {
		ci                string
		wantSkip, wantErr bool
	}{
		{ci: "", wantSkip: true},
		{ci: "true", wantErr: true},
	} {
		t.Run("CI="+c.ci, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			f := &fakeTB{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				redistest.Start(f)
			}()
			<-done
			if f.skipped != c.wantSkip || f.failed != c.wantErr {
				t.Errorf("skipped=%v failed=%v, want %v %v", f.skipped, f.failed, c.wantSkip, c.wantErr)
			}
			if !strings.Contains(f.msg, "apt-get install redis-server") {
				t.Errorf("message %q does not say how to install redis-server", f.msg)
			}
		})
	}
}

func TestStartCluster(t *testing.T) {
	addrs := redistest.StartCluster(t)
	if len(addrs) != 3 {
		t.Fatalf("got %d nodes", len(addrs))
	}
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { cl.Close() })
	ctx := t.Context()
	// Keys in different slots land on different masters, and every one of them answers.
	for i := range 30 {
		k := fmt.Sprint("k", i)
		if err := cl.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var masters, keys int
	var mu sync.Mutex
	err := cl.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		mu.Lock()
		masters, keys = masters+1, keys+int(n)
		mu.Unlock()
		return err
	})
	if err != nil || masters != 3 || keys != 30 {
		t.Errorf("masters %d, keys %d, err %v; want 3 masters holding 30 keys", masters, keys, err)
	}
}

func TestStartSentinel(t *testing.T) {
	master, sentinels, g := redistest.StartSentinel(t)
	if len(sentinels) != 3 || g.Primary == nil || g.Replica == nil {
		t.Fatalf("group %+v", g)
	}
	cl := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: master, SentinelAddrs: sentinels})
	t.Cleanup(func() { cl.Close() })
	ctx := t.Context()
	// WAIT counts the replicas that have this connection's writes.
	conn := cl.Conn()
	defer conn.Close()
	if err := conn.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Wait(ctx, 1, 5*time.Second).Result(); err != nil || n != 1 {
		t.Errorf("WAIT 1 = %d, %v; want the replica to acknowledge", n, err)
	}
	p, err := g.PrimaryAddr(ctx)
	if err != nil || p != g.Primary.Addr {
		t.Errorf("PrimaryAddr = %q, %v; want %s", p, err, g.Primary.Addr)
	}
}
