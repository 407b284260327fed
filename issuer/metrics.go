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

	mfaVerify   *prometheus.CounterVec
	mfaLockouts prometheus.Counter
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
		mfaVerify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_mfa_verify_total", Help: "MFA verification attempts by outcome.",
		}, []string{"outcome"}),
		mfaLockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_mfa_lockouts_total", Help: "Users whose MFA was locked after repeated wrong codes.",
		}),
	}
	for _, c := range []prometheus.Collector{m.logins, m.refresh, m.lockouts, m.logouts, m.mfaVerify, m.mfaLockouts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("issuer: register metrics: %w", err)
		}
	}
	// Known outcomes start at zero so dashboards and alerts see the series before the first event.
	for _, o := range []string{OutcomeSuccess, OutcomeMFARequired, OutcomeInvalidCredentials, OutcomeDisabled, OutcomeLocked, OutcomeUnavailable} {
		m.logins.WithLabelValues(o)
	}
	for _, o := range []string{OutcomeSuccess, OutcomeInvalidCode, OutcomeReplayed, OutcomeLocked, OutcomeInvalid, OutcomeUnavailable, OutcomeError} {
		m.mfaVerify.WithLabelValues(o)
	}
	for _, o := range []string{OutcomeSuccess, OutcomeReused, OutcomeInvalid, OutcomeUnavailable} {
		m.refresh.WithLabelValues(o)
	}
	return m, nil
}
