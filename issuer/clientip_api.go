package issuer

import "net/http"

// ClientIP is the client address the JSON API records for r: the socket peer, or, when the peer is a trusted
// proxy, the first untrusted X-Forwarded-For hop (see clientIP). A web front end in the same binary (the portal)
// passes it to Authenticate and the other Go API methods, so regulation and audit see one address whichever
// door a person came through.
func (s *Server) ClientIP(r *http.Request) string { return clientIP(r, s.cfg.TrustedProxies) }
