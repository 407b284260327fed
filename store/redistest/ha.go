package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// haTimeout bounds how long a cluster or sentinel group may take to form, and WaitFailover's default.
const haTimeout = 20 * time.Second

// StartCluster starts a Redis Cluster of three masters without replicas (the 16384 slots split evenly) on
// loopback and returns the nodes' addresses once every node reports cluster_state:ok. The nodes are killed by
// t.Cleanup. Skip rules are those of Start.
func StartCluster(t testing.TB) []string {
	t.Helper()
	const nodes = 3
	srvs := make([]*Server, nodes)
	bus := make([]int, nodes)
	for i := range srvs {
		srvs[i] = StartServer(t, Options{extra: func() ([]string, error) {
			// The bus port is its own free port: port+10000, Redis's default, may be taken or past 65535.
			p, err := freePort()
			bus[i] = p
			return []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-port", strconv.Itoa(p), "--cluster-node-timeout", "2000"}, err
		}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	clients := make([]*redis.Client, nodes)
	addrs := make([]string, nodes)
	for i, s := range srvs {
		addrs[i] = s.Addr
		clients[i] = adminClient(s.Addr)
		defer clients[i].Close()
	}
	// Assign the slots and distinct config epochs before the nodes meet, so no epoch collision has to be resolved.
	for i, c := range clients {
		lo, hi := i*16384/nodes, (i+1)*16384/nodes-1
		if err := c.Do(ctx, "cluster", "addslotsrange", lo, hi).Err(); err != nil {
			t.Fatalf("redistest: cluster addslotsrange on %s: %v", addrs[i], err)
		}
		if err := c.Do(ctx, "cluster", "set-config-epoch", i+1).Err(); err != nil {
			t.Fatalf("redistest: cluster set-config-epoch on %s: %v", addrs[i], err)
		}
	}
	for i := 1; i < nodes; i++ {
		host, port, _ := net.SplitHostPort(addrs[i])
		if err := clients[0].Do(ctx, "cluster", "meet", host, port, bus[i]).Err(); err != nil {
			t.Fatalf("redistest: cluster meet %s: %v", addrs[i], err)
		}
	}
	err := poll(ctx, func() error {
		for i, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("%s not ready:\n%s", addrs[i], info)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: cluster did not form: %v", err)
	}
	return addrs
}

// SentinelGroup is a primary, its replica and three sentinels monitoring them, all on loopback.
type SentinelGroup struct {
	Master    string   // the name the sentinels monitor the primary under
	Sentinels []string // the sentinels' addresses
	Primary   *Server  // the primary at start
	Replica   *Server  // its replica at start

	sentinels []*Server
}

// Sentinel timing: short, so a failover takes seconds. down-after is how long a primary may be silent before a
// sentinel calls it down; two sentinels must agree (quorum 2 of 3).
const (
	sentinelDownAfter       = 1000 // ms
	sentinelFailoverTimeout = 3000 // ms
)

// StartSentinel starts a primary, a replica and three sentinels (quorum 2) monitoring them, and returns the
// master's name and the sentinels' addresses once the replica is in sync and every sentinel knows the primary,
// the replica and the other sentinels. Everything is killed by t.Cleanup. Skip rules are those of Start.
func StartSentinel(t testing.TB) (master string, sentinelAddrs []string, g *SentinelGroup) {
	t.Helper()
	bin := lookPath(t)
	g = &SentinelGroup{Master: "gatehouse"}
	g.Primary = StartServer(t, Options{})
	g.Replica = StartServer(t, Options{ReplicaOf: g.Primary.Addr})
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	if err := waitInSync(ctx, g.Replica.Addr); err != nil {
		t.Fatalf("redistest: replica did not sync: %v", err)
	}

	// Every sentinel is told of the replica and the other sentinels up front (as its rewritten config would after
	// discovery), so the group is usable at once instead of after a round of INFO and hello messages.
	const n = 3
	ports, ids := make([]int, n), make([]string, n)
	for i := range n {
		p, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		var b [20]byte
		_, _ = rand.Read(b[:])
		ports[i], ids[i] = p, hex.EncodeToString(b[:])
	}
	phost, pport, _ := net.SplitHostPort(g.Primary.Addr)
	rhost, rport, _ := net.SplitHostPort(g.Replica.Addr)
	for i := range n {
		dir := t.TempDir()
		var conf strings.Builder
		fmt.Fprintf(&conf, "port %d\nbind 127.0.0.1\ndaemonize no\nlogfile \"\"\nloglevel warning\ndir %s\n", ports[i], dir)
		fmt.Fprintf(&conf, "sentinel myid %s\n", ids[i])
		fmt.Fprintf(&conf, "sentinel monitor %s %s %s 2\n", g.Master, phost, pport)
		fmt.Fprintf(&conf, "sentinel down-after-milliseconds %s %d\n", g.Master, sentinelDownAfter)
		fmt.Fprintf(&conf, "sentinel failover-timeout %s %d\n", g.Master, sentinelFailoverTimeout)
		fmt.Fprintf(&conf, "sentinel known-replica %s %s %s\n", g.Master, rhost, rport)
		for j := range n {
			if j != i {
				fmt.Fprintf(&conf, "sentinel known-sentinel %s 127.0.0.1 %d %s\n", g.Master, ports[j], ids[j])
			}
		}
		file := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(file, []byte(conf.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i])), t: t, bin: bin,
			args: []string{file, "--sentinel"}}
		if err := s.start(); err != nil {
			t.Fatalf("redistest: sentinel: %v", err)
		}
		t.Cleanup(s.Kill)
		g.sentinels = append(g.sentinels, s)
		g.Sentinels = append(g.Sentinels, s.Addr)
	}
	err := poll(ctx, func() error {
		for _, addr := range g.Sentinels {
			if err := g.checkSentinel(ctx, addr); err != nil {
				return fmt.Errorf("sentinel %s: %w", addr, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("redistest: sentinels not ready: %v", err)
	}
	return g.Master, g.Sentinels, g
}

// checkSentinel reports whether the sentinel at addr sees the primary, an in-sync replica and two other sentinels.
func (g *SentinelGroup) checkSentinel(ctx context.Context, addr string) error {
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer sc.Close()
	m, err := sc.Master(ctx, g.Master).Result()
	if err != nil {
		return err
	}
	if m["flags"] != "master" || m["num-other-sentinels"] != "2" {
		return fmt.Errorf("master flags %q, other sentinels %q", m["flags"], m["num-other-sentinels"])
	}
	reps, err := sc.Replicas(ctx, g.Master).Result()
	if err != nil {
		return err
	}
	if len(reps) != 1 || reps[0]["flags"] != "slave" || reps[0]["master-link-status"] != "ok" {
		return fmt.Errorf("replicas %v", reps)
	}
	return sc.CkQuorum(ctx, g.Master).Err()
}

// PrimaryAddr returns the primary every sentinel names now; an error when one does not answer or they disagree.
func (g *SentinelGroup) PrimaryAddr(ctx context.Context) (string, error) {
	var agreed string
	for _, addr := range g.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
		hp, err := sc.GetMasterAddrByName(ctx, g.Master).Result()
		sc.Close()
		if err != nil {
			return "", fmt.Errorf("sentinel %s: %w", addr, err)
		}
		if len(hp) != 2 {
			return "", fmt.Errorf("sentinel %s answered %q", addr, hp)
		}
		got := net.JoinHostPort(hp[0], hp[1])
		if agreed != "" && got != agreed {
			return "", fmt.Errorf("sentinels disagree: %s and %s", agreed, got)
		}
		agreed = got
	}
	return agreed, nil
}

// WaitFailover waits until every sentinel names a primary other than old and that server answers as a master,
// and returns its address. It fails the test after 20s.
func (g *SentinelGroup) WaitFailover(t testing.TB, old string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	var primary string
	err := poll(ctx, func() error {
		addr, err := g.PrimaryAddr(ctx)
		if err != nil {
			return err
		}
		if addr == old {
			return errors.New("no failover yet")
		}
		c := adminClient(addr)
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:master") {
			return fmt.Errorf("%s is not a master yet", addr)
		}
		primary = addr
		return nil
	})
	if err != nil {
		var logs strings.Builder
		for _, s := range g.sentinels {
			fmt.Fprintf(&logs, "--- sentinel %s\n%s", s.Addr, s.Log())
		}
		t.Fatalf("redistest: no failover from %s: %v\n%s", old, err, logs.String())
	}
	return primary
}

// Server returns the group's server (primary or replica at start) listening on addr, or nil.
func (g *SentinelGroup) Server(addr string) *Server {
	for _, s := range []*Server{g.Primary, g.Replica} {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// WaitInSync waits until the replica at addr is in sync with its primary and WAIT counts it: a write on the
// primary followed by WAIT is confirmed by every replica the primary lists. (The primary lists a replica as online
// a moment before it streams writes to it; until then WAIT does not count it.) The probe writes the key
// "redistest:sync" on the primary.
func WaitInSync(t testing.TB, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	if err := waitInSync(ctx, addr); err != nil {
		t.Fatalf("redistest: replica %s not in sync: %v", addr, err)
	}
}

func waitInSync(ctx context.Context, addr string) error {
	c := adminClient(addr)
	defer c.Close()
	_, port, _ := net.SplitHostPort(addr)
	return poll(ctx, func() error {
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		f := infoFields(info)
		if f["master_link_status"] != "up" || f["master_sync_in_progress"] != "0" {
			return errors.New("link not up")
		}
		pc := adminClient(net.JoinHostPort(f["master_host"], f["master_port"]))
		defer pc.Close()
		pinfo, err := pc.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("its primary: %w", err)
		}
		online, listed := 0, false
		for k, v := range infoFields(pinfo) {
			if strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online") {
				online++
				listed = listed || strings.Contains(v, ",port="+port+",")
			}
		}
		if !listed {
			return errors.New("not online at its primary yet")
		}
		conn := pc.Conn()
		defer conn.Close()
		if err := conn.Set(ctx, "redistest:sync", "1", 0).Err(); err != nil {
			return err
		}
		n, err := conn.Wait(ctx, online, 50*time.Millisecond).Result()
		if err != nil {
			return err
		}
		if n < int64(online) {
			return fmt.Errorf("WAIT %d confirmed by %d", online, n)
		}
		return nil
	})
}

// infoFields splits an INFO reply into its key:value lines.
func infoFields(info string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			f[k] = v
		}
	}
	return f
}

func adminClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
}

// poll calls check every 20ms until it succeeds or ctx ends, and then returns its last error.
func poll(ctx context.Context, check func() error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}
