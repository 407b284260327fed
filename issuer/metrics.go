package issuer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the issuer's Prometheus counters. Label values come from the audit outcome vocabulary.
type metrics struct {
	logins   *prometheus.CounterVec
	refresh  *prometheus.CounterVec
	lockouts prometheus.Counter
	logouts  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_logins_total", Help: "Login attempts by outcome.",
		}, []string{"outcome"}),
		refresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_refresh_total", Help: "Refresh attempts by outcome.",
		}, []string{"outcome"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_lockouts_total", Help: "Accounts or client IPs locked after repeated login failures.",
		}),
		logouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_logouts_total", Help: "Logout and logout-all requests served.",
		}),
	}
	for _, c := range []prometheus.Collector{m.logins, m.refresh, m.lockouts, m.logouts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("issuer: register metrics: %w", err)
		}
	}
	// Known outcomes start at zero so dashboards and alerts see the series before the first event.
	for _, o := range []string{OutcomeSuccess, OutcomeInvalidCredentials, OutcomeDisabled, OutcomeLocked, OutcomeUnavailable} {
		m.logins.WithLabelValues(o)
	}
	for _, o := range []string{OutcomeSuccess, OutcomeReused, OutcomeInvalid, OutcomeUnavailable} {
		m.refresh.WithLabelValues(o)
	}
	return m, nil
}
