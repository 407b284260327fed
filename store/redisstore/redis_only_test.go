package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
)

// newStore returns a Store on its own prefix and a raw client to look behind it.
func newStore(t *testing.T, addr string, now func() time.Time) (*redisstore.Store, *redis.Client) {
	t.Helper()
	s, err := redisstore.Open("redis://"+addr, "t:"+t.Name()+":", now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { raw.Close() })
	return s, raw
}

func TestRedisOnly(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	clock := func() time.Time { return time.Now().UTC() }

	// The documented key layout, and expiries sent as absolute times from the injected clock, rounded up to the ms.
	t.Run("KeyLayoutAndExpiry", func(t *testing.T) {
		base := time.Now().UTC().Truncate(time.Millisecond)
		now := func() time.Time { return base }
		s, raw := newStore(t, addr, now)
		p := "t:" + t.Name() + ":"
		until := base.Add(time.Hour).Add(300 * time.Microsecond) // rounds up to the next ms
		untilMs := base.Add(time.Hour).UnixMilli() + 1

		must(t, s.RevokeToken(ctx, "j", until))
		must(t, s.RevokeSession(ctx, "s", until))
		must(t, s.RevokeUserBefore(ctx, "u", base, until))
		must(t, s.CreateSession(ctx, store.Session{ID: "sid", UserID: "u", CreatedAt: base, ExpiresAt: until}))
		_, err := s.Hit(ctx, "k", time.Minute)
		must(t, err)
		must(t, s.Lock(ctx, "k", until))
		must(t, s.PutPendingMFA(ctx, "u", []byte("p"), until))
		must(t, s.PutMFA(ctx, "u", store.MFAEnrollment{Secret: []byte("s"), BackupCodes: []string{"h"}}))
		_, err = s.UseTOTPStep(ctx, "u", 7, until)
		must(t, err)
		_, err = s.Claim(ctx, "c", until)
		must(t, err)

		want := map[string]int64{ // key -> PEXPIRETIME (-1: none)
			"{rev}:jti:j":     untilMs,
			"{rev}:sid:s":     untilMs,
			"{rev}:user:u":    untilMs,
			"sess:sid":        untilMs,
			"usess:u":         untilMs,
			"cnt:k":           base.Add(time.Minute).UnixMilli(),
			"lock:k":          untilMs,
			"mfa:{u}:pending": untilMs,
			"mfa:{u}:enr":     -1,
			"mfa:{u}:backup":  -1,
			"mfa:{u}:step":    untilMs,
			"once:c":          untilMs,
			"{rev}:log":       -1,
			"{rev}:seq":       -1,
		}
		keys, err := raw.Keys(ctx, p+"*").Result()
		must(t, err)
		var got []string
		for _, k := range keys {
			got = append(got, strings.TrimPrefix(k, p))
		}
		slices.Sort(got)
		var wantKeys []string
		for k := range want {
			wantKeys = append(wantKeys, k)
		}
		slices.Sort(wantKeys)
		if !slices.Equal(got, wantKeys) {
			t.Fatalf("keys = %q, want %q", got, wantKeys)
		}
		for k, exp := range want {
			ms, err := raw.Do(ctx, "pexpiretime", p+k).Int64()
			must(t, err)
			if ms != exp {
				t.Errorf("PEXPIRETIME %s = %d, want %d", k, ms, exp)
			}
		}
		if v, _ := raw.Get(ctx, p+"{rev}:user:u").Result(); v != itoa(base.UnixMilli()) {
			t.Errorf("user cut-off stored as %q, want Unix ms %d", v, base.UnixMilli())
		}
	})

	// Only the first hit sets the window's end; later hits (at a later injected time) leave it.
	t.Run("HitWindowFromFirstHit", func(t *testing.T) {
		clock := &stepClock{t: time.Now().UTC().Truncate(time.Millisecond)}
		s, raw := newStore(t, addr, clock.now)
		p := "t:" + t.Name() + ":"
		want := clock.now().Add(time.Minute).UnixMilli()
		for i := range 3 {
			if n, err := s.Hit(ctx, "k", time.Minute); err != nil || n != int64(i+1) {
				t.Fatalf("Hit = %d, %v; want %d", n, err, i+1)
			}
			if got := raw.PExpireTime(ctx, p+"cnt:k").Val().Milliseconds(); got != want {
				t.Errorf("after hit %d the window ends at %d ms, want %d ms", i+1, got, want)
			}
			clock.advance(10 * time.Second)
		}
	})

	// Revocations and the TOTP step record never get shorter (the conformance suite checks this by advancing its
	// clock, which it cannot do here).
	t.Run("KeepsLatestExpiry", func(t *testing.T) {
		base := time.Now().UTC().Truncate(time.Millisecond)
		s, raw := newStore(t, addr, func() time.Time { return base })
		p := "t:" + t.Name() + ":"
		long, short := base.Add(time.Hour), base.Add(time.Minute)
		must(t, s.RevokeToken(ctx, "j", long))
		must(t, s.RevokeToken(ctx, "j", short))
		must(t, s.RevokeSession(ctx, "s", long))
		must(t, s.RevokeSession(ctx, "s", short))
		must(t, s.RevokeUserBefore(ctx, "u", base, long))
		must(t, s.RevokeUserBefore(ctx, "u", base.Add(time.Second), short))
		for _, step := range []int64{1, 2} {
			until := long
			if step == 2 {
				until = short
			}
			if ok, err := s.UseTOTPStep(ctx, "u", step, until); err != nil || !ok {
				t.Fatalf("UseTOTPStep(%d) = %v, %v", step, ok, err)
			}
		}
		for _, k := range []string{"{rev}:jti:j", "{rev}:sid:s", "{rev}:user:u", "mfa:{u}:step"} {
			if got := raw.PExpireTime(ctx, p+k).Val().Milliseconds(); got != long.UnixMilli() {
				t.Errorf("%s expires at %d ms, want the later %d", k, got, long.UnixMilli())
			}
		}
		if v := raw.Get(ctx, p+"{rev}:user:u").Val(); v != strconv.FormatInt(base.Add(time.Second).UnixMilli(), 10) {
			t.Errorf("user cut-off = %s, want the later one", v)
		}
	})

	// With the injected clock an hour behind Redis, "an hour from now" is already over for Redis: the write goes
	// out (the store thinks it is live) and Redis drops it at once. This proves expiries are absolute instants
	// taken from the injected clock, and that Redis, not the store, enforces them.
	t.Run("ExpiryFromInjectedClock", func(t *testing.T) {
		behind := time.Now().Add(-time.Hour)
		s, raw := newStore(t, addr, func() time.Time { return behind })
		p := "t:" + t.Name() + ":"
		must(t, redisstore.SeedGeneration(ctx, raw, p))
		until := behind.Add(time.Minute)
		iat := behind.Add(-time.Minute)

		must(t, s.RevokeToken(ctx, "j", until))
		must(t, s.RevokeSession(ctx, "s", until))
		must(t, s.RevokeUserBefore(ctx, "u", behind, until))
		if r, err := s.Revoked(ctx, "j", "s", "u", iat); err != nil || r {
			t.Errorf("Revoked = %v, %v; want expired revocations", r, err)
		}
		must(t, s.CreateSession(ctx, store.Session{ID: "sid", UserID: "u", CreatedAt: behind, ExpiresAt: until}))
		if _, err := s.GetSession(ctx, "sid"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession: %v, want ErrNotFound", err)
		}
		for range 2 {
			if n, err := s.Hit(ctx, "k", time.Minute); err != nil || n != 1 {
				t.Errorf("Hit = %d, %v; want 1 (window already over)", n, err)
			}
		}
		must(t, s.Lock(ctx, "k", until))
		if lu, err := s.LockedUntil(ctx, "k"); err != nil || !lu.IsZero() {
			t.Errorf("LockedUntil = %v, %v; want zero", lu, err)
		}
		must(t, s.PutPendingMFA(ctx, "u", []byte("p"), until))
		if _, err := s.GetPendingMFA(ctx, "u"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetPendingMFA: %v, want ErrNotFound", err)
		}
		for range 2 {
			if ok, err := s.UseTOTPStep(ctx, "u", 7, until); err != nil || !ok {
				t.Errorf("UseTOTPStep = %v, %v; want true (record already expired)", ok, err)
			}
		}
		for range 2 {
			if ok, err := s.Claim(ctx, "c", until); err != nil || !ok {
				t.Errorf("Claim = %v, %v; want true (claim already expired)", ok, err)
			}
		}
		keys, err := raw.Keys(ctx, p+"*").Result()
		must(t, err)
		slices.Sort(keys)
		if want := []string{p + "{rev}:gen", p + "{rev}:log", p + "{rev}:seq"}; !slices.Equal(keys, want) {
			t.Errorf("keys left behind: %q, want only %q", keys, want)
		}
	})

	// Each revocation trims the events older than the stream retention (WithStreamRetention, the longest token
	// lifetime) by Redis's clock. Trimming is approximate: Redis drops whole stream nodes (up to 100 entries), so
	// a few old events may stay, never a recent one.
	t.Run("StreamTrimmedByAge", func(t *testing.T) {
		p := "t:" + t.Name() + ":"
		s, err := redisstore.Open("redis://"+addr, p, clock, redisstore.WithStreamRetention(time.Hour))
		must(t, err)
		t.Cleanup(func() { s.Close() })
		raw := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { raw.Close() })
		stream := p + "{rev}:log"
		const n = 1000
		recent := time.Now().Add(-time.Minute).UnixMilli()
		_, err = raw.Pipelined(ctx, func(pl redis.Pipeliner) error {
			for i := range n { // from 1970, then from a minute ago
				pl.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: fmt.Sprintf("1-%d", i+1), Values: []any{"n", i}})
			}
			for i := range n {
				pl.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: fmt.Sprintf("%d-%d", recent, i+1), Values: []any{"n", i}})
			}
			return nil
		})
		must(t, err)
		must(t, s.RevokeToken(ctx, "j", time.Now().Add(time.Hour)))
		old, err := raw.XRange(ctx, stream, "-", fmt.Sprintf("%d", recent-1)).Result()
		must(t, err)
		kept, err := raw.XRange(ctx, stream, fmt.Sprintf("%d", recent), "+").Result()
		must(t, err)
		if len(old) > 100 {
			t.Errorf("%d of %d events older than the retention kept, want at most one stream node (100)", len(old), n)
		}
		if len(kept) != n+1 || kept[n].Values["id"] != "j" {
			t.Errorf("%d events within the retention kept, want all %d (the new one included)", len(kept), n+1)
		}
	})

	t.Run("RevokedIsOneRoundTrip", func(t *testing.T) {
		s, raw := newStore(t, addr, clock)
		must(t, redisstore.SeedGeneration(ctx, raw, "t:"+t.Name()+":"))
		var c counter
		// A store over a client we can watch.
		cl := redis.NewClient(&redis.Options{Addr: addr})
		cl.AddHook(&c)
		ws := redisstore.New(cl, "t:"+t.Name()+":", clock)
		t.Cleanup(func() { ws.Close() })
		must(t, s.RevokeUserBefore(ctx, "u", time.Now(), time.Now().Add(time.Hour)))
		must(t, ws.Ping(ctx)) // connect first: the handshake is not ours to count
		c.reset()
		r, err := ws.Revoked(ctx, "j", "s", "u", time.Now().Add(-time.Hour))
		if err != nil || !r {
			t.Fatalf("Revoked = %v, %v; want true", r, err)
		}
		if got := c.get(); !slices.Equal(got, []string{"mget"}) {
			t.Errorf("Revoked sent %q, want one MGET", got)
		}
	})

	t.Run("ListPrunesIndex", func(t *testing.T) {
		s, raw := newStore(t, addr, clock)
		p := "t:" + t.Name() + ":"
		exp := time.Now().Add(time.Hour)
		for _, id := range []string{"a", "b", "c"} {
			must(t, s.CreateSession(ctx, store.Session{ID: id, UserID: "u", CreatedAt: time.Now(), ExpiresAt: exp}))
		}
		must(t, raw.Del(ctx, p+"sess:b").Err()) // as if it expired
		ss, err := s.ListSessions(ctx, "u")
		must(t, err)
		if len(ss) != 2 || ss[0].ID != "a" || ss[1].ID != "c" {
			t.Errorf("ListSessions = %+v, want a, c", ss)
		}
		ids, err := raw.ZRange(ctx, p+"usess:u", 0, -1).Result()
		must(t, err)
		if !slices.Equal(ids, []string{"a", "c"}) {
			t.Errorf("index after list = %q, want [a c]", ids)
		}
		must(t, s.DeleteSession(ctx, "a"))
		ids, err = raw.ZRange(ctx, p+"usess:u", 0, -1).Result()
		must(t, err)
		if !slices.Equal(ids, []string{"c"}) {
			t.Errorf("index after delete = %q, want [c]", ids)
		}
	})

	// Corrupt values are errors (deny), never "not revoked".
	t.Run("CorruptValues", func(t *testing.T) {
		s, raw := newStore(t, addr, clock)
		p := "t:" + t.Name() + ":"
		must(t, redisstore.SeedGeneration(ctx, raw, p))
		must(t, raw.Set(ctx, p+"{rev}:user:u", "not-a-number", time.Hour).Err())
		if _, err := s.Revoked(ctx, "j", "s", "u", time.Now()); err == nil {
			t.Error("Revoked with a corrupt cut-off: no error")
		}
		must(t, raw.Set(ctx, p+"lock:k", "x", time.Hour).Err())
		if _, err := s.LockedUntil(ctx, "k"); err == nil {
			t.Error("LockedUntil with a corrupt lock: no error")
		}
		must(t, raw.Set(ctx, p+"mfa:{u}:enr", "{", 0).Err())
		if _, err := s.GetMFA(ctx, "u"); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetMFA with a corrupt enrollment: %v, want an error", err)
		}
		must(t, raw.Set(ctx, p+"cnt:k", "x", time.Hour).Err())
		if _, err := s.Count(ctx, "k"); err == nil {
			t.Error("Count with a corrupt counter: no error")
		}
	})

	t.Run("DefaultPrefix", func(t *testing.T) {
		cl := redis.NewClient(&redis.Options{Addr: addr})
		s := redisstore.New(cl, "", clock)
		t.Cleanup(func() { s.Close() })
		ok, err := s.Claim(ctx, "default-prefix-check", time.Now().Add(time.Minute))
		if err != nil || !ok {
			t.Fatalf("Claim = %v, %v", ok, err)
		}
		if n := cl.Exists(ctx, redisstore.DefaultPrefix+"once:default-prefix-check").Val(); n != 1 {
			t.Errorf("key not under %q", redisstore.DefaultPrefix)
		}
	})
}

