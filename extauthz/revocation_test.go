package extauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"gatehouse/store"
	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
	"gatehouse/token"
)

// fixedRevocations answers every lookup the same way and records whether the lookup had a deadline.
type fixedRevocations struct {
	revoked     bool
	err         error
	local       bool
	hadDeadline atomic.Bool
}

func (f *fixedRevocations) Revoked(ctx context.Context, _, _, _ string, _ time.Time) (bool, error) {
	_, ok := ctx.Deadline()
	f.hadDeadline.Store(ok)
	return f.revoked, f.err
}

// localFixed is fixedRevocations declaring itself local.
type localFixed struct{ *fixedRevocations }

func (localFixed) Local() bool { return true }

// Each answer of the revocation lookup maps to one status and reason; public routes never consult it.
func TestRevocationOutcomes(t *testing.T) {
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "user"))
	for _, c := range []struct {
		name       string
		revoked    bool
		err        error
		wantStatus int
		wantReason string
		wantCode   codes.Code
	}{
		{"not revoked", false, nil, 200, "allowed", codes.OK},
		{"revoked", true, nil, 401, ReasonTokenRevoked, codes.Unauthenticated},
		{"store reset", true, store.ErrStoreReset, 401, ReasonStoreReset, codes.Unauthenticated},
		{"wrapped store reset", true, fmt.Errorf("x: %w", store.ErrStoreReset), 401, ReasonStoreReset, codes.Unauthenticated},
		{"stale replica", false, store.ErrStale, 503, ReasonRevocationStale, codes.Unavailable},
		{"store down", false, errors.New("dial tcp: connection refused"), 503, ReasonStoreUnavailable, codes.Unavailable},
		{"store down but says revoked", true, errors.New("i/o timeout"), 503, ReasonStoreUnavailable, codes.Unavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := h.serverWith(t, &fixedRevocations{revoked: c.revoked, err: c.err})
			resp, err := srv.Check(context.Background(), NewCheckRequest("GET", "api.example.com", "/me", bearer(tok)))
			if err != nil {
				t.Fatal(err)
			}
			if httpStatus(resp) != c.wantStatus || reason(resp) != c.wantReason || codes.Code(resp.GetStatus().GetCode()) != c.wantCode {
				t.Fatalf("got %d %s %v, want %d %s %v", httpStatus(resp), reason(resp),
					codes.Code(resp.GetStatus().GetCode()), c.wantStatus, c.wantReason, c.wantCode)
			}
			if c.wantStatus == 401 && !hasHeader(resp.GetDeniedResponse().GetHeaders(), "www-authenticate", `Bearer error="invalid_token"`) {
				t.Error("401 without www-authenticate")
			}
			pub, _ := srv.Check(context.Background(), NewCheckRequest("POST", "api.example.com", "/auth/login", bearer(tok)))
			if httpStatus(pub) != 200 {
				t.Errorf("public route: %d %s", httpStatus(pub), reason(pub))
			}
		})
	}
}

// The per-request deadline exists for network lookups; local ones skip it (it allocates).
func TestLocalRevocationsHaveNoDeadline(t *testing.T) {
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "user"))
	remote := &fixedRevocations{}
	local := &fixedRevocations{}
	for _, c := range []struct {
		name string
		r    Revocations
		f    *fixedRevocations
		want bool
	}{
		{"remote", remote, remote, true},
		{"local", localFixed{local}, local, false},
	} {
		srv := h.serverWith(t, c.r)
		_, _ = srv.Check(context.Background(), NewCheckRequest("GET", "a", "/me", bearer(tok)))
		if got := c.f.hadDeadline.Load(); got != c.want {
			t.Errorf("%s: lookup had a deadline = %v, want %v", c.name, got, c.want)
		}
	}
}

