// Package redisstore is the Redis store backend (Redis >= 7.0: PEXPIRETIME, PEXPIREAT NX): one Redis, a primary
// with replicas under Redis Sentinel, or a Redis Cluster (see Target and OpenTarget).
//
// Key layout (every key starts with the prefix, default "gatehouse:"; {…} is a Redis Cluster hash tag):
//
//	{rev}:jti:<jti>            "1", PXAT = latest revocation expiry
//	{rev}:sid:<sid>            "1", PXAT = latest revocation expiry
//	{rev}:user:<userID>        cut-off as Unix milliseconds (the latest wins), PXAT = latest expiry
//	{rev}:log                  stream of revocation events, one per change of a revocation key, appended by the
//	                           same script that changes the key: fields n (sequence number), k (jti|sid|user), id,
//	                           u (expiry, Unix ms) and, for users, b (cut-off, Unix ms), holding the key's new
//	                           state. Trimmed by age (XADD MINID ~, Redis's clock) to the stream retention
//	                           (WithStreamRetention).
//	{rev}:seq                  sequence number of the last event (INCR in the same script): a replica that finds
//	                           a gap in n, or fewer events than {rev}:seq says, knows it missed some
//	{rev}:gen                  generation marker {"id": random, "since_unix_ms": when it was created}, no expiry;
//	                           see "Data loss" below
//	sess:<id>                  hash uid un ip ua rid c lu e (times as Unix ns), PXAT = ExpiresAt
//	usess:<userID>             sorted set of session ids scored by CreatedAt (ms), PXAT = latest session expiry;
//	                           ids of expired or deleted sessions are pruned by ListSessions (and every 32nd create)
//	cnt:<key>                  counter, PXAT = first hit + window
//	lock:<key>                 lock end as Unix nanoseconds, PXAT = lock end
//	mfa:{<userID>}:pending     pending secret, PXAT = until
//	mfa:{<userID>}:enr         enrollment JSON (secret, enabled_at)
//	mfa:{<userID>}:backup      set of unused backup-code hashes
//	mfa:{<userID>}:step        last used TOTP step, PXAT = latest until
//	once:<key>                 "1", PXAT = until
//
// Expiry instants are computed from the injected clock and sent as absolute times (PXAT/PEXPIREAT, rounded up to the
// millisecond), so an entry never dies before its `until`. Redis then expires keys by its own clock.
//
// Redis Cluster. Every command, script and transaction that touches several keys keeps them in one slot:
//   - Revocations: all revocation keys, their stream, its counter and the generation marker share the tag {rev},
//     so Revoked stays one MGET (one round trip) and a revocation and its event stay one atomic script. The price
//     is that revocations live on one master (and its replicas): they are small (about 190 bytes each, stream
//     event included) and written rarely, and the deciders read them from memory (Replica) rather than from
//     Redis on every request; in strict mode every check goes to that master.
//   - Sessions: the session and its user's index are two single-key writes in whatever slots they hash to,
//     the index first, so every live session is in its index whatever fails in between, and an id left in an
//     index without its session is pruned by ListSessions. No session id needs the user id, and GetSession,
//     RotateRefresh and TouchSession stay one command on one key.
//   - MFA: a user's keys share the tag {<userID>} (DeleteMFA's DEL, PutMFA's MULTI).
//   - Counters, locks and claims are single keys.
//
// The prefix must not contain '{' or '}': it would become the hash tag of every key. An id containing braces is
// harmless: the first '{' of every multi-key key is the tag's, before any id.
//
// Sentinel and replication. Redis replicates asynchronously: a failover can promote a replica that misses the last
// writes the old primary acknowledged. For revocations that would undo a logout, so WithWaitReplicas makes every
// revocation write WAIT until that many replicas have it, on the connection that wrote it, and fail with
// ErrNotReplicated otherwise (the issuer answers 503 and the client retries; revoking is idempotent). A retry that
// finds the revocation in place rewrites its expiry unchanged, so the WAIT covers the earlier, unconfirmed write
// too. While fewer replicas than required are connected (after a failover, until the old primary rejoins as a
// replica; for about a second after a replica resyncs) revocations fail closed. Other writes (sessions, counters,
// MFA state) do not wait: losing one in a failover costs a login, a counter, or the replay record of a TOTP step.
//
// Data loss. Redis may forget everything (a restart without persistence, FLUSHALL, a failover to an empty
// replica), and with it revocations: a revoked token must not become valid again. The gen marker detects it:
// when it is missing, the first reader to notice writes a new one (SET NX GET, so concurrent detectors agree on
// one) with since = now, logs the slog event "store.reset", and from then on Revoked refuses every token issued
// before since with (true, store.ErrStoreReset). Strict mode reads the marker in the same MGET as the revocation
// keys; a Replica reads it on every poll. A fresh Redis has no marker either, so the first start refuses tokens
// issued before it, which exist only when upgrading from a version without markers (users log in again once).
// Not detected: a loss that keeps the marker (a restore from an older backup, a failover to a lagging replica
// without WithWaitReplicas, eviction); run Redis with maxmemory-policy noeviction, and DEL the gen key after such
// an operation to start a new generation by hand. JWT iat is whole seconds, so tokens issued in the second the
// reset is detected may be refused too.
//
// Upgrading from the layout without hash tags (rev:*, revlog, revseq, gen): the new marker is missing, so the first
// start begins a new generation and refuses every token issued before it (users log in again once); revocations
// in the old keys are not carried over and need not be, since every token they applied to is refused. Sessions
// keep their keys but their refresh tokens predate the generation, so they end too. Upgrade every instance at
// once: old and new versions do not see each other's revocations. The old keys may be deleted afterwards (rev:*
// expire by themselves; DEL revlog revseq gen).
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"gatehouse/store"
)

