package portal

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"gatehouse/issuer"
	"gatehouse/token"
)

// Security headers on every portal response. The pages use no script at all, so the policy allows none; images
// may be data: URIs (the enrolment QR code). form-action 'self' also governs redirects after a form post, so a
// sign-in that returns to another origin ends on an interstitial page (meta refresh plus a link), never on a
// cross-origin 303.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// maxFormBytes bounds a form body; the largest legitimate one (the enrolment confirm) is well under 2 KiB.
const maxFormBytes = 16 << 10

// Input bounds: usernames are bounded by users.MaxUsernameBytes like the issuer does; passwords and codes are
// ours to bound.
const (
	maxPasswordBytes = 1024
	maxCodeBytes     = 64
)

// handlerFunc serves a request or returns an error; serve turns the error into the one error page.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// pageError ends a request with an error page: a status and a sentence for a person. cause is logged for 5xx,
// never shown.
type pageError struct {
	status    int
	message   string
	back      string // a link to offer ("" = the portal home)
	backLabel string
	cause     error
}

func (e *pageError) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.message, e.cause)
	}
	return fmt.Sprintf("%d %s", e.status, e.message)
}

func (e *pageError) Unwrap() error { return e.cause }

func (p *Portal) routes() *http.ServeMux {
	P := p.prefix
	type route struct {
		method, path string
		h            handlerFunc
	}
	rs := []route{
		{"GET", "/{$}", p.authed(p.accountPage)},
		{"GET", "/sign-in", p.signInPage},
		{"POST", "/sign-in", p.form(p.signIn)},
		{"GET", "/sign-in/mfa", p.redirectTo("/sign-in")},
		{"POST", "/sign-in/mfa", p.form(p.verifyMFA)},
		{"GET", "/refresh", p.refresh},
		{"GET", "/sessions", p.authed(p.sessionsPage)},
		{"POST", "/sessions/revoke", p.form(p.authedPost("/sessions", p.revokeSession))},
		{"POST", "/sessions/revoke-all", p.form(p.authedPost("/sessions", p.revokeAll))},
		{"POST", "/mfa/setup", p.form(p.authedPost("/", p.mfaSetup))},
		{"POST", "/mfa/confirm", p.form(p.authedPost("/", p.mfaConfirm))},
		{"POST", "/mfa/disable", p.form(p.authedPost("/", p.mfaDisable))},
		{"GET", "/sign-out", p.authed(p.signOutPage)},
		{"POST", "/sign-out", p.form(p.authedPost("/sign-out", p.signOut))},
	}
	mux := http.NewServeMux()
	allowed := map[string]string{}
	for _, rt := range rs {
		mux.Handle(rt.method+" "+P+rt.path, p.serve(rt.h, false))
		if a := allowed[rt.path]; a != "" {
			allowed[rt.path] = a + ", " + rt.method
		} else {
			allowed[rt.path] = rt.method
		}
	}
	for path, allow := range allowed {
		if strings.Contains(allow, "GET") {
			allow += ", HEAD"
		}
		mux.Handle(P+path, p.serve(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allow)
			return &pageError{status: http.StatusMethodNotAllowed, message: "This page cannot be used that way."}
		}, false))
	}
	mux.Handle("GET "+P+"/static/portal.css", p.serve(serveCSS, true))
	mux.Handle("GET "+P+"/static/logo", p.serve(p.serveLogo, true))
	mux.Handle(P, p.serve(p.redirectTo("/"), false))
	mux.Handle(P+"/", p.serve(func(http.ResponseWriter, *http.Request) error {
		return &pageError{status: http.StatusNotFound, message: "There is no page at this address."}
	}, false))
	return mux
}

// Handler serves the portal: every path under Prefix.
func (p *Portal) Handler() http.Handler { return p.mux }

// serve adapts h: security headers on every response, no-store unless cacheable (static files), a returned
// error rendered as the error page, a panic as a 500 page.
func (p *Portal) serve(h handlerFunc, cacheable bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on the portal's own form
		// posts, which the CSRF check must refuse. same-origin still sends nothing to other sites.
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !cacheable {
			hd.Set("Cache-Control", "no-store")
		}
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				p.writeError(w, r, fmt.Errorf("panic: %v", rec))
			}
		}()
		if err := h(w, r); err != nil {
			p.writeError(w, r, err)
		}
	})
}

// writeError renders err as the error page. An error that is not a *pageError is unexpected: the person sees a
// generic sentence and the log gets the cause.
func (p *Portal) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *pageError
	if !errors.As(err, &pe) {
		pe = p.issuerError(err)
	}
	if pe.status >= 500 && pe.cause != nil {
		p.log.LogAttrs(r.Context(), slog.LevelError, "portal request failed", slog.String("event", "portal.error"),
			slog.String("method", r.Method), slog.String("route", r.Pattern), slog.Int("status", pe.status),
			slog.String("error", pe.cause.Error()))
	}
	if pe.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	v := p.view(r, "Something went wrong")
	switch pe.status {
	case http.StatusNotFound:
		v.Title = "Page not found"
	case http.StatusForbidden:
		v.Title = "That did not work"
	case http.StatusServiceUnavailable:
		v.Title = "Please try again"
	}
	v.Alert = pe.message
	v.Back, v.BackLabel = pe.back, pe.backLabel
	if v.Back == "" {
		v.Back, v.BackLabel = p.home(), "Go to your account"
	}
	p.render(w, r, pe.status, "error", v)
}

