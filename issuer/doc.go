// Package issuer is Gatehouse's login service: it checks passwords, starts sessions and mints the JWTs the
// ext_authz sidecar verifies.
//
// # API
//
// JSON in and out; request bodies over 64 KiB are refused with 413 on every endpoint. Every error is {"error": code, "message": text}.
//
//	POST   /auth/login        {username, password} -> 200 token response
//	                          400 invalid_request, 401 invalid_credentials, 429 rate_limited (+Retry-After),
//	                          503 unavailable (+Retry-After: 1)
//	POST   /auth/refresh      {refresh_token} -> 200 token response; 400, 401 invalid_token, 503
//	POST   /auth/logout       Bearer access token -> 204; ends the caller's session
//	POST   /auth/logout/all   Bearer -> 204; ends every session of the caller
//	GET    /auth/sessions     Bearer -> {"sessions":[{id, created, last_used, client_ip, user_agent, current}]}
//	DELETE /auth/sessions/{id} Bearer -> 204; 403 forbidden (someone else's), 404 not_found
//	GET    /.well-known/jwks.json, /.well-known/openid-configuration, /healthz, /readyz, /metrics
//
// The token response is {access_token, refresh_token, token_type: "Bearer", expires_in, session_id}, sent with
// Cache-Control: no-store. A wrong method answers 405 with Allow; an unknown path 404; both in the JSON shape.
// Bearer endpoints parse Authorization like the sidecar (exactly one header, scheme "Bearer" in any case, one
// token), verify an at+jwt, and ask the store whether it was revoked; any failure is 401 invalid_token with
// WWW-Authenticate. A token issued before the store lost its data (store.ErrStoreReset) counts as revoked: 401,
// log in again. Other store failures (including store.ErrStale) are 503 unavailable; anything unexpected is 500 internal_error with a generic
// message (the cause goes to the log, event "issuer.error").
//
// Request bodies are read strictly (readFields): exactly one JSON object of string members, member names matched
// exactly (encoding/json would take "USERNAME" for "username"), no unknown or duplicate members, no trailing
// data, valid UTF-8 only — so no parser in front of us can read a body differently from us.
//
// # Login
//
// Unknown user, wrong password and disabled user get the same 401 body and cost exactly one password
// verification: a dummy argon2id hash (Config.DummyParams, default password.DefaultParams) for unknown users,
// the real hash for disabled ones. The audit log tells them apart; the response never does.
//
// Brute force (regulator.go): failures count against the canonical username ("login:user:<name>") and the client
// IP ("login:ip:<ip>"), known or not. MaxFailures within Window locks the subject for Lockout, doubling per
// lockout within 24 h up to MaxLockout (1m, 2m, 4m ... 1h by default). A locked login answers 429 with
// Retry-After before any hashing, even for the right password. Success clears the account's counter only.
// The IP uses the same threshold as the account, so many users behind one NAT share five failures.
//
// Password verification runs under a semaphore: Login.HashConcurrency slots, or when 0,
// max(1, min(2·GOMAXPROCS, 512 MiB / per-hash memory)) with per-hash memory the largest of the users file's and
// the dummy hash's. A login waits up to Login.HashWait (2 s) for a slot, then gets 503 with Retry-After: 1.
// The budget bounds the argon2 memory in use at once; the Go heap may briefly hold up to twice that before the
// collector returns it, so set GOMEMLIMIT when memory is tight.
//
// The client IP is the socket peer, or, when the peer is in Config.TrustedProxies, the first untrusted address of
// X-Forwarded-For counted from the right (see clientIP).
//
// # Sessions and refresh
//
// Login creates a session (a new 128-bit id every time) holding the current refresh token's jti; it ends at
// login + RefreshTTL whatever happens (absolute lifetime). No token outlives its session: access exp is
// min(now+AccessTTL, session end), refresh exp is the session end. Past MaxSessions per user the oldest
// sessions are ended.
//
// Refresh rotates: the presented refresh token is spent and a new pair is issued, with roles re-read from the
// users directory. A spent refresh token presented again is treated as theft (RFC 9700): the session is revoked
// until its end (+leeway) and deleted, and a refresh_reuse line is logged. Concurrent refreshes with one token
// have one winner (the store's compare-and-swap); the losers cannot be told from a thief, so they end the session
// too — clients must serialize refreshes. Refresh also refuses, and ends the session of, a user who was removed
// or disabled.
//
// Ending a session (logout, DELETE, the cap) revokes its sid until every access token issued so far has
// expired (now + AccessTTL + leeway) and deletes the record, so its refresh tokens find no session. Logout-all
// does that for each listed session and also revokes every token of the user issued before the current second
// (RevokeUserBefore); the cut-off is truncated to the second, JWT iat's precision, so a login right after is
// not caught by it.
//
// # Discovery
//
// /.well-known/openid-configuration holds only issuer, jwks_uri and id_token_signing_alg_values_supported (the
// signing algorithm). Gatehouse is not an OpenID Provider, so members OIDC requires of providers are left out
// rather than faked; issuer and jwks_uri are what Istio's RequestAuthentication and Envoy's jwt_authn need.
//
// # Audit and metrics
//
// One slog line per login, refresh, logout, logout_all, session revocation, lockout and refresh reuse, with the
// fields event, user_id, username (canonical), client_ip, outcome, reason, session_id; never a password, hash or
// token. Metrics (Config.Registry): gatehouse_logins_total{outcome}, gatehouse_refresh_total{outcome},
// gatehouse_lockouts_total, gatehouse_logouts_total.
//
// # Extending login
//
// handleLogin ends with completeLogin(w, r, user, ip), which starts the session (issueSession) and writes the
// token response (writeTokens). A second factor goes between the password check and completeLogin.
//
// # Wiring
//
//	srv, err := issuer.New(issuer.Config{
//	    Issuer: cfg.Issuer.URL, Audience: cfg.Tokens.Audience,
//	    AccessTTL: cfg.Tokens.AccessTTL.D(), RefreshTTL: cfg.Tokens.RefreshTTL.D(), Leeway: cfg.Tokens.Leeway.D(),
//	    Signer: signer, Verifier: verifier, Keys: keys, Users: dir,
//	    Sessions: st, Revocations: st, Counters: st, Ready: st.Ping,
//	    MaxSessions: cfg.Issuer.MaxSessions,
//	    Login: issuer.LoginLimits{MaxFailures: cfg.Login.MaxFailures, Window: cfg.Login.Window.D(),
//	        Lockout: cfg.Login.Lockout.D(), MaxLockout: cfg.Login.MaxLockout.D(),
//	        HashConcurrency: cfg.Login.HashConcurrency},
//	    TrustedProxies: cfg.Issuer.TrustedPrefixes, Logger: logger, Registry: registry,
//	})
//	http.Server{Handler: srv.Handler(), ...}; on SIGHUP: srv.SetUsers(newDir)
//
// Import direction: issuer depends on token, store (interfaces and sentinels only), users and password; cmd
// picks the store backend.
package issuer
