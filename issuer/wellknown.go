package issuer

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// discoveryDoc is GET /.well-known/openid-configuration. Gatehouse is not an OpenID Provider (no authorization
// endpoint, no ID tokens, no OAuth grants), so the document holds only what is true and what consumers of the
// tokens need: "issuer" and "jwks_uri" (Istio's RequestAuthentication resolves jwks_uri from the issuer this way;
// Envoy's jwt_authn takes jwks_uri directly), plus the signing algorithm under
// id_token_signing_alg_values_supported, which some JWT libraries read to pin the algorithm. Members OIDC
// Discovery marks REQUIRED for a provider (authorization_endpoint, response_types_supported,
// subject_types_supported) are left out rather than filled with false values.
func discoveryDoc(issuer, alg string) []byte {
	b, _ := json.Marshal(struct {
		Issuer  string   `json:"issuer"`
		JWKSURI string   `json:"jwks_uri"`
		Algs    []string `json:"id_token_signing_alg_values_supported"`
	}{issuer, strings.TrimSuffix(issuer, "/") + "/.well-known/jwks.json", []string{alg}})
	return b
}

// writePublic writes a public, cacheable JSON document (key rotation publishes new keys ahead of use, so five
// minutes of caching is safe).
func writePublic(w http.ResponseWriter, body []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
	return nil
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) error {
	return writePublic(w, s.jwks)
}

func (s *Server) handleDiscovery(w http.ResponseWriter, _ *http.Request) error {
	return writePublic(w, s.discovery)
}

// handleHealthz answers 200 while the process serves HTTP (liveness).
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// handleReadyz answers 200 only when the store answers within readyTimeout (readiness): without it no login,
// refresh or logout can work.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			return storeError("ping", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
