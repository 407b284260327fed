package portal

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"gatehouse/issuer"
	"gatehouse/mfa"
	"gatehouse/token"
	"gatehouse/users"
)

// returnURL validates a requested return URL; anything not allowed, or nothing, is the portal home.
func (p *Portal) returnURL(raw string) string {
	if raw == "" {
		return p.home()
	}
	if u, ok := p.cfg.ReturnURLs.ReturnURL(raw); ok {
		return u
	}
	if u, ok := p.self.ReturnURL(raw); ok {
		return u
	}
	return p.home()
}

// withReturn adds ?return_to= to a portal URL, unless the return URL is the home page anyway.
func (p *Portal) withReturn(target, ret string) string {
	if ret == "" || ret == p.home() {
		return target
	}
	return target + "?return_to=" + url.QueryEscape(ret)
}

// setReturn carries a validated return URL in a page's forms and names its host.
func (p *Portal) setReturn(v *view, ret string) {
	if ret == "" || ret == p.home() {
		return
	}
	v.ReturnTo = ret
	if u, err := url.Parse(ret); err == nil {
		v.ReturnHost = u.Host
	}
}

// renderForm renders a page that holds forms: it needs the CSRF token (and may set the pre-session cookie).
func (p *Portal) renderForm(w http.ResponseWriter, r *http.Request, status int, name string, v *view) error {
	tok, err := p.csrfToken(w, r)
	if err != nil {
		return err
	}
	v.CSRF = tok
	p.render(w, r, status, name, v)
	return nil
}

// fieldError marks a field invalid with a sentence; the first invalid field takes focus.
func (v *view) fieldError(field, msg string) {
	v.Fields[field] = msg
	v.Problems = append(v.Problems, problem{Field: field, Text: msg})
	if len(v.Problems) == 1 {
		v.Autofocus = field
	}
}

// continueTo ends a successful sign-in. Same-origin targets get a 303; another origin gets an interstitial page
// (meta refresh plus a link) because the form-action 'self' policy also applies to a form post's redirects.
func (p *Portal) continueTo(w http.ResponseWriter, r *http.Request, ret string) error {
	if strings.HasPrefix(ret, p.origin+"/") || (r.Host != "" && strings.HasPrefix(ret, p.base.Scheme+"://"+r.Host+"/")) {
		http.Redirect(w, r, ret, http.StatusSeeOther)
		return nil
	}
	v := p.view(r, "You are signed in")
	p.setReturn(v, ret)
	v.Refresh = ret
	p.render(w, r, http.StatusOK, "continue", v)
	return nil
}

// signInPage is GET <prefix>/sign-in[?return_to=URL].
func (p *Portal) signInPage(w http.ResponseWriter, r *http.Request) error {
	v := p.view(r, "Sign in")
	p.setReturn(v, p.returnURL(r.URL.Query().Get("return_to")))
	if u := p.signedInAs(r); u != "" {
		v.Notice = "You are already signed in as " + u + ". Signing in again starts a new session."
	}
	v.Autofocus = "username"
	return p.renderForm(w, r, http.StatusOK, "sign-in", v)
}

// signIn is POST <prefix>/sign-in {username, password, return_to}: the password step.
func (p *Portal) signIn(w http.ResponseWriter, r *http.Request) error {
	username := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	ret := p.returnURL(r.PostForm.Get("return_to"))
	v := p.view(r, "Sign in")
	p.setReturn(v, ret)
	v.Values["username"] = username
	switch {
	case username == "":
		v.fieldError("username", "Enter your username.")
	case len(username) > users.MaxUsernameBytes:
		v.fieldError("username", "That username is too long.")
	}
	switch {
	case password == "":
		v.fieldError("password", "Enter your password.")
	case len(password) > maxPasswordBytes:
		v.fieldError("password", "That password is too long.")
	}
	if len(v.Problems) > 0 {
		return p.renderForm(w, r, http.StatusBadRequest, "sign-in", v)
	}
	res, err := p.cfg.Issuer.Authenticate(r.Context(), username, password, p.cfg.ClientIP(r), r.UserAgent())
	switch {
	case errors.Is(err, issuer.ErrInvalidCredentials):
		v.fieldError("password", sentence(err, p.now()))
		return p.renderForm(w, r, http.StatusUnauthorized, "sign-in", v)
	case errors.Is(err, issuer.ErrRateLimited), errors.Is(err, issuer.ErrUnavailable), errors.Is(err, issuer.ErrInvalidRequest):
		v.Alert = sentence(err, p.now())
		v.Autofocus = "username"
		return p.renderForm(w, r, statusOf(err), "sign-in", v)
	case err != nil:
		return err
	case res.MFA != nil:
		return p.mfaStep(w, r, http.StatusOK, res.MFA.Token, ret, "", "")
	}
	if err := p.setSession(w, *res.Tokens); err != nil {
		return err
	}
	return p.continueTo(w, r, ret)
}

