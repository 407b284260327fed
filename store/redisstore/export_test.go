package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// SeedGeneration writes a generation marker that began at the Unix epoch, as if the store had been in use
// forever, so tests may present tokens issued before they started.
func SeedGeneration(ctx context.Context, client redis.UniversalClient, prefix string) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return client.Set(ctx, prefix+"gen", `{"id":"seeded","since_unix_ms":0}`, 0).Err()
}
