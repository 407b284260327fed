// Package config loads the `gatehouse serve --config FILE` YAML file.
//
// The file format is strict: unknown keys are errors, every error names the file, line and dotted key, durations are
// Go durations ("15m", "168h"), and relative paths resolve against the config file's folder so a config can be
// moved together with its policy, users and keys.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the runtime configuration after defaults, validation and path resolution.
type Config struct {
	Authz  Authz  `yaml:"authz"`
	Issuer Issuer `yaml:"issuer"`
	// Policy is the route policy file (required).
	Policy string `yaml:"policy"`
	// Users is the users file; required when the issuer is enabled.
	Users string `yaml:"users"`
	// Redis selects the Redis store; nil means the embedded in-memory store.
	Redis *Redis `yaml:"redis"`
	// Revocation selects how the decider checks revocations in Redis (ignored for the in-memory store).
	Revocation Revocation `yaml:"revocation"`
	// Keys selects the signing/verification keys; nil means an ephemeral key (dev only).
	Keys   *Keys  `yaml:"keys"`
	Tokens Tokens `yaml:"tokens"`
	Login  Login  `yaml:"login"`
	MFA    MFA    `yaml:"mfa"`
	// Portal configures the web sign-in portal (served by the issuer) and browser sessions (read by the decider).
	Portal Portal `yaml:"portal"`
	// Admin serves /metrics, /healthz and /readyz on their own address (for deciders without the issuer).
	Admin Admin `yaml:"admin"`

	// File is the absolute path the config was loaded from ("" for the built-in dev config).
	File string `yaml:"-"`
}

// Admin configures the operations endpoint.
type Admin struct {
	// Listen is host:port for /metrics, /healthz and /readyz; empty means off (the issuer serves them too).
	Listen string `yaml:"listen"`
}

// Authz configures the ext_authz gRPC decision server.
type Authz struct {
	Listen  string  `yaml:"listen"`
	Enabled bool    `yaml:"enabled"`
	Headers Headers `yaml:"headers"`
	// TokenCacheSize bounds the verified-token cache (entries, ~470 bytes each); 0 turns it off.
	TokenCacheSize int `yaml:"token_cache_size"`
}

// Headers names the identity headers Gatehouse sets upstream (and strips from clients).
type Headers struct {
	UserID   string `yaml:"user_id"`
	Username string `yaml:"username"`
	Roles    string `yaml:"roles"`
}

// Issuer configures the HTTP login service.
type Issuer struct {
	Listen  string `yaml:"listen"`
	Enabled bool   `yaml:"enabled"`
	// URL is the token issuer (`iss`) and the base of the discovery documents.
	URL string `yaml:"url"`
	// TrustedProxies lists peers (IPs or CIDRs) whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MaxSessions caps concurrent sessions per user; the oldest is revoked past it.
	MaxSessions int `yaml:"max_sessions"`

	// TrustedPrefixes is TrustedProxies parsed.
	TrustedPrefixes []netip.Prefix `yaml:"-"`
}

// Redis configures the Redis store: exactly one of URL, Sentinel and Cluster.
type Redis struct {
	// URL is one Redis: redis://[user:password@]host:port/db, or rediss:// for TLS (the server's certificate is
	// verified against the system roots; SSL_CERT_FILE adds a private CA).
	URL string `yaml:"url"`
	// Sentinel follows a primary and its replicas through Redis Sentinel failovers.
	Sentinel *RedisSentinel `yaml:"sentinel"`
	// Cluster uses a Redis Cluster.
	Cluster *RedisCluster `yaml:"cluster"`
	// Username and PasswordFile authenticate to the data nodes of a sentinel or cluster deployment, and TLS turns
	// TLS on towards them (and the sentinels); a url carries its own.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	TLS          bool   `yaml:"tls"`
	// Prefix starts every key (default "gatehouse:"); no braces, which would change Cluster slots.
	Prefix string `yaml:"prefix"`
	// WaitReplicas makes every revocation wait until this many replicas have it (Redis WAIT) and fail (503)
	// otherwise, so a failover cannot undo an acknowledged revocation; 0 does not wait.
	WaitReplicas int `yaml:"wait_replicas"`
	// WaitTimeout bounds that wait (default 100ms).
	WaitTimeout Duration `yaml:"wait_timeout"`
}

