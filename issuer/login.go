package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"gatehouse/store"
	"gatehouse/token"
	"gatehouse/users"
)

// maxUserAgentBytes bounds the User-Agent a session records.
const maxUserAgentBytes = 256

// Tokens is the body of a successful login, MFA verification or refresh, and what the Go API returns for them.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"` // always "Bearer"
	ExpiresIn    int64  `json:"expires_in"` // access token lifetime in seconds
	SessionID    string `json:"session_id"`
}

// MFAChallenge is a login that passed the password check of a user with MFA on: the mfa_token to present to
// VerifyMFA (POST /auth/mfa/verify) with a code. It is no session and grants nothing else.
type MFAChallenge struct {
	Token     string // an mfa+jwt, single use
	ExpiresIn int64  // seconds
}

// LoginResult is the outcome of a correct password: exactly one of Tokens (logged in) and MFA (a second factor
// is required) is set.
type LoginResult struct {
	Tokens *Tokens
	MFA    *MFAChallenge
}

// mfaRequiredResponse is the body of POST /auth/login for a user with MFA on.
type mfaRequiredResponse struct {
	MFARequired bool   `json:"mfa_required"` // always true
	MFAToken    string `json:"mfa_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// writeTokens writes a token response (200, no-store).
func writeTokens(w http.ResponseWriter, t Tokens) error {
	writeJSON(w, http.StatusOK, t)
	return nil
}

// handleLogin is POST /auth/login {username, password}: Authenticate over JSON.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var username, pw string
	if err := readFields(w, r, map[string]*string{"username": &username, "password": &pw}); err != nil {
		return err
	}
	res, err := s.Authenticate(r.Context(), username, pw, clientIP(r, s.cfg.TrustedProxies), r.UserAgent())
	switch {
	case err != nil:
		return err
	case res.MFA != nil:
		writeJSON(w, http.StatusOK, mfaRequiredResponse{MFARequired: true, MFAToken: res.MFA.Token, ExpiresIn: res.MFA.ExpiresIn})
		return nil
	}
	return writeTokens(w, *res.Tokens)
}

// Authenticate checks a username and password (the first factor) for a client at clientIP ("" when unknown;
// then only the account is regulated) and either starts a session or, for a user with MFA on, returns an MFA
// challenge. Errors: ErrInvalidRequest, ErrInvalidCredentials (unknown user, wrong password and disabled user
// alike), ErrRateLimited (*RateLimitedError), ErrUnavailable, ErrInternal.
//
// Order matters: lock check (no hashing while locked) → hashing slot → one password verification whatever the
// username (a dummy hash for unknown users, the real hash for disabled ones) → count the failure or clear the
// counter → second factor or session. Only a correct password learns whether MFA is on.
func (s *Server) Authenticate(ctx context.Context, username, password, clientIP, userAgent string) (LoginResult, error) {
	switch {
	case username == "" || password == "":
		return LoginResult{}, invalidRequest("username and password are required")
	case len(username) > users.MaxUsernameBytes: // a longer name cannot be an account
		return LoginResult{}, invalidRequest(fmt.Sprintf("username exceeds %d bytes", users.MaxUsernameBytes))
	}
	ip := clientIP
	canonical := users.Canonical(username)
	ev := auditEvent{Event: EventLogin, Username: canonical, ClientIP: ip}
	subs := []subject{userSubject(canonical)}
	if ip != "" {
		subs = append(subs, ipSubject(ip))
	}

	until, err := s.reg.lockedUntil(ctx, subs...)
	if err != nil {
		return LoginResult{}, s.loginUnavailable(ctx, ev, storeError("login", err))
	}
	if !until.IsZero() {
		ev.Outcome, ev.Reason = OutcomeLocked, "locked_out"
		s.audit(ctx, ev, timeAttr("locked_until", until))
		s.metrics.logins.WithLabelValues(OutcomeLocked).Inc()
		return LoginResult{}, errRateLimited(s.now(), until)
	}

	u, known := s.users.Load().Lookup(username)
	ok, err := s.checkPassword(ctx, u, known, password)
	if err != nil {
		return LoginResult{}, s.loginUnavailable(ctx, ev, errUnavailable(err))
	}
	if known {
		ev.UserID = u.ID
	}
	switch {
	case !known:
		ev.Outcome, ev.Reason = OutcomeInvalidCredentials, "unknown_user"
	case !ok:
		ev.Outcome, ev.Reason = OutcomeInvalidCredentials, "wrong_password"
	case u.Disabled:
		ev.Outcome, ev.Reason = OutcomeDisabled, "user_disabled"
	}
	if ev.Outcome != "" {
		s.audit(ctx, ev)
		s.metrics.logins.WithLabelValues(ev.Outcome).Inc()
		lockouts, err := s.reg.fail(ctx, subs...)
		for _, l := range lockouts {
			s.auditLockout(ctx, ev, l)
		}
		if err != nil {
			return LoginResult{}, storeError("login: count failure", err)
		}
		return LoginResult{}, errInvalidCredentials()
	}
	if err := s.reg.succeeded(ctx, subs[0]); err != nil {
		return LoginResult{}, s.loginUnavailable(ctx, ev, storeError("login", err))
	}

	enrolled, err := s.mfaEnrolled(ctx, u.ID)
	if err != nil {
		ae := errInternal(err)
		errors.As(err, &ae) // a store error: 503
		return LoginResult{}, s.loginUnavailable(ctx, ev, ae)
	}
	if enrolled {
		ch, attempt, err := s.mfaChallenge(u)
		if err != nil {
			return LoginResult{}, err
		}
		ev.Outcome, ev.Reason = OutcomeMFARequired, "password_ok"
		s.audit(ctx, ev, slog.String("mfa_attempt", attempt))
		s.metrics.logins.WithLabelValues(OutcomeMFARequired).Inc()
		return LoginResult{MFA: &ch}, nil
	}
	t, err := s.completeLogin(ctx, u, ip, userAgent, "")
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Tokens: &t}, nil
}

// checkPassword verifies pw with exactly one hash computation, inside a hashing slot: against the user's hash when
// the user exists (disabled or not), else against the dummy hash.
func (s *Server) checkPassword(ctx context.Context, u *users.User, known bool, pw string) (bool, error) {
	release, err := s.gate.acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("password check: %w", err)
	}
	defer release()
	if !known {
		s.verify(s.dummy, pw)
		return false, nil
	}
	return s.verify(u.Hash, pw), nil
}

func (s *Server) loginUnavailable(ctx context.Context, ev auditEvent, err *apiError) error {
	ev.Outcome, ev.Reason = OutcomeUnavailable, "unavailable"
	if errors.Is(err, errHashBusy) {
		ev.Reason = "hashing_at_capacity"
	}
	s.audit(ctx, ev)
	s.metrics.logins.WithLabelValues(OutcomeUnavailable).Inc()
	return err
}

func (s *Server) auditLockout(ctx context.Context, ev auditEvent, l lockout) {
	ev.Event, ev.Outcome, ev.Reason = EventLockout, OutcomeLocked, "too_many_failures"
	if l.subject.scope == "ip" {
		// The IP lock is not about the account that happened to be tried last.
		ev.UserID, ev.Username = "", ""
	}
	s.audit(ctx, ev, slog.String("scope", l.subject.scope), slog.Int64("strike", l.strike),
		slog.String("duration", l.duration.String()), timeAttr("locked_until", l.until))
	s.metrics.lockouts.Inc()
}

// completeLogin runs once the user is fully authenticated (password, and the second factor when MFA is on): it
// starts a session with a new id and audits the login. reason says how the user got here ("" for a password-only
// login, "mfa_totp" or "mfa_backup_code").
func (s *Server) completeLogin(ctx context.Context, u *users.User, ip, userAgent, reason string) (Tokens, error) {
	resp, err := s.issueSession(ctx, u, ip, userAgent)
	ev := auditEvent{Event: EventLogin, UserID: u.ID, Username: users.Canonical(u.Username), ClientIP: ip, Reason: reason}
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusServiceUnavailable {
			return Tokens{}, s.loginUnavailable(ctx, ev, ae)
		}
		return Tokens{}, err
	}
	ev.Outcome, ev.SessionID = OutcomeSuccess, resp.SessionID
	s.audit(ctx, ev)
	s.metrics.logins.WithLabelValues(OutcomeSuccess).Inc()
	return resp, nil
}

// issueSession creates a session for u (new id: a fresh session after every authentication), mints its first
// access and refresh tokens, and enforces the per-user session cap.
func (s *Server) issueSession(ctx context.Context, u *users.User, ip, userAgent string) (Tokens, error) {
	now := s.now()
	sid, err := token.NewID(s.rand)
	if err != nil {
		return Tokens{}, errInternal(err)
	}
	refreshID, err := token.NewID(s.rand)
	if err != nil {
		return Tokens{}, errInternal(err)
	}
	sess := store.Session{
		ID: sid, UserID: u.ID, Username: u.Username, ClientIP: ip, UserAgent: clip(userAgent, maxUserAgentBytes),
		RefreshID: refreshID, CreatedAt: now, LastUsed: now, ExpiresAt: now.Add(s.cfg.RefreshTTL),
	}
	resp, err := s.mintTokens(u, sess, now)
	if err != nil {
		return Tokens{}, err
	}
	if err := s.sessions.CreateSession(ctx, sess); err != nil {
		return Tokens{}, storeError("create session", err)
	}
	if err := s.enforceSessionCap(ctx, u, sess, now); err != nil {
		return Tokens{}, err
	}
	return resp, nil
}

// mintTokens signs an access token and the refresh token sess.RefreshID for sess. Neither outlives the session:
// the access token's exp is min(now+AccessTTL, session end) and the refresh token's is the session end, which is
// login + RefreshTTL (the absolute lifetime; refreshing never moves it).
func (s *Server) mintTokens(u *users.User, sess store.Session, now time.Time) (Tokens, error) {
	accessExp := now.Add(s.cfg.AccessTTL)
	if sess.ExpiresAt.Before(accessExp) {
		accessExp = sess.ExpiresAt
	}
	if accessExp.Unix() <= now.Unix() {
		// Less than a second left: nothing worth signing (and Sign refuses exp <= iat).
		return Tokens{}, errInvalidRefresh()
	}
	accessID, err := token.NewID(s.rand)
	if err != nil {
		return Tokens{}, errInternal(err)
	}
	access, err := s.cfg.Signer.Sign(token.Claims{
		Type: token.Access, Issuer: s.cfg.Issuer, Subject: u.ID, Audience: s.cfg.Audience, ID: accessID,
		SessionID: sess.ID, Username: u.Username, Roles: u.Roles, IssuedAt: now, ExpiresAt: accessExp,
	})
	if err != nil {
		return Tokens{}, errInternal(err)
	}
	refresh, err := s.cfg.Signer.Sign(token.Claims{
		Type: token.Refresh, Issuer: s.cfg.Issuer, Subject: u.ID, Audience: s.cfg.Audience, ID: sess.RefreshID,
		SessionID: sess.ID, IssuedAt: now, ExpiresAt: sess.ExpiresAt,
	})
	if err != nil {
		return Tokens{}, errInternal(err)
	}
	return Tokens{
		AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: accessExp.Unix() - now.Unix(), SessionID: sess.ID,
	}, nil
}

// enforceSessionCap ends the user's oldest sessions beyond MaxSessions, never the one just created.
func (s *Server) enforceSessionCap(ctx context.Context, u *users.User, created store.Session, now time.Time) error {
	list, err := s.sessions.ListSessions(ctx, u.ID)
	if err != nil {
		return storeError("list sessions", err)
	}
	excess := len(list) - s.cfg.MaxSessions
	for _, old := range list { // oldest first
		if excess <= 0 {
			break
		}
		if old.ID == created.ID {
			continue
		}
		if err := s.endSession(ctx, old, s.accessHorizon(now), "session_cap", created.ClientIP); err != nil {
			return err
		}
		excess--
	}
	return nil
}