// mfaStep renders the second sign-in step for an mfa_token, with an error on the code field or in the summary.
func (p *Portal) mfaStep(w http.ResponseWriter, r *http.Request, status int, mfaToken, ret, codeErr, alert string) error {
	v := p.view(r, "Two-step verification")
	p.setReturn(v, ret)
	v.MFAToken = mfaToken
	v.Alert = alert
	v.Autofocus = "code"
	if codeErr != "" {
		v.fieldError("code", codeErr)
	}
	return p.renderForm(w, r, status, "mfa", v)
}

// verifyMFA is POST <prefix>/sign-in/mfa {mfa_token, code, return_to}: the second step.
func (p *Portal) verifyMFA(w http.ResponseWriter, r *http.Request) error {
	tok := r.PostForm.Get("mfa_token")
	code := normaliseCode(r.PostForm.Get("code"))
	ret := p.returnURL(r.PostForm.Get("return_to"))
	if tok == "" || len(tok) > token.MaxTokenSize {
		return p.signInAgain(w, r, ret, http.StatusBadRequest, "This sign-in can no longer be completed. Please sign in again.")
	}
	switch {
	case code == "":
		return p.mfaStep(w, r, http.StatusBadRequest, tok, ret, "Enter the 6-digit code from your app, or a backup code.", "")
	case len(code) > maxCodeBytes:
		return p.mfaStep(w, r, http.StatusBadRequest, tok, ret, "That code is too long.", "")
	}
	t, err := p.cfg.Issuer.VerifyMFA(r.Context(), tok, code, p.cfg.ClientIP(r), r.UserAgent())
	switch {
	case errors.Is(err, issuer.ErrMFACodeInvalid): // wrong or replayed: the token stays usable
		return p.mfaStep(w, r, http.StatusUnauthorized, tok, ret, sentence(err, p.now()), "")
	case errors.Is(err, issuer.ErrRateLimited), errors.Is(err, issuer.ErrInvalidToken):
		// A lockout voids the mfa_tokens issued before it, so either way the login starts over.
		return p.signInAgain(w, r, ret, statusOf(err), sentence(err, p.now()))
	case errors.Is(err, issuer.ErrUnavailable):
		return p.mfaStep(w, r, http.StatusServiceUnavailable, tok, ret, "", sentence(err, p.now()))
	case err != nil:
		return err
	}
	if err := p.setSession(w, t); err != nil {
		return err
	}
	return p.continueTo(w, r, ret)
}

// signInAgain renders the sign-in form with a sentence saying why.
func (p *Portal) signInAgain(w http.ResponseWriter, r *http.Request, ret string, status int, msg string) error {
	v := p.view(r, "Sign in")
	p.setReturn(v, ret)
	v.Alert = msg
	v.Autofocus = "username"
	return p.renderForm(w, r, status, "sign-in", v)
}

// normaliseCode drops the spaces people type into "123 456"; backup codes are normalised by the issuer.
func normaliseCode(s string) string {
	s = strings.TrimSpace(s)
	if compact := strings.ReplaceAll(s, " ", ""); len(compact) == mfa.Digits && strings.Trim(compact, "0123456789") == "" {
		return compact
	}
	return s
}

// statusOf is the HTTP status the issuer's JSON API would use for err.
func statusOf(err error) int {
	status, _, _ := issuer.PublicError(err)
	return status
}

// accountPage is GET <prefix>/: who is signed in, two-step verification, a link to the sessions.
func (p *Portal) accountPage(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	v, err := p.accountView(r, c)
	if err != nil {
		return err
	}
	return p.renderForm(w, r, http.StatusOK, "account", v)
}

func (p *Portal) accountView(r *http.Request, c *token.Claims) (*view, error) {
	st, err := p.cfg.Issuer.MFAStatus(r.Context(), c)
	if err != nil {
		return nil, err
	}
	v := p.view(r, "Your account")
	v.User, v.Nav = c.Username, "account"
	v.MFA = mfaView{Enabled: st.Enabled, EnabledAt: st.EnabledAt, BackupCodesLeft: st.BackupCodesLeft}
	return v, nil
}

// accountWith re-renders the account page after an MFA action, with a notice or an error.
func (p *Portal) accountWith(w http.ResponseWriter, r *http.Request, c *token.Claims, status int, edit func(*view)) error {
	v, err := p.accountView(r, c)
	if err != nil {
		return err
	}
	edit(v)
	return p.renderForm(w, r, status, "account", v)
}