// RedisSentinel names the primary the sentinels monitor and where some of them are.
type RedisSentinel struct {
	Master string   `yaml:"master"`
	Addrs  []string `yaml:"addrs"`
	// PasswordFile holds the sentinels' own password (requirepass in sentinel.conf), if they have one.
	PasswordFile string `yaml:"password_file"`
}

// RedisCluster lists some nodes of a Redis Cluster; the client learns the others.
type RedisCluster struct {
	Addrs []string `yaml:"addrs"`
}

// Revocation modes.
const (
	// RevocationReplica keeps the revocations in memory, following Redis through a stream: no Redis call per
	// request; protected routes answer 503 once the copy is older than MaxStaleness.
	RevocationReplica = "replica"
	// RevocationStrict asks Redis on every request (one MGET).
	RevocationStrict = "strict"
)

// Revocation configures how the decider checks revocations.
type Revocation struct {
	Mode         string   `yaml:"mode"`
	MaxStaleness Duration `yaml:"max_staleness"`
}

// Keys configures the JWT key set.
type Keys struct {
	// Dir holds PEM keys; the file name (without .pem) is the kid.
	Dir string `yaml:"dir"`
	// HMACSecretFile switches to HS256 with a shared secret. Every decider holding it can mint tokens.
	HMACSecretFile string `yaml:"hmac_secret_file"`
}

// Tokens configures token lifetimes and verification.
type Tokens struct {
	AccessTTL  Duration `yaml:"access_ttl"`
	RefreshTTL Duration `yaml:"refresh_ttl"`
	MFATTL     Duration `yaml:"mfa_ttl"`
	Audience   string   `yaml:"audience"`
	// Leeway is the clock skew allowed when verifying; at most 30s.
	Leeway Duration `yaml:"leeway"`
}

// Login configures brute-force regulation and password hashing.
type Login struct {
	MaxFailures int      `yaml:"max_failures"`
	Window      Duration `yaml:"window"`
	Lockout     Duration `yaml:"lockout"`
	MaxLockout  Duration `yaml:"max_lockout"`
	// HashConcurrency bounds concurrent argon2id computations (each takes its memory cost).
	HashConcurrency int `yaml:"hash_concurrency"`
}

// MFA configures TOTP multi-factor authentication.
type MFA struct {
	// EncryptionKeyFile holds the 32-byte AES-256-GCM key (raw, hex or base64) that encrypts TOTP secrets at rest.
	EncryptionKeyFile string `yaml:"encryption_key_file"`
	// IssuerName is shown by authenticator apps.
	IssuerName string `yaml:"issuer_name"`
}

// Portal configures the web sign-in portal and browser sessions. The issuer serves the portal; the decider uses
// the same keys to accept the access cookie, redirect browsers to the portal and refuse cross-site posts, so a
// decider-only deployment sets portal.url to where the issuer's portal is reachable.
type Portal struct {
	// Enabled mounts the portal on the issuer and turns on browser sessions in the decider.
	Enabled bool `yaml:"enabled"`
	// URL is the portal's public base URL; its path is where the issuer serves it. Default <issuer.url>/portal.
	URL string `yaml:"url"`
	// Title is the name on every page (default "Gatehouse"); Logo an optional image file shown beside it.
	Title string `yaml:"title"`
	Logo  string `yaml:"logo"`
	// ReturnDomains lists where a browser may be sent back to after sign-in, and which origins may post with the
	// cookie: each entry admits that host and its subdomains (an IP only itself). The portal's host is added.
	ReturnDomains []string `yaml:"return_domains"`
	Cookies       Cookies  `yaml:"cookies"`
	// CSRFKeyFile holds the key (32 bytes: raw, 64 hex characters or base64) of the portal's form tokens; instances
	// behind one load balancer need the same. Absent: an ephemeral key (forms open across a restart must be sent
	// again).
	CSRFKeyFile string `yaml:"csrf_key_file"`
}

