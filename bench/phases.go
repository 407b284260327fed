package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"gatehouse/store/redisstore"
)

// throughput measures the floor and Gatehouse in both revocation modes at each concurrency, interleaving the
// targets round by round so that drift on a shared machine spreads over all of them.
func throughput(ctx context.Context, o options, f *fixture, dir string, out io.Writer) error {
	rds, err := startRedis(dir, clientCPU)
	if err != nil {
		return err
	}
	defer rds.stop()
	if err := seedRedis(ctx, rds.addr, o.backgroundRevocations); err != nil {
		return err
	}
	noop, err := startNoop(o.noop, dir, serverCPU)
	if err != nil {
		return err
	}
	defer noop.stop()
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	targets := []*target{}
	ft, err := dial("floor (no-op)", noop)
	if err != nil {
		return err
	}
	targets = append(targets, ft)
	for _, mode := range []string{"replica", "strict"} {
		cfg, addr, err := f.config(rds.addr, mode)
		if err != nil {
			return err
		}
		p, err := startGatehouse(o.gatehouse, dir, "gatehouse-"+mode, serverCPU, cfg, addr)
		if err != nil {
			return err
		}
		procs = append(procs, p)
		t, err := dial("gatehouse "+mode, p)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	defer func() {
		for _, t := range targets {
			t.close()
		}
	}()

	toks, err := f.tokens(o.tokens, "bench-")
	if err != nil {
		return err
	}
	reqs := f.requests(toks, 4*o.tokens)
	for _, t := range targets {
		if err := warm(t, reqs, 16); err != nil {
			return err
		}
	}
	raw, err := encodeRequests(reqs)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "throughput: %d tokens, %d-route policy, %d background revocations, %v per run, %d rounds, %d connections per target\n",
		o.tokens, o.routes, o.backgroundRevocations, o.duration, o.rounds, connsPerTarget)

	results := map[string]*result{}
	var order []*result
	for round := range o.rounds {
		for _, conc := range o.concurrency {
			for i := range targets {
				t := targets[(i+round)%len(targets)] // rotate who goes first
				key := fmt.Sprint(t.name, conc)
				r := results[key]
				if r == nil {
					r = &result{target: t.name, conc: conc}
					results[key] = r
				}
				r.add(drive(t, raw, conc, o.duration, true))
			}
		}
	}
	for _, conc := range o.concurrency {
		for _, t := range targets {
			order = append(order, results[fmt.Sprint(t.name, conc)])
		}
	}
	fmt.Fprintln(out)
	table(out, order, ft.name)
	fmt.Fprintln(out)

	var paced []*result
	if o.pacedRate > 0 {
		fmt.Fprintf(out, "paced: %d workers sending %.0f requests/s in all on fixed schedules, %v per run, %d rounds\n",
			pacedConcurrency, o.pacedRate, o.duration, o.rounds)
		paced = make([]*result, len(targets))
		for i, t := range targets {
			paced[i] = &result{target: t.name, conc: pacedConcurrency}
		}
		for round := range o.rounds {
			for i := range targets {
				j := (i + round) % len(targets)
				paced[j].add(pace(targets[j], raw, pacedConcurrency, o.pacedRate, o.duration, true))
			}
		}
		pacedTable(out, paced)
		fmt.Fprintln(out)
	}
	verdicts(out, order, paced, ft.name)
	fmt.Fprintln(out)
	return nil
}

// pacedConcurrency is the concurrency for the p99 target.
const pacedConcurrency = 16

