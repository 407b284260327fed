package issuer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"gatehouse/mfa"
	"gatehouse/store"
	"gatehouse/token"
	"gatehouse/users"
)

// MFAStore is what the issuer needs from store.MFA.
type MFAStore interface {
	PutPendingMFA(ctx context.Context, userID string, secret []byte, until time.Time) error
	GetPendingMFA(ctx context.Context, userID string) ([]byte, error)
	DeletePendingMFA(ctx context.Context, userID string) error
	PutMFA(ctx context.Context, userID string, e store.MFAEnrollment) error
	GetMFA(ctx context.Context, userID string) (store.MFAEnrollment, error)
	DeleteMFA(ctx context.Context, userID string) error
	UseTOTPStep(ctx context.Context, userID string, step int64, until time.Time) (bool, error)
	UseBackupCode(ctx context.Context, userID, codeHash string) (bool, error)
}

// OnceStore is store.Once: single-use claims.
type OnceStore interface {
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}

// MFAConfig wires TOTP multi-factor authentication. Store, Once and Keys are required: without them the issuer
// could not tell that a user has MFA on, so it refuses to start rather than skip the second factor.
type MFAConfig struct {
	Store MFAStore  // required: enrolments, pending secrets, used steps and backup codes
	Once  OnceStore // required: single use of mfa_tokens
	Keys  *mfa.Keys // required: seals TOTP secrets at rest and keys backup-code hashes
	// IssuerName is what authenticator apps show next to the account; default "Gatehouse".
	IssuerName string
	// TokenTTL is the mfa_token lifetime; default 5m, at most MaxMFATokenTTL.
	TokenTTL time.Duration
	// MaxFailures wrong or replayed codes within Window lock the user's MFA for Lockout; defaults 5, 5m, 5m.
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
}

// MaxMFATokenTTL bounds MFAConfig.TokenTTL. The lockout's void marker must outlive every mfa_token issued before
// the lock, and it recovers the lock's start from its own expiry by this constant (see mfaVoidSpan).
const MaxMFATokenTTL = time.Hour

// mfaPendingTTL is how long a secret from SetupMFA waits for ConfirmMFA.
const mfaPendingTTL = 5 * time.Minute

// mfaVoidSpan is how long after a lockout began its void marker lives: past the end of every mfa_token issued
// before it (TokenTTL ≤ MaxMFATokenTTL, plus the verifier's leeway). A constant, not derived from the
// configured TTL, so a restart with another TTL reads the lock start of an earlier marker correctly.
const mfaVoidSpan = MaxMFATokenTTL + token.MaxLeeway

func (c *MFAConfig) setDefaults() {
	if c.IssuerName == "" {
		c.IssuerName = "Gatehouse"
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 5 * time.Minute
	}
	if c.MaxFailures <= 0 {
		c.MaxFailures = 5
	}
	if c.Window <= 0 {
		c.Window = 5 * time.Minute
	}
	if c.Lockout <= 0 {
		c.Lockout = 5 * time.Minute
	}
}

// Counter and lock keys of a user's MFA regulation (the login regulator's keys start with "login:").
func mfaFailKey(userID string) string { return "mfa:user:" + userID } // failure counter and the lock
func mfaVoidKey(userID string) string { return "mfa:void:" + userID } // lock start + mfaVoidSpan

// Method names in audit lines and login reasons.
const (
	methodTOTP   = "totp"
	methodBackup = "backup_code"
)

// MFASetup is a new TOTP secret awaiting ConfirmMFA, rendered for an authenticator app.
type MFASetup struct {
	Secret     string // base32, for typing in by hand
	OTPAuthURI string // otpauth://totp/ISSUER:ACCOUNT?...
	QRPNG      []byte // OTPAuthURI as a QR code (PNG)
}

// MFAStatus is whether a user has MFA on.
type MFAStatus struct {
	Enabled         bool
	EnabledAt       time.Time
	BackupCodesLeft int
}

// mfaEnrolled reports whether userID has MFA on. A store failure is a 503: never a login without the factor.
func (s *Server) mfaEnrolled(ctx context.Context, userID string) (bool, error) {
	_, err := s.mfaStore.GetMFA(ctx, userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, storeError("get mfa", err)
	}
	return true, nil
}