// Cookies configures the browser session cookies.
type Cookies struct {
	Access  string `yaml:"access"`  // access token cookie; default gatehouse_access
	Refresh string `yaml:"refresh"` // refresh token cookie; default gatehouse_refresh
	// Domain is the access cookie's Domain attribute, so the sidecars of apps on sibling hosts receive it; "" =
	// host-only (the portal's host).
	Domain string `yaml:"domain"`
	// Secure may be false only when portal.url is http://localhost or a loopback IP (local development).
	Secure bool `yaml:"secure"`
}

// Duration is a time.Duration written as "15m" in YAML.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration like 15m")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("want a duration like 15m, got %q", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Defaults returns the configuration used for every key a file leaves out.
func Defaults() Config {
	return Config{
		Authz: Authz{Listen: "127.0.0.1:9191", Enabled: true, Headers: Headers{
			UserID: "x-user-id", Username: "x-username", Roles: "x-user-roles",
		}, TokenCacheSize: 100_000},
		Revocation: Revocation{Mode: RevocationReplica, MaxStaleness: Duration(2 * time.Second)},
		Issuer:     Issuer{Listen: "127.0.0.1:8080", Enabled: true, MaxSessions: 10},
		Tokens: Tokens{
			AccessTTL:  Duration(15 * time.Minute),
			RefreshTTL: Duration(168 * time.Hour),
			MFATTL:     Duration(5 * time.Minute),
			Audience:   "gatehouse",
			Leeway:     Duration(30 * time.Second),
		},
		Login: Login{
			MaxFailures: 5,
			Window:      Duration(10 * time.Minute),
			Lockout:     Duration(time.Minute),
			MaxLockout:  Duration(time.Hour),
		},
		MFA: MFA{IssuerName: "Gatehouse"},
		Portal: Portal{Title: "Gatehouse",
			Cookies: Cookies{Access: "gatehouse_access", Refresh: "gatehouse_refresh", Secure: true}},
	}
}

// Error is one problem in a config file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Key, e.Msg)
}

// Load reads, validates and resolves a config file. All problems are reported together.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(abs, data)
}

// Parse is Load for bytes already read; file names the source in errors and anchors relative paths.
func Parse(file string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	cfg := Defaults()
	cfg.File = file
	if len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "empty config file"}
	}
	doc := root.Content[0]
	lines := map[string]int{}
	var errs []error
	walk(file, doc, reflect.TypeOf(cfg), "", lines, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := doc.Decode(&cfg); err != nil {
		return nil, yamlError(file, err)
	}
	cfg.resolve(filepath.Dir(file))
	if err := cfg.validate(lines); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// walk reports unknown keys and records the line of every known key, so later checks can point at it.
func walk(file string, n *yaml.Node, t reflect.Type, prefix string, lines map[string]int, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeOf(Duration(0)) {
		// yaml.v3 drops the line of errors returned by UnmarshalYAML, so durations are checked here.
		var d Duration
		if err := d.UnmarshalYAML(n); err != nil {
			*errs = append(*errs, &Error{File: file, Line: n.Line, Key: strings.TrimSuffix(prefix, "."), Msg: err.Error()})
		}
		return
	}
	if t.Kind() != reflect.Struct {
		return
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		*errs = append(*errs, &Error{File: file, Line: n.Line, Key: strings.TrimSuffix(prefix, "."), Msg: "want a mapping"})
		return
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields[name] = f.Type
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		ft, ok := fields[k.Value]
		if !ok {
			*errs = append(*errs, &Error{File: file, Line: k.Line, Key: key, Msg: "unknown key"})
			continue
		}
		if _, dup := lines[key]; dup {
			*errs = append(*errs, &Error{File: file, Line: k.Line, Key: key, Msg: "duplicate key"})
			continue
		}
		lines[key] = k.Line
		walk(file, v, ft, key+".", lines, errs)
	}
}

// yamlLine splits yaml.v3's "line N: msg" so errors can read "file:N: msg".
func yamlLine(msg string) (int, string) {
	var line int
	if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
		_, rest, _ := strings.Cut(msg, ":")
		return line, strings.TrimSpace(rest)
	}
	return 0, msg
}

