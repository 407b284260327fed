package redistest_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

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