var (
	_ store.Revocations = (*Store)(nil)
	_ store.Sessions    = (*Store)(nil)
	_ store.Counters    = (*Store)(nil)
	_ store.MFA         = (*Store)(nil)
	_ store.Once        = (*Store)(nil)
	_ store.Pinger      = (*Store)(nil)
)

// DefaultPrefix starts every key when no prefix is given.
const DefaultPrefix = "gatehouse:"

// DefaultStreamRetention is how long revocation events stay in the stream when WithStreamRetention is not
// given. A replica away for longer reloads everything instead of catching up.
const DefaultStreamRetention = 24 * time.Hour

// pruneEvery: CreateSession prunes the user's index when its size is a multiple of this, so stale ids of users who
// never list their sessions stay bounded.
const pruneEvery = 32

// Store is a Redis backend. Every error it returns other than the store sentinels is wrapped and means Redis could
// not answer: callers fail closed.
type Store struct {
	client    redis.UniversalClient
	prefix    string
	now       func() time.Time
	log       *slog.Logger
	retention time.Duration

	gen atomic.Pointer[generation] // the generation this process last saw; nil until the first read

	replicasMu sync.Mutex
	replicas   []*Replica // following this store in this process: told of our own writes at once

	mgets *mgetBatcher // Revoked's MGETs, pipelined with concurrent ones

	waitReplicas int           // revocation writes wait for this many replicas (WithWaitReplicas)
	waitTimeout  time.Duration // for at most this long
}

// Option tunes a Store.
type Option func(*Store)

// WithLogger sets the logger for audit events (store.reset); default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithStreamRetention sets how long revocation events stay in the stream (at least; trimming is approximate).
// Use the longest token lifetime: a replica disconnected for longer reloads everything instead of catching up.
func WithStreamRetention(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.retention = d
		}
	}
}

// DefaultWaitTimeout is how long a revocation write waits for its replicas when WithWaitReplicas gives no timeout.
const DefaultWaitTimeout = 100 * time.Millisecond

// WithWaitReplicas makes every revocation write wait (WAIT) until n replicas have it, for at most timeout (0 means
// DefaultWaitTimeout), and fail when fewer confirm it: Redis replicates asynchronously, so a failover can lose a
// write the primary acknowledged, and a revocation must not come undone. A failed write may still have reached
// the primary; revoking is idempotent, so the caller answers 503 and the client retries. n = 0 (the default)
// does not wait. With n replicas required, revocations fail while fewer are connected.
func WithWaitReplicas(n int, timeout time.Duration) Option {
	return func(s *Store) {
		s.waitReplicas = max(n, 0)
		s.waitTimeout = timeout
		if timeout <= 0 {
			s.waitTimeout = DefaultWaitTimeout
		}
	}
}

// New wraps client; the Store owns it from now on (Close closes it). An empty prefix means DefaultPrefix; a prefix
// must not contain '{' or '}' (OpenTarget refuses one), which would change the Cluster slot of every key.
func New(client redis.UniversalClient, prefix string, now func() time.Time, opts ...Option) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if now == nil {
		now = time.Now
	}
	s := &Store{client: client, prefix: prefix, now: now, log: slog.Default(), retention: DefaultStreamRetention,
		mgets: newMGetBatcher(client)}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Close closes the client.
