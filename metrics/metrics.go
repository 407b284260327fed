// Package metrics holds Gatehouse's Prometheus instruments for the decider and the process around it. The issuer
// keeps its own login/MFA instruments next to its code; everything registers on one registry that `serve` exposes
// on /metrics.
package metrics

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Decider instruments the ext_authz decision path. Its methods are safe for concurrent use and allocate nothing
// once a label combination has been seen, so they can sit on the hot path.
type Decider struct {
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	cacheHits prometheus.Counter
	cacheMiss prometheus.Counter

	// counters caches the child counter per label combination: WithLabelValues hashes and looks up every time.
	// The map is replaced, never written, so readers need no lock; a sync.Map hashed its interface keys by
	// reflection, a third of the decider's own cost. Combinations are bounded by rules × reasons.
	counters atomic.Pointer[map[decisionKey]prometheus.Counter]
	mu       sync.Mutex // serializes replacing counters
}

type decisionKey struct {
	status       int
	reason, rule string
}

// NewDecider registers the decider's instruments on reg.
func NewDecider(reg prometheus.Registerer) *Decider {
	d := &Decider{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_authz_decisions_total",
			Help: "Check decisions by result (allow/deny), HTTP status, reason code and matched rule (\"\" when none).",
		}, []string{"result", "status", "reason", "rule"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gatehouse_authz_decision_seconds",
			Help:    "Time to decide one Check, inside the server (excludes gRPC transport).",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1},
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_authz_token_cache_hits_total", Help: "Access tokens found in the verified-claims cache.",
		}),
		cacheMiss: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_authz_token_cache_misses_total", Help: "Access tokens verified because the cache did not hold them.",
		}),
	}
	d.counters.Store(&map[decisionKey]prometheus.Counter{})
	reg.MustRegister(d.decisions, d.latency, d.cacheHits, d.cacheMiss)
	return d
}

// Decided counts one decision and its latency.
func (d *Decider) Decided(status int, reason, rule string, took time.Duration) {
	k := decisionKey{status, reason, rule}
	c, ok := (*d.counters.Load())[k]
	if !ok {
		c = d.addCounter(k)
	}
	c.Inc()
	d.latency.Observe(took.Seconds())
}

func (d *Decider) addCounter(k decisionKey) prometheus.Counter {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := *d.counters.Load()
	if c, ok := old[k]; ok {
		return c
	}
	result := "deny"
	if k.status == 200 {
		result = "allow"
	}
	c := d.decisions.WithLabelValues(result, strconv.Itoa(k.status), k.reason, k.rule)
	m := make(map[decisionKey]prometheus.Counter, len(old)+1)
	maps.Copy(m, old)
	m[k] = c
	d.counters.Store(&m)
	return c
}

// TokenCache counts a verified-claims cache lookup.
func (d *Decider) TokenCache(hit bool) {
	if hit {
		d.cacheHits.Inc()
	} else {
		d.cacheMiss.Inc()
	}
}

// Reloads counts policy and users reloads by outcome, for alerting on a file that keeps being refused.
type Reloads struct {
	total *prometheus.CounterVec
	last  prometheus.Gauge
}

// NewReloads registers the reload instruments on reg.
func NewReloads(reg prometheus.Registerer) *Reloads {
	r := &Reloads{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_config_reloads_total",
			Help: "Policy/users reloads by outcome (success, failure). A failure keeps the running version.",
		}, []string{"outcome"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_config_last_reload_success",
			Help: "1 when the last reload succeeded, 0 when the files on disk were refused.",
		}),
	}
	reg.MustRegister(r.total, r.last)
	r.last.Set(1)
	return r
}

// Reloaded records one reload attempt.
func (r *Reloads) Reloaded(ok bool) {
	if ok {
		r.total.WithLabelValues("success").Inc()
		r.last.Set(1)
		return
	}
	r.total.WithLabelValues("failure").Inc()
	r.last.Set(0)
}

// StoreErrors counts failed store calls by operation, so Redis trouble shows before users complain.
type StoreErrors struct{ vec *prometheus.CounterVec }

// NewStoreErrors registers the store error counter on reg.
func NewStoreErrors(reg prometheus.Registerer) *StoreErrors {
	s := &StoreErrors{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_store_errors_total", Help: "Store (Redis) calls that failed, by operation.",
	}, []string{"op"})}
	reg.MustRegister(s.vec)
	return s
}

// Failed counts one failed call.
func (s *StoreErrors) Failed(op string) { s.vec.WithLabelValues(op).Inc() }

// RevocationLag exports how far behind Redis a decider's revocation replica may be. lag is polled at scrape
// time; ok=false (not caught up) reports -1 so an alert can tell "unknown" from "fresh".
func RevocationLag(reg prometheus.Registerer, lag func() (time.Duration, bool)) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gatehouse_revocation_replica_lag_seconds",
		Help: "Time since the revocation replica last heard from Redis; -1 while it has not caught up. Protected routes answer 503 past revocation.max_staleness.",
	}, func() float64 {
		d, ok := lag()
		if !ok {
			return -1
		}
		return d.Seconds()
	}))
}
