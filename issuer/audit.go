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
	EventLogin         = "login"          // outcome: success | mfa_required | invalid_credentials | disabled | locked | unavailable
	EventRefresh       = "refresh"        // outcome: success | reused | invalid | unavailable
	EventLogout        = "logout"         // outcome: success
	EventLogoutAll     = "logout_all"     // outcome: success; reason carries the number of sessions ended
	EventSessionRevoke = "session_revoke" // reason: logout | logout_all | user_request | session_cap | refresh_reuse | user_disabled | user_removed | mfa_enabled | mfa_disabled | mfa_backup_code
	EventLockout       = "lockout"        // a user or IP was just locked
	EventRefreshReuse  = "refresh_reuse"  // a spent refresh token came back: the session was ended

	EventMFASetup   = "mfa_setup"   // a pending secret was issued; outcome: success
	EventMFAEnable  = "mfa_enable"  // confirm; outcome: success | invalid_code | replayed | invalid | unavailable | error
	EventMFADisable = "mfa_disable" // outcome: success | invalid_code | replayed | locked | invalid | unavailable | error; method
	// EventMFAVerify is one line per verify: outcome success | invalid_code | replayed | locked | invalid (the
	// mfa_token) | unavailable | error; method totp | backup_code; mfa_attempt (the mfa_token's sid).
	EventMFAVerify     = "mfa_verify"
	EventMFAReplay     = "mfa_replay"      // a TOTP step was presented again (via: mfa_verify | mfa_disable | mfa_enable)
	EventMFABackupUsed = "mfa_backup_used" // a backup code was spent; backup_codes_left
	EventMFALockout    = "mfa_lockout"     // a user's MFA was just locked; mfa_tokens issued so far are void
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
	OutcomeMFARequired        = "mfa_required" // the password was right; a second factor is due
	OutcomeInvalidCode        = "invalid_code"
	OutcomeReplayed           = "replayed"
	OutcomeError              = "error" // an internal failure (an MFA secret that does not decrypt)
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
	case OutcomeInvalidCredentials, OutcomeDisabled, OutcomeLocked, OutcomeReused, OutcomeInvalid,
		OutcomeInvalidCode, OutcomeReplayed:
		level = slog.LevelWarn
	case OutcomeError:
		level = slog.LevelError
	}
	switch ev.Event {
	case EventLockout, EventRefreshReuse, EventMFALockout, EventMFAReplay, EventMFABackupUsed, EventMFADisable:
		level = max(level, slog.LevelWarn)
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