// A dead Redis is an error from every call (callers deny), and the store recovers when Redis is back.
func TestRedisDown(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{})
	s, err := redisstore.Open("redis://"+srv.Addr, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	raw := redis.NewClient(&redis.Options{Addr: srv.Addr})
	must(t, redisstore.SeedGeneration(ctx, raw, ""))
	raw.Close()
	must(t, s.RevokeToken(ctx, "j", time.Now().Add(time.Hour)))
	issued := time.Now().Add(-time.Second)
	if r, err := s.Revoked(ctx, "j", "", "", issued); err != nil || !r {
		t.Fatalf("Revoked before the kill = %v, %v", r, err)
	}

	srv.Kill()
	start := time.Now()
	if _, err := s.Revoked(ctx, "j", "s", "u", time.Now()); err == nil || !strings.HasPrefix(err.Error(), "redisstore: ") {
		t.Errorf("Revoked with Redis down: %v, want a wrapped error", err)
	}
	// Fail fast: go-redis's default dial retries took ~0.8s here. Generous bound for a loaded machine.
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Revoked with Redis down took %v", d)
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with Redis down: no error")
	}

	// Without persistence the revocation is gone. The store answers again, but the token it revoked must not
	// become valid: the generation marker went with the data, so every token issued before now is refused.
	srv.Restart()
	must(t, s.Ping(ctx))
	if r, err := s.Revoked(ctx, "j", "", "", issued); !errors.Is(err, store.ErrStoreReset) || !r {
		t.Errorf("Revoked after a restart that lost the data = %v, %v; want true, ErrStoreReset", r, err)
	}
	// Tokens issued after the reset are fine.
	if r, err := s.Revoked(ctx, "j2", "", "", time.Now().Add(time.Second)); err != nil || r {
		t.Errorf("Revoked of a token issued after the reset = %v, %v", r, err)
	}
}