func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, m := range te.Errors {
			line, msg := yamlLine(m)
			errs = append(errs, &Error{File: file, Line: line, Msg: msg})
		}
		return errors.Join(errs...)
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, rest := yamlLine(msg)
	return &Error{File: file, Line: line, Msg: rest}
}

func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.Policy)
	abs(&c.Users)
	abs(&c.MFA.EncryptionKeyFile)
	abs(&c.Portal.Logo)
	abs(&c.Portal.CSRFKeyFile)
	if c.Keys != nil {
		abs(&c.Keys.Dir)
		abs(&c.Keys.HMACSecretFile)
	}
	if c.Redis != nil {
		if c.Redis.Prefix == "" {
			c.Redis.Prefix = "gatehouse:"
		}
		abs(&c.Redis.PasswordFile)
		if c.Redis.Sentinel != nil {
			abs(&c.Redis.Sentinel.PasswordFile)
		}
	}
	if c.Issuer.URL == "" {
		c.Issuer.URL = "http://" + c.Issuer.Listen
	}
	if c.Portal.URL == "" {
		c.Portal.URL = strings.TrimSuffix(c.Issuer.URL, "/") + "/portal"
	}
	c.Portal.URL = strings.TrimSuffix(c.Portal.URL, "/")
}

func (c *Config) validate(lines map[string]int) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{File: c.File, Line: lines[key], Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if !c.Authz.Enabled && !c.Issuer.Enabled {
		bad("authz.enabled", "both authz and issuer are disabled: nothing to serve")
	}
	if c.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Admin.Listen); err != nil {
			bad("admin.listen", "want host:port, got %q", c.Admin.Listen)
		}
	}
	if c.Tokens.MFATTL.D() > time.Hour {
		// The issuer voids MFA challenges issued before a lockout for an hour; a longer-lived one would outlive that.
		bad("tokens.mfa_ttl", "must be at most 1h")
	}
	if c.Authz.Enabled {
		if _, _, err := net.SplitHostPort(c.Authz.Listen); err != nil {
			bad("authz.listen", "want host:port, got %q", c.Authz.Listen)
		}
		for _, h := range []struct{ key, name string }{{"authz.headers.user_id", c.Authz.Headers.UserID},
			{"authz.headers.username", c.Authz.Headers.Username}, {"authz.headers.roles", c.Authz.Headers.Roles}} {
			if !validHeaderName(h.name) {
				bad(h.key, "want a lower-case header name, got %q", h.name)
			}
		}
	}
	if c.Issuer.Enabled {
		if _, _, err := net.SplitHostPort(c.Issuer.Listen); err != nil {
			bad("issuer.listen", "want host:port, got %q", c.Issuer.Listen)
		}
		if c.Users == "" {
			bad("users", "required when the issuer is enabled")
		}
	}
	if u, err := url.Parse(c.Issuer.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("issuer.url", "want an http(s) URL, got %q", c.Issuer.URL)
	}
	for _, p := range c.Issuer.TrustedProxies {
		pfx, err := parsePrefix(p)
		if err != nil {
			bad("issuer.trusted_proxies", "want an IP or CIDR, got %q", p)
			continue
		}
		c.Issuer.TrustedPrefixes = append(c.Issuer.TrustedPrefixes, pfx)
	}
	if c.Issuer.MaxSessions < 1 {
		bad("issuer.max_sessions", "must be at least 1")
	}
	if c.Policy == "" {
		bad("policy", "required")
	}
	if c.Redis != nil {
		c.validateRedis(bad, lines)
	}
	if c.Keys != nil && c.Keys.Dir == "" && c.Keys.HMACSecretFile == "" {
		bad("keys", "set dir (asymmetric keys) or hmac_secret_file (HS256)")
	}
	if c.Keys != nil && c.Keys.Dir != "" && c.Keys.HMACSecretFile != "" {
		bad("keys.hmac_secret_file", "set either dir or hmac_secret_file, not both")
	}
	for _, d := range []struct {
		key string
		d   Duration
	}{{"tokens.access_ttl", c.Tokens.AccessTTL}, {"tokens.refresh_ttl", c.Tokens.RefreshTTL},
		{"tokens.mfa_ttl", c.Tokens.MFATTL}, {"login.window", c.Login.Window}, {"login.lockout", c.Login.Lockout},
		{"login.max_lockout", c.Login.MaxLockout}} {
		if d.d <= 0 {
			bad(d.key, "must be positive")
		}
	}
	if c.Tokens.RefreshTTL < c.Tokens.AccessTTL {
		bad("tokens.refresh_ttl", "must not be shorter than tokens.access_ttl")
	}
	if c.Tokens.Leeway < 0 || c.Tokens.Leeway.D() > 30*time.Second {
		bad("tokens.leeway", "must be between 0s and 30s")
	}
	if c.Tokens.Audience == "" {
		bad("tokens.audience", "required")
	}
	if c.Login.MaxFailures < 1 {
		bad("login.max_failures", "must be at least 1")
	}
	if c.Login.MaxLockout < c.Login.Lockout {
		bad("login.max_lockout", "must not be shorter than login.lockout")
	}
	if c.Authz.TokenCacheSize < 0 {
		bad("authz.token_cache_size", "must not be negative (0 turns the cache off)")
	}
	if m := c.Revocation.Mode; m != RevocationReplica && m != RevocationStrict {
		bad("revocation.mode", "want %s or %s, got %q", RevocationReplica, RevocationStrict, m)
	}
	if c.Revocation.MaxStaleness.D() < 100*time.Millisecond {
		bad("revocation.max_staleness", "must be at least 100ms")
	}
	if c.Login.HashConcurrency < 0 {
		bad("login.hash_concurrency", "must not be negative (0 sizes it to the machine)")
	}
	if c.Portal.Enabled {
		c.validatePortal(bad, lines)
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

func (c *Config) validateRedis(bad func(key, format string, args ...any), lines map[string]int) {
	r := c.Redis
	// A key left out has no line of its own: point at the mapping it is missing from.
	under := func(key, parent string) string {
		if lines[key] == 0 {
			lines[key] = lines[parent]
		}
		return key
	}
	var set []string
	for _, k := range []string{"url", "sentinel", "cluster"} {
		if lines["redis."+k] > 0 {
			set = append(set, "redis."+k)
		}
	}
	switch {
	case len(set) == 0:
		bad("redis", "set one of url (one Redis), sentinel or cluster")
	case len(set) > 1:
		bad(set[1], "set only one of url, sentinel and cluster")
	}
	if r.URL != "" || lines["redis.url"] > 0 {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("redis.url", "want redis:// or rediss:// URL")
		} else if u.Query().Has("skip_verify") {
			bad("redis.url", "skip_verify is not allowed: Redis's certificate is always verified (add a private CA with SSL_CERT_FILE)")
		}
		for _, k := range []string{"redis.username", "redis.password_file", "redis.tls"} {
			if lines[k] > 0 {
				bad(k, "only for sentinel and cluster: a url carries its own credentials, and rediss:// turns on TLS")
			}
		}
	}
	if s := r.Sentinel; s != nil {
		if s.Master == "" {
			bad(under("redis.sentinel.master", "redis.sentinel"), "required: the name the sentinels monitor the primary under")
		}
		checkAddrs(bad, under("redis.sentinel.addrs", "redis.sentinel"), s.Addrs)
	} else if lines["redis.sentinel"] > 0 {
		bad("redis.sentinel", "want a mapping with master and addrs")
	}
	if cl := r.Cluster; cl != nil {
		checkAddrs(bad, under("redis.cluster.addrs", "redis.cluster"), cl.Addrs)
	} else if lines["redis.cluster"] > 0 {
		bad("redis.cluster", "want a mapping with addrs")
	}
	if strings.ContainsAny(r.Prefix, "{}") {
		bad("redis.prefix", "must not contain { or } (they would change the Redis Cluster slot of every key)")
	}
	if r.WaitReplicas < 0 {
		bad("redis.wait_replicas", "must not be negative (0 does not wait)")
	}
	if lines["redis.wait_timeout"] > 0 && (r.WaitTimeout <= 0 || r.WaitTimeout.D() > 5*time.Second) {
		bad("redis.wait_timeout", "must be between 1ms and 5s")
	}
}

