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
//	POST   /auth/mfa/setup    Bearer -> {secret, otpauth_uri, qr_png}; 409 mfa_already_enabled
//	POST   /auth/mfa/confirm  Bearer {code} -> {backup_codes: [10]}; 404 mfa_setup_not_found, 400 invalid_code |
//	                          code_replayed, 409 mfa_already_enabled
//	POST   /auth/mfa/disable  Bearer {code} -> 204 (code: TOTP or backup); 400 invalid_code | code_replayed,
//	                          409 mfa_not_enabled, 429 rate_limited (+Retry-After)
//	POST   /auth/mfa/verify   {mfa_token, code} -> 200 token response; 401 invalid_token (log in again),
//	                          401 invalid_code | code_replayed (try another code), 429 rate_limited (+Retry-After)
//	GET    /.well-known/jwks.json, /.well-known/openid-configuration, /healthz, /readyz, /metrics
//
// The token response is {access_token, refresh_token, token_type: "Bearer", expires_in, session_id}, sent with
// Cache-Control: no-store. For a user with MFA on, a correct password answers {mfa_required: true, mfa_token,
// expires_in} instead, and no session exists until /auth/mfa/verify. A wrong method answers 405 with Allow; an unknown path 404; both in the JSON shape.
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
// A store failure while looking up whether the user has MFA on is 503, never a login without the factor.
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
// A completed login (the password, then the second factor when MFA is on) creates a session (a new 128-bit id
// every time) holding the current refresh token's jti; it ends at login + RefreshTTL whatever happens (absolute
// lifetime). No token outlives its session: access exp is min(now+AccessTTL, session end), refresh exp is the
// session end. Past MaxSessions per user the oldest sessions are ended.
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
// # MFA (mfa.go)
//
// TOTP per RFC 6238: SHA1, 6 digits, 30 s steps, one step of drift either side (mfa.Match), on the server's
// clock only. Each code is accepted at most once per user: the matched step is recorded atomically
// (UseTOTPStep) and a step not newer than the last recorded one is refused as a replay (code_replayed, audit
// event mfa_replay), so an older step after a newer one is refused too. Backup codes (10 at enrolment, shown
// once) are stored as keyed HMACs and removed atomically on use. TOTP secrets are sealed at rest with AES-256-GCM
// under mfa.encryption_key_file, the user id as associated data; a secret that does not decrypt is a 500 and an
// error line (event issuer.mfa_unseal_failed), never a skipped factor. It is checked before any code, so a
// misconfigured key spends no codes and counts no failures.
//
// Enrolment needs an access token: setup draws a secret and keeps it sealed for 5 minutes (a new setup replaces
// it); confirm with a current code turns MFA on, records that code's step as used, ends the caller's other
// sessions (they were started with the password alone) and returns the backup codes. Setup while MFA is on is
// 409: disable first. Disable takes a current TOTP code or a backup code and ends the caller's other sessions,
// keeping the current one.
//
// Login: the password step (with its regulation) runs first, so a wrong password never tells whether MFA is on;
// a correct one yields the mfa_token: typed mfa+jwt, sub the user id, sid a fresh random login-attempt id (no
// session), jti random, lifetime MFAConfig.TokenTTL (tokens.mfa_ttl, default 5m). It is useless anywhere but
// verify: the sidecar and the Bearer endpoints take at+jwt only, /auth/refresh refresh+jwt only. Verify checks,
// in order: the token; that its user still exists, is enabled and still has MFA on; that the token is not
// revoked (logout-all and backup-code logins revoke the user's earlier tokens, mfa_tokens included); the MFA lock
// and the void marker (below); then the code, which is consumed atomically; and only then claims the token's jti
// (store.Once, until exp + leeway), so a wrong code does not burn the token but a token works for one successful
// verify. A code spent by a request whose claim then loses (the token was used meanwhile) stays spent. Success
// starts a session with a new id; a backup-code login also revokes every token of the user issued before that
// second and ends every other session.
//
// Lockout: wrong and replayed codes at verify and disable count per user (Counters key "mfa:user:<id>", a fixed
// window of MFAConfig.Window from the first failure, default 5m). The failure that reaches MaxFailures (5) gets its
// own refusal and locks the user's MFA for Lockout (5m) from that moment — a fixed 5 minutes, not the rest of the
// window: verify and disable then answer 429 rate_limited with Retry-After for everything, right codes included.
// The lock also voids every mfa_token issued before it began: a second lock record "mfa:void:<id>" expires at
// lock start + mfaVoidSpan (MaxMFATokenTTL + MaxLeeway, a constant, so the start is read back exactly whatever
// TTL a restart configures), and verify refuses any token whose iat (whole seconds) is at or before the lock
// start's second, for as long as such a token could live. Tokens issued after the lock began work once it ends.
// An accepted code clears the counter. Wrong codes at confirm do not count: that caller holds an access token and
// is guessing at a secret it was just shown.
//
// # Storage and Redis persistence
//
// Enrolments, pending secrets, used steps, backup-code hashes, claims and locks go through the store interfaces
// (MFAStore, OnceStore, CounterStore). With Redis, enrolments live only there: Redis must persist (AOF,
// appendonly yes), or a restart silently turns MFA off for everyone — and without mfa.encryption_key_file (an
// ephemeral key, dev only) a restart makes every stored enrolment undecryptable (500 at verify).
//
// # Go API (for the web portal)
//
// Every flow has one implementation, a method the JSON handlers call and a portal in the same binary can call
// without HTTP: Authenticate (password → LoginResult{Tokens | MFA}), VerifyMFA, Refresh, VerifyAccess (access
// token → claims), and with those claims ListSessions, RevokeSession, Logout, LogoutAll, SetupMFA, ConfirmMFA,
// DisableMFA, MFAStatus. The claims methods refuse claims that are not an access token's. Errors match the
// exported sentinels with errors.Is (ErrInvalidCredentials, ErrInvalidToken, ErrMFATokenInvalid,
// ErrMFATokenExpired, ErrMFACodeInvalid, ErrCodeReplayed, ErrMFAAlreadyEnabled, ErrMFANotEnabled,
// ErrMFASetupNotFound, ErrRateLimited with *RateLimitedError{RetryAfter, Until}, ErrUnavailable, ErrInternal ...);
// PublicError gives the status, code and message the JSON API would send. Callers pass the client IP (regulation
// and audit) and User-Agent themselves, and bound their own input sizes.
//
// # Discovery
//
// /.well-known/openid-configuration holds only issuer, jwks_uri and id_token_signing_alg_values_supported (the
// signing algorithm). Gatehouse is not an OpenID Provider, so members OIDC requires of providers are left out
// rather than faked; issuer and jwks_uri are what Istio's RequestAuthentication and Envoy's jwt_authn need.
//
// # Audit and metrics
//
// One slog line per login, refresh, logout, logout_all, session revocation, lockout and refresh reuse, and per
// MFA setup, enable, disable, verify, replay, backup-code use and MFA lockout (see the Event constants), with the
// fields event, user_id, username (canonical), client_ip, outcome, reason, session_id; never a password, hash,
// token, TOTP secret or code. Metrics (Config.Registry): gatehouse_logins_total{outcome} (mfa_required counts the
// password step; success counts sessions started), gatehouse_refresh_total{outcome}, gatehouse_lockouts_total,
// gatehouse_logouts_total, gatehouse_mfa_verify_total{outcome}, gatehouse_mfa_lockouts_total.
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
//	    MFA: issuer.MFAConfig{Store: st, Once: st, Keys: mfaKeys, IssuerName: cfg.MFA.IssuerName,
//	        TokenTTL: cfg.Tokens.MFATTL.D()},
//	    TrustedProxies: cfg.Issuer.TrustedPrefixes, Logger: logger, Registry: registry,
//	})
//	http.Server{Handler: srv.Handler(), ...}; on SIGHUP: srv.SetUsers(newDir)
//
// Import direction: issuer depends on token, store (interfaces and sentinels only), mfa, users and password;
// cmd picks the store backend.
package issuer
