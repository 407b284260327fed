package main

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gatehouse/extauthz"
	"gatehouse/issuer"
	"gatehouse/mfa"
	"gatehouse/portal"
	"gatehouse/portal/safeurl"
)

// sites is the allow-list shared by the portal's return URLs and the decider's redirects and CSRF check:
// portal.return_domains plus the portal's own host. http is admitted only in dev mode (portal.cookies.secure:
// false, which the config allows only for a localhost or loopback portal).
func (a *app) sites() (safeurl.Policy, error) {
	p := a.cfg.Portal
	u, err := url.Parse(p.URL)
	if err != nil {
		return safeurl.Policy{}, fmt.Errorf("portal.url: %w", err)
	}
	domains := append([]string{strings.ToLower(u.Hostname())}, p.ReturnDomains...)
	s, err := safeurl.NewPolicy(domains, !p.Cookies.Secure)
	if err != nil {
		return safeurl.Policy{}, fmt.Errorf("portal.return_domains: %w", err)
	}
	return s, nil
}

// browserConfig is the decider's part of the portal settings: nil (Bearer only) unless portal.enabled.
func (a *app) browserConfig() (*extauthz.BrowserConfig, error) {
	p := a.cfg.Portal
	if !p.Enabled {
		return nil, nil
	}
	sites, err := a.sites()
	if err != nil {
		return nil, err
	}
	return &extauthz.BrowserConfig{AccessCookie: p.Cookies.Access, SignInURL: p.URL + "/sign-in",
		RefreshURL: p.URL + "/refresh", Sites: sites}, nil
}

// withPortal mounts the portal on the issuer's handler when portal.enabled.
func (a *app) withPortal(srv *issuer.Server, api http.Handler) (http.Handler, error) {
	p := a.cfg.Portal
	if !p.Enabled {
		return api, nil
	}
	sites, err := a.sites()
	if err != nil {
		return nil, err
	}
	key, err := a.csrfKey()
	if err != nil {
		return nil, err
	}
	c := portal.Config{Issuer: srv, Verifier: a.verifier, URL: p.URL, Title: p.Title,
		AccessCookie: p.Cookies.Access, RefreshCookie: p.Cookies.Refresh, CookieDomain: p.Cookies.Domain,
		Insecure: !p.Cookies.Secure, ReturnURLs: sites, CSRFKey: key, ClientIP: srv.ClientIP, Logger: a.log}
	if p.Logo != "" {
		if c.Logo, err = os.ReadFile(p.Logo); err != nil {
			return nil, fmt.Errorf("portal.logo: %w", err)
		}
		c.LogoType = logoTypes[strings.ToLower(filepath.Ext(p.Logo))]
	}
	pt, err := portal.New(c)
	if err != nil {
		return nil, err
	}
	if c.Insecure {
		a.log.Warn("portal cookies are not Secure (portal.cookies.secure: false): local development only", "event", "serve.portal_insecure")
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle(pt.Prefix()+"/", pt.Handler())
	mux.Handle(pt.Prefix(), pt.Handler())
	return mux, nil
}

var logoTypes = map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".webp": "image/webp", ".svg": "image/svg+xml"}

// csrfKey loads portal.csrf_key_file (32 bytes: raw, 64 hex characters or base64), or makes an ephemeral key:
// then forms opened before a restart, or served by another instance, are refused once and must be sent again.
func (a *app) csrfKey() ([]byte, error) {
	path := a.cfg.Portal.CSRFKeyFile
	if path == "" {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("portal csrf key: %w", err)
		}
		if !a.devMode {
			a.log.Warn("portal.csrf_key_file not set: the portal's form tokens use an ephemeral key; with several issuer instances set one shared key (head -c 32 /dev/urandom | base64)", "event", "serve.ephemeral_csrf_key")
		}
		return k, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("portal.csrf_key_file: %w", err)
	}
	if k, ok := mfa.ParseKey(b); ok {
		return k, nil
	}
	return nil, fmt.Errorf("portal.csrf_key_file %s: want 32 bytes (raw, 64 hex characters or base64); make one with: head -c 32 /dev/urandom | base64", path)
}
