package issuer

import (
	"context"
	"fmt"
	"time"
)

// CounterStore is what the regulator needs from the store (store.Counters).
type CounterStore interface {
	Hit(ctx context.Context, key string, window time.Duration) (int64, error)
	Clear(ctx context.Context, key string) error
	Lock(ctx context.Context, key string, until time.Time) error
	LockedUntil(ctx context.Context, key string) (time.Time, error)
}

// LoginLimits configure brute-force regulation and password hashing. Zero values take the defaults noted.
type LoginLimits struct {
	MaxFailures int           // failures within Window that lock the account or IP; default 5
	Window      time.Duration // default 10m
	Lockout     time.Duration // first lockout; default 1m
	MaxLockout  time.Duration // cap of the doubling; default 1h
	// HashConcurrency bounds concurrent password verifications; 0 sizes it to the machine (see hashSlots).
	HashConcurrency int
	// HashWait is how long a login waits for a hashing slot before a 503; default 2s.
	HashWait time.Duration
}

func (l *LoginLimits) setDefaults() {
	if l.MaxFailures <= 0 {
		l.MaxFailures = 5
	}
	if l.Window <= 0 {
		l.Window = 10 * time.Minute
	}
	if l.Lockout <= 0 {
		l.Lockout = time.Minute
	}
	if l.MaxLockout <= 0 {
		l.MaxLockout = time.Hour
	}
	l.MaxLockout = max(l.MaxLockout, l.Lockout)
	if l.HashWait <= 0 {
		l.HashWait = 2 * time.Second
	}
}

// strikeWindow is how long consecutive lockouts are remembered for the doubling.
const strikeWindow = 24 * time.Hour

// subject is what failures are counted against: an account or a client address.
type subject struct {
	scope string // "user" or "ip"
	id    string // canonical username or IP
}

func userSubject(canonical string) subject { return subject{scope: "user", id: canonical} }
func ipSubject(ip string) subject          { return subject{scope: "ip", id: ip} }

// key names the subject's failure counter and its lock (the store keeps counters and locks apart).
func (s subject) key() string { return "login:" + s.scope + ":" + s.id }

// strikeKey counts the subject's lockouts within strikeWindow.
func (s subject) strikeKey() string { return "login:strikes:" + s.scope + ":" + s.id }

// lockout is one lock the regulator just imposed.
type lockout struct {
	subject  subject
	strike   int64 // 1 for the first lockout within strikeWindow
	duration time.Duration
	until    time.Time
}

// regulator is brute-force regulation (modelled on Authelia's regulation.Regulator), the only code that touches
// login counters.
//
// Each failed login counts against the canonical username and the client IP in fixed windows (Hit). When a
// count reaches MaxFailures the subject is locked for Lockout·2^(strike-1), capped at MaxLockout, where strike
// counts its lockouts within the last strikeWindow (a fixed 24 h window started by the first lockout), and its
// failure counter starts over. So an attacker gets MaxFailures guesses per lockout, and lockouts grow
// 1m, 2m, 4m ... 1h. A successful login clears the account's failure counter but neither its strikes (the owner
// logging in between bursts must not reset the attacker's escalation) nor the IP's counter (one good password from
// an address does not vouch for the other names tried from it).
type regulator struct {
	store  CounterStore
	limits LoginLimits
	now    func() time.Time
}

// lockedUntil returns the latest lock end among subjects, or the zero time when none is locked.
func (g *regulator) lockedUntil(ctx context.Context, subs ...subject) (time.Time, error) {
	var latest time.Time
	now := g.now()
	for _, sub := range subs {
		until, err := g.store.LockedUntil(ctx, sub.key())
		if err != nil {
			return time.Time{}, fmt.Errorf("locked until: %w", err)
		}
		if until.After(now) && until.After(latest) {
			latest = until
		}
	}
	return latest, nil
}

// fail counts one failure against each subject and returns the lockouts it caused.
func (g *regulator) fail(ctx context.Context, subs ...subject) ([]lockout, error) {
	var out []lockout
	for _, sub := range subs {
		n, err := g.store.Hit(ctx, sub.key(), g.limits.Window)
		if err != nil {
			return out, fmt.Errorf("count failure: %w", err)
		}
		if n < int64(g.limits.MaxFailures) {
			continue
		}
		// >= rather than ==: if a previous Lock failed, the next failure locks instead of the window running out.
		strike, err := g.store.Hit(ctx, sub.strikeKey(), strikeWindow)
		if err != nil {
			return out, fmt.Errorf("count lockout: %w", err)
		}
		d := g.lockDuration(strike)
		until := g.now().Add(d)
		if err := g.store.Lock(ctx, sub.key(), until); err != nil {
			return out, fmt.Errorf("lock: %w", err)
		}
		if err := g.store.Clear(ctx, sub.key()); err != nil {
			return out, fmt.Errorf("clear failures: %w", err)
		}
		out = append(out, lockout{subject: sub, strike: strike, duration: d, until: until})
	}
	return out, nil
}

// succeeded clears the account's failure counter after a correct password.
func (g *regulator) succeeded(ctx context.Context, sub subject) error {
	if err := g.store.Clear(ctx, sub.key()); err != nil {
		return fmt.Errorf("clear failures: %w", err)
	}
	return nil
}

// lockDuration is Lockout doubled per earlier strike, capped at MaxLockout.
func (g *regulator) lockDuration(strike int64) time.Duration {
	d := g.limits.Lockout
	for i := int64(1); i < strike && d < g.limits.MaxLockout; i++ {
		d *= 2
	}
	return min(d, g.limits.MaxLockout)
}

// retryAfter is the Retry-After value for a lock ending at until: whole seconds, rounded up, at least 1.
func retryAfter(now, until time.Time) int64 {
	d := until.Sub(now)
	secs := int64(d / time.Second)
	if d%time.Second != 0 {
		secs++
	}
	return max(secs, 1)
}
