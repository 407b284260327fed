package extauthz

import (
	"context"
	"sync"
	"testing"
	"time"

	"gatehouse/token"
)

// recordingObserver keeps what it was told.
type recordingObserver struct {
	mu        sync.Mutex
	decisions []string
	hits      map[bool]int
}

func (r *recordingObserver) Decided(status int, reason, rule string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if took < 0 {
		reason += "(negative latency)"
	}
	r.decisions = append(r.decisions, rule+"/"+reason)
}

func (r *recordingObserver) TokenCache(hit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hits[hit]++
}

func TestObserverSeesEveryDecisionAndCacheUse(t *testing.T) {
	h := newHarness(t)
	obs := &recordingObserver{hits: map[bool]int{}}
	h.srv = h.server(t, func(c *Config) { c.Observer = obs })
	tok := h.sign(h.claims(token.Access, "user"))
	h.check("GET", "api.example.com", "/me", bearer(tok))
	h.check("GET", "api.example.com", "/me", bearer(tok))
	h.check("GET", "api.example.com", "/nowhere", nil)
	h.check("POST", "api.example.com", "/auth/login", nil)
	want := []string{"me/allowed", "me/allowed", "/no_route", "auth/public"}
	if len(obs.decisions) != len(want) {
		t.Fatalf("decisions %v", obs.decisions)
	}
	for i := range want {
		if obs.decisions[i] != want[i] {
			t.Errorf("decision %d = %s, want %s", i, obs.decisions[i], want[i])
		}
	}
	if obs.hits[false] != 1 || obs.hits[true] != 1 {
		t.Errorf("cache use %v, want one miss then one hit", obs.hits)
	}
}

// The observer's clock read is also the token check's "now": two reads per observed decision on a token route, one
// without an observer, none on a public route without one.
func TestClockReadsPerDecision(t *testing.T) {
	h := newHarness(t)
	tok := h.sign(h.claims(token.Access, "user"))
	for _, c := range []struct {
		name         string
		obs          Observer
		method, path string
		hdr          map[string]string
		want         int
	}{
		{"observed token route", &recordingObserver{hits: map[bool]int{}}, "GET", "/me", bearer(tok), 2},
		{"token route", nil, "GET", "/me", bearer(tok), 1},
		{"public route", nil, "POST", "/auth/login", nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			reads := 0
			srv := h.server(t, func(cfg *Config) {
				cfg.Observer = c.obs
				cfg.Now = func() time.Time { reads++; return h.now }
			})
			req := NewCheckRequest(c.method, "api.example.com", c.path, c.hdr)
			if resp, _ := srv.Check(context.Background(), req); resp.GetOkResponse() == nil {
				t.Fatalf("setup: %d %s", httpStatus(resp), reason(resp))
			}
			reads = 0
			_, _ = srv.Check(context.Background(), req)
			if reads != c.want {
				t.Errorf("%d clock reads per decision, want %d", reads, c.want)
			}
		})
	}
}
