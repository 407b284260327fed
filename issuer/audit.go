package issuer

import (
	"context"
	"log/slog"
	"time"
)

// Audit events (the "event" field). Every line carries event, user_id, username (canonical), client_ip, outcome,
// reason and session_id (empty when not known); a few add more (lockout: scope, strike, until). Never a password,
// a hash or a token.
const (
	EventLogin         = "login"          // outcome: success | invalid_credentials | disabled | locked | unavailable
	EventRefresh       = "refresh"        // outcome: success | reused | invalid | unavailable
	EventLogout        = "logout"         // outcome: success
	EventLogoutAll     = "logout_all"     // outcome: success; reason carries the number of sessions ended
	EventSessionRevoke = "session_revoke" // reason: logout | logout_all | user_request | session_cap | refresh_reuse | user_disabled | user_removed
	EventLockout       = "lockout"        // a user or IP was just locked
	EventRefreshReuse  = "refresh_reuse"  // a spent refresh token came back: the session was ended
)

// Outcomes shared by audit lines and the outcome label of the metrics.
const (
	OutcomeSuccess            = "success"
	OutcomeInvalidCredentials = "invalid_credentials"
	OutcomeDisabled           = "disabled"
	OutcomeLocked             = "locked"
	OutcomeUnavailable        = "unavailable"
	OutcomeReused             = "reused"
	OutcomeInvalid            = "invalid"
)

// auditEvent is one audit line.
type auditEvent struct {
	Event     string
	UserID    string
	Username  string // canonical
	ClientIP  string
	Outcome   string
	Reason    string
	SessionID string
}

// audit writes ev as one JSON line (the Logger's handler decides the format; cmd uses slog's JSON handler).
// Failures and security events are warnings so they stand out.
func (s *Server) audit(ctx context.Context, ev auditEvent, extra ...slog.Attr) {
	level := slog.LevelInfo
	switch ev.Outcome {
	case OutcomeInvalidCredentials, OutcomeDisabled, OutcomeLocked, OutcomeReused, OutcomeInvalid:
		level = slog.LevelWarn
	}
	if ev.Event == EventLockout || ev.Event == EventRefreshReuse {
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 7+len(extra))
	attrs = append(attrs,
		slog.String("event", ev.Event),
		slog.String("user_id", ev.UserID),
		slog.String("username", ev.Username),
		slog.String("client_ip", ev.ClientIP),
		slog.String("outcome", ev.Outcome),
		slog.String("reason", ev.Reason),
		slog.String("session_id", ev.SessionID),
	)
	attrs = append(attrs, extra...)
	s.log.LogAttrs(ctx, level, "audit", attrs...)
}

func timeAttr(key string, t time.Time) slog.Attr {
	return slog.String(key, t.UTC().Format(time.RFC3339))
}