// mfaChallenge mints the mfa_token of a login that passed the password: typed mfa+jwt, sub the user, sid a fresh
// login-attempt id (no session exists), a random jti that VerifyMFA claims once. It also returns the attempt id
// for the audit line.
func (s *Server) mfaChallenge(u *users.User) (MFAChallenge, string, error) {
	now := s.now()
	attempt, err := token.NewID(s.rand)
	if err != nil {
		return MFAChallenge{}, "", errInternal(err)
	}
	jti, err := token.NewID(s.rand)
	if err != nil {
		return MFAChallenge{}, "", errInternal(err)
	}
	exp := now.Add(s.cfg.MFA.TokenTTL)
	raw, err := s.cfg.Signer.Sign(token.Claims{Type: token.MFA, Issuer: s.cfg.Issuer, Subject: u.ID,
		Audience: s.cfg.Audience, ID: jti, SessionID: attempt, IssuedAt: now, ExpiresAt: exp})
	if err != nil {
		return MFAChallenge{}, "", errInternal(err)
	}
	return MFAChallenge{Token: raw, ExpiresIn: exp.Unix() - now.Unix()}, attempt, nil
}

// VerifyMFA completes a login with its mfa_token and a TOTP or backup code (mfa.LooksLikeBackupCode tells them
// apart) and starts a session with a new id. With a backup code, every other session of the user ends and every
// token issued before this second is revoked. Errors: ErrInvalidRequest; ErrMFATokenInvalid / ErrMFATokenExpired
// (log in again: the token is malformed, expired, used, issued before an MFA lockout or revoked, or the user was
// removed, disabled or turned MFA off); ErrMFACodeInvalid and ErrCodeReplayed (the token stays usable);
// ErrRateLimited (*RateLimitedError); ErrUnavailable; ErrInternal (a secret that does not decrypt).
//
// Order: token → user → revocation → lock → void marker → enrolment → code (consumed atomically) → claim the
// token → session. A wrong code burns nothing; it counts against the user. The token is claimed only after its
// code was accepted, so a code is spent before the single-use check: two concurrent verifies with one token and
// two valid codes spend both codes and log in once.
func (s *Server) VerifyMFA(ctx context.Context, mfaToken, code, clientIP, userAgent string) (Tokens, error) {
	if mfaToken == "" || code == "" {
		return Tokens{}, invalidRequest("mfa_token and code are required")
	}
	ev := auditEvent{Event: EventMFAVerify, ClientIP: clientIP}
	var extra []slog.Attr
	t, err := s.verifyMFA(ctx, mfaToken, code, userAgent, &ev, &extra)
	if err != nil {
		ev.Outcome = outcomeOf(err)
	} else {
		ev.Outcome, ev.SessionID = OutcomeSuccess, t.SessionID
	}
	s.audit(ctx, ev, extra...)
	s.metrics.mfaVerify.WithLabelValues(ev.Outcome).Inc()
	return t, err
}