// Rendered responses are shared, so they must be right for every caller and rule, and never change.
func TestRenderedResponsesAreSharedSafely(t *testing.T) {
	h := newHarness(t)
	alice := h.claims(token.Access, "user")
	bob := h.claims(token.Access, "admin")
	bob.Subject, bob.Username = "u-2002", "bob"
	tokA, tokB := h.sign(alice), h.sign(bob)

	type call struct {
		tok, method, path  string
		wantRule, wantUser string
	}
	calls := []call{
		{tokA, "GET", "/me", "me", "u-1001"},
		{tokB, "GET", "/me", "me", "u-2002"},
		{tokA, "GET", "/users/profile", "profile", "u-1001"},
		{tokA, "GET", "/me", "me", "u-1001"},
		{tokB, "DELETE", "/admin/users/7", "delete-user", "u-2002"},
		{tokB, "GET", "/me", "me", "u-2002"},
	}
	type returned struct{ resp, snapshot proto.Message }
	var first []returned
	for round := range 2 {
		for i, c := range calls {
			resp := h.check(c.method, "api.example.com", c.path, bearer(c.tok))
			if httpStatus(resp) != 200 || rule(resp) != c.wantRule {
				t.Fatalf("call %d: %d %s rule %s", i, httpStatus(resp), reason(resp), rule(resp))
			}
			got := ""
			for _, hv := range resp.GetOkResponse().GetHeaders() {
				if hv.GetHeader().GetKey() == "x-user-id" {
					got = hv.GetHeader().GetValue()
				}
			}
			if got != c.wantUser {
				t.Errorf("round %d call %d: x-user-id %q, want %q", round, i, got, c.wantUser)
			}
			if round == 0 {
				first = append(first, returned{resp, proto.Clone(resp)})
			}
		}
	}
	for i, f := range first {
		if !proto.Equal(f.resp, f.snapshot) {
			t.Errorf("response %d changed after it was returned", i)
		}
	}

	// Denials are shared per (rule, status, reason) and carry their own rule.
	d1 := h.check("GET", "api.example.com", "/me", nil)
	d2 := h.check("GET", "api.example.com", "/users/profile", nil)
	if d1 == d2 || rule(d1) != "me" || rule(d2) != "profile" || reason(d1) != ReasonTokenMissing {
		t.Errorf("denials: %s/%s %s/%s", rule(d1), reason(d1), rule(d2), reason(d2))
	}
	if again := h.check("GET", "api.example.com", "/me", nil); again != d1 {
		t.Error("the same denial was rendered twice")
	}

	// A new policy version renders its own responses.
	h.srv.SetPolicy(mustCompile(t, strings.Replace(testPolicy, "name: me", "name: me2", 1)))
	if r := h.check("GET", "api.example.com", "/me", bearer(tokA)); rule(r) != "me2" {
		t.Errorf("after SetPolicy: rule %s", rule(r))
	}
	if r := h.check("GET", "api.example.com", "/me", nil); rule(r) != "me2" {
		t.Errorf("denial after SetPolicy: rule %s", rule(r))
	}
}

