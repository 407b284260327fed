package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// gathered returns every sample of family name as "label=value,...": value.
func gathered(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

func TestDeciderCountsByLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := NewDecider(reg)
	d.Decided(200, "allowed", "profile", 20*time.Microsecond)
	d.Decided(200, "allowed", "profile", 30*time.Microsecond)
	d.Decided(401, "token_expired", "profile", 10*time.Microsecond)
	d.TokenCache(true)
	d.TokenCache(false)
	d.TokenCache(true)
	got := gathered(t, reg, "gatehouse_authz_decisions_total")
	want := map[string]float64{
		"reason=allowed,result=allow,rule=profile,status=200,":      2,
		"reason=token_expired,result=deny,rule=profile,status=401,": 1,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if h := gathered(t, reg, "gatehouse_authz_token_cache_hits_total")[""]; h != 2 {
		t.Errorf("cache hits %v", h)
	}
	if m := gathered(t, reg, "gatehouse_authz_token_cache_misses_total")[""]; m != 1 {
		t.Errorf("cache misses %v", m)
	}
	if n := gathered(t, reg, "gatehouse_authz_decision_seconds")[""]; n != 3 {
		t.Errorf("latency samples %v", n)
	}
}

func TestDecidedAllocatesNothingOnceSeen(t *testing.T) {
	d := NewDecider(prometheus.NewRegistry())
	d.Decided(403, "forbidden", "admin", time.Microsecond)
	if a := testing.AllocsPerRun(100, func() { d.Decided(403, "forbidden", "admin", time.Microsecond) }); a != 0 {
		t.Errorf("Decided allocates %v times per call", a)
	}
}

func TestReloadsAndStoreErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := NewReloads(reg)
	r.Reloaded(true)
	r.Reloaded(false)
	if g := gathered(t, reg, "gatehouse_config_last_reload_success")[""]; g != 0 {
		t.Errorf("last reload gauge %v", g)
	}
	if c := gathered(t, reg, "gatehouse_config_reloads_total"); c["outcome=failure,"] != 1 || c["outcome=success,"] != 1 {
		t.Errorf("reloads %v", c)
	}
	s := NewStoreErrors(reg)
	s.Failed("revoked")
	if c := gathered(t, reg, "gatehouse_store_errors_total")["op=revoked,"]; c != 1 {
		t.Errorf("store errors %v", c)
	}
}

func TestRevocationLag(t *testing.T) {
	reg := prometheus.NewRegistry()
	lag, ok := 1500*time.Millisecond, true
	RevocationLag(reg, func() (time.Duration, bool) { return lag, ok })
	if g := gathered(t, reg, "gatehouse_revocation_replica_lag_seconds")[""]; g != 1.5 {
		t.Errorf("lag %v", g)
	}
	ok = false
	if g := gathered(t, reg, "gatehouse_revocation_replica_lag_seconds")[""]; g != -1 {
		t.Errorf("unknown lag %v", g)
	}
}
