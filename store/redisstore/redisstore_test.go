package redisstore_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"gatehouse/store/conformance"
	"gatehouse/store/redisstore"
	"gatehouse/store/redistest"
)

func TestConformance(t *testing.T) {
	addr := redistest.Start(t)
	conformance.Run(t, func(t *testing.T, now func() time.Time) conformance.Backend {
		return openSeeded(t, addr, now)
	})
}

// The replica must answer exactly like the store it follows, once it has caught up.
func TestReplicaConformance(t *testing.T) {
	addr := redistest.Start(t)
	conformance.Run(t, func(t *testing.T, now func() time.Time) conformance.Backend {
		s := openSeeded(t, addr, now)
		return replicaBackend{Store: s, r: s.StartReplica(redisstore.ReplicaOptions{})}
	})
}

// openSeeded opens a store on the test's own prefix whose generation began long ago: the suite presents tokens
// issued before it started.
func openSeeded(t *testing.T, addr string, now func() time.Time) *redisstore.Store {
	t.Helper()
	return openTargetSeeded(t, redisstore.Target{URL: "redis://" + addr}, now)
}

func openTargetSeeded(t *testing.T, target redisstore.Target, now func() time.Time, opts ...redisstore.Option) *redisstore.Store {
	t.Helper()
	prefix := "test:" + t.Name() + ":"
	raw, err := redisstore.NewClient(target)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := redisstore.SeedGeneration(t.Context(), raw, prefix); err != nil {
		t.Fatal(err)
	}
	opts = append([]redisstore.Option{redisstore.WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	s, err := redisstore.OpenTarget(target, prefix, now, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// replicaBackend answers Revoked from a replica after waiting for it to catch up (read-your-writes, which the
// suite assumes); everything else goes to the store.
type replicaBackend struct {
	*redisstore.Store
	r *redisstore.Replica
}

func (b replicaBackend) Revoked(ctx context.Context, jti, sid, userID string, issuedAt time.Time) (bool, error) {
	if err := b.r.Sync(ctx); err != nil {
		return false, err
	}
	return b.r.Revoked(ctx, jti, sid, userID, issuedAt)
}

func (b replicaBackend) Close() error {
	b.r.Close()
	return b.Store.Close()
}
