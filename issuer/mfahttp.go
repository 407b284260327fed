package issuer

import (
	"encoding/base64"
	"net/http"

	"gatehouse/token"
)

// mfaSetupResponse is the body of POST /auth/mfa/setup.
type mfaSetupResponse struct {
	Secret     string `json:"secret"`
	OTPAuthURI string `json:"otpauth_uri"`
	QRPNG      string `json:"qr_png"` // base64 (standard, padded) PNG
}

// handleMFASetup is POST /auth/mfa/setup (Bearer): SetupMFA as JSON. The body is ignored.
func (s *Server) handleMFASetup(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	setup, err := s.SetupMFA(r.Context(), c, clientIP(r, s.cfg.TrustedProxies))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, mfaSetupResponse{Secret: setup.Secret, OTPAuthURI: setup.OTPAuthURI,
		QRPNG: base64.StdEncoding.EncodeToString(setup.QRPNG)})
	return nil
}

// handleMFAConfirm is POST /auth/mfa/confirm {code} (Bearer): ConfirmMFA as JSON.
func (s *Server) handleMFAConfirm(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	var code string
	if err := readFields(w, r, map[string]*string{"code": &code}); err != nil {
		return err
	}
	codes, err := s.ConfirmMFA(r.Context(), c, code, clientIP(r, s.cfg.TrustedProxies))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		BackupCodes []string `json:"backup_codes"`
	}{codes})
	return nil
}

// handleMFADisable is POST /auth/mfa/disable {code} (Bearer): DisableMFA; 204.
func (s *Server) handleMFADisable(w http.ResponseWriter, r *http.Request, c *token.Claims) error {
	var code string
	if err := readFields(w, r, map[string]*string{"code": &code}); err != nil {
		return err
	}
	if err := s.DisableMFA(r.Context(), c, code, clientIP(r, s.cfg.TrustedProxies)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleMFAVerify is POST /auth/mfa/verify {mfa_token, code}: VerifyMFA; the token response.
func (s *Server) handleMFAVerify(w http.ResponseWriter, r *http.Request) error {
	var raw, code string
	if err := readFields(w, r, map[string]*string{"mfa_token": &raw, "code": &code}); err != nil {
		return err
	}
	t, err := s.VerifyMFA(r.Context(), raw, code, clientIP(r, s.cfg.TrustedProxies), r.UserAgent())
	if err != nil {
		return err
	}
	return writeTokens(w, t)
}
