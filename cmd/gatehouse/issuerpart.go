package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"gatehouse/issuer"
	"gatehouse/mfa"
	"gatehouse/token"
	"gatehouse/users"
)

// issuerPart is the HTTP issuer as serve runs it.
type issuerPart interface {
	start(listen string, failed chan<- error) (net.Addr, error)
	setUsers(*users.Directory)
	shutdown(ctx context.Context)
}

type httpIssuer struct {
	srv  *issuer.Server
	http *http.Server
}

func newIssuerPart(a *app, u *users.Directory) (issuerPart, error) {
	signer, err := token.NewSigner(a.keys, time.Now, rand.Reader)
	if err != nil {
		return nil, err
	}
	c := a.cfg
	mfaKeys, err := a.mfaKeys()
	if err != nil {
		return nil, err
	}
	srv, err := issuer.New(issuer.Config{
		Issuer: c.Issuer.URL, Audience: c.Tokens.Audience,
		AccessTTL: c.Tokens.AccessTTL.D(), RefreshTTL: c.Tokens.RefreshTTL.D(), Leeway: c.Tokens.Leeway.D(),
		Signer: signer, Verifier: a.verifier, Keys: a.keys,
		Users:    u,
		Sessions: a.store, Revocations: a.store, Counters: a.store,
		Ready:       a.store.Ping,
		MaxSessions: c.Issuer.MaxSessions,
		Login: issuer.LoginLimits{MaxFailures: c.Login.MaxFailures, Window: c.Login.Window.D(), Lockout: c.Login.Lockout.D(),
			MaxLockout: c.Login.MaxLockout.D(), HashConcurrency: c.Login.HashConcurrency},
		MFA: issuer.MFAConfig{Store: a.store, Once: a.store, Keys: mfaKeys, IssuerName: c.MFA.IssuerName,
			TokenTTL: c.Tokens.MFATTL.D()},
		TrustedProxies: c.Issuer.TrustedPrefixes,
		Logger:         a.log,
		Registry:       a.ops.registry,
	})
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	handler, err := a.withPortal(srv, srv.Handler())
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	return &httpIssuer{srv: srv, http: &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}}, nil
}

// mfaKeys loads mfa.encryption_key_file, or without one makes an ephemeral key: TOTP secrets sealed with it
// cannot be opened after a restart, so every enrolment stored in Redis would then fail verification (500) until
// the user's MFA is reset.
func (a *app) mfaKeys() (*mfa.Keys, error) {
	var master []byte
	if path := a.cfg.MFA.EncryptionKeyFile; path != "" {
		k, err := mfa.LoadKeyFile(path)
		if err != nil {
			return nil, err
		}
		master = k
	} else {
		master = make([]byte, mfa.KeySize)
		if _, err := rand.Read(master); err != nil {
			return nil, fmt.Errorf("mfa key: %w", err)
		}
		msg := "mfa.encryption_key_file not set: TOTP secrets are sealed with an ephemeral key; MFA enrolments become unusable when the process restarts"
		if a.cfg.Redis != nil {
			msg += " although Redis keeps them: set mfa.encryption_key_file (head -c 32 /dev/urandom | base64)"
		}
		a.log.Warn(msg, "event", "serve.ephemeral_mfa_key")
	}
	k, err := mfa.NewKeys(master, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mfa key: %w", err)
	}
	return k, nil
}

func (h *httpIssuer) start(listen string, failed chan<- error) (net.Addr, error) {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := h.http.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("issuer server: %w", err)
		}
	}()
	return lis.Addr(), nil
}

func (h *httpIssuer) setUsers(u *users.Directory) { h.srv.SetUsers(u) }

func (h *httpIssuer) shutdown(ctx context.Context) {
	if err := h.http.Shutdown(ctx); err != nil {
		_ = h.http.Close()
	}
}
