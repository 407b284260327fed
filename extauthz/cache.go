package extauthz

import (
	"hash/maphash"
	"sync"
	"time"

	"gatehouse/token"
)

// claimsCache remembers verified access-token claims, keyed by the token string, so each token's signature is
// checked once per process. Entries die when the token expires; revocation is still checked on every request.
// Memory per entry is about the token's length plus ~300 bytes of claims and map overhead.
type claimsCache struct {
	seed   maphash.Seed
	shards [cacheShards]cacheShard
	limit  int // per shard
}

const cacheShards = 32

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*token.Claims
}

func newClaimsCache(size int) *claimsCache {
	c := &claimsCache{seed: maphash.MakeSeed(), limit: max(size/cacheShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*token.Claims)
	}
	if size <= 0 {
		c.limit = 0
	}
	return c
}

func (c *claimsCache) shard(tok string) *cacheShard {
	return &c.shards[maphash.String(c.seed, tok)%cacheShards]
}

// get returns cached claims still valid at now. Claims are shared: callers must not modify them.
func (c *claimsCache) get(tok string, now time.Time) *token.Claims {
	if c.limit == 0 {
		return nil
	}
	s := c.shard(tok)
	s.mu.RLock()
	cl := s.m[tok]
	s.mu.RUnlock()
	if cl == nil || !now.Before(cl.ExpiresAt) {
		return nil
	}
	return cl
}

func (c *claimsCache) put(tok string, cl *token.Claims, now time.Time) {
	if c.limit == 0 {
		return
	}
	s := c.shard(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.limit {
		// Expired entries go first; when none has expired an arbitrary one does. Map iteration order is random,
		// which makes this random eviction without extra bookkeeping.
		evicted := false
		for k, v := range s.m {
			if !now.Before(v.ExpiresAt) {
				delete(s.m, k)
				evicted = true
			}
		}
		if !evicted {
			for k := range s.m {
				delete(s.m, k)
				break
			}
		}
	}
	s.m[tok] = cl
}

func (c *claimsCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}
