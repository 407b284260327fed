package redisstore

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Target says where Redis is: exactly one of URL, Sentinel and Cluster.
type Target struct {
	// URL is one Redis: redis://[user:password@]host:port/db, or rediss:// for TLS.
	URL      string
	Sentinel *Sentinel
	Cluster  *Cluster
	// Username, Password and TLS are for the data nodes of a Sentinel or Cluster target; a URL carries its own.
	// With TLS every server (sentinels too) is verified against the system roots under the name it is dialled
	// by: the address configured, or the one the sentinels and the cluster announce (an IP unless they are set
	// to announce host names), so certificates must carry those names.
	Username, Password string
	TLS                bool
}

// Sentinel is a primary with replicas watched by Redis Sentinel: the client asks the sentinels for the current
// primary and follows failovers.
type Sentinel struct {
	Master   string   // the name the sentinels monitor the primary under
	Addrs    []string // some or all sentinels, host:port
	Password string   // the sentinels' own password (requirepass in sentinel.conf), "" for none
}

// Cluster is a Redis Cluster; Addrs are some of its nodes (host:port), the client learns the rest.
type Cluster struct {
	Addrs []string
}

// Settings for a request path, shared by every kind of target: context deadlines reach the socket, short
// timeouts, a bounded pool and a single retry, because an answer that arrives after Envoy gave up is worthless and
// a slow "no" is worse than a fast one.
const (
	dialTimeout = time.Second
	ioTimeout   = 200 * time.Millisecond
	// go-redis redials 5 times 100ms apart by default: with Redis down every call would hang ~0.8s instead of
	// failing (and denying) at once. The one command retry still redials once.
	dialerRetries = 1
	maxRetries    = 1
	// A cluster client counts retries as redirects: MOVED and ASK are answers, not failures, and two let a MOVED
	// to a slot's new owner be followed by an ASK while that slot migrates. Deadlines bound the total anyway.
	maxRedirects = 2
)

func poolSize() int { return 10 * runtime.GOMAXPROCS(0) }

// Open connects to the Redis at rawURL with ClientOptions. It does not dial; use Ping to check readiness.
func Open(rawURL, prefix string, now func() time.Time, opts ...Option) (*Store, error) {
	return OpenTarget(Target{URL: rawURL}, prefix, now, opts...)
}

// OpenTarget connects to t (see NewClient). It does not dial; use Ping to check readiness.
func OpenTarget(t Target, prefix string, now func() time.Time, opts ...Option) (*Store, error) {
	if strings.ContainsAny(prefix, "{}") {
		// A brace in the prefix would become the Cluster hash tag of every key, defeating revTag and mfaKey.
		return nil, fmt.Errorf("redisstore: key prefix %q must not contain { or }", prefix)
	}
	c, err := NewClient(t)
	if err != nil {
		return nil, err
	}
	return New(c, prefix, now, opts...), nil
}

// NewClient makes the go-redis client for t with the request-path settings of ClientOptions: a *redis.Client for
// a URL, a failover client (also a *redis.Client) for Sentinel, a *redis.ClusterClient for Cluster.
func NewClient(t Target) (redis.UniversalClient, error) {
	set := 0
	for _, b := range []bool{t.URL != "", t.Sentinel != nil, t.Cluster != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, errors.New("redisstore: set exactly one of a URL, Sentinel and Cluster")
	}
	switch {
	case t.URL != "":
		if t.Username != "" || t.Password != "" || t.TLS {
			return nil, errors.New("redisstore: a URL carries its own credentials and scheme (rediss:// for TLS)")
		}
		opt, err := ClientOptions(t.URL)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opt), nil
	case t.Sentinel != nil:
		opt, err := FailoverOptions(t)
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(opt), nil
	default:
		opt, err := ClusterOptions(t)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(opt), nil
	}
}

// ClientOptions parses rawURL (redis:// or rediss://, see redis.ParseURL) and applies settings suited to a request
// path, overriding the URL's. rediss:// verifies the server's certificate against the system roots (on Linux,
// SSL_CERT_FILE or SSL_CERT_DIR add a private CA); the URL cannot turn verification off.
func ClientOptions(rawURL string) (*redis.Options, error) {
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		// url.Error repeats the URL, and with it any password.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("redisstore: invalid redis URL: %w", err)
	}
	if opt.TLSConfig != nil && opt.TLSConfig.InsecureSkipVerify {
		return nil, errors.New("redisstore: invalid redis URL: skip_verify is not allowed (trust a private CA with SSL_CERT_FILE instead)")
	}
	opt.ContextTimeoutEnabled = true
	opt.DialTimeout = dialTimeout
	opt.DialerRetries = dialerRetries
	opt.ReadTimeout = ioTimeout
	opt.WriteTimeout = ioTimeout
	opt.PoolTimeout = ioTimeout
	opt.PoolSize = poolSize()
	opt.MaxRetries = maxRetries
	// Maintenance notifications are a managed-Redis feature; skipping them saves a handshake per connection.
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opt, nil
}

// FailoverOptions are the go-redis options for t.Sentinel, with the settings of ClientOptions. The sentinels are
// asked with the same timeouts (and TLS setting) as the data nodes.
func FailoverOptions(t Target) (*redis.FailoverOptions, error) {
	sn := t.Sentinel
	if sn == nil || sn.Master == "" {
		return nil, errors.New("redisstore: sentinel: the master name is required")
	}
	if err := checkAddrs("sentinel", sn.Addrs); err != nil {
		return nil, err
	}
	o := nodeOptions(t, sn.Addrs)
	o.MasterName = sn.Master
	o.SentinelPassword = sn.Password
	o.MaxRetries = maxRetries
	return o.Failover(), nil // go-redis turns maintenance notifications off for failover clients
}

// ClusterOptions are the go-redis options for t.Cluster, with the settings of ClientOptions (PoolSize is per node).
func ClusterOptions(t Target) (*redis.ClusterOptions, error) {
	if t.Cluster == nil {
		return nil, errors.New("redisstore: no cluster")
	}
	if err := checkAddrs("cluster", t.Cluster.Addrs); err != nil {
		return nil, err
	}
	o := nodeOptions(t, t.Cluster.Addrs)
	o.MaxRedirects = maxRedirects
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o.Cluster(), nil
}

// nodeOptions are the settings of ClientOptions for the data nodes of a Sentinel or Cluster target, in the form
// go-redis turns into either kind of options (UniversalOptions.Failover, .Cluster).
func nodeOptions(t Target, addrs []string) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:                 addrs,
		Username:              t.Username,
		Password:              t.Password,
		TLSConfig:             tlsConfig(t.TLS),
		ContextTimeoutEnabled: true,
		DialTimeout:           dialTimeout,
		DialerRetries:         dialerRetries,
		ReadTimeout:           ioTimeout,
		WriteTimeout:          ioTimeout,
		PoolTimeout:           ioTimeout,
		PoolSize:              poolSize(),
	}
}

func checkAddrs(what string, addrs []string) error {
	if len(addrs) == 0 {
		return fmt.Errorf("redisstore: %s: at least one address is required", what)
	}
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("redisstore: %s: want host:port, got %q", what, a)
		}
	}
	return nil
}

// tlsConfig verifies servers against the system roots; the dialer names the server after the address it dials.
func tlsConfig(on bool) *tls.Config {
	if !on {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}
