package issuer

import (
	"bufio"
	"crypto/rand"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"gatehouse/password"
)

// benchEnv is an issuer whose user has a password hashed with the default argon2id parameters (64 MiB, t=3,
// p=2), and whose dummy hash has them too (the production configuration).
func benchEnv(b *testing.B) *env {
	h, err := password.Hash("bench-password", password.DefaultParams, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return newEnv(b, func(c *Config) {
		c.Users = directory(b, `{id: u-bench, username: bench, password_hash: "`+h+`", roles: [user]}`)
		c.DummyParams = password.Params{}
		c.MaxSessions = 1 << 20 // measure logins, not evictions
	})
}

// BenchmarkLogin measures one login at a time with default parameters and reports the median latency.
//
//	go test -run '^$' -bench 'BenchmarkLogin$' -benchtime 30x ./issuer/
func BenchmarkLogin(b *testing.B) {
	e := benchEnv(b)
	body := loginBody("bench", "bench-password")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if rec := e.do(req{method: "POST", path: "/auth/login", body: body}); rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
}

// BenchmarkLoginParallel runs logins from 16·GOMAXPROCS goroutines (32 on a 2-core machine) with default
// parameters and the automatic hashing limit, and reports logins per second, logins refused with 503 because the
// hashing queue stayed full for HashWait, and the memory peak (VmHWM, and the Go runtime's Sys).
//
//	go test -run '^$' -bench 'BenchmarkLoginParallel$' -benchtime 200x ./issuer/
func BenchmarkLoginParallel(b *testing.B) {
	e := benchEnv(b)
	body := loginBody("bench", "bench-password")
	var ok, busy atomic.Int64
	var peakSys atomic.Uint64
	stop := make(chan struct{})
	go func() { // sample the runtime's view while the benchmark runs
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				runtime.ReadMemStats(&ms)
				if ms.Sys > peakSys.Load() {
					peakSys.Store(ms.Sys)
				}
			}
		}
	}()
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := e.do(req{method: "POST", path: "/auth/login", body: body})
			switch rec.Code {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusServiceUnavailable:
				busy.Add(1)
			default:
				b.Errorf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	b.ReportMetric(float64(ok.Load())/elapsed.Seconds(), "logins/s")
	b.ReportMetric(float64(busy.Load()), "busy-503s")
	b.ReportMetric(float64(peakSys.Load())/(1<<20), "MiB-sys-peak")
	if hwm := vmHWMKiB(); hwm > 0 {
		b.ReportMetric(float64(hwm)/1024, "MiB-VmHWM")
	}
	b.ReportMetric(float64(cap(e.srv.gate.slots)), "hash-slots")
}

// vmHWMKiB reads the process's peak resident set size (Linux), 0 elsewhere.
func vmHWMKiB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