// checkAddrs wants at least one address and every one host:port.
func checkAddrs(bad func(key, format string, args ...any), key string, addrs []string) {
	if len(addrs) == 0 {
		bad(key, "at least one host:port is required")
	}
	for _, a := range addrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			bad(key, "want host:port, got %q", a)
		}
	}
}

// issuerPaths are the issuer's own routes, which the portal's path must not shadow.
var issuerPaths = []string{"/auth", "/.well-known", "/healthz", "/readyz", "/metrics"}

func (c *Config) validatePortal(bad func(key, format string, args ...any), lines map[string]int) {
	p := c.Portal
	u, err := url.Parse(p.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		bad("portal.url", "want an absolute http(s) URL without userinfo, query or fragment, got %q", p.URL)
		return
	case u.Path == "" || u.Path == "/" || strings.Contains(u.Path, "//") || strings.Contains(u.Path, "/./") ||
		strings.Contains(u.Path, "/../") || strings.HasSuffix(u.Path, "/.") || strings.HasSuffix(u.Path, "/..") ||
		u.RawPath != "":
		bad("portal.url", "want a plain path to serve the portal under (like /portal), got %q", u.Path)
	}
	for _, ip := range issuerPaths {
		if u.Path == ip || strings.HasPrefix(u.Path, ip+"/") {
			bad("portal.url", "the path %s would shadow the issuer's %s", u.Path, ip)
		}
	}
	devURL := u.Scheme == "http" && loopbackHost(u.Hostname())
	if u.Scheme == "http" && !devURL {
		bad("portal.url", "must be https (http only for localhost or a loopback IP), got %q", p.URL)
	}
	if !p.Cookies.Secure && !devURL {
		bad("portal.cookies.secure", "false is only allowed in local development: portal.url must be http://localhost or a loopback IP, got %q", p.URL)
	}
	if p.Cookies.Secure && devURL {
		// Not every browser keeps a Secure cookie set over http, even from loopback; say so rather than fail later.
		key := "portal.cookies.secure"
		for _, k := range []string{"portal.cookies.secure", "portal.url", "portal.enabled"} {
			if lines[k] > 0 {
				key = k
				break
			}
		}
		bad(key, "portal.url %q is http: set portal.cookies.secure: false (allowed for localhost and loopback IPs only)", p.URL)
	}
	for _, ck := range []struct{ key, name string }{{"portal.cookies.access", p.Cookies.Access},
		{"portal.cookies.refresh", p.Cookies.Refresh}} {
		if !validCookieName(ck.name) {
			bad(ck.key, "want a cookie name of letters, digits, '_', '-' and '.', got %q", ck.name)
		}
	}
	if p.Cookies.Access == p.Cookies.Refresh {
		bad("portal.cookies.refresh", "must differ from portal.cookies.access")
	}
	if d := p.Cookies.Domain; d != "" {
		host := strings.ToLower(u.Hostname())
		if !validDomain(d) {
			bad("portal.cookies.domain", "want a lower-case domain name like example.com, got %q", d)
		} else if host != d && !strings.HasSuffix(host, "."+d) {
			bad("portal.cookies.domain", "%q does not contain the portal's host %q, so browsers would refuse the cookie", d, host)
		}
	}
	for _, d := range p.ReturnDomains {
		// An IP with a zone (fe80::1%eth0) is no address a browser can be sent to; safeurl refuses it too.
		if a, err := netip.ParseAddr(d); (err != nil || a.Zone() != "") && !validDomain(d) {
			bad("portal.return_domains", "want a lower-case host name (it admits its subdomains too) or an IP, got %q", d)
		}
	}
	if p.Logo != "" {
		switch strings.ToLower(filepath.Ext(p.Logo)) {
		case ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg":
		default:
			bad("portal.logo", "want a .png, .jpg, .gif, .webp or .svg file, got %q", p.Logo)
		}
	}
	if !c.Issuer.Enabled && lines["portal.url"] == 0 {
		bad("portal.url", "required when the issuer is disabled: where the decider sends browsers to sign in")
	}
}

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func validCookieName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// validDomain: lower-case DNS labels of letters, digits and inner hyphens, no trailing dot, and a last label that
// does not start with a digit (browsers read those as IPv4 addresses).
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return last[0] < '0' || last[0] > '9'
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