// mfaSetup is POST <prefix>/mfa/setup: a new pending secret, shown as a QR code and as text.
func (p *Portal) mfaSetup(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	setup, err := p.cfg.Issuer.SetupMFA(r.Context(), c, p.cfg.ClientIP(r))
	if errors.Is(err, issuer.ErrMFAAlreadyEnabled) {
		return p.accountWith(w, r, c, http.StatusConflict, func(v *view) { v.Alert = sentence(err, p.now()) })
	}
	if err != nil {
		return err
	}
	v := p.view(r, "Set up two-step verification")
	v.User, v.Nav = c.Username, "account"
	v.Enrol = p.enrolView(c, setup.OTPAuthURI, setup.Secret, setup.QRPNG)
	return p.renderForm(w, r, http.StatusOK, "mfa-setup", v)
}

// enrolView renders a pending setup. The otpauth URI goes back through the confirm form, signed for this session,
// so a wrong code can be answered with the same QR code; the secret stays pending in the issuer either way.
func (p *Portal) enrolView(c *token.Claims, uri, secret string, png []byte) *enrolView {
	e := &enrolView{QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)),
		Secret: groupSecret(secret), SecretPlain: secret, Account: c.Username, Issuer: p.cfg.Title,
		URI: uri, MAC: p.enrolMAC(c, uri)}
	if u, err := url.Parse(uri); err == nil && u.Query().Get("issuer") != "" {
		e.Issuer = u.Query().Get("issuer")
	}
	return e
}

func (p *Portal) enrolMAC(c *token.Claims, uri string) string {
	m := hmac.New(sha256.New, p.cfg.CSRFKey)
	m.Write([]byte("gatehouse/portal/enrol\x00" + c.SessionID + "\x00" + uri))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// enrolFromForm rebuilds the enrolment view from the confirm form's signed otpauth URI; nil if it is missing,
// forged, or from another session.
func (p *Portal) enrolFromForm(r *http.Request, c *token.Claims) *enrolView {
	uri, mac := r.PostForm.Get("enrol"), r.PostForm.Get("enrol_mac")
	if uri == "" || len(uri) > 1024 || subtle.ConstantTimeCompare([]byte(mac), []byte(p.enrolMAC(c, uri))) != 1 {
		return nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil
	}
	secret := u.Query().Get("secret")
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		return nil
	}
	issuerName := u.Query().Get("issuer")
	enr, err := mfa.NewEnrolment(raw, issuerName, c.Username)
	if err != nil {
		return nil
	}
	return p.enrolView(c, uri, secret, enr.QRPNG)
}