func (s *Store) Close() error {
	s.mgets.close()
	return s.client.Close()
}

// Ping checks that Redis answers and that the generation marker is in place, writing one into an empty Redis.
// serve pings at startup and readiness probes ping periodically, so the marker exists before the issuer mints
// its first token: otherwise the first revocation check would start a generation after that token's iat and
// refuse it as store_reset.
func (s *Store) Ping(ctx context.Context) error {
	raw, err := s.client.Get(ctx, s.genKey()).Result()
	present := err == nil
	if err != nil && !errors.Is(err, redis.Nil) {
		return wrap("ping", err)
	}
	_, err = s.observeGeneration(ctx, raw, present)
	return err
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

func required(what, v string) error {
	if v == "" {
		return fmt.Errorf("redisstore: empty %s", what)
	}
	return nil
}

func (s *Store) key(kind, id string) string { return s.prefix + kind + id }

// revNode is the client of the node that holds the revocation slot: a cluster's master for revTag, or the client
// itself. Commands that only make sense on one node go there: SCAN, and a write followed by WAIT.
func (s *Store) revNode(ctx context.Context) (redis.UniversalClient, error) {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return s.client, nil
	}
	node, err := cc.MasterForKey(ctx, s.genKey())
	if err != nil {
		return nil, wrap("find the revocation node", err)
	}
	return node, nil
}

// mfaKey keeps all of a user's MFA keys in one hash slot, so DeleteMFA's multi-key DEL works on a cluster too.
// Kinds contain no '}', so distinct (userID, kind) pairs never produce the same key.
func (s *Store) mfaKey(userID, kind string) string { return s.prefix + "mfa:{" + userID + "}:" + kind }

// pxat is t in Unix milliseconds rounded up, so an entry never expires before t.
func pxat(t time.Time) int64 {
	tt := t.Truncate(time.Millisecond)
	if tt.Before(t) {
		tt = tt.Add(time.Millisecond)
	}
	return tt.UnixMilli()
}

// floorMilli is t in Unix milliseconds rounded down (the precision of the user cut-off). UnixMilli rounds down
// already, before 1970 too, so Revoked's hot path needs no Truncate.
func floorMilli(t time.Time) int64 { return t.UnixMilli() }

func (s *Store) live(until time.Time) bool { return s.now().Before(until) }

// --- Revocations ---

// logEvent appends a revocation event, numbered by the counter KEYS[3], to the stream KEYS[2] and trims events
// older than the retention (ms) by Redis's own clock, which is the clock of stream ids. It is part of every revoke
// script, so a change of a rev:* key and its event are one atomic step: a replica cannot miss a change it has not
// been told about.
const logEvent = `
local function logEvent(retention, ...)
  local n = redis.call('INCR', KEYS[3])
  local t = redis.call('TIME')
  local minid = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - retention
  if minid < 0 then minid = 0 end
  redis.call('XADD', KEYS[2], 'MINID', '~', string.format('%.0f', minid), '*', 'n', n, ...)
end
`

// fence is what a revoke script does when the revocation is in place already (an earlier call, perhaps one whose
// WAIT timed out, wrote it): it rewrites the key's expiry unchanged. That is still a write, replicated like any
// other, so the WAIT that follows (WithWaitReplicas) covers the earlier write too, because replication is ordered;
// with nothing written, WAIT would confirm this connection's last write, which is not that one.
const fence = `
local function fence(exp)
  redis.call('PEXPIREAT', KEYS[1], exp)
  return 0
end
`

// revokeScript: KEYS = rev key, stream, sequence; ARGV = until ms, kind, id, retention ms. It sets KEYS[1] unless it
// already outlives ARGV[1] (revocations never shrink) and logs the change. It returns 1 when it changed the key.
var revokeScript = redis.NewScript(logEvent + fence + `
local exp = redis.call('PEXPIRETIME', KEYS[1])
if exp >= tonumber(ARGV[1]) then return fence(exp) end
redis.call('SET', KEYS[1], '1', 'PXAT', ARGV[1])
logEvent(tonumber(ARGV[4]), 'k', ARGV[2], 'id', ARGV[3], 'u', ARGV[1])
return 1
`)

