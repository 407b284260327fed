package issuer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Error codes: the one vocabulary of the issuer's error bodies. Audit reasons may be more precise (a disabled
// user's attempt is logged as "disabled"); what a client sees never is.
const (
	CodeInvalidRequest     = "invalid_request"
	CodeInvalidCredentials = "invalid_credentials"
	CodeInvalidToken       = "invalid_token"
	CodeForbidden          = "forbidden"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeTooLarge           = "request_too_large"
	CodeRateLimited        = "rate_limited"
	CodeInternal           = "internal_error"
	CodeUnavailable        = "unavailable"
	CodeInvalidCode        = "invalid_code"        // a wrong TOTP or backup code
	CodeCodeReplayed       = "code_replayed"       // a TOTP code (time step) that was used already
	CodeMFAAlreadyEnabled  = "mfa_already_enabled" // setup or confirm while MFA is on
	CodeMFANotEnabled      = "mfa_not_enabled"     // disable while MFA is off
	CodeMFASetupNotFound   = "mfa_setup_not_found" // confirm without a live pending setup
)

// Errors of the Go API (Authenticate, VerifyMFA, SetupMFA ...), for callers in the same binary such as the web
// portal. Every error those methods return matches one of these with errors.Is; a few also match a broader one
// (ErrMFATokenExpired is an ErrMFATokenInvalid, which is an ErrInvalidToken; ErrCodeReplayed is an
// ErrMFACodeInvalid), so a caller may test the broad kind and refine when it wants a better sentence.
// PublicError gives the status, code and message the JSON API sends for any of them.
var (
	ErrInvalidRequest     = errors.New("issuer: invalid request")              // 400: input missing or malformed
	ErrInvalidCredentials = errors.New("issuer: invalid username or password") // 401: also unknown and disabled users
	ErrInvalidToken       = errors.New("issuer: invalid token")                // 401: log in again
	ErrForbidden          = errors.New("issuer: forbidden")                    // 403
	ErrNotFound           = errors.New("issuer: not found")                    // 404
	ErrRateLimited        = errors.New("issuer: rate limited")                 // 429: errors.As a *RateLimitedError
	ErrUnavailable        = errors.New("issuer: temporarily unavailable")      // 503: retry shortly
	ErrInternal           = errors.New("issuer: internal error")               // 500: the cause is logged

	// ErrMFATokenInvalid: the mfa_token is not (or no longer) valid: malformed, used already, issued before an MFA
	// lockout, or its user was removed, disabled or turned MFA off since. The login must start over.
	ErrMFATokenInvalid error = &kindError{"issuer: mfa token invalid", ErrInvalidToken}
	ErrMFATokenExpired error = &kindError{"issuer: mfa token expired", ErrMFATokenInvalid}
	// ErrMFACodeInvalid: the TOTP or backup code is wrong; the mfa_token stays usable (until the lockout).
	ErrMFACodeInvalid = errors.New("issuer: mfa code invalid")
	// ErrCodeReplayed: the TOTP code is right but its time step was used already; wait for the next code.
	ErrCodeReplayed      error = &kindError{"issuer: mfa code already used", ErrMFACodeInvalid}
	ErrMFAAlreadyEnabled       = errors.New("issuer: mfa already enabled")  // 409: disable it first
	ErrMFANotEnabled           = errors.New("issuer: mfa not enabled")      // 409
	ErrMFASetupNotFound        = errors.New("issuer: no pending mfa setup") // 404: call SetupMFA (again)
)

// kindError is a sentinel that is also a broader sentinel.
type kindError struct {
	msg    string
	parent error
}

func (k *kindError) Error() string { return k.msg }
func (k *kindError) Unwrap() error { return k.parent }

// RateLimitedError comes with ErrRateLimited (errors.As): the subject is locked until Until.
type RateLimitedError struct {
	RetryAfter time.Duration // whole seconds, rounded up, at least 1s: what Retry-After says
	Until      time.Time
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("issuer: rate limited; retry after %v", e.RetryAfter)
}