func (s *Server) verifyMFA(ctx context.Context, raw, code, userAgent string, ev *auditEvent, extra *[]slog.Attr) (Tokens, error) {
	c, err := s.cfg.Verifier.Verify(raw, token.MFA)
	if err != nil {
		ev.Reason = token.Reason(err)
		if errors.Is(err, token.ErrExpired) {
			return Tokens{}, errMFATokenExpired()
		}
		return Tokens{}, errMFATokenInvalid()
	}
	ev.UserID = c.Subject
	*extra = append(*extra, slog.String("mfa_attempt", c.SessionID))
	u, why := s.activeUser(c.Subject)
	if u == nil {
		ev.Reason = why
		return Tokens{}, errMFATokenInvalid()
	}
	ev.Username = users.Canonical(u.Username)
	// Logout-all and a backup-code login revoke the user's tokens issued before them, mfa_tokens included; a
	// token issued before a store reset is refused too.
	revoked, err := s.revoked(ctx, c)
	if err != nil {
		return Tokens{}, err
	}
	if revoked {
		ev.Reason = "token_revoked"
		return Tokens{}, errMFATokenInvalid()
	}
	if err := s.mfaNotLocked(ctx, u.ID); err != nil {
		ev.Reason = "locked_out"
		return Tokens{}, err
	}
	start, err := s.mfaLockStart(ctx, u.ID)
	if err != nil {
		return Tokens{}, err
	}
	// iat has whole seconds: a token issued in the second the lock began may predate it, so it goes too.
	if !start.IsZero() && c.IssuedAt.Unix() <= start.Unix() {
		ev.Reason = "issued_before_lockout"
		return Tokens{}, errMFATokenInvalid()
	}
	enr, err := s.mfaStore.GetMFA(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ev.Reason = "mfa_disabled"
		return Tokens{}, errMFATokenInvalid()
	case err != nil:
		return Tokens{}, storeError("get mfa", err)
	}
	method, err := s.checkCode(ctx, u, enr, code, http.StatusUnauthorized, ev)
	*extra = append(*extra, slog.String("method", method))
	if err != nil {
		return Tokens{}, err
	}
	won, err := s.once.Claim(ctx, "mfa:token:"+c.ID, c.ExpiresAt.Add(s.cfg.Leeway))
	if err != nil {
		return Tokens{}, storeError("claim mfa token", err)
	}
	if !won {
		ev.Reason = "token_used"
		return Tokens{}, errMFATokenInvalid()
	}
	s.mfaSucceeded(ctx, u.ID)

	now := s.now()
	if method == methodBackup {
		// A backup code means a lost or absent authenticator: keep only the session started here. Cut off every
		// token issued before this second first (the new session's tokens get iat == cut-off and stay valid);
		// the listed sessions are ended after.
		if err := s.revs.RevokeUserBefore(ctx, u.ID, now.Truncate(time.Second), now.Add(s.cfg.RefreshTTL+s.cfg.Leeway)); err != nil {
			return Tokens{}, storeError("revoke user", err)
		}
	}
	t, err := s.completeLogin(ctx, u, ev.ClientIP, userAgent, "mfa_"+method)
	if err != nil {
		return Tokens{}, err
	}
	if method == methodBackup {
		if _, err := s.endOtherSessions(ctx, u.ID, t.SessionID, "mfa_backup_code", ev.ClientIP); err != nil {
			return Tokens{}, err
		}
		s.auditBackupUsed(ctx, *ev, u.ID, t.SessionID)
	}
	return t, nil
}

// checkCode accepts code for u once: a backup code is removed atomically from the set; a TOTP code goes through
// spendTOTP. A wrong or replayed code counts against the user (mfaFailed). status is the HTTP status of a wrong
// code: 401 on verify, 400 on disable (whose caller holds a valid access token). A secret that does not decrypt
// is a 500, never a skipped check.
func (s *Server) checkCode(ctx context.Context, u *users.User, enr store.MFAEnrollment, code string, status int, ev *auditEvent) (string, error) {
	secret, err := s.openSecret(ctx, u.ID, enr.Secret)
	if err != nil {
		return "", err
	}
	if mfa.LooksLikeBackupCode(code) {
		ok, err := s.mfaStore.UseBackupCode(ctx, u.ID, s.cfg.MFA.Keys.HashBackupCode(u.ID, code))
		if err != nil {
			return methodBackup, storeError("use backup code", err)
		}
		if !ok {
			// Wrong or spent: spent codes are gone from the set, so the two look alike.
			ev.Reason = "wrong_backup_code"
			return methodBackup, s.mfaFailed(ctx, u, *ev, errCodeInvalid(status))
		}
		return methodBackup, nil
	}
	if err := s.spendTOTP(ctx, u.ID, secret, code, status, ev); err != nil {
		if errors.Is(err, ErrMFACodeInvalid) {
			return methodTOTP, s.mfaFailed(ctx, u, *ev, err)
		}
		return methodTOTP, err
	}
	return methodTOTP, nil
}

