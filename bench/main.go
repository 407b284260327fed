// Command bench is Gatehouse's load harness (`make bench-load`). It starts everything it measures as separate
// processes on loopback — redis-server, a no-op ext_authz server (bench/noop) as the transport floor, and
// `gatehouse serve` sidecars — and reports:
//
//   - throughput: requests/s, p50 and p99 of the floor and of Gatehouse in replica and strict revocation mode,
//     closed loop at each concurrency, with Envoy-shaped CheckRequests (10,000 distinct EdDSA tokens over a
//     1,000-route policy), and the ratio to the floor;
//   - propagation: for each of 1,000 revocations written through the issuer's store, the time until all three
//     sidecars deny the token;
//   - memory: the resident memory of a sidecar holding 10^6 revocations and 10^5 cached tokens;
//   - with -paced-rate, latency percentiles at a fixed request rate, after the closed-loop runs.
//
// Servers run on CPU 0 and the load generator (and Redis) on CPU 1 when taskset exists. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var tasksetPath, _ = exec.LookPath("taskset")

// CPU sets for the servers and for the load generator (empty: not pinned).
var serverCPU, clientCPU = "", ""

// machineCPUs is how many CPUs the machine has (for the report).
var machineCPUs string

type options struct {
	gatehouse, noop       string
	duration              time.Duration
	rounds                int
	concurrency           []int
	tokens, routes        int
	backgroundRevocations int
	sidecars, logouts     int
	memRevoked, memCached int
	phases                string
	keep                  bool
	pacedRate             float64
}

func main() {
	var o options
	var conc string
	flag.StringVar(&o.gatehouse, "gatehouse", "bin/gatehouse", "gatehouse binary")
	flag.StringVar(&o.noop, "noop", "bin/bench-noop", "no-op ext_authz server binary (bench/noop)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured run")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds per (target, concurrency)")
	flag.StringVar(&conc, "concurrency", "16,64", "closed-loop concurrencies")
	flag.IntVar(&o.tokens, "tokens", 10_000, "distinct valid tokens in the throughput runs")
	flag.IntVar(&o.routes, "routes", 1000, "routes in the policy")
	flag.IntVar(&o.backgroundRevocations, "background-revocations", 100_000, "unrelated revocations in Redis during the throughput runs")
	flag.IntVar(&o.sidecars, "sidecars", 3, "sidecar processes in the propagation run")
	flag.IntVar(&o.logouts, "logouts", 1000, "revocations in the propagation run")
	flag.IntVar(&o.memRevoked, "mem-revoked", 1_000_000, "revocations in the memory run")
	flag.IntVar(&o.memCached, "mem-cached", 100_000, "cached tokens in the memory run")
	flag.Float64Var(&o.pacedRate, "paced-rate", 0, "requests/s in all of paced latency runs at concurrency 16 after the closed-loop ones (0: none)")
	flag.StringVar(&o.phases, "phases", "throughput,propagation,memory", "phases to run")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (configs, logs)")
	env := flag.String("server-env", "", `environment for every server, the floor included, e.g. "GOGC=400 GOMEMLIMIT=200MiB"`)
	flag.Parse()
	for _, c := range strings.Split(conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-concurrency: bad value %q", c))
		}
		o.concurrency = append(o.concurrency, n)
	}
	serverEnv = strings.Fields(*env)
	pin()
	if err := run(o); err != nil {
		fatal(err)
	}
}

// pin re-runs the bench itself on the last CPU and leaves the first to the servers, when taskset exists and
// there are at least two CPUs. The re-run learns the plan from the environment (pinned, it sees one CPU).
func pin() {
	if plan := os.Getenv("GATEHOUSE_BENCH_PINNED"); plan != "" {
		parts := strings.Split(plan, ",")
		serverCPU, clientCPU, machineCPUs = parts[0], parts[1], parts[2]
		return
	}
	machineCPUs = strconv.Itoa(runtime.NumCPU())
	if tasksetPath == "" || runtime.NumCPU() < 2 {
		fmt.Println("note: servers and load generator share the CPUs (no taskset or a single CPU)")
		return
	}
	serverCPU, clientCPU = "0", strconv.Itoa(runtime.NumCPU()-1)
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	env := append(os.Environ(), "GATEHOUSE_BENCH_PINNED="+serverCPU+","+clientCPU+","+machineCPUs)
	argv := append([]string{tasksetPath, "-c", clientCPU, self}, os.Args[1:]...)
	fatal(syscall.Exec(tasksetPath, argv, env))
}

func run(o options) error {
	for _, bin := range []string{o.gatehouse, o.noop} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%w (build it first: make bench-load does)", err)
		}
	}
	dir, err := os.MkdirTemp("", "gatehouse-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	f, err := newFixture(dir, o.routes)
	if err != nil {
		return err
	}
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	fmt.Printf("machine: %s CPUs (%s); servers on CPU %q, load generator and Redis on CPU %q; %s\n",
		machineCPUs, cpu, serverCPU, clientCPU, runtime.Version())
	settings := "Go defaults"
	if len(serverEnv) > 0 {
		settings = strings.Join(serverEnv, " ")
	}
	fmt.Printf("server runtime settings (floor and Gatehouse alike): %s\n\n", settings)
	ctx := context.Background()
	phases := map[string]func(context.Context, options, *fixture, string, io.Writer) error{
		"throughput": throughput, "propagation": propagation, "memory": memory,
	}
	for _, name := range strings.Split(o.phases, ",") {
		ph, ok := phases[strings.TrimSpace(name)]
		if !ok {
			return fmt.Errorf("-phases: unknown phase %q", name)
		}
		if err := ph(ctx, o, f, dir, os.Stdout); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func replaceInFile(path, old, new string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	if !strings.Contains(s, old) {
		return errors.New("bench: config template changed")
	}
	return os.WriteFile(path, []byte(strings.Replace(s, old, new, 1)), 0o600)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
