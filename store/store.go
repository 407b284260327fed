// Package store defines the state Gatehouse keeps outside tokens: revocations, login sessions, brute-force counters,
// MFA enrollments and single-use claims. Backends live in sub-packages (memstore, redisstore) and all pass the same
// conformance suite (store/conformance), so callers may rely on the semantics documented here and nothing more.
//
// Time semantics shared by every backend:
//   - Entries written with an expiry ("until", Session.ExpiresAt) are live while the backend's clock is before it.
//     A write whose expiry is not after the backend's clock stores nothing (for replacing writes such as Lock and
//     PutPendingMFA it removes what was there), so callers need no special case for "already expired".
//   - Revocations only ever grow: a second revocation of the same thing keeps the later expiry, and
//     RevokeUserBefore keeps the later cut-off.
//   - Times are compared at millisecond precision where a backend must encode them (the user cut-off); JWT iat is
//     whole seconds, so this never matters for real tokens.
//
// Every error other than the sentinels below means the backend could not answer; callers must fail closed.
package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

var (
	// ErrNotFound reports a missing (or expired) record.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists reports a create of an id that is taken.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrRefreshReused reports a refresh id that is not the session's current one: it was rotated away already, so
	// the caller should treat the presented refresh token as stolen and end the session.
	ErrRefreshReused = errors.New("store: refresh token reused")
	// ErrStoreReset is returned by Revoked, together with true, for a token issued before the backend's current
	// generation began: the backend lost its data (a restart without persistence, FLUSHALL, a failover to an
	// empty replica) and with it any revocation of that token, so the token is refused, never trusted again.
	// Callers that do not know this sentinel still fail closed: it is an error and the boolean says revoked.
	ErrStoreReset = errors.New("store: token predates a store reset")
	// ErrStale is returned by a revocation replica that has not heard from its backend within its staleness
	// bound: it cannot tell whether a token was revoked since, so callers fail closed (503) until it catches up.
	ErrStale = errors.New("store: revocation state is stale")
)

// Revocations answers "is this token still allowed" for tokens that have not expired yet.
type Revocations interface {
	// RevokeToken revokes one token by its jti until the token's own expiry.
	RevokeToken(ctx context.Context, jti string, until time.Time) error
	// RevokeSession revokes every token carrying sid until the session's last token expires.
	RevokeSession(ctx context.Context, sid string, until time.Time) error
	// RevokeUserBefore revokes every token of userID issued strictly before `before`; a token issued at `before`
	// or later stays valid. The latest `before` (and the latest `until`) wins when called repeatedly.
	RevokeUserBefore(ctx context.Context, userID string, before, until time.Time) error
	// Revoked reports whether any of the three revocations applies. Empty identifiers match nothing.
	// One round trip on Redis (MGET). issuedAt < user's "before" => revoked.
	// Backends that can lose their data (Redis) answer (true, ErrStoreReset) for a token issued before the data
	// loss was detected; a replica answers ErrStale when it cannot vouch for its copy.
	Revoked(ctx context.Context, jti, sid, userID string, issuedAt time.Time) (bool, error)
}

// Session is one login: the anchor of a refresh-token family.
type Session struct {
	ID, UserID, Username, ClientIP, UserAgent, RefreshID string
	CreatedAt, LastUsed, ExpiresAt                       time.Time
}

// SortSessions orders sessions oldest first, ties by ID: the order ListSessions promises.
func SortSessions(ss []Session) {
	slices.SortFunc(ss, func(a, b Session) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// Sessions stores login sessions. A session is gone once ExpiresAt passes (absolute lifetime).
type Sessions interface {
	// CreateSession stores s; ErrAlreadyExists when s.ID is live already. ID, UserID and ExpiresAt are required.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns ErrNotFound when the session is missing or expired.
	GetSession(ctx context.Context, id string) (Session, error)
	// ListSessions returns the user's live sessions, oldest first (ties by ID); an unknown user has none.
	ListSessions(ctx context.Context, userID string) ([]Session, error)
	// RotateRefresh atomically replaces the current refresh id oldRefreshID with newRefreshID and sets LastUsed to
	// now: one winner under races. ErrNotFound when the session is gone, ErrRefreshReused when oldRefreshID is
	// not current. It returns the updated session.
	RotateRefresh(ctx context.Context, id, oldRefreshID, newRefreshID string, now time.Time) (Session, error)
	// TouchSession sets LastUsed; ErrNotFound when the session is gone.
	TouchSession(ctx context.Context, id string, now time.Time) error
	// DeleteSession removes the session; deleting a missing session is not an error.
	DeleteSession(ctx context.Context, id string) error
}

// Counters regulates brute force: fixed-window failure counters and explicit locks, keyed by the caller
// (e.g. "user:alice", "ip:192.0.2.1"). Counters and locks live in separate namespaces.
type Counters interface {
	// Hit counts one event and returns the count within the window started by the first hit; the window is
	// not extended by later hits.
	Hit(ctx context.Context, key string, window time.Duration) (int64, error)
	// Count returns the current count (0 when none or the window is over).
	Count(ctx context.Context, key string) (int64, error)
	// Clear resets the counter (not the lock).
	Clear(ctx context.Context, key string) error
	// Lock sets (replaces) the lock; an until that is not in the future unlocks.
	Lock(ctx context.Context, key string, until time.Time) error
	// LockedUntil returns the lock's end, or the zero time when not locked.
	LockedUntil(ctx context.Context, key string) (time.Time, error)
}

// MFAEnrollment is a user's confirmed TOTP enrollment.
type MFAEnrollment struct {
	Secret      []byte   // ciphertext; the store never sees the seed in clear
	BackupCodes []string // hashes of unused backup codes; a set, returned sorted
	EnabledAt   time.Time
}

// MFA stores TOTP enrollments and the replay state that makes each code single-use.
type MFA interface {
	// PutPendingMFA stores (replaces) a secret awaiting confirmation; the secret must not be empty.
	PutPendingMFA(ctx context.Context, userID string, secret []byte, until time.Time) error
	GetPendingMFA(ctx context.Context, userID string) ([]byte, error) // ErrNotFound
	DeletePendingMFA(ctx context.Context, userID string) error
	// PutMFA stores (replaces) the enrollment, including the whole backup-code set; Secret must not be empty.
	PutMFA(ctx context.Context, userID string, e MFAEnrollment) error
	GetMFA(ctx context.Context, userID string) (MFAEnrollment, error) // ErrNotFound
	// DeleteMFA removes the enrollment, its backup codes and the last used TOTP step (not a pending secret).
	DeleteMFA(ctx context.Context, userID string) error
	// UseTOTPStep atomically records step as used: false if step <= the last used step. The record lives until
	// `until` (the end of the step's acceptance window); an until that is not in the future refuses the step,
	// because it could not be remembered.
	UseTOTPStep(ctx context.Context, userID string, step int64, until time.Time) (bool, error)
	// UseBackupCode atomically removes codeHash from the user's backup codes and reports whether it was there.
	UseBackupCode(ctx context.Context, userID, codeHash string) (bool, error)
}

// Once makes something single-use.
type Once interface {
	// Claim reports whether this caller is the first to claim key (SET NX); the claim lasts until `until`.
	// A claim whose until is not in the future cannot be won.
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// Pinger reports whether the backend answers (readiness checks).
type Pinger interface {
	Ping(ctx context.Context) error
}
