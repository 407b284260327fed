package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
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
// On a cluster every master is asked, and a setting counts as on only when it is on everywhere. Managed Redis
// services that disable CONFIG answer an error; callers should treat that as "unknown", not "off".
func (s *Store) Persistence(ctx context.Context) (Persistence, error) {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return persistence(ctx, s.client)
	}
	all := Persistence{AOF: true, RDB: true}
	var mu sync.Mutex
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		p, err := persistence(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		all.AOF, all.RDB = all.AOF && p.AOF, all.RDB && p.RDB
		return err
	})
	if err != nil {
		return Persistence{}, err
	}
	return all, nil
}

func persistence(ctx context.Context, c redis.Cmdable) (Persistence, error) {
	var p Persistence
	aof, err := c.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		return p, wrap("config get appendonly", err)
	}
	save, err := c.ConfigGet(ctx, "save").Result()
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