// spendTOTP accepts code once for userID: it must match secret at the step of now or one either side, and that
// step must be newer than the last one the user spent (recorded atomically). A wrong code is errCodeInvalid and
// a spent step errCodeReplayed (audited as a replay), both with status; counting them is the caller's choice.
func (s *Server) spendTOTP(ctx context.Context, userID string, secret []byte, code string, status int, ev *auditEvent) error {
	step, ok := mfa.Match(secret, code, s.now())
	if !ok {
		ev.Reason = "wrong_code"
		return errCodeInvalid(status)
	}
	fresh, err := s.mfaStore.UseTOTPStep(ctx, userID, step, mfa.StepEnd(step))
	if err != nil {
		return storeError("use totp step", err)
	}
	if !fresh {
		ev.Reason = "step_used"
		replay := *ev
		replay.Event, replay.Outcome = EventMFAReplay, OutcomeReplayed
		s.audit(ctx, replay, slog.String("via", ev.Event), slog.Int64("step", step))
		return errCodeReplayed(status)
	}
	return nil
}

// openSecret decrypts a sealed TOTP secret. Failure means a wrong mfa.encryption_key_file or a tampered or
// misplaced record: an operator problem, logged as such, and a 500 for the user.
func (s *Server) openSecret(ctx context.Context, userID string, sealed []byte) ([]byte, error) {
	secret, err := s.cfg.MFA.Keys.Open(userID, sealed)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "MFA secret does not decrypt: wrong mfa.encryption_key_file or a tampered record",
			slog.String("event", "issuer.mfa_unseal_failed"), slog.String("user_id", userID))
		return nil, errInternal(fmt.Errorf("open mfa secret of %q: %w", userID, err))
	}
	return secret, nil
}

// mfaFailed counts a wrong or replayed code against u and returns refusal, or a store error. At MaxFailures
// within Window (a fixed window from the first failure) u's MFA locks for Lockout: verify and disable then refuse
// everything with 429, and every mfa_token issued up to the lock's start is void for good (the void marker), so
// a lockout cannot be waited out with tokens obtained before it. The code that reaches the limit still gets its
// own refusal; the next attempt gets the 429.
func (s *Server) mfaFailed(ctx context.Context, u *users.User, ev auditEvent, refusal error) error {
	key := mfaFailKey(u.ID)
	n, err := s.counters.Hit(ctx, key, s.cfg.MFA.Window)
	if err != nil {
		return storeError("count mfa failure", err)
	}
	if n < int64(s.cfg.MFA.MaxFailures) {
		return refusal
	}
	// >= rather than ==: if a previous Lock failed, the next failure locks. The void marker goes first: if the
	// lock write then fails, the tokens are void anyway.
	now := s.now()
	until := now.Add(s.cfg.MFA.Lockout)
	if err := s.counters.Lock(ctx, mfaVoidKey(u.ID), now.Add(mfaVoidSpan)); err != nil {
		return storeError("void mfa tokens", err)
	}
	if err := s.counters.Lock(ctx, key, until); err != nil {
		return storeError("lock mfa", err)
	}
	if err := s.counters.Clear(ctx, key); err != nil {
		return storeError("clear mfa failures", err)
	}
	ev.Event, ev.Outcome, ev.Reason, ev.SessionID = EventMFALockout, OutcomeLocked, "too_many_failures", ""
	s.audit(ctx, ev, slog.Int64("failures", n), slog.String("duration", s.cfg.MFA.Lockout.String()),
		timeAttr("locked_until", until))
	s.metrics.mfaLockouts.Inc()
	return refusal
}

// mfaSucceeded clears the failure counter after an accepted code. Failing to clear only leaves the owner closer
// to a lockout, so it is logged, not returned: the code and the token are spent already.
func (s *Server) mfaSucceeded(ctx context.Context, userID string) {
	if err := s.counters.Clear(ctx, mfaFailKey(userID)); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "could not clear MFA failures", slog.String("event", "issuer.error"),
			slog.String("user_id", userID), slog.String("error", err.Error()))
	}
}

// mfaNotLocked returns a 429 while userID's MFA is locked.
func (s *Server) mfaNotLocked(ctx context.Context, userID string) error {
	until, err := s.counters.LockedUntil(ctx, mfaFailKey(userID))
	if err != nil {
		return storeError("mfa locked until", err)
	}
	if now := s.now(); until.After(now) {
		return errRateLimited(now, until)
	}
	return nil
}