// revokeUserScript: KEYS = user key, stream, sequence; ARGV = cut-off ms, until ms, user id, retention ms. It keeps the
// later cut-off and the later expiry and logs the resulting state when it changed (returning 1).
var revokeUserScript = redis.NewScript(logEvent + fence + `
local before = tonumber(ARGV[1])
local untl = tonumber(ARGV[2])
local cur = tonumber(redis.call('GET', KEYS[1]) or '')
local exp = redis.call('PEXPIRETIME', KEYS[1])
if cur and cur >= before and exp >= untl then return fence(exp) end
if cur and cur > before then before = cur end
if exp > untl then untl = exp end
local b, u = string.format('%.0f', before), string.format('%.0f', untl)
redis.call('SET', KEYS[1], b, 'PXAT', u)
logEvent(tonumber(ARGV[4]), 'k', 'user', 'id', ARGV[3], 'b', b, 'u', u)
return 1
`)

// ErrNotReplicated reports a revocation write that fewer replicas than WithWaitReplicas requires confirmed in
// time. The primary may have it (and may lose it in a failover): retry.
var ErrNotReplicated = errors.New("not confirmed by enough replicas") // always wrapped with the operation

// runRevoke runs a revoke script, then, with WithWaitReplicas, WAITs for the replicas on the same connection: WAIT
// counts the replicas that have the connection's last write, and the script always writes (see fence). written
// reports that the primary ran the script, even when the wait then failed.
func (s *Store) runRevoke(ctx context.Context, script *redis.Script, keys []string, args ...any) (written bool, err error) {
	if s.waitReplicas == 0 {
		err := script.Run(ctx, s.client, keys, args...).Err()
		return err == nil, err
	}
	node, err := s.revNode(ctx)
	if err != nil {
		return false, err
	}
	c, ok := node.(*redis.Client)
	if !ok {
		return false, fmt.Errorf("redisstore: waiting for replicas needs a node client, not %T", node)
	}
	conn := c.Conn()
	defer conn.Close()
	if err := script.Run(ctx, conn, keys, args...).Err(); err != nil {
		return false, err
	}
	n, err := conn.Wait(ctx, s.waitReplicas, s.waitTimeout).Result()
	if err != nil {
		return true, fmt.Errorf("wait for replicas: %w", err)
	}
	if n < int64(s.waitReplicas) {
		return true, fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, n, s.waitReplicas, s.waitTimeout)
	}
	return true, nil
}

// Event kinds in the revocation stream.
const (
	kindJTI  = "jti"
	kindSID  = "sid"
	kindUser = "user"
)

// revTag is the hash tag of every revocation key: the revocation keys, the stream, its counter and the generation
// marker live in one Redis Cluster slot, so Revoked's MGET and the revoke scripts, which touch several of them, work
// on a cluster. Every key has '{' only here, before any id, so ids cannot change the slot.
const revTag = "{rev}:"

func (s *Store) revKey(kind, id string) string { return s.prefix + revTag + kind + ":" + id }
func (s *Store) streamKey() string             { return s.prefix + revTag + "log" }
func (s *Store) seqKey() string                { return s.prefix + revTag + "seq" }

func (s *Store) RevokeToken(ctx context.Context, jti string, until time.Time) error {
	return s.revoke(ctx, "revoke token", kindJTI, jti, until)
}

func (s *Store) RevokeSession(ctx context.Context, sid string, until time.Time) error {
	return s.revoke(ctx, "revoke session", kindSID, sid, until)
}

func (s *Store) revoke(ctx context.Context, op, kind, id string, until time.Time) error {
	if err := required(kind, id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap(op, err)
	}
	if !s.live(until) {
		return nil
	}
	keys := []string{s.revKey(kind, id), s.streamKey(), s.seqKey()}
	written, err := s.runRevoke(ctx, revokeScript, keys, pxat(until), kind, id, s.retention.Milliseconds())
	if written {
		s.tellReplicas(kind, id, 0, pxat(until))
	}
	return wrap(op, err)
}

func (s *Store) RevokeUserBefore(ctx context.Context, userID string, before, until time.Time) error {
	if err := required("user id", userID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return wrap("revoke user", err)
	}
	if !s.live(until) {
		return nil
	}
	keys := []string{s.revKey(kindUser, userID), s.streamKey(), s.seqKey()}
	written, err := s.runRevoke(ctx, revokeUserScript, keys, floorMilli(before), pxat(until), userID, s.retention.Milliseconds())
	if written {
		s.tellReplicas(kindUser, userID, floorMilli(before), pxat(until))
	}
	return wrap("revoke user", err)
}

