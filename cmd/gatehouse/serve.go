package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"gatehouse/config"
	"gatehouse/deploy/dev"
	"gatehouse/extauthz"
	"gatehouse/metrics"
	"gatehouse/policy"
	"gatehouse/store"
	"gatehouse/store/memstore"
	"gatehouse/store/redisstore"
	"gatehouse/token"
	"gatehouse/users"
)

func runServe(e *env, args []string) error {
	fs := newFlags(e, "serve", "[--config FILE]\n\nRuns the ext_authz gRPC server and the login issuer as configured. Without --config it runs in\ndev mode: embedded in-memory store, the demo policy and users, an ephemeral Ed25519 key.\nThe policy and users files reload when they change (polled every 2s) and on SIGHUP; a broken\nfile is refused and the running version keeps serving. SIGTERM/SIGINT shut down gracefully.")
	cfgPath := fs.String("config", "", "config file (YAML); empty = dev mode")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, rest, 0); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(e.stderr, "gatehouse serve: --log-level: %v\n", err)
		return errUsage
	}
	log := slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: lvl}))

	a, err := newApp(*cfgPath, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.start(); err != nil {
		a.close()
		return err
	}
	if a.devMode {
		printDevBanner(e.stdout, a)
	}
	if !a.devMode {
		files := []string{a.cfg.Policy}
		if a.issuer != nil {
			files = append(files, a.cfg.Users)
		}
		watchFiles(ctx, files, 2*time.Second, a.reload)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			a.reload()
		case err := <-a.failed:
			a.shutdown(5 * time.Second)
			return err
		case <-ctx.Done():
			log.Info("shutting down", "event", "serve.stop")
			a.shutdown(10 * time.Second)
			return nil
		}
	}
}

// app is one running Gatehouse: what `serve` builds from the config and owns until shutdown.
type app struct {
	cfg     *config.Config
	devMode bool
	log     *slog.Logger

	keys     *token.KeySet
	verifier *token.Verifier
	store    backend

	authz     *extauthz.Server
	health    *health.Server
	grpc      *grpc.Server
	authzAddr net.Addr

	issuerAddr net.Addr
	issuer     issuerPart

	ops       *ops
	adminAddr net.Addr
	stopBg    context.CancelFunc // ends the readiness watcher

	failed chan error
	mu     sync.Mutex // serialises reloads
}

// backend is the store as serve sees it: every concern plus lifecycle.
type backend interface {
	store.Revocations
	store.Sessions
	store.Counters
	store.MFA
	store.Once
	store.Pinger
	Close() error
}

func newApp(cfgPath string, log *slog.Logger) (*app, error) {
	a := &app{log: log, failed: make(chan error, 3), ops: newOps()}
	var err error
	if cfgPath == "" {
		a.devMode = true
		a.cfg, err = config.Parse("deploy/dev/gatehouse.yaml (embedded)", dev.Config)
	} else {
		a.cfg, err = config.Load(cfgPath)
	}
	if err != nil {
		return nil, err
	}
	if a.devMode {
		log.Warn("DEV MODE: in-memory store, demo policy and users, ephemeral signing key; tokens and sessions die with the process. Do not use in production.", "event", "serve.dev_mode")
	}
	p, err := a.loadPolicy()
	if err != nil {
		return nil, err
	}
	if a.keys, err = a.loadKeys(); err != nil {
		return nil, err
	}
	a.verifier = token.NewVerifier(a.keys, token.VerifierOptions{Issuer: a.cfg.Issuer.URL, Audience: a.cfg.Tokens.Audience,
		Leeway: a.cfg.Tokens.Leeway.D()})
	if a.store, err = a.openStore(); err != nil {
		return nil, err
	}
	a.health = health.NewServer()
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if a.cfg.Authz.Enabled {
		h := a.cfg.Authz.Headers
		// The decider reads revocations from the replica when there is one; the issuer keeps the store.
		revs := extauthz.Revocations(a.store)
		if rs, ok := a.store.(replicatedStore); ok {
			revs = rs.replica
		}
		cacheSize := a.cfg.Authz.TokenCacheSize
		if cacheSize == 0 {
			cacheSize = -1 // configured off; extauthz reads 0 as "default"
		}
		browser, err := a.browserConfig()
		if err != nil {
			a.close()
			return nil, err
		}
		a.authz, err = extauthz.New(extauthz.Config{Policy: p, Verifier: a.verifier, Revocations: revs, Logger: log,
			Headers: extauthz.HeaderNames{UserID: h.UserID, Username: h.Username, Roles: h.Roles}, CacheSize: cacheSize,
			Browser: browser, Observer: a.ops.decider})
		if err != nil {
			a.close()
			return nil, err
		}
	}
	if a.cfg.Issuer.Enabled {
		u, err := a.loadUsers(p)
		if err != nil {
			a.close()
			return nil, err
		}
		if a.issuer, err = newIssuerPart(a, u); err != nil {
			a.close()
			return nil, err
		}
	}
	return a, nil
}