// Memory per cached token, measured: the basis of the figures in cache.go's comment.
func TestCacheMemoryPerEntry(t *testing.T) {
	const n = 100_000
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "user", "guest"))
	cache := newClaimsCache(2 * n) // per-shard limits: twice the size so that nothing is evicted
	now := h.now
	clone := strings.Clone
	// Token strings and claims as decoding builds them: every string its own allocation.
	mk := func(i int) (string, *token.Claims) {
		raw := fmt.Sprintf("%s%08d", tok[:len(tok)-8], i)
		cl := &token.Claims{Type: token.Access, Issuer: clone(testIssuer), Subject: fmt.Sprintf("u-%06d", i),
			Audience: clone(testAudience), ID: fmt.Sprintf("%022d", i), SessionID: fmt.Sprintf("s%021d", i),
			Username: fmt.Sprintf("user%06d", i), Roles: []string{clone("user"), clone("guest")},
			IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
		return raw, cl
	}
	before := heapInUse()
	for i := range n {
		raw, cl := mk(i)
		key := keyOf(raw)
		cache.put(&key, cl, now)
	}
	used := heapInUse() - before
	per := float64(used) / n
	t.Logf("claims cache: %d-byte tokens: %.0f B per entry (%d entries: %.1f MiB)", len(tok), per, n, float64(used)/(1<<20))
	if cache.len() != n {
		t.Fatalf("cache holds %d, want %d", cache.len(), n)
	}
	if per > 600 {
		t.Errorf("%.0f B per entry; budget 600", per)
	}
	runtime.KeepAlive(cache)
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// Concurrent Checks while revocations stream into a replica (run with -race): every revoked token is denied once
// the replica caught up, and no token allowed again after its revocation was seen.
func TestReplicaUnderConcurrentChecks(t *testing.T) {
	addr := redistest.Start(t)
	h := newHarness(t)
	ctx := t.Context()
	clock := func() time.Time { return time.Now() }
	quiet := redisstore.WithLogger(slog.New(slog.DiscardHandler))
	writer, err := redisstore.Open("redis://"+addr, "x:", clock, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })
	rs, err := redisstore.Open("redis://"+addr, "x:", clock, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	replica := rs.StartReplica(redisstore.ReplicaOptions{Poll: 100 * time.Millisecond})
	t.Cleanup(func() { replica.Close() })
	if err := replica.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Tokens issued now, by the real clock: the replica's generation began just before.
	h.now = time.Now().Add(time.Second).Truncate(time.Second)
	srv := h.serverWith(t, replica)
	if !srv.revLocal {
		t.Fatal("the replica must be local")
	}

	const n = 64
	toks := make([]string, n)
	for i := range toks {
		c := h.claims(token.Access, "user")
		c.ID = fmt.Sprint("jti-", i)
		toks[i] = h.sign(c)
	}
	var revokedSeen [n]atomic.Bool
	var flips, unexpected atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; ; i = (i + 1) % n {
				select {
				case <-stop:
					return
				default:
				}
				// Only a Check that starts after a denial was seen must deny: one that started earlier may
				// legitimately answer from before the revocation arrived.
				seenBefore := revokedSeen[i].Load()
				resp, _ := srv.Check(ctx, NewCheckRequest("GET", "a", "/me", bearer(toks[i])))
				switch r := reason(resp); r {
				case "allowed":
					if seenBefore {
						flips.Add(1)
					}
				case ReasonTokenRevoked:
					revokedSeen[i].Store(true)
				case ReasonRevocationStale: // a starved follower on a loaded machine; not an answer
				default:
					unexpected.Add(1)
				}
			}
		})
	}
	for i := 0; i < n; i += 2 {
		if err := writer.RevokeToken(ctx, fmt.Sprint("jti-", i), h.now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := replica.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	for i, tok := range toks {
		want := "allowed"
		if i%2 == 0 {
			want = ReasonTokenRevoked
		}
		if r := reason(h.checkWith(srv, tok)); r != want {
			t.Errorf("token %d: %s, want %s", i, r, want)
		}
	}
	if flips.Load() != 0 || unexpected.Load() != 0 {
		t.Errorf("%d allows after a revocation was seen, %d unexpected reasons", flips.Load(), unexpected.Load())
	}
}

func (h *harness) checkWith(srv *Server, tok string) *authv3.CheckResponse {
	h.t.Helper()
	resp, err := srv.Check(context.Background(), NewCheckRequest("GET", "a", "/me", bearer(tok)))
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// The hot path's allocation budget (BenchmarkCheck measures the same): denials and public allows are rendered
// once per policy version; an authenticated allow allocates its identity headers once.
func TestCheckAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	h := newHarness(t)
	h.srv.log = slog.New(slog.DiscardHandler)
	ctx := context.Background()
	tok := h.sign(h.claims(token.Access, "user"))
	for _, c := range []struct {
		name string
		req  *authv3.CheckRequest
		want float64
	}{
		{"authenticated allow", NewCheckRequest("GET", "api.example.com", "/me", bearer(tok)), 1},
		{"public allow", NewCheckRequest("POST", "api.example.com", "/auth/login", nil), 0},
		{"no token", NewCheckRequest("GET", "api.example.com", "/me", nil), 0},
		{"forbidden", NewCheckRequest("DELETE", "api.example.com", "/admin/users/1", bearer(tok)), 0},
		{"no route", NewCheckRequest("GET", "api.example.com", "/nowhere", bearer(tok)), 0},
	} {
		_, _ = h.srv.Check(ctx, c.req) // render and cache first
		if got := testing.AllocsPerRun(100, func() { _, _ = h.srv.Check(ctx, c.req) }); got > c.want {
			t.Errorf("%s: %.1f allocations per Check, want <= %.0f", c.name, got, c.want)
		}
	}
}

// Strict mode against a Redis that stops answering (SIGSTOP): a Check answers 503 store_unavailable once
// RevocationTimeout passes, not only when the store's own I/O timeouts (200 ms per read or write) give up, and it
// allows again once Redis is back.
func TestStrictLookupTimesOutOnAHungRedis(t *testing.T) {
	rds := redistest.StartServer(t, redistest.Options{})
	h := newHarness(t)
	clock := func() time.Time { return time.Now() }
	rs, err := redisstore.Open("redis://"+rds.Addr, "x:", clock, redisstore.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	h.now = time.Now().Add(time.Second).Truncate(time.Second) // tokens issued after the store's generation began
	srv := h.server(t, func(c *Config) {
		c.Revocations, c.Logger, c.RevocationTimeout = rs, slog.New(slog.DiscardHandler), 20*time.Millisecond
	})
	if srv.revLocal {
		t.Fatal("the Redis store must not count as local")
	}
	req := NewCheckRequest("GET", "api.example.com", "/me", bearer(h.sign(h.claims(token.Access, "user"))))
	if resp, _ := srv.Check(context.Background(), req); httpStatus(resp) != 200 {
		t.Fatalf("before the pause: %d %s", httpStatus(resp), reason(resp))
	}

	rds.Pause()
	resumed := false
	defer func() {
		if !resumed {
			rds.Resume()
		}
	}()
	start := time.Now()
	resp, _ := srv.Check(context.Background(), req)
	took := time.Since(start)
	if httpStatus(resp) != 503 || reason(resp) != ReasonStoreUnavailable {
		t.Fatalf("with Redis hung: %d %s, want 503 %s", httpStatus(resp), reason(resp), ReasonStoreUnavailable)
	}
	if took >= 150*time.Millisecond {
		t.Errorf("answered after %v: the revocation timeout (20ms) did not bound the lookup", took)
	}

	rds.Resume()
	resumed = true
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := srv.Check(context.Background(), req)
		if httpStatus(resp) == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Redis resumed: still %d %s", httpStatus(resp), reason(resp))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
