package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// generation is one life of the Redis data set: it begins when a marker is written into a Redis that has none.
type generation struct {
	ID    string `json:"id"`
	Since int64  `json:"since_unix_ms"` // tokens issued before this instant are refused

	raw string // the marker as stored, to recognise it without parsing
}

func (s *Store) genKey() string { return genKey(s.prefix) }

// genKey carries the revocation hash tag: Revoked reads the marker in the same MGET as the revocation keys.
func genKey(prefix string) string { return prefix + revTag + "gen" }

// SeedGeneration writes a generation marker that began at the Unix epoch, as if the store had been in use forever,
// so tests (here and in the packages built on the store) may present tokens issued before they started. An empty
// prefix means DefaultPrefix. Never use it on a Redis that may have lost data: it vouches that none was lost.
func SeedGeneration(ctx context.Context, client redis.UniversalClient, prefix string) error {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return client.Set(ctx, genKey(prefix), `{"id":"seeded","since_unix_ms":0}`, 0).Err()
}

func newGeneration(now time.Time) (*generation, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("redisstore: generation id: %w", err)
	}
	// JWT iat is whole seconds, so a generation starts at a whole second: a token the issuer mints in the same
	// second as the marker (the first login on a fresh Redis) is not refused as predating it. The price is that a
	// token issued and revoked within the very second Redis lost its data stays refused only by its own expiry.
	g := &generation{ID: hex.EncodeToString(b[:]), Since: now.Truncate(time.Second).UnixMilli()}
	raw, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("redisstore: generation marker: %w", err)
	}
	g.raw = string(raw)
	return g, nil
}

func parseGeneration(raw string) (*generation, error) {
	var g generation
	if err := json.Unmarshal([]byte(raw), &g); err != nil || g.ID == "" || g.Since < 0 {
		// Failing closed is all we can do; the operator can DEL the key to start a new generation.
		return nil, errors.New("redisstore: corrupt generation marker (DEL it to start a new generation)")
	}
	g.raw = raw
	return &g, nil
}

// observeGeneration turns the marker value read from Redis (present=false when the key is missing) into the
// current generation. A missing marker means Redis lost its data (or never had any): a new marker is written with
// SET NX GET, so concurrent detectors agree on the first one written. A generation new to this process is logged
// as a store.reset, except the one found at the first read.
func (s *Store) observeGeneration(ctx context.Context, raw string, present bool) (*generation, error) {
	if known := s.gen.Load(); present && known != nil && known.raw == raw {
		return known, nil
	}
	created := false
	if !present {
		fresh, err := newGeneration(s.now())
		if err != nil {
			return nil, err
		}
		prev, err := s.client.Do(ctx, "set", s.genKey(), fresh.raw, "nx", "get").Text()
		switch {
		case errors.Is(err, redis.Nil):
			raw, created = fresh.raw, true
		case err != nil:
			return nil, wrap("write generation marker", err)
		default:
			raw = prev
		}
	}
	g, err := parseGeneration(raw)
	if err != nil {
		return nil, err
	}
	for {
		known := s.gen.Load()
		if known != nil && known.raw == g.raw {
			return known, nil
		}
		if known != nil && g.Since < known.Since {
			// An older generation came back (a restored backup?): what was revoked since it is lost too, and we
			// cannot tell when that began, so refuse everything issued before now.
			g.Since = max(known.Since, s.now().UnixMilli())
		}
		if !s.gen.CompareAndSwap(known, g) {
			continue
		}
		if created || known != nil {
			prevID := ""
			if known != nil {
				prevID = known.ID
			}
			s.log.LogAttrs(ctx, slog.LevelWarn,
				"revocation store reset: Redis lost its data (or this is its first use); tokens issued before the new generation are refused",
				slog.String("event", "store.reset"), slog.String("generation", g.ID),
				slog.Time("since", time.UnixMilli(g.Since).UTC()), slog.String("previous", prevID),
				slog.Bool("created", created))
		}
		return g, nil
	}
}
