package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// target is one ext_authz server under load.
type target struct {
	name  string
	p     *proc
	conns []*grpc.ClientConn
	rc    []authv3.AuthorizationClient
}

// connsPerTarget: Envoy keeps an HTTP/2 connection per worker thread to the ext_authz cluster.
const connsPerTarget = 4

func dial(name string, p *proc) (*target, error) {
	t := &target{name: name, p: p}
	for range connsPerTarget {
		c, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.close()
			return nil, err
		}
		t.conns = append(t.conns, c)
		t.rc = append(t.rc, authv3.NewAuthorizationClient(c))
	}
	return t, nil
}

func (t *target) close() {
	for _, c := range t.conns {
		c.Close()
	}
}

// runStats is one measured run: closed loop, conc workers, for d.
type runStats struct {
	requests  int64
	errors    int64 // gRPC errors and unexpected denials
	elapsed   time.Duration
	latencies []time.Duration
	serverCPU time.Duration
}

// maxSamples bounds the latencies kept per run (a 5 s run at 100k req/s).
const maxSamples = 500_000

// drive sends reqs round-robin from conc workers for d; each worker waits for its answer before the next request.
func drive(t *target, reqs []rawMsg, conc int, d time.Duration, wantAllow bool) runStats {
	return load(t, reqs, conc, d, wantAllow, func(_ int, _, stopAt time.Time, send func(from time.Time)) {
		for {
			t0 := time.Now()
			if t0.After(stopAt) {
				return
			}
			send(t0)
		}
	})
}

// load runs conc workers against t for d and gathers what they measured. A worker calls send for each request,
// with the time the request's latency counts from; send picks the next request and waits for its answer.
func load(t *target, reqs []rawMsg, conc int, d time.Duration, wantAllow bool,
	worker func(w int, start, stopAt time.Time, send func(from time.Time))) runStats {
	var next, errs, done atomic.Int64
	per := make([][]time.Duration, conc)
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	cpu0 := t.p.cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			conn := t.conns[w%len(t.conns)]
			lat := make([]time.Duration, 0, maxSamples/conc)
			worker(w, start, start.Add(d), func(from time.Time) {
				i := next.Add(1)
				ok, err := rawCheck(ctx, conn, &reqs[int(i)%len(reqs)])
				el := time.Since(from)
				if err != nil || (wantAllow && !ok) {
					errs.Add(1)
					return
				}
				done.Add(1)
				if len(lat) < cap(lat) {
					lat = append(lat, el)
				}
			})
			per[w] = lat
		})
	}
	wg.Wait()
	r := runStats{elapsed: time.Since(start), requests: done.Load(), errors: errs.Load(), serverCPU: t.p.cpuTime() - cpu0}
	for _, l := range per {
		r.latencies = append(r.latencies, l...)
	}
	return r
}

// warm sends every request once, so each token is verified and cached before measuring.
func warm(t *target, reqs []*authv3.CheckRequest, conc int) error {
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			rc := t.rc[w%len(t.rc)]
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				var err error
				// A saturated server may time a strict-mode lookup out (503): fail-closed, transient; ask again.
				for attempt := 0; attempt < 5; attempt++ {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					resp, cerr := rc.Check(ctx, reqs[i])
					cancel()
					err = cerr
					if err == nil && resp.GetOkResponse() == nil {
						err = fmt.Errorf("denied: %s", resp.GetStatus().GetMessage())
						if m := resp.GetStatus().GetMessage(); m == "store_unavailable" || m == "revocation_stale" {
							continue
						}
					}
					break
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return fmt.Errorf("%s warm-up: %w", t.name, err)
	}
	return nil
}

// result aggregates the runs of one (target, concurrency).
type result struct {
	target    string
	conc      int
	requests  int64
	errors    int64
	elapsed   time.Duration
	serverCPU time.Duration
	rounds    []float64 // requests/s of each run
	latencies []time.Duration
}