// issuerError is the error page for an issuer error nobody handled more specifically.
func (p *Portal) issuerError(err error) *pageError {
	msg := sentence(err, p.now())
	switch {
	case errors.Is(err, issuer.ErrUnavailable):
		return &pageError{status: http.StatusServiceUnavailable, message: msg, cause: err}
	case errors.Is(err, issuer.ErrInvalidToken):
		return &pageError{status: http.StatusUnauthorized, message: msg, back: p.SignInURL(), backLabel: "Sign in"}
	case errors.Is(err, issuer.ErrRateLimited):
		return &pageError{status: http.StatusTooManyRequests, message: msg}
	case errors.Is(err, issuer.ErrForbidden):
		return &pageError{status: http.StatusForbidden, message: msg}
	case errors.Is(err, issuer.ErrNotFound):
		return &pageError{status: http.StatusNotFound, message: msg}
	case errors.Is(err, issuer.ErrInvalidRequest):
		return &pageError{status: http.StatusBadRequest, message: msg}
	}
	return &pageError{status: http.StatusInternalServerError, message: msg, cause: err}
}

// render executes a page into a buffer first, so a template failure becomes the error page, never half a page.
func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	var buf bytes.Buffer
	if err := p.pages.execute(&buf, name, v); err != nil {
		p.log.LogAttrs(r.Context(), slog.LevelError, "portal template failed", slog.String("event", "portal.error"),
			slog.String("template", name), slog.String("error", err.Error()))
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString("<!doctype html><html lang=\"en\"><title>Error</title><p>Something went wrong on our side. Please try again.</p></html>")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redirectTo answers with a 303 to a portal path.
func (p *Portal) redirectTo(path string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		http.Redirect(w, r, p.abs(path), http.StatusSeeOther)
		return nil
	}
}

// form wraps a POST handler: it bounds and parses the body, then checks that the post came from one of the
// portal's own pages (Fetch Metadata, Origin and the CSRF token) before h runs.
func (p *Portal) form(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return &pageError{status: http.StatusRequestEntityTooLarge, message: "The form was too large to send."}
			}
			return &pageError{status: http.StatusBadRequest, message: "The form could not be read. Please try again."}
		}
		if why := p.checkCSRF(r); why != "" {
			p.log.LogAttrs(r.Context(), slog.LevelWarn, "portal form refused", slog.String("event", "portal.csrf_refused"),
				slog.String("route", r.Pattern), slog.String("reason", why), slog.String("client_ip", p.cfg.ClientIP(r)))
			return &pageError{status: http.StatusForbidden,
				message: "This form has expired or was sent from another site. Go back, reload the page and try again.",
				back:    p.abs(formPage(r.URL.Path, p.prefix)), backLabel: "Start again"}
		}
		return h(w, r)
	}
}

// formPage is the page holding the form that posts to path, for the "Start again" link.
func formPage(path, prefix string) string {
	rel := strings.TrimPrefix(path, prefix)
	switch {
	case rel == "/sign-in" || strings.HasPrefix(rel, "/sign-in/"):
		return "/sign-in"
	case strings.HasPrefix(rel, "/sessions"):
		return "/sessions"
	case rel == "/sign-out":
		return "/sign-out"
	}
	return "/"
}

// authedFunc serves a signed-in person; c are their access token's claims, verified and not revoked.
type authedFunc func(w http.ResponseWriter, r *http.Request, c *token.Claims) error

// authed serves a GET page to a signed-in person. Without an access cookie the browser goes to sign-in; with
// one that no longer verifies (usually expired) it goes through the refresh endpoint, which falls back to
// sign-in. Either way it comes back to this page.
func (p *Portal) authed(h authedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := p.session(r)
		if err != nil {
			return p.reauthenticate(w, r, err, p.abs(strings.TrimPrefix(r.URL.RequestURI(), p.prefix)))
		}
		return h(w, r, c)
	}
}

// authedPost is authed for a form post: when the session cannot be verified the post is dropped and the
// browser is sent (via refresh or sign-in) back to the page holding the form, at back.
func (p *Portal) authedPost(back string, h authedFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := p.session(r)
		if err != nil {
			return p.reauthenticate(w, r, err, p.abs(back))
		}
		return h(w, r, c)
	}
}

// reauthenticate answers a request whose session did not verify.
func (p *Portal) reauthenticate(w http.ResponseWriter, r *http.Request, err error, returnTo string) error {
	switch {
	case errors.Is(err, errNoSession):
		http.Redirect(w, r, p.withReturn(p.SignInURL(), returnTo), http.StatusSeeOther)
		return nil
	case errors.Is(err, issuer.ErrInvalidToken):
		http.Redirect(w, r, p.withReturn(p.RefreshURL(), returnTo), http.StatusSeeOther)
		return nil
	}
	return err
}
