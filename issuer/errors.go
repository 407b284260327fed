package issuer

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
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
)

// apiError is what a handler returns to end a request with an error response. status, code and msg are what
// the client sees; cause is what the operator sees (logged for 5xx, never sent).
type apiError struct {
	status     int
	code       string
	msg        string
	retryAfter int64 // seconds; 0 sends no Retry-After
	bearer     bool  // add a WWW-Authenticate challenge (RFC 6750)
	cause      error
}

func (e *apiError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.code, e.cause)
	}
	return fmt.Sprintf("%d %s", e.status, e.code)
}

func (e *apiError) Unwrap() error { return e.cause }

func invalidRequest(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeInvalidRequest, msg: msg}
}

// errInvalidCredentials is the one answer for unknown user, wrong password and disabled user.
func errInvalidCredentials() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidCredentials, msg: "invalid username or password"}
}

// errInvalidRefresh refuses a refresh token, whatever the reason (expired, spent, session ended...).
func errInvalidRefresh() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidToken, msg: "the refresh token is not valid"}
}

// errUnauthenticated refuses a missing, invalid or revoked Bearer access token.
func errUnauthenticated() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: CodeInvalidToken, msg: "a valid access token is required", bearer: true}
}

func errForbidden() *apiError {
	return &apiError{status: http.StatusForbidden, code: CodeForbidden, msg: "you may not act on this resource"}
}

func errNotFound(what string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeNotFound, msg: what + " not found"}
}

func errTooLarge() *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: CodeTooLarge,
		msg: fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes)}
}

func errRateLimited(retryAfter int64) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: CodeRateLimited,
		msg: "too many failed attempts; try again later", retryAfter: retryAfter}
}

// errUnavailable is a store failure or a full hashing queue: retryable, so 503 with Retry-After.
func errUnavailable(cause error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
		msg: "the service is temporarily unavailable", retryAfter: 1, cause: cause}
}

// storeError wraps a store failure with the operation that failed.
func storeError(op string, err error) *apiError {
	return errUnavailable(fmt.Errorf("store: %s: %w", op, err))
}

func errInternal(cause error) *apiError {
	return &apiError{status: http.StatusInternalServerError, code: CodeInternal, msg: "internal error", cause: cause}
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