func (a *app) loadPolicy() (*policy.Policy, error) {
	if a.devMode {
		return policy.Compile("deploy/dev/policy.yaml (embedded)", dev.Policy)
	}
	return policy.Load(a.cfg.Policy)
}

func (a *app) loadUsers(p *policy.Policy) (*users.Directory, error) {
	if a.devMode {
		return users.Parse("deploy/dev/users.yaml (embedded)", dev.Users, p.HasRole)
	}
	return users.Load(a.cfg.Users, p.HasRole)
}

func (a *app) loadKeys() (*token.KeySet, error) {
	k := a.cfg.Keys
	switch {
	case k == nil:
		a.log.Warn("no keys configured: using an ephemeral Ed25519 key; tokens stop verifying when the process restarts and other instances cannot verify them", "event", "serve.ephemeral_key")
		return token.GenerateKeySet(token.AlgEdDSA, rand.Reader)
	case k.HMACSecretFile != "":
		secret, err := os.ReadFile(k.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("keys.hmac_secret_file: %w", err)
		}
		a.log.Warn("HS256 configured: every decider holding this secret can mint tokens; prefer asymmetric keys (gatehouse keys generate)", "event", "serve.hmac_keys")
		return token.NewHMACKeySet("hs256", bytes.TrimSpace(secret))
	default:
		ks, err := token.LoadKeyDir(k.Dir)
		if err != nil {
			return nil, fmt.Errorf("keys.dir: %w", err)
		}
		if a.cfg.Issuer.Enabled && !ks.CanSign() {
			return nil, fmt.Errorf("keys.dir %s: the issuer is enabled but there is no private key to sign with", k.Dir)
		}
		return ks, nil
	}
}

func (a *app) openStore() (backend, error) {
	if a.cfg.Redis == nil {
		if !a.devMode {
			a.log.Warn("no redis configured: using the embedded in-memory store; revocations and sessions are not shared between instances and die with the process", "event", "serve.memory_store")
		}
		return memstore.New(time.Now), nil
	}
	// Revocation events stay in the stream for the longest token lifetime: a replica away for longer reloads.
	t := a.cfg.Tokens
	retention := max(t.AccessTTL.D(), t.RefreshTTL.D()) + t.Leeway.D()
	rc := a.cfg.Redis
	target, err := redisTarget(rc)
	if err != nil {
		return nil, err
	}
	s, err := redisstore.OpenTarget(target, rc.Prefix, time.Now,
		redisstore.WithLogger(a.log), redisstore.WithStreamRetention(retention),
		redisstore.WithWaitReplicas(rc.WaitReplicas, rc.WaitTimeout.D()))
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	reachable := true
	if err := s.Ping(ctx); err != nil {
		// Not fatal: Redis may come up after us. Until it answers, protected routes get 503 and readiness is false.
		a.log.Warn("redis does not answer yet", "event", "serve.redis_unreachable", "error", err.Error())
		reachable = false
	} else {
		a.warnIfNotPersistent(ctx, s)
	}
	if a.cfg.Revocation.Mode != config.RevocationReplica || !a.cfg.Authz.Enabled {
		return s, nil
	}
	staleness := a.cfg.Revocation.MaxStaleness.D()
	r := s.StartReplica(redisstore.ReplicaOptions{MaxStaleness: staleness, Logger: a.log})
	if reachable {
		// Serve with the revocations loaded if Redis lets us; a big set takes seconds to load.
		wctx, wcancel := context.WithTimeout(context.Background(), max(5*time.Second, 2*staleness))
		defer wcancel()
		if err := r.WaitFresh(wctx); err != nil {
			a.log.Warn("revocation replica not loaded yet: protected routes answer 503 until it is", "event", "serve.replica_loading")
		}
	}
	metrics.RevocationLag(a.ops.registry, r.Lag)
	return replicatedStore{Store: s, replica: r}, nil
}

