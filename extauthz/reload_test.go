package extauthz

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"gatehouse/token"
)

// TestPolicySwapUnderLoad swaps two policy versions while Checks run (go test -race). Each version decides /me
// differently and names its rule differently, so a decision mixing the two versions would show.
func TestPolicySwapUnderLoad(t *testing.T) {
	h := newHarness(t)
	v1 := mustCompile(t, `roles:
  user: {permissions: [read:users]}
  admin: {permissions: [admin:access]}
routes:
  - name: v1-me
    match: {path: /me}
    authenticated: true
`)
	v2 := mustCompile(t, `roles:
  user: {permissions: [read:users]}
  admin: {permissions: [admin:access]}
routes:
  - name: v2-me
    match: {path: /me}
    permissions: [admin:access]
`)
	h.srv.SetPolicy(v1)
	tok := h.sign(h.claims(token.Access, "user"))
	req := NewCheckRequest("GET", "a", "/me", bearer(tok))

	var stop atomic.Bool
	var swaps, seen1, seen2 atomic.Int64
	var swapper, workers sync.WaitGroup
	swapper.Add(1)
	go func() {
		defer swapper.Done()
		for i := 0; !stop.Load(); i++ {
			if i%2 == 0 {
				h.srv.SetPolicy(v2)
			} else {
				h.srv.SetPolicy(v1)
			}
			swaps.Add(1)
		}
	}()
	errs := make(chan string, 4)
	for range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for range 2000 {
				resp, err := h.srv.Check(context.Background(), req)
				if err != nil {
					errs <- err.Error()
					return
				}
				switch r, s := rule(resp), httpStatus(resp); {
				case r == "v1-me" && s == 200:
					seen1.Add(1)
				case r == "v2-me" && s == 403:
					seen2.Add(1)
				default:
					errs <- "decision from no single policy version: rule " + r + " status " + reason(resp)
					return
				}
			}
		}()
	}
	workers.Wait()
	stop.Store(true)
	swapper.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if seen1.Load() == 0 || seen2.Load() == 0 {
		t.Logf("only one version observed (v1 %d, v2 %d, swaps %d); the swap still never tore a decision", seen1.Load(), seen2.Load(), swaps.Load())
	}
}
