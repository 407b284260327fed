package issuer

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"gatehouse/store"
	"gatehouse/token"
	"gatehouse/users"
)

// authedFunc is a handler for a caller authenticated with a Bearer access token.
type authedFunc func(w http.ResponseWriter, r *http.Request, c *token.Claims) error

// authenticated verifies the Bearer access token with VerifyAccess before calling h. Only an at+jwt passes: a
// refresh or MFA token (a partly authenticated login) is refused like a missing one.
func (s *Server) authenticated(h authedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		raw, ok := bearerToken(r)
		if !ok {
			return errUnauthenticated()
		}
		c, err := s.VerifyAccess(r.Context(), raw)
		if err != nil {
			return err
		}
		return h(w, r, c)
	}
}

// VerifyAccess verifies an access token (type at+jwt only) and asks the store whether it was revoked, like the
// ext_authz sidecar does. The claims it returns are what the methods taking *token.Claims (ListSessions,
// SetupMFA ...) want. Errors: ErrInvalidToken, ErrUnavailable.
func (s *Server) VerifyAccess(ctx context.Context, accessToken string) (*token.Claims, error) {
	c, err := s.cfg.Verifier.Verify(accessToken, token.Access)
	if err != nil {
		return nil, errUnauthenticated()
	}
	revoked, err := s.revoked(ctx, c)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, errUnauthenticated()
	}
	return c, nil
}

// requireAccess refuses claims that did not come from VerifyAccess: a Go caller handing over the claims of an MFA
// or refresh token gets what an HTTP client presenting that token gets.
func requireAccess(c *token.Claims) error {
	if c == nil || c.Type != token.Access || c.Subject == "" || c.SessionID == "" {
		return errUnauthenticated()
	}
	return nil
}

// revoked asks the store about c. A token issued before the store lost its data (store.ErrStoreReset) is
// revoked: its revocations may be lost, so it is refused for good and the client must log in again (a 503
// would only make it retry). Any other store error is a 503.
func (s *Server) revoked(ctx context.Context, c *token.Claims) (bool, error) {
	revoked, err := s.revs.Revoked(ctx, c.ID, c.SessionID, c.Subject, c.IssuedAt)
	switch {
	case errors.Is(err, store.ErrStoreReset):
		return true, nil
	case err != nil:
		return false, storeError("revoked", err)
	}
	return revoked, nil
}

// bearerToken extracts exactly one Bearer token with the sidecar's rules (token.Bearer, token.IsB64Token): one
// Authorization header, scheme "Bearer" in any case, then one token of b64token characters (so a second token or
// a comma-merged duplicate header is refused).
func bearerToken(r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 || len(vals[0]) > token.MaxTokenSize+len("Bearer ") {
		return "", false
	}
	tok, ok := token.Bearer(vals[0])
	if !ok || !token.IsB64Token(tok) {
		return "", false
	}
	return tok, true
}

// accessHorizon is when every access token issued up to now has expired for every verifier (exp + leeway).
// Revoking a session until then is enough once the session record is deleted, because its refresh tokens then
// find no session.
func (s *Server) accessHorizon(now time.Time) time.Time {
	return now.Add(s.cfg.AccessTTL + s.cfg.Leeway)
}

// endSession revokes sess's tokens until `until` and deletes the session record, then audits why. The
// revocation goes first: if the delete fails the tokens are refused anyway and the caller gets a 503 to retry.
func (s *Server) endSession(ctx context.Context, sess store.Session, until time.Time, reason, ip string) error {
	if err := s.revs.RevokeSession(ctx, sess.ID, until); err != nil {
		return storeError("revoke session", err)
	}
	if err := s.sessions.DeleteSession(ctx, sess.ID); err != nil {
		return storeError("delete session", err)
	}
	s.audit(ctx, auditEvent{Event: EventSessionRevoke, UserID: sess.UserID, Username: users.Canonical(sess.Username),
		ClientIP: ip, Outcome: OutcomeSuccess, Reason: reason, SessionID: sess.ID})
	return nil
}