// mfaLockStart returns when userID's latest MFA lockout began, or the zero time when none is remembered (the
// marker outlives every mfa_token issued before it).
func (s *Server) mfaLockStart(ctx context.Context, userID string) (time.Time, error) {
	until, err := s.counters.LockedUntil(ctx, mfaVoidKey(userID))
	if err != nil {
		return time.Time{}, storeError("mfa void marker", err)
	}
	if until.IsZero() {
		return time.Time{}, nil
	}
	return until.Add(-mfaVoidSpan), nil
}

// accessUser returns the user of access claims c, who must still exist and be enabled.
func (s *Server) accessUser(c *token.Claims) (*users.User, error) {
	if err := requireAccess(c); err != nil {
		return nil, err
	}
	u, _ := s.activeUser(c.Subject)
	if u == nil {
		return nil, errUnauthenticated()
	}
	return u, nil
}

// SetupMFA starts an enrolment for the caller (c from VerifyAccess): a new secret, sealed and kept for 5 minutes
// awaiting ConfirmMFA; a new setup replaces a pending one. Errors: ErrInvalidToken, ErrMFAAlreadyEnabled (disable
// first), ErrUnavailable, ErrInternal.
func (s *Server) SetupMFA(ctx context.Context, c *token.Claims, clientIP string) (MFASetup, error) {
	u, err := s.accessUser(c)
	if err != nil {
		return MFASetup{}, err
	}
	enrolled, err := s.mfaEnrolled(ctx, u.ID)
	if err != nil {
		return MFASetup{}, err
	}
	if enrolled {
		return MFASetup{}, errMFAAlreadyEnabled()
	}
	secret, err := mfa.NewSecret(s.rand)
	if err != nil {
		return MFASetup{}, errInternal(err)
	}
	sealed, err := s.cfg.MFA.Keys.Seal(u.ID, secret)
	if err != nil {
		return MFASetup{}, errInternal(err)
	}
	enr, err := mfa.NewEnrolment(secret, s.cfg.MFA.IssuerName, u.Username)
	if err != nil {
		return MFASetup{}, errInternal(err)
	}
	if err := s.mfaStore.PutPendingMFA(ctx, u.ID, sealed, s.now().Add(mfaPendingTTL)); err != nil {
		return MFASetup{}, storeError("put pending mfa", err)
	}
	s.audit(ctx, auditEvent{Event: EventMFASetup, UserID: u.ID, Username: users.Canonical(u.Username),
		ClientIP: clientIP, Outcome: OutcomeSuccess, SessionID: c.SessionID})
	return MFASetup{Secret: enr.Secret, OTPAuthURI: enr.OTPAuthURI, QRPNG: enr.QRPNG}, nil
}

// ConfirmMFA turns MFA on with a code from the pending secret and returns mfa.BackupCodeCount backup codes, shown
// this once (the store keeps only their HMACs). The code's step counts as used, so it cannot log in afterwards.
// Every other session of the caller ends: they were started with the password alone. Errors: ErrInvalidToken,
// ErrInvalidRequest, ErrMFAAlreadyEnabled, ErrMFASetupNotFound (none pending, or it expired), ErrMFACodeInvalid,
// ErrCodeReplayed, ErrUnavailable, ErrInternal.
//
// Wrong codes here do not count towards the lockout: the caller holds a valid access token and the secret it is
// guessing at is one it was just shown.
func (s *Server) ConfirmMFA(ctx context.Context, c *token.Claims, code, clientIP string) ([]string, error) {
	u, err := s.accessUser(c)
	if err != nil {
		return nil, err
	}
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	ev := auditEvent{Event: EventMFAEnable, UserID: u.ID, Username: users.Canonical(u.Username), ClientIP: clientIP,
		SessionID: c.SessionID}
	codes, err := s.confirmMFA(ctx, u, c, code, &ev)
	if err != nil {
		ev.Outcome = outcomeOf(err)
		s.audit(ctx, ev)
		return nil, err
	}
	ev.Outcome = OutcomeSuccess
	s.audit(ctx, ev)
	return codes, nil
}