// tellReplicas applies a write that Redis confirmed to the replicas in this process, so a sidecar sharing the
// process with the issuer denies a token as soon as logout returns. The stream brings the same change (merged
// with what Redis held) moments later; applying it twice is harmless.
func (s *Store) tellReplicas(kind, id string, before, until int64) {
	s.replicasMu.Lock()
	defer s.replicasMu.Unlock()
	for _, r := range s.replicas {
		r.applyLocal(kind, id, before, until)
	}
}

// Revoked is one MGET of the revocation keys and the generation marker; each present revocation key is a
// revocation (the user key holds the cut-off). Only when the marker is missing does a second round trip write
// a new one. Concurrent calls share pipelines (batch.go), each still one MGET in one round trip.
func (s *Store) Revoked(ctx context.Context, jti, sid, userID string, issuedAt time.Time) (bool, error) {
	keys := make([]string, 0, 4)
	if jti != "" {
		keys = append(keys, s.revKey(kindJTI, jti))
	}
	if sid != "" {
		keys = append(keys, s.revKey(kindSID, sid))
	}
	userIdx := -1
	if userID != "" {
		userIdx = len(keys)
		keys = append(keys, s.revKey(kindUser, userID))
	}
	if len(keys) == 0 {
		return false, wrap("revoked", ctx.Err())
	}
	genIdx := len(keys)
	keys = append(keys, s.genKey())
	vals, err := s.mgets.mget(ctx, keys)
	if err != nil {
		return false, wrap("revoked", err)
	}
	if len(vals) != len(keys) {
		return false, fmt.Errorf("redisstore: revoked: MGET returned %d values for %d keys", len(vals), len(keys))
	}
	raw, present := vals[genIdx].(string)
	if vals[genIdx] != nil && !present {
		return false, fmt.Errorf("redisstore: revoked: generation marker has type %T", vals[genIdx])
	}
	g, err := s.observeGeneration(ctx, raw, present)
	if err != nil {
		return false, err
	}
	if floorMilli(issuedAt) < g.Since {
		return true, store.ErrStoreReset
	}
	for i, v := range vals[:genIdx] {
		if v == nil {
			continue
		}
		if i != userIdx {
			return true, nil
		}
		str, ok := v.(string)
		if !ok {
			return false, fmt.Errorf("redisstore: revoked: user cut-off has type %T", v)
		}
		before, err := strconv.ParseInt(str, 10, 64)
		if err != nil {
			return false, fmt.Errorf("redisstore: revoked: user cut-off: %w", err)
		}
		return floorMilli(issuedAt) < before, nil
	}
	return false, nil
}

// --- Sessions ---

// Hash fields of sess:<id>. Times are Unix nanoseconds ("" for the zero time) so they round-trip exactly.
const (
	fUserID    = "uid"
	fUsername  = "un"
	fClientIP  = "ip"
	fUserAgent = "ua"
	fRefreshID = "rid"
	fCreatedAt = "c"
	fLastUsed  = "lu"
	fExpiresAt = "e"
)

// createSessionScript: KEYS = sess; ARGV = expiry ms, store (0|1), field/value pairs... Returns -1 when the id is
// taken, 1 when it stored the session, 0 when told not to.
var createSessionScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[2] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
`)

// indexSessionScript: KEYS = usess; ARGV = expiry ms, score, id. Adds id (keeping the score of an id already
// there), makes the index live at least as long as the session, and returns the index's size.
var indexSessionScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[3])
if redis.call('PEXPIRETIME', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
end
return redis.call('ZCARD', KEYS[1])
`)

// rotateScript: KEYS = sess; ARGV = old, new, last used. Returns 0 (gone), 1 (reused) or the updated hash.
// Presenting the new id again succeeds: that is a client retry of the winning call (only the winner knows the new
// id), and treating it as reuse would end a legitimate session after a lost reply.
var rotateScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'rid')
if not cur then return 0 end
if cur ~= ARGV[1] and cur ~= ARGV[2] then return 1 end
redis.call('HSET', KEYS[1], 'rid', ARGV[2], 'lu', ARGV[3])
return redis.call('HGETALL', KEYS[1])
`)

var touchScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'lu', ARGV[1])
return 1
`)

func encTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func decTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n).UTC(), nil
}