func TestOpen(t *testing.T) {
	for _, c := range []struct{ name, url string }{
		{"bad scheme", "http://user:hunter2@localhost:6379"},
		{"bad port", "redis://user:hunter2@localhost:port/0"},
		{"bad db", "redis://user:hunter2@localhost:6379/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := redisstore.Open(c.url, "", nil)
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}

	opt, err := redisstore.ClientOptions("redis://:pw@127.0.0.1:6380/3?dial_timeout=30s&max_retries=9&pool_size=1000")
	if err != nil {
		t.Fatal(err)
	}
	if !opt.ContextTimeoutEnabled || opt.DialTimeout != time.Second || opt.ReadTimeout != 200*time.Millisecond ||
		opt.WriteTimeout != 200*time.Millisecond || opt.MaxRetries != 1 || opt.DialerRetries != 1 ||
		opt.PoolSize != 10*runtime.GOMAXPROCS(0) {
		t.Errorf("ClientOptions did not apply our limits: %+v", opt)
	}
	if opt.Addr != "127.0.0.1:6380" || opt.DB != 3 || opt.Password != "pw" {
		t.Errorf("ClientOptions lost the URL: addr %q db %d", opt.Addr, opt.DB)
	}

	s, err := redisstore.Open("redis://127.0.0.1:1/0", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping of a closed port: no error")
	}
}

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type counter struct {
	mu   sync.Mutex
	cmds []string
}

func (c *counter) reset() { c.mu.Lock(); c.cmds = nil; c.mu.Unlock() }
func (c *counter) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.cmds)
}
func (c *counter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.cmds = append(c.cmds, cmd.Name())
		c.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (c *counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		c.cmds = append(c.cmds, "pipeline")
		c.mu.Unlock()
		return next(ctx, cmds)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Concurrent Revoked calls share pipelines; each still gets its own answer, and a closed store fails fast.
func TestRevokedConcurrentCallsAnswerEach(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	s, raw := newStore(t, addr, func() time.Time { return time.Now() })
	must(t, redisstore.SeedGeneration(ctx, raw, "t:"+t.Name()+":"))
	const n = 200
	for i := 0; i < n; i += 3 {
		must(t, s.RevokeToken(ctx, itoa(int64(i)), time.Now().Add(time.Hour)))
	}
	iat := time.Now().Add(-time.Minute)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			r, err := s.Revoked(ctx, itoa(int64(i)), "s", "u", iat)
			if err != nil || r != (i%3 == 0) {
				errs <- fmt.Errorf("Revoked(%d) = %v, %v", i, r, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s.Close()
	if _, err := s.Revoked(ctx, "1", "", "", iat); err == nil {
		t.Error("Revoked on a closed store: no error")
	}
}
