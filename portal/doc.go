// Package portal is Gatehouse's web sign-in portal: server-rendered pages (html/template, one embedded
// stylesheet, no JavaScript at all) mounted on the issuer's HTTP server under a path prefix (default /portal).
// Every flow calls the issuer's Go API (Authenticate, VerifyMFA, Refresh, ...), so lockouts, replay refusal,
// session caps and revocation are the API's rules, never re-implemented here.
//
// # Pages
//
//	GET  /portal/                   account: who is signed in, two-step verification (set up / turn off), sessions link
//	GET  /portal/sign-in            ?return_to=URL; POST: the password step
//	POST /portal/sign-in/mfa        the second step: a TOTP code or a backup code (the mfa_token rides in the form)
//	POST /portal/mfa/setup          enrolment: the QR code (the issuer's PNG, as a data: URI), the key for typing
//	POST /portal/mfa/confirm        turns MFA on and shows the 10 backup codes, once
//	POST /portal/mfa/disable        turns MFA off with a code
//	GET  /portal/sessions           the caller's sessions; POST /sessions/revoke (one), /sessions/revoke-all
//	GET  /portal/sign-out           a confirmation; POST signs out
//	GET  /portal/refresh            ?return_to=URL: where the sidecar sends an expired access cookie (see refresh)
//	GET  /portal/static/portal.css  the stylesheet; /static/logo the configured logo
//
// Errors are sentences ("Too many attempts. Try again in 4 minutes.", "That code has already been used. ..."),
// tied to their field with aria-describedby and aria-invalid and listed in an error summary that links to the
// fields; the first invalid field takes focus (autofocus, no script). Internal causes go to the log only.
//
// Every response carries Content-Security-Policy "default-src 'none'; style-src 'self'; img-src 'self' data:;
// form-action 'self'; frame-ancestors 'none'; base-uri 'none'", X-Content-Type-Options: nosniff,
// Referrer-Policy: same-origin (no-referrer would make browsers send "Origin: null" on
// the portal's own posts), X-Frame-Options: DENY, and Cache-Control: no-store (the stylesheet and logo
// excepted). Because form-action also governs a form post's redirects, a sign-in that returns to another origin
// ends on a small "You are signed in" page that moves on with a meta refresh and offers a link.
//
// # Cookies
//
// After sign-in the access token is in the access cookie (default gatehouse_access: HttpOnly, Secure,
// SameSite=Lax, Path=/, Domain when configured so the apps' sidecars receive it) and the refresh token in the
// refresh cookie (default gatehouse_refresh: HttpOnly, Secure, SameSite=Lax, host-only, Path=<prefix>/refresh).
// Both live until the session's absolute end, so an expired access token still reaches the sidecar, which sends
// the browser to /refresh instead of sign-in. Secure can only be dropped (Config.Insecure) for a portal on
// http://localhost or a loopback IP. Two cookies of one name are treated as none. Two tabs refreshing with
// one refresh cookie share one rotation for 10 seconds (same client IP and User-Agent only), so the issuer's
// reuse detection does not end the session of a person with several tabs open (refresh.go).
//
// # CSRF
//
// Form posts must pass Fetch Metadata (Sec-Fetch-Site absent, same-origin or none), Origin (absent or the
// portal's own) and a signed double-submit token: HMAC-SHA256(Config.CSRFKey, pre-session cookie) in a hidden
// field, the cookie being 256 random bits in __Host-gatehouse_csrf (csrf.go explains why). No server state.
//
// # Return URLs
//
// ?return_to= is honoured only for https URLs (http in dev mode) whose host is in Config.ReturnURLs (an entry
// admits the host and its subdomains) or is the portal's own host, with no userinfo, backslash, whitespace,
// non-ASCII or scheme-relative tricks (package safeurl); anything else leads to the portal home.
package portal
