package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// proc is a child process the bench started; stop kills it.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// serverEnv is added to the environment of the ext_authz servers (the floor and Gatehouse alike).
var serverEnv []string

// start runs argv pinned to cpus (when taskset exists and cpus is not empty), logging to dir/name.log.
func start(dir, name, cpus string, argv ...string) (*proc, error) {
	return startEnv(dir, name, cpus, nil, argv...)
}

func startEnv(dir, name, cpus string, env []string, argv ...string) (*proc, error) {
	if cpus != "" && tasksetPath != "" {
		argv = append([]string{tasksetPath, "-c", cpus}, argv...)
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// Pdeathsig: children die with the bench even when it is killed (Ctrl-C, a closed pipe).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // the group: taskset execs, but be sure
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pid is the process's own pid (taskset execs the program, so it keeps taskset's).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// cpuTime is the process's user+system CPU time so far.
func (p *proc) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0
	}
	// Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / hz
}

// memory returns VmRSS and VmHWM (peak RSS) of the process in bytes.
func (p *proc) memory() (rss, peak int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startRedis starts a throwaway redis-server (no persistence) on a free loopback port.
func startRedis(dir, cpus string) (*proc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found; install it (apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	rdir := filepath.Join(dir, "redis-"+strconv.Itoa(port))
	if err := os.MkdirAll(rdir, 0o700); err != nil {
		return nil, err
	}
	p, err := start(dir, "redis-"+strconv.Itoa(port), cpus, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", rdir, "--daemonize", "no", "--loglevel", "warning")
	if err != nil {
		return nil, err
	}
	p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cl := redis.NewClient(&redis.Options{Addr: p.addr})
	defer cl.Close()
	if err := waitFor(10*time.Second, p, func(ctx context.Context) error { return cl.Ping(ctx).Err() }); err != nil {
		p.stop()
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	return p, nil
}

// startGatehouse runs `gatehouse serve` with the config at cfgPath listening on addr.
func startGatehouse(bin, dir, name, cpus, cfgPath, addr string) (*proc, error) {
	p, err := startEnv(dir, name, cpus, serverEnv, bin, "serve", "--config", cfgPath, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	p.addr = addr
	if err := waitServing(p); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w (log: %s)", name, err, filepath.Join(dir, name+".log"))
	}
	return p, nil
}

// startNoop runs the no-op server; it prints its address.
func startNoop(bin, dir, cpus string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := startEnv(dir, "noop", cpus, serverEnv, bin, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	p.addr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitServing(p); err != nil {
		p.stop()
		return nil, fmt.Errorf("noop: %w", err)
	}
	return p, nil
}

// waitServing waits for grpc.health.v1 to say SERVING.
func waitServing(p *proc) error {
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	return waitFor(60*time.Second, p, func(ctx context.Context) error {
		r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", r.GetStatus())
		}
		return nil
	})
}

// waitFor retries probe until it succeeds, the process exits or the timeout passes.
func waitFor(timeout time.Duration, p *proc, probe func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := probe(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.exited() {
			return errors.New("exited")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