// verdicts prints the targets against what was measured.
func verdicts(w io.Writer, rs, paced []*result, floor string) {
	base := map[int]*result{}
	for _, r := range rs {
		if r.target == floor {
			base[r.conc] = r
		}
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, r := range rs {
		b := base[r.conc]
		if b == nil || r == b {
			continue
		}
		want := 90.0
		if strings.HasSuffix(r.target, "strict") {
			want = 60
		}
		ratio := 100 * r.rps() / b.rps()
		capacity := 100 * float64(b.cpuPerRequest()) / float64(r.cpuPerRequest())
		fmt.Fprintf(w, "target %-17s c=%-3d >= %2.0f%% of the floor: req/s %5.1f%% (%s), capacity %5.1f%% (%s)\n",
			r.target, r.conc, want, ratio, met(ratio >= want), capacity, met(capacity >= want))
		if r.conc == 16 {
			p99 := percentile(r.latencies, 99)
			fmt.Fprintf(w, "target %-17s c=16  p99 <= 1ms: %s (%s) at full load, floor %s\n", r.target, fmtDur(p99),
				met(p99 <= time.Millisecond), fmtDur(percentile(b.latencies, 99)))
		}
	}
	for _, r := range paced {
		if r.target != floor {
			p99 := percentile(r.latencies, 99)
			fmt.Fprintf(w, "target %-17s c=16  p99 <= 1ms: %s (%s) paced\n", r.target, fmtDur(p99), met(p99 <= time.Millisecond))
		}
	}
}

// propagation measures, for each of n revocations written through the issuer's store, the time until every one
// of the sidecars denies the token.
func propagation(ctx context.Context, o options, f *fixture, dir string, out io.Writer) error {
	rds, err := startRedis(dir, clientCPU)
	if err != nil {
		return err
	}
	defer rds.stop()
	if err := seedRedis(ctx, rds.addr, 0); err != nil {
		return err
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.close()
			t.p.stop()
		}
	}()
	for i := range o.sidecars {
		cfg, addr, err := f.config(rds.addr, "replica")
		if err != nil {
			return err
		}
		p, err := startGatehouse(o.gatehouse, dir, fmt.Sprintf("sidecar-%d", i+1), serverCPU, cfg, addr)
		if err != nil {
			return err
		}
		t, err := dial(fmt.Sprintf("sidecar-%d", i+1), p)
		if err != nil {
			p.stop()
			return err
		}
		targets = append(targets, t)
	}
	issuer, err := redisstore.Open("redis://"+rds.addr, redisPrefix, time.Now,
		redisstore.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	defer issuer.Close()

	toks, err := f.tokens(o.logouts, "logout-")
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(3, 4))
	reqs := make([]*authv3.CheckRequest, len(toks))
	for i, tok := range toks {
		reqs[i] = checkRequest("GET", fmt.Sprintf("/svc-%d/items/1/detail", i%o.routes), tok, rng)
	}
	for _, t := range targets {
		if err := warm(t, reqs, 8); err != nil {
			return err
		}
	}
	all := make([]time.Duration, 0, len(toks))
	perSidecar := make([][]time.Duration, len(targets))
	for i := range toks {
		t0 := time.Now()
		if err := issuer.RevokeToken(ctx, fmt.Sprintf("logout-%06d", i), time.Now().Add(2*time.Hour)); err != nil {
			return err
		}
		lat := make([]time.Duration, len(targets))
		errs := make([]error, len(targets))
		var wg sync.WaitGroup
		for s, t := range targets {
			wg.Go(func() { lat[s], errs[s] = untilDenied(ctx, t, reqs[i], t0) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("logout %d: %w", i, err)
		}
		for s, l := range lat {
			perSidecar[s] = append(perSidecar[s], l)
		}
		all = append(all, slices.Max(lat))
	}
	slices.Sort(all)
	fmt.Fprintf(out, "propagation: %d revocations written through the issuer's store (redisstore.RevokeToken), %d sidecar processes in replica mode on one Redis\n",
		len(toks), len(targets))
	p99 := percentile(all, 99)
	verdict := "met"
	if p99 > 50*time.Millisecond {
		verdict = "MISSED"
	}
	fmt.Fprintf(out, "  until every sidecar denies: p50 %s  p99 %s  max %s  (target p99 <= 50ms: %s)\n",
		fmtDur(percentile(all, 50)), fmtDur(p99), fmtDur(all[len(all)-1]), verdict)
	for s, l := range perSidecar {
		slices.Sort(l)
		fmt.Fprintf(out, "  %s: p50 %s  p99 %s  max %s\n", targets[s].name, fmtDur(percentile(l, 50)),
			fmtDur(percentile(l, 99)), fmtDur(l[len(l)-1]))
	}
	fmt.Fprintln(out)
	return nil
}

// untilDenied asks one sidecar again and again until it denies the token as revoked, and returns the time since t0.
func untilDenied(ctx context.Context, t *target, req *authv3.CheckRequest, t0 time.Time) (time.Duration, error) {
	deadline := t0.Add(5 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := t.rc[0].Check(cctx, req)
		cancel()
		if err != nil {
			return 0, err
		}
		if resp.GetStatus().GetMessage() == "token_revoked" {
			return time.Since(t0), nil
		}
	}
	return 0, fmt.Errorf("%s still allows the token after 5s", t.name)
}

// memory loads a sidecar with revoked entries (from Redis, through the replica) and cached tokens and reports
// its resident memory.
func memory(ctx context.Context, o options, f *fixture, dir string, out io.Writer) error {
	rds, err := startRedis(dir, clientCPU)
	if err != nil {
		return err
	}
	defer rds.stop()
	t0 := time.Now()
	if err := seedRedis(ctx, rds.addr, o.memRevoked); err != nil {
		return err
	}
	seeded := time.Since(t0)
	cfg, addr, err := f.config(rds.addr, "replica")
	if err != nil {
		return err
	}
	// The cache bounds each of its shards: a little room so that all the tokens stay cached.
	if err := replaceInFile(cfg, "authz: {", fmt.Sprintf("authz: {token_cache_size: %d, ", o.memCached*11/10)); err != nil {
		return err
	}
	t0 = time.Now()
	p, err := startGatehouse(o.gatehouse, dir, "memory-sidecar", serverCPU, cfg, addr)
	if err != nil {
		return err
	}
	defer p.stop()
	t, err := dial("memory-sidecar", p)
	if err != nil {
		return err
	}
	defer t.close()
	rng := rand.New(rand.NewPCG(5, 6))
	revokedTok, err := f.token(0, revokedJTI(o.memRevoked/2))
	if err != nil {
		return err
	}
	probe := checkRequest("GET", "/svc-1/items/1/x", revokedTok, rng)
	// The replica is loaded when a token it holds as revoked is denied as such.
	if err := waitFor(5*time.Minute, p, func(ctx context.Context) error {
		resp, err := t.rc[0].Check(ctx, probe)
		if err != nil {
			return err
		}
		if m := resp.GetStatus().GetMessage(); m != "token_revoked" {
			return fmt.Errorf("answer %q", m)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("replica never loaded: %w", err)
	}
	loaded := time.Since(t0)
	rssLoaded, _ := p.memory()

	toks, err := f.tokens(o.memCached, "mem-")
	if err != nil {
		return err
	}
	reqs := make([]*authv3.CheckRequest, len(toks))
	for i, tok := range toks {
		reqs[i] = checkRequest("GET", fmt.Sprintf("/svc-%d/items/1/detail", i%o.routes), tok, rng)
	}
	if err := warm(t, reqs, 16); err != nil {
		return err
	}
	rss, peak := p.memory()
	fmt.Fprintf(out, "memory: one sidecar (replica mode), %d revoked jtis in Redis (seeded in %v), then %d distinct tokens verified and cached\n",
		o.memRevoked, seeded.Round(time.Millisecond), o.memCached)
	fmt.Fprintf(out, "  replica loaded %d revocations %v after start; RSS %s\n", o.memRevoked, loaded.Round(time.Millisecond), mib(rssLoaded))
	verdict := "met"
	if peak > 256<<20 {
		verdict = "MISSED"
	}
	fmt.Fprintf(out, "  after caching %d tokens: RSS %s, peak RSS %s (target <= 256 MiB: %s)\n", o.memCached, mib(rss),
		mib(peak), verdict)
	fmt.Fprintln(out)
	return nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
