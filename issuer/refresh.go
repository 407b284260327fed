package issuer

import (
	"context"
	"errors"
	"net/http"
	"time"

	"gatehouse/store"
	"gatehouse/token"
	"gatehouse/users"
)

// handleRefresh is POST /auth/refresh {refresh_token}: Refresh over JSON.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) error {
	var raw string
	if err := readFields(w, r, map[string]*string{"refresh_token": &raw}); err != nil {
		return err
	}
	resp, err := s.Refresh(r.Context(), raw, clientIP(r, s.cfg.TrustedProxies), r.UserAgent())
	if err != nil {
		return err
	}
	return writeTokens(w, resp)
}

// Refresh spends a refresh token and returns a new access and refresh token for the same session (rotation,
// RFC 9700 section 4.14.2). userAgent is accepted for symmetry with Authenticate; the session keeps the one it
// was created with. Errors: ErrInvalidRequest, ErrInvalidToken, ErrUnavailable, ErrInternal.
//
// Refused with ErrInvalidToken: anything but a valid refresh+jwt; a revoked token or session; a session that
// is gone or past its absolute end; a user who was removed or disabled (whose session is then ended); and a spent
// refresh token. The last is treated as theft: the whole session is revoked, so the thief and the victim both
// lose it, along with every access token issued in it.
//
// Concurrent refreshes with one token: RotateRefresh is a compare-and-swap, so exactly one wins. The losers
// present a token that is no longer current, which is indistinguishable from replay by a thief, so they end the
// session too. A client must therefore serialize its refreshes; a lost response costs the session (a login).
func (s *Server) Refresh(ctx context.Context, refreshToken, clientIP, userAgent string) (Tokens, error) {
	if refreshToken == "" {
		return Tokens{}, invalidRequest("refresh_token is required")
	}
	ev := auditEvent{Event: EventRefresh, ClientIP: clientIP}
	resp, err := s.refresh(ctx, refreshToken, &ev)
	if err != nil {
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.status == http.StatusServiceUnavailable:
			ev.Outcome = OutcomeUnavailable
		case ev.Outcome == "":
			ev.Outcome = OutcomeInvalid
		}
		s.audit(ctx, ev)
		s.metrics.refresh.WithLabelValues(ev.Outcome).Inc()
		return Tokens{}, err
	}
	ev.Outcome = OutcomeSuccess
	s.audit(ctx, ev)
	s.metrics.refresh.WithLabelValues(OutcomeSuccess).Inc()
	return resp, nil
}

// refresh does the work of Refresh, filling ev with what it learns for the audit line.
func (s *Server) refresh(ctx context.Context, raw string, ev *auditEvent) (Tokens, error) {
	c, err := s.cfg.Verifier.Verify(raw, token.Refresh)
	if err != nil {
		ev.Reason = token.Reason(err)
		return Tokens{}, errInvalidRefresh()
	}
	ev.UserID, ev.SessionID = c.Subject, c.SessionID
	revoked, err := s.revoked(ctx, c)
	if err != nil {
		return Tokens{}, err
	}
	if revoked {
		ev.Reason = "token_revoked"
		return Tokens{}, errInvalidRefresh()
	}
	sess, err := s.sessions.GetSession(ctx, c.SessionID)
	now := s.now()
	switch {
	case errors.Is(err, store.ErrNotFound):
		ev.Reason = "session_gone"
		return Tokens{}, errInvalidRefresh()
	case err != nil:
		return Tokens{}, storeError("get session", err)
	case sess.UserID != c.Subject:
		// A token of another user naming this session: never issued by us with a valid signature.
		ev.Reason = "session_user_mismatch"
		return Tokens{}, errInvalidRefresh()
	case !now.Before(sess.ExpiresAt):
		// Redis expires the record by its own clock; our clock decides the absolute lifetime.
		ev.Reason = "session_expired"
		return Tokens{}, errInvalidRefresh()
	}
	ev.Username = users.Canonical(sess.Username)

	u, why := s.activeUser(c.Subject)
	if u == nil {
		ev.Reason = why
		if err := s.endSession(ctx, sess, s.sessionHorizon(sess), ev.Reason, ev.ClientIP); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, errInvalidRefresh()
	}
	ev.Username = users.Canonical(u.Username)

	// Sign first, rotate second: once the new id is current, the client must get tokens carrying it.
	newID, err := token.NewID(s.rand)
	if err != nil {
		return Tokens{}, errInternal(err)
	}
	next := sess
	next.RefreshID = newID
	resp, err := s.mintTokens(u, next, now) // roles re-read from the directory
	if err != nil {
		if ae := (*apiError)(nil); errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
			ev.Reason = "session_expired" // less than a second left
		}
		return Tokens{}, err
	}
	_, err = s.sessions.RotateRefresh(ctx, sess.ID, c.ID, newID, now)
	switch {
	case errors.Is(err, store.ErrRefreshReused):
		ev.Outcome, ev.Reason = OutcomeReused, "refresh_token_reused"
		s.audit(ctx, auditEvent{Event: EventRefreshReuse, UserID: sess.UserID, Username: ev.Username,
			ClientIP: ev.ClientIP, Outcome: OutcomeReused, Reason: "spent_refresh_token_presented", SessionID: sess.ID})
		if err := s.endSession(ctx, sess, s.sessionHorizon(sess), "refresh_reuse", ev.ClientIP); err != nil {
			return Tokens{}, err
		}
		return Tokens{}, errInvalidRefresh()
	case errors.Is(err, store.ErrNotFound):
		ev.Reason = "session_gone"
		return Tokens{}, errInvalidRefresh()
	case err != nil:
		return Tokens{}, storeError("rotate refresh", err)
	}
	return resp, nil
}

// sessionHorizon is when every token the session could ever have issued has expired for every verifier: no token
// of a session outlives the session's absolute end.
func (s *Server) sessionHorizon(sess store.Session) time.Time {
	return sess.ExpiresAt.Add(s.cfg.Leeway)
}
