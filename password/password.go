// Package password hashes and verifies user passwords.
//
// New hashes are argon2id in the PHC string format ($argon2id$v=19$m=...,t=...,p=...$salt$hash). bcrypt hashes
// ($2a$, $2b$, $2y$) verify too, so users can be migrated from older systems; they are never produced.
package password

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  uint32
}

// DefaultParams cost 64 MiB and three passes: above OWASP's argon2id minimum, about 50-100 ms on a server core.
var DefaultParams = Params{Memory: 64 * 1024, Time: 3, Threads: 2, SaltLen: 16, KeyLen: 32}

// Upper bounds for parameters read from a users file, so one hostile hash cannot take the machine's memory or CPU.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 16
	maxThreads = 16
)

// ErrMalformed says a stored hash cannot be parsed or uses unsupported parameters.
var ErrMalformed = errors.New("malformed password hash")

// Hash returns an argon2id PHC string for password with a salt read from rand.
func Hash(password string, p Params, rand io.Reader) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Hashed is a parsed stored hash, checked once at load time so login never meets a malformed one.
type Hashed struct {
	bcrypt []byte
	params Params
	salt   []byte
	key    []byte
}

// Parse validates a stored hash.
func Parse(encoded string) (*Hashed, error) {
	switch {
	case strings.HasPrefix(encoded, "$argon2id$"):
		return parseArgon2id(encoded)
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		if _, err := bcrypt.Cost([]byte(encoded)); err != nil {
			return nil, fmt.Errorf("%w: bcrypt: %v", ErrMalformed, err)
		}
		return &Hashed{bcrypt: []byte(encoded)}, nil
	default:
		return nil, fmt.Errorf("%w: want $argon2id$ or bcrypt ($2b$)", ErrMalformed)
	}
}

func parseArgon2id(encoded string) (*Hashed, error) {
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 {
		return nil, fmt.Errorf("%w: want $argon2id$v=19$m=..,t=..,p=..$salt$hash", ErrMalformed)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, fmt.Errorf("%w: unsupported argon2 version %q", ErrMalformed, parts[2])
	}
	var m, t, p uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: parameter %q", ErrMalformed, kv)
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return nil, fmt.Errorf("%w: unknown parameter %q", ErrMalformed, k)
		}
	}
	if m < 8*p || m > maxMemory || t < 1 || t > maxTime || p < 1 || p > maxThreads {
		return nil, fmt.Errorf("%w: parameters m=%d,t=%d,p=%d out of range", ErrMalformed, m, t, p)
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return nil, fmt.Errorf("%w: salt", ErrMalformed)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("%w: hash", ErrMalformed)
	}
	return &Hashed{params: Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p), KeyLen: uint32(len(key))},
		salt: salt, key: key}, nil
}

// Verify reports whether password matches, comparing in constant time. The password is used exactly as received.
func (h *Hashed) Verify(password string) bool {
	if h.bcrypt != nil {
		return bcrypt.CompareHashAndPassword(h.bcrypt, []byte(password)) == nil
	}
	got := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return subtle.ConstantTimeCompare(got, h.key) == 1
}

// MemoryKiB is the memory one Verify takes, for sizing the concurrency limit.
func (h *Hashed) MemoryKiB() uint32 {
	if h.bcrypt != nil {
		return 4
	}
	return h.params.Memory
}