func (r *result) add(x runStats) {
	r.requests += x.requests
	r.errors += x.errors
	r.elapsed += x.elapsed
	r.serverCPU += x.serverCPU
	r.rounds = append(r.rounds, float64(x.requests)/x.elapsed.Seconds())
	r.latencies = append(r.latencies, x.latencies...)
}

// rps is the median of the runs: a burst of load from elsewhere on a shared machine skews one run, not the figure.
func (r *result) rps() float64 {
	s := slices.Clone(r.rounds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuPerRequest is the server's CPU time per request: what it costs whatever else runs on the machine.
func (r *result) cpuPerRequest() time.Duration {
	if r.requests == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(r.requests)
}

// percentile of sorted latencies (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// table prints one line per (concurrency, target): the median requests/s over the runs and its ratio to the
// floor's, latency percentiles over every request, the server's CPU per request and the capacity that implies
// relative to the floor (floor CPU per request / target CPU per request: the throughput ratio of a saturated
// server, which noise from other processes does not move).
func table(w io.Writer, rs []*result, floor string) {
	fmt.Fprintf(w, "%-18s %4s %9s %8s %8s %8s %9s %9s %6s\n", "target", "conc", "req/s", "vs floor", "p50", "p99",
		"CPU/req", "capacity", "errors")
	base := map[int]*result{}
	for _, r := range rs {
		if r.target == floor {
			base[r.conc] = r
		}
	}
	for _, r := range rs {
		slices.Sort(r.latencies)
		ratio, capacity := "-", "-"
		if b := base[r.conc]; b != nil && b.rps() > 0 && r.cpuPerRequest() > 0 {
			ratio = fmt.Sprintf("%.1f%%", 100*r.rps()/b.rps())
			capacity = fmt.Sprintf("%.1f%%", 100*float64(b.cpuPerRequest())/float64(r.cpuPerRequest()))
		}
		fmt.Fprintf(w, "%-18s %4d %9.0f %8s %8s %8s %9s %9s %6d\n", r.target, r.conc, r.rps(), ratio,
			fmtDur(percentile(r.latencies, 50)), fmtDur(percentile(r.latencies, 99)),
			fmt.Sprintf("%.1fµs", float64(r.cpuPerRequest())/float64(time.Microsecond)), capacity, r.errors)
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
}

// pace sends reqs from conc workers at rate requests/s in all, each worker on a fixed schedule: the latency an
// application sees from a sidecar that is busy but not saturated. A closed loop at full load measures queueing
// instead (p50 is concurrency / throughput by Little's law). Latency counts from when a request was due when the
// worker was late because the previous answer was (no coordinated omission), else from when it was sent (the
// load generator's own timer slack is not the server's).
func pace(t *target, reqs []rawMsg, conc int, rate float64, d time.Duration, wantAllow bool) runStats {
	interval := time.Duration(float64(conc) / rate * float64(time.Second))
	return load(t, reqs, conc, d, wantAllow, func(w int, start, stopAt time.Time, send func(from time.Time)) {
		due := start.Add(interval * time.Duration(w) / time.Duration(conc)) // spread the workers
		for ; due.Before(stopAt); due = due.Add(interval) {
			from := due
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
				from = time.Now()
			}
			send(from)
		}
	})
}

// pacedTable prints the latency percentiles of paced runs.
func pacedTable(w io.Writer, rs []*result) {
	fmt.Fprintf(w, "%-18s %4s %9s %8s %8s %8s %8s %9s %6s\n", "target", "conc", "req/s", "p50", "p99", "p99.9", "max",
		"CPU/req", "errors")
	for _, r := range rs {
		slices.Sort(r.latencies)
		fmt.Fprintf(w, "%-18s %4d %9.0f %8s %8s %8s %8s %9s %6d\n", r.target, r.conc, r.rps(),
			fmtDur(percentile(r.latencies, 50)), fmtDur(percentile(r.latencies, 99)), fmtDur(percentile(r.latencies, 99.9)),
			fmtDur(percentile(r.latencies, 100)), fmt.Sprintf("%.1fµs", float64(r.cpuPerRequest())/float64(time.Microsecond)), r.errors)
	}
}