// groupSecret writes a base32 secret in groups of four for reading and typing.
func groupSecret(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// mfaConfirm is POST <prefix>/mfa/confirm {code}: MFA on, and the backup codes, shown this once.
func (p *Portal) mfaConfirm(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	code := normaliseCode(r.PostForm.Get("code"))
	enrol := p.enrolFromForm(r, c)
	again := func(status int, msg string) error {
		if enrol == nil {
			return p.accountWith(w, r, c, status, func(v *view) { v.Alert = msg })
		}
		v := p.view(r, "Set up two-step verification")
		v.User, v.Nav, v.Enrol = c.Username, "account", enrol
		v.fieldError("code", msg)
		return p.renderForm(w, r, status, "mfa-setup", v)
	}
	switch {
	case code == "":
		return again(http.StatusBadRequest, "Enter the 6-digit code your app shows.")
	case len(code) > maxCodeBytes:
		return again(http.StatusBadRequest, "That code is too long.")
	}
	codes, err := p.cfg.Issuer.ConfirmMFA(r.Context(), c, code, p.cfg.ClientIP(r))
	switch {
	case errors.Is(err, issuer.ErrMFACodeInvalid):
		return again(statusOf(err), sentence(err, p.now()))
	case errors.Is(err, issuer.ErrMFASetupNotFound), errors.Is(err, issuer.ErrMFAAlreadyEnabled):
		return p.accountWith(w, r, c, statusOf(err), func(v *view) { v.Alert = sentence(err, p.now()) })
	case err != nil:
		return err
	}
	v := p.view(r, "Save your backup codes")
	v.User, v.Nav = c.Username, "account"
	v.Notice = "Two-step verification is on. Your other sessions were signed out."
	v.BackupCodes = codes
	p.render(w, r, http.StatusOK, "backup-codes", v)
	return nil
}

// mfaDisable is POST <prefix>/mfa/disable {code}: MFA off with a current or backup code.
func (p *Portal) mfaDisable(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	code := normaliseCode(r.PostForm.Get("code"))
	fieldErr := func(status int, msg string) error {
		return p.accountWith(w, r, c, status, func(v *view) { v.fieldError("code", msg) })
	}
	switch {
	case code == "":
		return fieldErr(http.StatusBadRequest, "Enter a code from your app, or a backup code.")
	case len(code) > maxCodeBytes:
		return fieldErr(http.StatusBadRequest, "That code is too long.")
	}
	err := p.cfg.Issuer.DisableMFA(r.Context(), c, code, p.cfg.ClientIP(r))
	switch {
	case errors.Is(err, issuer.ErrMFACodeInvalid):
		return fieldErr(statusOf(err), sentence(err, p.now()))
	case errors.Is(err, issuer.ErrRateLimited), errors.Is(err, issuer.ErrMFANotEnabled):
		return p.accountWith(w, r, c, statusOf(err), func(v *view) { v.Alert = sentence(err, p.now()) })
	case err != nil:
		return err
	}
	return p.accountWith(w, r, c, http.StatusOK, func(v *view) {
		v.Notice = "Two-step verification is off. Your other sessions were signed out."
	})
}

// notices are the sentences a redirect may ask a page to show (?notice=key): a fixed set, so nothing a link
// carries is ever echoed.
var notices = map[string]string{
	"ended": "That session is signed out.",
	"gone":  "That session had already ended.",
}

// sessionsPage is GET <prefix>/sessions: the caller's sessions, this one first, then the most recently used.
func (p *Portal) sessionsPage(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	list, err := p.cfg.Issuer.ListSessions(r.Context(), c)
	if err != nil {
		return err
	}
	v := p.view(r, "Your sessions")
	v.User, v.Nav, v.Wide = c.Username, "sessions", true
	v.Notice = notices[r.URL.Query().Get("notice")]
	for _, s := range list {
		v.Sessions = append(v.Sessions, sessionView{ID: s.ID, Device: describeUserAgent(s.UserAgent),
			UserAgent: s.UserAgent, ClientIP: s.ClientIP, Created: s.Created, LastUsed: s.LastUsed, Current: s.Current})
	}
	slices.SortStableFunc(v.Sessions, func(a, b sessionView) int {
		switch {
		case a.Current != b.Current:
			if a.Current {
				return -1
			}
			return 1
		case !a.LastUsed.Equal(b.LastUsed):
			return b.LastUsed.Compare(a.LastUsed)
		}
		return b.Created.Compare(a.Created)
	})
	return p.renderForm(w, r, http.StatusOK, "sessions", v)
}

// revokeSession is POST <prefix>/sessions/revoke {session}. Ending the current session is signing out.
func (p *Portal) revokeSession(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	id := r.PostForm.Get("session")
	if id == c.SessionID {
		return p.signOut(w, r, c)
	}
	err := p.cfg.Issuer.RevokeSession(r.Context(), c, id, p.cfg.ClientIP(r))
	notice := "ended"
	switch {
	case errors.Is(err, issuer.ErrNotFound), errors.Is(err, issuer.ErrForbidden):
		notice = "gone"
	case err != nil:
		return err
	}
	http.Redirect(w, r, p.abs("/sessions?notice="+notice), http.StatusSeeOther)
	return nil
}

// revokeAll is POST <prefix>/sessions/revoke-all: every session of the caller ends, this one included.
func (p *Portal) revokeAll(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	if err := p.cfg.Issuer.LogoutAll(r.Context(), c, p.cfg.ClientIP(r)); err != nil {
		return err
	}
	return p.signedOut(w, r, "You are signed out on every device.")
}

// signOutPage is GET <prefix>/sign-out: a confirmation with a button (a GET must not sign anyone out, or any
// page could do it with an image).
func (p *Portal) signOutPage(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	v := p.view(r, "Sign out")
	v.User, v.Nav = c.Username, "sign-out"
	return p.renderForm(w, r, http.StatusOK, "sign-out", v)
}

// signOut is POST <prefix>/sign-out: the session ends and the cookies go.
func (p *Portal) signOut(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	if err := p.cfg.Issuer.Logout(r.Context(), c, p.cfg.ClientIP(r)); err != nil {
		return err
	}
	return p.signedOut(w, r, "You are signed out on this device.")
}

func (p *Portal) signedOut(w http.ResponseWriter, r *http.Request, msg string) error {
	p.clearSession(w)
	v := p.view(r, "You are signed out")
	v.Notice = msg
	p.render(w, r, http.StatusOK, "signed-out", v)
	return nil
}
