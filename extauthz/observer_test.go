package extauthz

import (
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
	srv, err := New(Config{Policy: h.srv.policy.Load().policy, Verifier: h.srv.verifier, Revocations: h.store,
		Now: h.srv.now, Logger: h.srv.log, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
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
