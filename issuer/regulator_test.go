package issuer

import (
	"testing"
	"time"
)

func TestLockDuration(t *testing.T) {
	g := &regulator{limits: LoginLimits{Lockout: time.Minute, MaxLockout: time.Hour}}
	want := map[int64]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 6: 32 * time.Minute,
		7: time.Hour, 8: time.Hour, 1 << 40: time.Hour}
	for strike, d := range want {
		if got := g.lockDuration(strike); got != d {
			t.Errorf("strike %d: %v, want %v", strike, got, d)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	for d, want := range map[time.Duration]int64{time.Minute: 60, 59*time.Second + time.Millisecond: 60,
		time.Millisecond: 1, 0: 1, -time.Second: 1} {
		if got := retryAfter(now, now.Add(d)); got != want {
			t.Errorf("retryAfter(%v) = %d, want %d", d, got, want)
		}
	}
}