func (s *Server) confirmMFA(ctx context.Context, u *users.User, c *token.Claims, code string, ev *auditEvent) ([]string, error) {
	enrolled, err := s.mfaEnrolled(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if enrolled {
		ev.Reason = "already_enabled"
		return nil, errMFAAlreadyEnabled()
	}
	sealed, err := s.mfaStore.GetPendingMFA(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ev.Reason = "no_pending_setup"
		return nil, errMFASetupNotFound()
	case err != nil:
		return nil, storeError("get pending mfa", err)
	}
	secret, err := s.openSecret(ctx, u.ID, sealed)
	if err != nil {
		return nil, err
	}
	if err := s.spendTOTP(ctx, u.ID, secret, code, http.StatusBadRequest, ev); err != nil {
		return nil, err
	}
	now := s.now()
	// One confirmation per pending secret: two confirms racing with codes of different steps would otherwise both
	// store an enrolment, and the first caller's backup codes would be overwritten. Sealed bytes carry a random
	// nonce, so their digest names this setup.
	digest := sha256.Sum256(sealed)
	won, err := s.once.Claim(ctx, "mfa:confirm:"+u.ID+":"+hex.EncodeToString(digest[:16]), now.Add(mfaPendingTTL))
	if err != nil {
		return nil, storeError("claim mfa confirm", err)
	}
	if !won {
		ev.Reason = "confirmed_concurrently"
		return nil, errMFAAlreadyEnabled()
	}
	codes, err := mfa.NewBackupCodes(s.rand, mfa.BackupCodeCount)
	if err != nil {
		return nil, errInternal(err)
	}
	hashes := make([]string, len(codes))
	for i, bc := range codes {
		hashes[i] = s.cfg.MFA.Keys.HashBackupCode(u.ID, bc)
	}
	// Sessions first: if a later step fails MFA is still off and the caller sets up again.
	n, err := s.endOtherSessions(ctx, u.ID, c.SessionID, "mfa_enabled", ev.ClientIP)
	if err != nil {
		return nil, err
	}
	if err := s.mfaStore.DeletePendingMFA(ctx, u.ID); err != nil {
		return nil, storeError("delete pending mfa", err)
	}
	if err := s.mfaStore.PutMFA(ctx, u.ID, store.MFAEnrollment{Secret: sealed, BackupCodes: hashes, EnabledAt: now}); err != nil {
		return nil, storeError("put mfa", err)
	}
	ev.Reason = fmt.Sprintf("%d_other_sessions_ended", n)
	return codes, nil
}

// DisableMFA turns the caller's MFA off with a current TOTP code or a backup code, and ends every other session
// of the caller (the current one stays). Wrong codes count towards the MFA lockout like at verify, so a stolen
// access token cannot guess its way to turning MFA off. Errors: ErrInvalidToken, ErrInvalidRequest,
// ErrMFANotEnabled, ErrMFACodeInvalid, ErrCodeReplayed, ErrRateLimited (*RateLimitedError), ErrUnavailable,
// ErrInternal.
func (s *Server) DisableMFA(ctx context.Context, c *token.Claims, code, clientIP string) error {
	u, err := s.accessUser(c)
	if err != nil {
		return err
	}
	if code == "" {
		return invalidRequest("code is required")
	}
	ev := auditEvent{Event: EventMFADisable, UserID: u.ID, Username: users.Canonical(u.Username), ClientIP: clientIP,
		SessionID: c.SessionID}
	method, err := s.disableMFA(ctx, u, c, code, &ev)
	if err != nil {
		ev.Outcome = outcomeOf(err)
		s.audit(ctx, ev, slog.String("method", method))
		return err
	}
	ev.Outcome = OutcomeSuccess
	s.audit(ctx, ev, slog.String("method", method))
	return nil
}

func (s *Server) disableMFA(ctx context.Context, u *users.User, c *token.Claims, code string, ev *auditEvent) (string, error) {
	if err := s.mfaNotLocked(ctx, u.ID); err != nil {
		ev.Reason = "locked_out"
		return "", err
	}
	enr, err := s.mfaStore.GetMFA(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		ev.Reason = "not_enabled"
		return "", errMFANotEnabled()
	case err != nil:
		return "", storeError("get mfa", err)
	}
	method, err := s.checkCode(ctx, u, enr, code, http.StatusBadRequest, ev)
	if err != nil {
		return method, err
	}
	s.mfaSucceeded(ctx, u.ID)
	if method == methodBackup {
		s.auditBackupUsed(ctx, *ev, u.ID, c.SessionID)
	}
	// Sessions first: if deleting the enrolment fails, MFA is still on and the caller retries with a new code.
	n, err := s.endOtherSessions(ctx, u.ID, c.SessionID, "mfa_disabled", ev.ClientIP)
	if err != nil {
		return method, err
	}
	if err := s.mfaStore.DeleteMFA(ctx, u.ID); err != nil {
		return method, storeError("delete mfa", err)
	}
	ev.Reason = fmt.Sprintf("%d_other_sessions_ended", n)
	return method, nil
}

// MFAStatus reports whether the caller has MFA on and how many backup codes remain. Errors: ErrInvalidToken,
// ErrUnavailable.
func (s *Server) MFAStatus(ctx context.Context, c *token.Claims) (MFAStatus, error) {
	u, err := s.accessUser(c)
	if err != nil {
		return MFAStatus{}, err
	}
	enr, err := s.mfaStore.GetMFA(ctx, u.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return MFAStatus{}, nil
	case err != nil:
		return MFAStatus{}, storeError("get mfa", err)
	}
	return MFAStatus{Enabled: true, EnabledAt: enr.EnabledAt, BackupCodesLeft: len(enr.BackupCodes)}, nil
}

// auditBackupUsed writes the mfa_backup_used line with the number of codes left (a store error only loses the
// count).
func (s *Server) auditBackupUsed(ctx context.Context, ev auditEvent, userID, sessionID string) {
	left := int64(-1)
	if enr, err := s.mfaStore.GetMFA(ctx, userID); err == nil {
		left = int64(len(enr.BackupCodes))
	}
	ev.Event, ev.Outcome, ev.Reason, ev.SessionID = EventMFABackupUsed, OutcomeSuccess, "", sessionID
	s.audit(ctx, ev, slog.Int64("backup_codes_left", left))
}

// outcomeOf names the audit outcome of an MFA error (verify, enable, disable).
func outcomeOf(err error) string {
	var ae *apiError
	switch {
	case errors.Is(err, ErrRateLimited):
		return OutcomeLocked
	case errors.Is(err, ErrCodeReplayed):
		return OutcomeReplayed
	case errors.Is(err, ErrMFACodeInvalid):
		return OutcomeInvalidCode
	case errors.As(err, &ae) && ae.status == http.StatusInternalServerError:
		return OutcomeError
	case errors.As(err, &ae) && ae.status >= 500:
		return OutcomeUnavailable
	}
	return OutcomeInvalid
}

func errMFATokenInvalid() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidToken,
		msg: "the MFA token is not valid; log in again", kind: ErrMFATokenInvalid}
}

func errMFATokenExpired() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidToken,
		msg: "the MFA token has expired; log in again", kind: ErrMFATokenExpired}
}

func errCodeInvalid(status int) *apiError {
	return &apiError{status: status, code: CodeInvalidCode, msg: "the code is not valid", kind: ErrMFACodeInvalid}
}

func errCodeReplayed(status int) *apiError {
	return &apiError{status: status, code: CodeCodeReplayed,
		msg: "this code was used already; wait for the next one", kind: ErrCodeReplayed}
}

func errMFAAlreadyEnabled() *apiError {
	return &apiError{status: http.StatusConflict, code: CodeMFAAlreadyEnabled,
		msg: "MFA is already enabled; disable it first", kind: ErrMFAAlreadyEnabled}
}

func errMFANotEnabled() *apiError {
	return &apiError{status: http.StatusConflict, code: CodeMFANotEnabled, msg: "MFA is not enabled", kind: ErrMFANotEnabled}
}

func errMFASetupNotFound() *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeMFASetupNotFound,
		msg: "no MFA setup is pending (it lasts 5 minutes); start the setup again", kind: ErrMFASetupNotFound}
}