func decodeSession(id string, h map[string]string) (store.Session, error) {
	sess := store.Session{
		ID:        id,
		UserID:    h[fUserID],
		Username:  h[fUsername],
		ClientIP:  h[fClientIP],
		UserAgent: h[fUserAgent],
		RefreshID: h[fRefreshID],
	}
	var errs [3]error
	sess.CreatedAt, errs[0] = decTime(h[fCreatedAt])
	sess.LastUsed, errs[1] = decTime(h[fLastUsed])
	sess.ExpiresAt, errs[2] = decTime(h[fExpiresAt])
	if err := errors.Join(errs[:]...); err != nil {
		return store.Session{}, fmt.Errorf("redisstore: corrupt session record: %w", err)
	}
	return sess, nil
}

func (s *Store) CreateSession(ctx context.Context, sess store.Session) error {
	if err := errors.Join(required("session id", sess.ID), required("session user id", sess.UserID)); err != nil {
		return err
	}
	if sess.ExpiresAt.IsZero() {
		return errors.New("redisstore: session without expiry")
	}
	if err := ctx.Err(); err != nil {
		return wrap("create session", err)
	}
	// The session and its user's index are two keys in two Cluster slots, written one after the other, index first:
	// whatever fails in between, every live session is in its index (what ListSessions and the session cap rely
	// on), and an id left in an index without its session is pruned by ListSessions.
	doStore := "0"
	var n int64
	if s.live(sess.ExpiresAt) {
		doStore = "1"
		score := float64(0)
		if !sess.CreatedAt.IsZero() {
			score = float64(sess.CreatedAt.UnixMilli())
		}
		var err error
		n, err = indexSessionScript.Run(ctx, s.client, []string{s.key("usess:", sess.UserID)},
			pxat(sess.ExpiresAt), score, sess.ID).Int64()
		if err != nil {
			return wrap("create session", err)
		}
	}
	created, err := createSessionScript.Run(ctx, s.client, []string{s.key("sess:", sess.ID)},
		pxat(sess.ExpiresAt), doStore,
		fUserID, sess.UserID,
		fUsername, sess.Username,
		fClientIP, sess.ClientIP,
		fUserAgent, sess.UserAgent,
		fRefreshID, sess.RefreshID,
		fCreatedAt, encTime(sess.CreatedAt),
		fLastUsed, encTime(sess.LastUsed),
		fExpiresAt, encTime(sess.ExpiresAt),
	).Int64()
	if err != nil {
		return wrap("create session", err)
	}
	if created < 0 {
		return store.ErrAlreadyExists
	}
	if created > 0 && n%pruneEvery == 0 {
		// Best effort: the session exists; a failed prune only delays cleanup.
		_, _ = s.ListSessions(ctx, sess.UserID)
	}
	return nil
}

func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	if id == "" {
		return store.Session{}, store.ErrNotFound
	}
	h, err := s.client.HGetAll(ctx, s.key("sess:", id)).Result()
	if err != nil {
		return store.Session{}, wrap("get session", err)
	}
	if len(h) == 0 {
		return store.Session{}, store.ErrNotFound
	}
	return decodeSession(id, h)
}

// ListSessions reads the index, then every session in one pipeline, and prunes ids whose session is gone.
func (s *Store) ListSessions(ctx context.Context, userID string) ([]store.Session, error) {
	if userID == "" {
		return nil, wrap("list sessions", ctx.Err())
	}
	idxKey := s.key("usess:", userID)
	ids, err := s.client.ZRange(ctx, idxKey, 0, -1).Result()
	if err != nil {
		return nil, wrap("list sessions", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, s.key("sess:", id))
		}
		return nil
	}); err != nil {
		return nil, wrap("list sessions", err)
	}
	var out []store.Session
	var stale []any
	for i, id := range ids {
		h := cmds[i].Val()
		if len(h) == 0 {
			stale = append(stale, id)
			continue
		}
		sess, err := decodeSession(id, h)
		if err != nil {
			return nil, err
		}
		// The index is keyed by user id; a session of someone else would mean a corrupt index.
		if sess.UserID != userID {
			stale = append(stale, id)
			continue
		}
		out = append(out, sess)
	}
	if len(stale) > 0 {
		if err := s.client.ZRem(ctx, idxKey, stale...).Err(); err != nil {
			return nil, wrap("list sessions: prune", err)
		}
	}
	store.SortSessions(out)
	return out, nil
}