// Is makes errors.Is(err, ErrRateLimited) hold for a bare *RateLimitedError too.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// PublicError returns what the JSON API answers for err, which is safe to show an end user: the HTTP status, the
// error code and a sentence. An error the issuer did not produce is 500 internal_error.
func PublicError(err error) (status int, code, message string) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = errInternal(err)
	}
	return ae.status, ae.code, ae.msg
}

// apiError is what a handler returns to end a request with an error response. status, code and msg are what
// the client sees; cause is what the operator sees (logged for 5xx, never sent).
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter int64 // seconds; 0 sends no Retry-After
	bearer     bool  // add a WWW-Authenticate challenge (RFC 6750)
	kind       error // the exported sentinel errors.Is matches (nil for HTTP-only errors)
	cause      error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.code, e.cause)
	}
	return fmt.Sprintf("%d %s", e.status, e.code)
}

func (e *apiError) Unwrap() error { return e.cause }

// Is matches the error's kind and the broader kinds it belongs to.
func (e *apiError) Is(target error) bool { return e.kind != nil && errors.Is(e.kind, target) }

func invalidRequest(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeInvalidRequest, msg: msg, kind: ErrInvalidRequest}
}

// errInvalidCredentials is the one answer for unknown user, wrong password and disabled user.
func errInvalidCredentials() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidCredentials, msg: "invalid username or password",
		kind: ErrInvalidCredentials}
}

// errInvalidRefresh refuses a refresh token, whatever the reason (expired, spent, session ended...).
func errInvalidRefresh() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidToken, msg: "the refresh token is not valid",
		kind: ErrInvalidToken}
}

// errUnauthenticated refuses a missing, invalid or revoked Bearer access token.
func errUnauthenticated() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidToken, msg: "a valid access token is required",
		bearer: true, kind: ErrInvalidToken}
}

func errForbidden() *apiError {
	return &apiError{status: http.StatusForbidden, code: CodeForbidden, msg: "you may not act on this resource",
		kind: ErrForbidden}
}

func errNotFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeNotFound, msg: what + " not found", kind: ErrNotFound}
}

func errTooLarge() *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge,
		msg: fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes), kind: ErrInvalidRequest}
}

// errRateLimited refuses a locked subject until `until`; the cause carries the lock for Go callers.
func errRateLimited(now, until time.Time) *apiError {
	secs := retryAfter(now, until)
	return &apiError{status: http.StatusTooManyRequests, code: CodeRateLimited,
		msg: "too many failed attempts; try again later", retryAfter: secs, kind: ErrRateLimited,
		cause: &RateLimitedError{RetryAfter: time.Duration(secs) * time.Second, Until: until}}
}

// errUnavailable is a store failure or a full hashing queue: retryable, so 503 with Retry-After.
func errUnavailable(cause error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
		msg: "the service is temporarily unavailable", retryAfter: 1, kind: ErrUnavailable, cause: cause}
}

// storeError wraps a store failure with the operation that failed.
func storeError(op string, err error) *apiError {
	return errUnavailable(fmt.Errorf("store: %s: %w", op, err))
}

func errInternal(cause error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "internal error",
		kind: ErrInternal, cause: cause}
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// handlerFunc is an HTTP handler that reports failure by returning an error (tailscale's ReturnHandler): the
// handler never writes an error response itself, so there is one place that decides what a client sees.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts h to http.Handler: a returned error becomes the JSON error response, a panic becomes a 500.
func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.writeError(w, r, errInternal(fmt.Errorf("panic: %v", p)))
			}
		}()
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// writeError is the only writer of error responses. Any error that is not an *apiError is a bug or an unexpected
// failure: the client gets a generic 500 and the log gets the cause.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = errInternal(err)
	}
	if ae.status >= 500 && ae.cause != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed", slog.String("event", "issuer.error"),
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Int("status", ae.status),
			slog.String("error", ae.cause.Error()))
	}
	h := w.Header()
	if ae.retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(ae.retryAfter, 10))
	}
	if ae.bearer {
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeJSON(w, ae.status, errorBody{Error: ae.code, Message: ae.msg})
}