// endOtherSessions ends every session of userID except keep ("" keeps none), as endSession does.
func (s *Server) endOtherSessions(ctx context.Context, userID, keep, reason, ip string) (int, error) {
	list, err := s.sessions.ListSessions(ctx, userID)
	if err != nil {
		return 0, storeError("list sessions", err)
	}
	horizon, n := s.accessHorizon(s.now()), 0
	for _, sess := range list {
		if sess.ID == keep {
			continue
		}
		if err := s.endSession(ctx, sess, horizon, reason, ip); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// handleLogout is POST /auth/logout: Logout over HTTP.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	if err := s.Logout(r.Context(), c, clientIP(r, s.cfg.TrustedProxies)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Logout ends the caller's session (c from VerifyAccess). Errors: ErrInvalidToken, ErrUnavailable.
func (s *Server) Logout(ctx context.Context, c *token.Claims, clientIP string) error {
	if err := requireAccess(c); err != nil {
		return err
	}
	// The record may be gone already (expired, evicted); the revocation still applies to this token's session.
	sess := store.Session{ID: c.SessionID, UserID: c.Subject, Username: c.Username}
	if err := s.endSession(ctx, sess, s.accessHorizon(s.now()), "logout", clientIP); err != nil {
		return err
	}
	s.audit(ctx, auditEvent{Event: EventLogout, UserID: c.Subject, Username: users.Canonical(c.Username),
		ClientIP: clientIP, Outcome: OutcomeSuccess, SessionID: c.SessionID})
	s.metrics.logouts.Inc()
	return nil
}

// handleLogoutAll is POST /auth/logout/all: LogoutAll over HTTP.
func (s *Server) handleLogoutAll(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	if err := s.LogoutAll(r.Context(), c, clientIP(r, s.cfg.TrustedProxies)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// LogoutAll ends every session of the caller. Besides ending each listed session it revokes every token of the
// user issued before the current second, as a backstop for sessions the listing missed (created concurrently,
// or an index out of step); that includes MFA tokens of logins in progress. The cut-off is truncated to whole
// seconds because JWT iat is: a login later in this same second gets iat == cut-off and stays valid, while every
// token of the sessions ended here was issued no later than now. Errors: ErrInvalidToken, ErrUnavailable.
func (s *Server) LogoutAll(ctx context.Context, c *token.Claims, clientIP string) error {
	if err := requireAccess(c); err != nil {
		return err
	}
	now := s.now()
	n, err := s.endOtherSessions(ctx, c.Subject, "", "logout_all", clientIP)
	if err != nil {
		return err
	}
	if err := s.revs.RevokeUserBefore(ctx, c.Subject, now.Truncate(time.Second),
		now.Add(s.cfg.RefreshTTL+s.cfg.Leeway)); err != nil {
		return storeError("revoke user", err)
	}
	s.audit(ctx, auditEvent{Event: EventLogoutAll, UserID: c.Subject, Username: users.Canonical(c.Username),
		ClientIP: clientIP, Outcome: OutcomeSuccess, Reason: strconv.Itoa(n) + "_sessions", SessionID: c.SessionID})
	s.metrics.logouts.Inc()
	return nil
}

// SessionInfo is one live session of a user, as ListSessions reports it.
type SessionInfo struct {
	ID                  string
	Created, LastUsed   time.Time
	ClientIP, UserAgent string
	Current             bool // the session of the token the claims came from
}

// sessionView is one entry of GET /auth/sessions.
type sessionView struct {
	ID        string `json:"id"`
	Created   string `json:"created"`
	LastUsed  string `json:"last_used"`
	ClientIP  string `json:"client_ip"`
	UserAgent string `json:"user_agent"`
	Current   bool   `json:"current"`
}

// handleListSessions is GET /auth/sessions: ListSessions as JSON.
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	list, err := s.ListSessions(r.Context(), c)
	if err != nil {
		return err
	}
	out := make([]sessionView, 0, len(list))
	for _, sess := range list {
		out = append(out, sessionView{
			ID: sess.ID, Created: rfc3339(sess.Created), LastUsed: rfc3339(sess.LastUsed),
			ClientIP: sess.ClientIP, UserAgent: sess.UserAgent, Current: sess.Current,
		})
	}
	writeJSON(w, http.StatusOK, struct {
		Sessions []sessionView `json:"sessions"`
	}{out})
	return nil
}

// ListSessions returns the caller's live sessions, oldest first. Errors: ErrInvalidToken, ErrUnavailable.
func (s *Server) ListSessions(ctx context.Context, c *token.Claims) ([]SessionInfo, error) {
	if err := requireAccess(c); err != nil {
		return nil, err
	}
	list, err := s.sessions.ListSessions(ctx, c.Subject)
	if err != nil {
		return nil, storeError("list sessions", err)
	}
	now := s.now()
	out := make([]SessionInfo, 0, len(list))
	for _, sess := range list {
		if !now.Before(sess.ExpiresAt) {
			continue // Redis expires by its own clock; ours decides
		}
		out = append(out, SessionInfo{ID: sess.ID, Created: sess.CreatedAt, LastUsed: sess.LastUsed,
			ClientIP: sess.ClientIP, UserAgent: sess.UserAgent, Current: sess.ID == c.SessionID})
	}
	return out, nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// handleDeleteSession is DELETE /auth/sessions/{id}: RevokeSession over HTTP.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	if err := s.RevokeSession(r.Context(), c, r.PathValue("id"), clientIP(r, s.cfg.TrustedProxies)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// RevokeSession ends one of the caller's own sessions (the current one too). Someone else's session is
// ErrForbidden, an unknown one ErrNotFound. Session ids are 128-bit random, so telling the two apart reveals
// nothing guessable. Errors: ErrInvalidToken, ErrForbidden, ErrNotFound, ErrUnavailable.
func (s *Server) RevokeSession(ctx context.Context, c *token.Claims, id, clientIP string) error {
	if err := requireAccess(c); err != nil {
		return err
	}
	if id == "" {
		return errNotFound("session")
	}
	sess, err := s.sessions.GetSession(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNotFound("session")
	case err != nil:
		return storeError("get session", err)
	case !s.now().Before(sess.ExpiresAt):
		return errNotFound("session")
	case sess.UserID != c.Subject:
		return errForbidden()
	}
	return s.endSession(ctx, sess, s.accessHorizon(s.now()), "user_request", clientIP)
}