func (s *Store) RotateRefresh(ctx context.Context, id, oldRefreshID, newRefreshID string, now time.Time) (store.Session, error) {
	if err := errors.Join(required("old refresh id", oldRefreshID), required("new refresh id", newRefreshID)); err != nil {
		return store.Session{}, err
	}
	if id == "" {
		return store.Session{}, store.ErrNotFound
	}
	res, err := rotateScript.Run(ctx, s.client, []string{s.key("sess:", id)}, oldRefreshID, newRefreshID, encTime(now)).Result()
	if err != nil {
		return store.Session{}, wrap("rotate refresh", err)
	}
	switch v := res.(type) {
	case int64:
		if v == 0 {
			return store.Session{}, store.ErrNotFound
		}
		return store.Session{}, store.ErrRefreshReused
	case []any:
		h, err := pairs(v)
		if err != nil {
			return store.Session{}, wrap("rotate refresh", err)
		}
		return decodeSession(id, h)
	default:
		return store.Session{}, fmt.Errorf("redisstore: rotate refresh: unexpected reply %T", res)
	}
}

// pairs turns a flat HGETALL reply into a map.
func pairs(flat []any) (map[string]string, error) {
	if len(flat)%2 != 0 {
		return nil, errors.New("odd HGETALL reply")
	}
	h := make(map[string]string, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		k, ok1 := flat[i].(string)
		v, ok2 := flat[i+1].(string)
		if !ok1 || !ok2 {
			return nil, errors.New("non-string HGETALL reply")
		}
		h[k] = v
	}
	return h, nil
}

func (s *Store) TouchSession(ctx context.Context, id string, now time.Time) error {
	if id == "" {
		return store.ErrNotFound
	}
	n, err := touchScript.Run(ctx, s.client, []string{s.key("sess:", id)}, encTime(now)).Int64()
	if err != nil {
		return wrap("touch session", err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if id == "" {
		return wrap("delete session", ctx.Err())
	}
	key := s.key("sess:", id)
	userID, err := s.client.HGet(ctx, key, fUserID).Result()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return wrap("delete session", err)
	}
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.ZRem(ctx, s.key("usess:", userID), id)
		return nil
	})
	return wrap("delete session", err)
}

// --- Counters ---

func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (int64, error) {
	if err := required("counter key", key); err != nil {
		return 0, err
	}
	if window <= 0 {
		return 0, fmt.Errorf("redisstore: counter window %v is not positive", window)
	}
	k := s.key("cnt:", key)
	var incr *redis.IntCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, k)
		// NX: only the first hit starts the window.
		p.Do(ctx, "pexpireat", k, pxat(s.now().Add(window)), "nx")
		return nil
	})
	if err != nil {
		return 0, wrap("hit", err)
	}
	return incr.Val(), nil
}

func (s *Store) Count(ctx context.Context, key string) (int64, error) {
	n, err := s.client.Get(ctx, s.key("cnt:", key)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, wrap("count", err)
}

func (s *Store) Clear(ctx context.Context, key string) error {
	return wrap("clear", s.client.Del(ctx, s.key("cnt:", key)).Err())
}

func (s *Store) Lock(ctx context.Context, key string, until time.Time) error {
	if err := required("lock key", key); err != nil {
		return err
	}
	k := s.key("lock:", key)
	if !s.live(until) {
		return wrap("lock", s.client.Del(ctx, k).Err())
	}
	return wrap("lock", s.client.Do(ctx, "set", k, encTime(until), "pxat", pxat(until)).Err())
}

func (s *Store) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	v, err := s.client.Get(ctx, s.key("lock:", key)).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, wrap("locked until", err)
	}
	until, err := decTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("redisstore: locked until: corrupt lock: %w", err)
	}
	// Redis keeps the key up to a millisecond longer (pxat rounds up).
	if !s.live(until) {
		return time.Time{}, nil
	}
	return until, nil
}

// --- MFA ---

type enrollmentJSON struct {
	Secret    []byte    `json:"secret"`
	EnabledAt time.Time `json:"enabled_at"`
}

// useStepScript: KEYS = step; ARGV = step, until ms. Refuses step <= last; keeps the later expiry.
var useStepScript = redis.NewScript(`
local step = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '')
if last and step <= last then return 0 end
local exp = redis.call('PEXPIRETIME', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
if exp > tonumber(ARGV[2]) then redis.call('PEXPIREAT', KEYS[1], exp) end
return 1
`)

