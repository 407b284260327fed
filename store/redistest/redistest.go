// Package redistest runs throwaway Redis deployments for tests: one redis-server (Start, StartServer), one with a
// TLS port (StartTLS), a three-master Redis Cluster (StartCluster) and a primary with a replica watched by three
// sentinels (StartSentinel, run as redis-server --sentinel).
//
// Every server binds 127.0.0.1 on a free port, keeps its files in a test temp dir and is killed by t.Cleanup.
// Without redis-server on PATH the test is skipped, unless the CI environment variable is set, in which case a
// missing server fails the test so CI cannot silently lose the Redis coverage.
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gatehouse/internal/logbuf"
)

// readyTimeout bounds how long we poll for the server to answer PING.
const readyTimeout = 5 * time.Second

// Options tune the server.
type Options struct {
	// AppendOnly turns on the AOF (fsync every write) so data survives Kill + Restart.
	AppendOnly bool
	// ReplicaOf makes the server a replica of the Redis at this address (host:port).
	ReplicaOf string

	extra func() ([]string, error) // more arguments, chosen afresh for every port tried (cluster mode)
}

// Server is a running redis-server owned by one test.
type Server struct {
	Addr string // host:port

	t    testing.TB
	bin  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
	log  *logbuf.Buffer
}

// Start starts a redis-server with persistence off and returns its address.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t, Options{}).Addr
}

// StartServer starts a redis-server with the given options; use it when the test needs Kill or Restart.
func StartServer(t testing.TB, o Options) *Server {
	t.Helper()
	bin := lookPath(t)
	dir := t.TempDir()
	// A port we just freed can be taken by someone else before redis binds it; retry with a fresh one.
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, bin: bin}
		appendonly := "no"
		if o.AppendOnly {
			appendonly = "yes"
		}
		s.args = []string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", appendonly,
			"--appendfsync", "always",
			"--daemonize", "no",
			"--dir", dir,
			"--logfile", "",
			"--loglevel", "warning",
			// Replicas sync at once instead of the primary waiting 5s for more of them.
			"--repl-diskless-sync-delay", "0",
		}
		if o.ReplicaOf != "" {
			s.args = append(s.args, "--replicaof", replicaOf(o.ReplicaOf))
		}
		if o.extra != nil {
			more, err := o.extra()
			if err != nil {
				t.Fatalf("redistest: %v", err)
			}
			s.args = append(s.args, more...)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// lookPath finds redis-server, or skips (fails under CI) the test.
func lookPath(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		const msg = "redis-server not installed; install it (apt-get install redis-server) to run the Redis tests"
		if os.Getenv("CI") == "" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return bin
}

// replicaOf turns host:port into the "host port" argument of --replicaof.
func replicaOf(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr // redis-server says what is wrong with it
	}
	return host + " " + port
}

func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args...)
	log := &logbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()
	if err := waitReady(s.Addr, done); err != nil {
		s.Kill()
		return fmt.Errorf("redis-server on %s: %w; log:\n%s", s.Addr, err, log.String())
	}
	return nil
}

// Kill stops the server abruptly (SIGKILL) and waits for it to exit. Safe to call twice.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart kills the server if it runs and starts it again on the same port and directory (with AppendOnly, data
// written before the kill is back).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// RestartAsReplicaOf restarts the server as a replica of the Redis at primary (host:port), as an orchestrator
// brings a failed primary back after a failover.
func (s *Server) RestartAsReplicaOf(primary string) {
	s.t.Helper()
	s.Kill()
	args := slices.Clone(s.args)
	if i := slices.Index(args, "--replicaof"); i >= 0 {
		args = slices.Delete(args, i, i+2)
	}
	s.args = append(args, "--replicaof", replicaOf(primary))
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart as replica: %v", err)
	}
}

// Pause stops the process (SIGSTOP) without closing its connections: a replica that stops acknowledging, a
// primary that hangs. Resume continues it; Kill works on a paused server too.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) {
	s.t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		s.t.Fatal("redistest: server not started")
	}
	if err := cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("redistest: signal %v: %v", sig, err)
	}
}

// Log returns what the server printed (warnings and above) since it last started.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls PING until the server answers, exits, or readyTimeout passes.
func waitReady(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", readyTimeout, err)
		}
		select {
		case <-exited:
			return errors.New("exited before answering PING")
		case <-tick.C:
		}
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// "-LOADING ..." while an AOF is replayed: not ready yet.
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
