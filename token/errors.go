package token

import "errors"

// Sentinel errors. Every error Verify returns wraps exactly one of them, so
// callers branch with errors.Is and log with Reason; the wrapped text adds
// context for operators and never contains key material.
var (
	ErrTooLarge    = errors.New("token too large")
	ErrMalformed   = errors.New("token malformed")
	ErrUnknownKey  = errors.New("token key unknown")
	ErrAlgorithm   = errors.New("token algorithm not allowed")
	ErrSignature   = errors.New("token signature invalid")
	ErrExpired     = errors.New("token expired")
	ErrNotYetValid = errors.New("token not yet valid")
	ErrWrongType   = errors.New("token has the wrong type")
	ErrClaims      = errors.New("token claims invalid")
	ErrIssuer      = errors.New("token issuer invalid")
	ErrAudience    = errors.New("token audience invalid")
)

// reasons is ordered: the first sentinel found in an error's chain names it.
var reasons = [...]struct {
	err  error
	code string
}{
	{ErrTooLarge, "token_too_large"},
	{ErrMalformed, "token_malformed"},
	{ErrUnknownKey, "token_unknown_key"},
	{ErrAlgorithm, "token_algorithm"},
	{ErrSignature, "token_signature"},
	{ErrExpired, "token_expired"},
	{ErrNotYetValid, "token_not_yet_valid"},
	{ErrWrongType, "token_wrong_type"},
	{ErrClaims, "token_claims"},
	{ErrIssuer, "token_issuer"},
	{ErrAudience, "token_audience"},
}

// Reason maps an error from Verify to the reason code shared by logs, metrics
// and responses. It returns "" for nil. An error that wraps none of our
// sentinels is still a refusal and reports "token_malformed", so a new error
// path can never surface as an unlabelled (or allowed) outcome.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "token_malformed"
}
