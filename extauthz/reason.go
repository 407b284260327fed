package extauthz

import (
	"google.golang.org/grpc/codes"

	"gatehouse/policy"
	"gatehouse/token"
)

// Reason codes shared by responses, audit logs and metrics. Token verification reasons come from
// token.Reason and policy reasons from the policy package; these are the decider's own.
const (
	ReasonMalformedRequest = "malformed_request"
	ReasonTokenMissing     = "token_missing"
	ReasonTokenInvalid     = "token_invalid" // the Authorization header is not exactly one Bearer token
	ReasonTokenRevoked     = "token_revoked"
	ReasonStoreUnavailable = "store_unavailable"
	// ReasonStoreReset: the token was issued before the store lost its data (and with it, maybe, its revocation).
	ReasonStoreReset = "store_reset"
	// ReasonRevocationStale: the revocation replica has not heard from Redis within revocation.max_staleness.
	ReasonRevocationStale = "revocation_stale"
	ReasonInternal        = "internal_error"
)

// Reasons from token.Reason that the decider gives itself or acts on, named from the token package's vocabulary.
var (
	reasonTokenTooLarge = token.Reason(token.ErrTooLarge) // refused before the token is hashed or scanned
	reasonTokenExpired  = token.Reason(token.ErrExpired)  // a browser goes to refresh instead of sign-in
)

// outcome is one decision before it is rendered for Envoy.
type outcome struct {
	status int    // HTTP status; 200 for allow
	reason string // reason code
	rule   *policy.Rule
}

func (o outcome) allowed() bool { return o.status == 200 }

// grpcCode is the CheckResponse status that matches an HTTP denial, for Envoy's logs and stats.
func grpcCode(status int) codes.Code {
	switch status {
	case 200:
		return codes.OK
	case 400:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 503:
		return codes.Unavailable
	default:
		return codes.PermissionDenied
	}
}

// publicMessage is the human sentence sent to clients. It is generic on purpose: the precise reason is in the
// dynamic metadata and the audit log, not in what an attacker sees.
func publicMessage(status int) (code, message string) {
	switch status {
	case 400:
		return "bad_request", "the request path is not in canonical form"
	case 401:
		return "unauthenticated", "a valid access token is required"
	case 503:
		return "unavailable", "authorization is temporarily unavailable"
	default:
		return "forbidden", "you do not have access to this resource"
	}
}