// redisTarget turns the redis section into a redisstore.Target, reading the password files.
func redisTarget(rc *config.Redis) (redisstore.Target, error) {
	t := redisstore.Target{URL: rc.URL, Username: rc.Username, TLS: rc.TLS}
	read := func(key, path string) (string, error) {
		if path == "" {
			return "", nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		return string(bytes.TrimSpace(b)), nil
	}
	var err error
	if t.Password, err = read("redis.password_file", rc.PasswordFile); err != nil {
		return t, err
	}
	if sn := rc.Sentinel; sn != nil {
		t.Sentinel = &redisstore.Sentinel{Master: sn.Master, Addrs: sn.Addrs}
		if t.Sentinel.Password, err = read("redis.sentinel.password_file", sn.PasswordFile); err != nil {
			return t, err
		}
	}
	if rc.Cluster != nil {
		t.Cluster = &redisstore.Cluster{Addrs: rc.Cluster.Addrs}
	}
	return t, nil
}

// replicatedStore is the Redis store plus the in-memory revocation replica the decider reads (revocation.mode:
// replica). Everything else, the issuer included, uses the store; Close stops the replica first.
type replicatedStore struct {
	*redisstore.Store
	replica *redisstore.Replica
}

func (r replicatedStore) Close() error {
	_ = r.replica.Close()
	return r.Store.Close()
}

// start opens the listeners. It returns once both accept connections.
func (a *app) start() error {
	if a.authz != nil {
		lis, err := net.Listen("tcp", a.cfg.Authz.Listen)
		if err != nil {
			return fmt.Errorf("authz.listen: %w", err)
		}
		a.authzAddr = lis.Addr()
		a.grpc = extauthz.NewGRPCServer(a.authz, a.health, a.log)
		go func() {
			if err := a.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				a.failed <- fmt.Errorf("authz server: %w", err)
			}
		}()
		a.log.Info("ext_authz gRPC server listening", "event", "serve.listen", "addr", a.authzAddr.String())
	}
	if a.issuer != nil {
		addr, err := a.issuer.start(a.cfg.Issuer.Listen, a.failed)
		if err != nil {
			return fmt.Errorf("issuer.listen: %w", err)
		}
		a.issuerAddr = addr
		a.log.Info("issuer HTTP server listening", "event", "serve.listen", "addr", addr.String(), "url", a.cfg.Issuer.URL)
	}
	if a.cfg.Admin.Listen != "" {
		addr, err := a.startAdmin(a.cfg.Admin.Listen)
		if err != nil {
			return fmt.Errorf("admin.listen: %w", err)
		}
		a.adminAddr = addr
		a.log.Info("admin HTTP server listening (/metrics, /healthz, /readyz)", "event", "serve.listen", "addr", addr.String())
	}
	bg, cancel := context.WithCancel(context.Background())
	a.stopBg = cancel
	a.checkReady(bg)
	go a.watchReadiness(bg)
	return nil
}

// reload re-reads the policy and users files. A broken file is refused and the running version keeps serving.
func (a *app) reload() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.devMode {
		a.log.Info("SIGHUP ignored in dev mode: the demo files are embedded", "event", "serve.reload")
		return
	}
	p, err := a.loadPolicy()
	if err != nil {
		a.log.Error("policy reload refused; keeping the running policy", "event", "serve.reload_failed", "file", a.cfg.Policy, "error", err.Error())
		a.ops.reloads.Reloaded(false)
		return
	}
	if a.issuer != nil {
		u, err := a.loadUsers(p)
		if err != nil {
			a.log.Error("users reload refused; keeping the running policy and users", "event", "serve.reload_failed", "file", a.cfg.Users, "error", err.Error())
			a.ops.reloads.Reloaded(false)
			return
		}
		a.issuer.setUsers(u)
	}
	if a.authz != nil {
		a.authz.SetPolicy(p)
	}
	a.ops.reloads.Reloaded(true)
	a.log.Info("reloaded policy and users", "event", "serve.reload")
}

// shutdown stops taking new work, lets in-flight requests finish within grace, then closes the store.
func (a *app) shutdown(grace time.Duration) {
	if a.stopBg != nil {
		a.stopBg()
	}
	a.health.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	if a.ops.admin != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.ops.admin.Shutdown(ctx) }()
	}
	if a.grpc != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { a.grpc.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				a.grpc.Stop()
			}
		}()
	}
	if a.issuer != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.issuer.shutdown(ctx) }()
	}
	wg.Wait()
	a.close()
}

func (a *app) close() {
	if a.store != nil {
		_ = a.store.Close()
	}
}

func printDevBanner(w io.Writer, a *app) {
	authz, iss := "(disabled)", "(disabled)"
	if a.authzAddr != nil {
		authz = a.authzAddr.String()
	}
	if a.issuerAddr != nil {
		iss = "http://" + a.issuerAddr.String()
	}
	portal := ""
	if a.issuerAddr != nil && a.cfg.Portal.Enabled {
		portal = "  web portal:     " + a.cfg.Portal.URL + "/  (sign in with a browser)\n"
	}
	fmt.Fprintf(w, strings.TrimLeft(`
Gatehouse is running in DEV MODE (in-memory store, demo policy and users, ephemeral key).
  ext_authz gRPC: %s
  issuer HTTP:    %s
%s
Try it (in another terminal):
  # log in as a demo user (alice/alice-demo-pw is a "user"; bob/bob-demo-pw an "admin")
  TOKEN=$(curl -s %s/auth/login -d '{"username":"alice","password":"alice-demo-pw"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  # ask the sidecar what Envoy would be told
  go run ./cmd/gatehouse check --addr %s --method GET --path /users/profile --token "$TOKEN"    # ALLOW
  go run ./cmd/gatehouse check --addr %s --method DELETE --path /admin/users/u-1 --token "$TOKEN" # DENY 403
  go run ./cmd/gatehouse check --addr %s --method GET --path /users/profile                     # DENY 401
  go run ./cmd/gatehouse policy explain deploy/dev/policy.yaml --method GET --path /orders/1 --roles guest

Press Ctrl-C to stop.
`, "\n"), authz, iss, portal, iss, authz, authz, authz)
}
