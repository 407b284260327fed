package issuer

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gatehouse/store"
	"gatehouse/token"
	"gatehouse/users"
)

// authedFunc is a handler for a caller authenticated with a Bearer access token.
type authedFunc func(w http.ResponseWriter, r *http.Request, c *token.Claims) error

// authenticated verifies the Bearer access token (type at+jwt only) and asks the store whether it was revoked,
// like the ext_authz sidecar does, before calling h.
func (s *Server) authenticated(h authedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		raw, ok := bearerToken(r)
		if !ok {
			return errUnauthenticated()
		}
		c, err := s.cfg.Verifier.Verify(raw, token.Access)
		if err != nil {
			return errUnauthenticated()
		}
		revoked, err := s.revoked(r.Context(), c)
		if err != nil {
			return err
		}
		if revoked {
			return errUnauthenticated()
		}
		return h(w, r, c)
	}
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

// bearerToken extracts exactly one Bearer token with the sidecar's rules: one Authorization header, scheme
// "Bearer" in any case, then one token of RFC 6750 b64token characters (so a second token or a comma-merged
// duplicate header is refused).
func bearerToken(r *http.Request) (string, bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return "", false
	}
	v := vals[0]
	if len(v) > token.MaxTokenSize+len("Bearer ") {
		return "", false
	}
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" {
		return "", false
	}
	for i := 0; i < len(rest); i++ {
		if !isB64TokenChar(rest[i]) {
			return "", false
		}
	}
	return rest, true
}

func isB64TokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
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

// handleLogout is POST /auth/logout: ends the caller's session.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	ctx := r.Context()
	ip := clientIP(r, s.cfg.TrustedProxies)
	// The record may be gone already (expired, evicted); the revocation still applies to this token's session.
	sess := store.Session{ID: c.SessionID, UserID: c.Subject, Username: c.Username}
	if err := s.endSession(ctx, sess, s.accessHorizon(s.now()), "logout", ip); err != nil {
		return err
	}
	s.audit(ctx, auditEvent{Event: EventLogout, UserID: c.Subject, Username: users.Canonical(c.Username),
		ClientIP: ip, Outcome: OutcomeSuccess, SessionID: c.SessionID})
	s.metrics.logouts.Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleLogoutAll is POST /auth/logout/all: ends every session of the caller. Besides ending each listed
// session it revokes every token of the user issued before the current second, as a backstop for sessions the
// listing missed (created concurrently, or an index out of step). The cut-off is truncated to whole seconds
// because JWT iat is: a login later in this same second gets iat == cut-off and stays valid, while every token
// of the sessions ended here was issued no later than now.
func (s *Server) handleLogoutAll(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	ctx := r.Context()
	ip := clientIP(r, s.cfg.TrustedProxies)
	now := s.now()
	list, err := s.sessions.ListSessions(ctx, c.Subject)
	if err != nil {
		return storeError("list sessions", err)
	}
	for _, sess := range list {
		if err := s.endSession(ctx, sess, s.accessHorizon(now), "logout_all", ip); err != nil {
			return err
		}
	}
	if err := s.revs.RevokeUserBefore(ctx, c.Subject, now.Truncate(time.Second),
		now.Add(s.cfg.RefreshTTL+s.cfg.Leeway)); err != nil {
		return storeError("revoke user", err)
	}
	s.audit(ctx, auditEvent{Event: EventLogoutAll, UserID: c.Subject, Username: users.Canonical(c.Username),
		ClientIP: ip, Outcome: OutcomeSuccess, Reason: strconv.Itoa(len(list)) + "_sessions", SessionID: c.SessionID})
	s.metrics.logouts.Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
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

// handleListSessions is GET /auth/sessions: the caller's live sessions, oldest first.
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	list, err := s.sessions.ListSessions(r.Context(), c.Subject)
	if err != nil {
		return storeError("list sessions", err)
	}
	now := s.now()
	out := make([]sessionView, 0, len(list))
	for _, sess := range list {
		if !now.Before(sess.ExpiresAt) {
			continue // Redis expires by its own clock; ours decides
		}
		out = append(out, sessionView{
			ID: sess.ID, Created: rfc3339(sess.CreatedAt), LastUsed: rfc3339(sess.LastUsed),
			ClientIP: sess.ClientIP, UserAgent: sess.UserAgent, Current: sess.ID == c.SessionID,
		})
	}
	writeJSON(w, http.StatusOK, struct {
		Sessions []sessionView `json:"sessions"`
	}{out})
	return nil
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// handleDeleteSession is DELETE /auth/sessions/{id}: ends one of the caller's own sessions (the current one too).
// Someone else's session is 403, an unknown one 404. Session ids are 128-bit random, so telling the two apart
// reveals nothing guessable.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	ctx := r.Context()
	id := r.PathValue("id")
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
	if err := s.endSession(ctx, sess, s.accessHorizon(s.now()), "user_request", clientIP(r, s.cfg.TrustedProxies)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
