// Package e2e holds Gatehouse's browser end-to-end test: real headless Chromium, driven with chromedp, against
// the issuer, the portal and the ext_authz sidecar running in-process on loopback. It is a module of its own so
// chromedp stays out of the main module (like deploy/verify). Run it with: cd e2e && go test ./...
package e2e