func (s *Store) PutPendingMFA(ctx context.Context, userID string, secret []byte, until time.Time) error {
	if err := errors.Join(required("user id", userID), required("secret", string(secret))); err != nil {
		return err
	}
	k := s.mfaKey(userID, "pending")
	if !s.live(until) {
		return wrap("put pending mfa", s.client.Del(ctx, k).Err())
	}
	return wrap("put pending mfa", s.client.Do(ctx, "set", k, secret, "pxat", pxat(until)).Err())
}

func (s *Store) GetPendingMFA(ctx context.Context, userID string) ([]byte, error) {
	b, err := s.client.Get(ctx, s.mfaKey(userID, "pending")).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, wrap("get pending mfa", err)
	}
	return b, nil
}

func (s *Store) DeletePendingMFA(ctx context.Context, userID string) error {
	return wrap("delete pending mfa", s.client.Del(ctx, s.mfaKey(userID, "pending")).Err())
}

// PutMFA replaces the enrollment and its backup-code set in one transaction.
func (s *Store) PutMFA(ctx context.Context, userID string, e store.MFAEnrollment) error {
	if err := errors.Join(required("user id", userID), required("secret", string(e.Secret))); err != nil {
		return err
	}
	rec, err := json.Marshal(enrollmentJSON{Secret: e.Secret, EnabledAt: e.EnabledAt})
	if err != nil {
		return fmt.Errorf("redisstore: put mfa: %w", err)
	}
	backup := s.mfaKey(userID, "backup")
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.mfaKey(userID, "enr"), rec, 0)
		p.Del(ctx, backup)
		if len(e.BackupCodes) > 0 {
			members := make([]any, len(e.BackupCodes))
			for i, c := range e.BackupCodes {
				members[i] = c
			}
			p.SAdd(ctx, backup, members...)
		}
		return nil
	})
	return wrap("put mfa", err)
}

func (s *Store) GetMFA(ctx context.Context, userID string) (store.MFAEnrollment, error) {
	var rec *redis.StringCmd
	var codes *redis.StringSliceCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rec = p.Get(ctx, s.mfaKey(userID, "enr"))
		codes = p.SMembers(ctx, s.mfaKey(userID, "backup"))
		return nil
	})
	if errors.Is(rec.Err(), redis.Nil) {
		return store.MFAEnrollment{}, store.ErrNotFound
	}
	if err != nil {
		return store.MFAEnrollment{}, wrap("get mfa", err)
	}
	var ej enrollmentJSON
	if err := json.Unmarshal([]byte(rec.Val()), &ej); err != nil {
		return store.MFAEnrollment{}, fmt.Errorf("redisstore: get mfa: corrupt enrollment: %w", err)
	}
	e := store.MFAEnrollment{Secret: ej.Secret, EnabledAt: ej.EnabledAt}
	if c := codes.Val(); len(c) > 0 {
		e.BackupCodes = c
		slices.Sort(e.BackupCodes)
	}
	return e, nil
}

func (s *Store) DeleteMFA(ctx context.Context, userID string) error {
	err := s.client.Del(ctx, s.mfaKey(userID, "enr"), s.mfaKey(userID, "backup"), s.mfaKey(userID, "step")).Err()
	return wrap("delete mfa", err)
}

func (s *Store) UseTOTPStep(ctx context.Context, userID string, step int64, until time.Time) (bool, error) {
	if err := required("user id", userID); err != nil {
		return false, err
	}
	// Lua numbers are doubles: keep steps exact.
	if step < 0 || step > 1<<53 {
		return false, fmt.Errorf("redisstore: TOTP step %d out of range", step)
	}
	if err := ctx.Err(); err != nil {
		return false, wrap("use totp step", err)
	}
	if !s.live(until) {
		return false, nil
	}
	n, err := useStepScript.Run(ctx, s.client, []string{s.mfaKey(userID, "step")}, step, pxat(until)).Int64()
	if err != nil {
		return false, wrap("use totp step", err)
	}
	return n == 1, nil
}

func (s *Store) UseBackupCode(ctx context.Context, userID, codeHash string) (bool, error) {
	n, err := s.client.SRem(ctx, s.mfaKey(userID, "backup"), codeHash).Result()
	if err != nil {
		return false, wrap("use backup code", err)
	}
	return n == 1, nil
}

// --- Once ---

func (s *Store) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	if err := required("claim key", key); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, wrap("claim", err)
	}
	if !s.live(until) {
		return false, nil
	}
	err := s.client.Do(ctx, "set", s.key("once:", key), "1", "nx", "pxat", pxat(until)).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, wrap("claim", err)
	}
	return true, nil
}
