package redisstore

import (
	"context"
	"fmt"
	"strings"
)

// Persistence is what Redis says about its durability settings.
type Persistence struct {
	AOF bool // appendonly yes
	RDB bool // at least one save point
}

// Durable reports whether a restart keeps what was written: AOF is the setting we document, RDB snapshots lose
// the writes since the last snapshot but are better than nothing.
func (p Persistence) Durable() bool { return p.AOF || p.RDB }

// Persistence asks Redis for its persistence settings (CONFIG GET). MFA enrolments and revocations live in Redis,
// so a server that forgets them on restart loses enrolments and relies on the generation marker for revocations.
// Managed Redis services that disable CONFIG answer an error; callers should treat that as "unknown", not "off".
func (s *Store) Persistence(ctx context.Context) (Persistence, error) {
	var p Persistence
	aof, err := s.client.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return p, wrap("config get appendonly", err)
	}
	save, err := s.client.ConfigGet(ctx, "save").Result()
	if err != nil {
		return p, wrap("config get save", err)
	}
	p.AOF = strings.EqualFold(aof["appendonly"], "yes")
	p.RDB = strings.TrimSpace(save["save"]) != ""
	return p, nil
}

func (p Persistence) String() string {
	return fmt.Sprintf("appendonly=%v rdb=%v", p.AOF, p.RDB)
}
