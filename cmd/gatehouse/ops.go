package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"gatehouse/metrics"
	"gatehouse/store/redisstore"
)

// ops is what serve exposes for operating Gatehouse: one metrics registry, readiness, and the admin listener.
type ops struct {
	registry *prometheus.Registry
	decider  *metrics.Decider
	reloads  *metrics.Reloads
	storeErr *metrics.StoreErrors
	ready    atomic.Bool
	admin    *http.Server
}

func newOps() *ops {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &ops{registry: reg, decider: metrics.NewDecider(reg), reloads: metrics.NewReloads(reg),
		storeErr: metrics.NewStoreErrors(reg)}
}

// readinessInterval is how often serve asks the store whether it answers.
const readinessInterval = 2 * time.Second

// checkReady keeps grpc.health.v1 and /readyz in step with the store: ready only while it answers. The policy is
// loaded before the listeners open, so the store is the only thing that can make us unready later.
func (a *app) checkReady(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := a.store.Ping(cctx)
	if err != nil {
		a.ops.storeErr.Failed("ping")
	}
	ready := err == nil
	if a.ops.ready.Swap(ready) != ready {
		if ready {
			a.log.Info("store answers: ready", "event", "serve.ready")
		} else {
			a.log.Warn("store does not answer: not ready", "event", "serve.not_ready", "error", err.Error())
		}
	}
	status := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		status = healthpb.HealthCheckResponse_SERVING
	}
	a.health.SetServingStatus("", status)
	a.health.SetServingStatus("envoy.service.auth.v3.Authorization", status)
}

// watchReadiness re-checks readiness until ctx ends.
func (a *app) watchReadiness(ctx context.Context) {
	every(ctx, readinessInterval, func() { a.checkReady(ctx) })
}

// startAdmin serves /metrics, /healthz and /readyz on admin.listen.
func (a *app) startAdmin(listen string) (net.Addr, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.ops.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ops.ready.Load() {
			http.Error(w, "not ready: the store does not answer", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	a.ops.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.ops.admin.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.failed <- fmt.Errorf("admin server: %w", err)
		}
	}()
	return lis.Addr(), nil
}

// warnIfNotPersistent says so at startup when Redis would forget MFA enrolments and revocations on a restart.
func (a *app) warnIfNotPersistent(ctx context.Context, s *redisstore.Store) {
	p, err := s.Persistence(ctx)
	switch {
	case err != nil:
		a.log.Info("could not read Redis persistence settings (CONFIG GET refused?); make sure AOF is on", "event", "serve.redis_persistence_unknown", "error", err.Error())
	case !p.AOF:
		a.log.Warn("Redis persistence (appendonly) is off: a Redis restart loses MFA enrolments and sessions, and revocations are then enforced only by refusing every older token (store_reset). Turn on appendonly yes.",
			"event", "serve.redis_not_persistent", "appendonly", p.AOF, "rdb", p.RDB)
	}
}
