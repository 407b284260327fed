package token

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenSize bounds a token before any decoding.
const MaxTokenSize = 8 << 10

// MaxLeeway caps the clock skew a Verifier tolerates.
const MaxLeeway = 30 * time.Second

// VerifierOptions configure a Verifier. Issuer and Audience are required: a
// Verifier without them refuses every token (fails closed) rather than
// skipping the check. Leeway 0 means the default, 30 s; larger values are
// clamped to 30 s and a negative value means no leeway. Now defaults to
// time.Now.
type VerifierOptions struct {
	Issuer, Audience string
	Leeway           time.Duration
	Now              func() time.Time
}

// Verifier checks tokens against a KeySet. It is safe for concurrent use.
type Verifier struct {
	keys     map[string]*verifyKey
	issuer   string
	audience string
	badSetup error
}

// verifyKey pairs a key with a parser pinned to that key's algorithm, so the
// token's "alg" can never pick a verification method for a key.
type verifyKey struct {
	*key
	parser  *jwt.Parser
	keyFunc jwt.Keyfunc
}

// NewVerifier builds a Verifier for every key in ks.
func NewVerifier(ks *KeySet, o VerifierOptions) *Verifier {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	leeway := o.Leeway
	switch {
	case leeway == 0 || leeway > MaxLeeway:
		leeway = MaxLeeway
	case leeway < 0:
		leeway = 0
	}
	v := &Verifier{issuer: o.Issuer, audience: o.Audience}
	switch {
	case ks == nil || len(ks.keys) == 0:
		v.badSetup = fmt.Errorf("%w: verifier has no keys", ErrUnknownKey)
	case o.Issuer == "":
		v.badSetup = fmt.Errorf("%w: verifier has no issuer configured", ErrIssuer)
	case o.Audience == "":
		v.badSetup = fmt.Errorf("%w: verifier has no audience configured", ErrAudience)
	}
	if v.badSetup != nil {
		return v
	}
	v.keys = make(map[string]*verifyKey, len(ks.keys))
	for kid, k := range ks.keys {
		v.keys[kid] = &verifyKey{
			key: k,
			parser: jwt.NewParser(
				jwt.WithValidMethods([]string{k.alg}),
				jwt.WithExpirationRequired(),
				jwt.WithIssuedAt(),
				jwt.WithIssuer(o.Issuer),
				jwt.WithAudience(o.Audience),
				jwt.WithLeeway(leeway),
				jwt.WithStrictDecoding(),
				jwt.WithTimeFunc(now),
			),
			keyFunc: func(t *jwt.Token) (any, error) {
				// Redundant with WithValidMethods and our header check;
				// kept so this function alone never hands out a key for
				// another algorithm.
				if t.Method == nil || t.Method.Alg() != k.alg {
					return nil, ErrAlgorithm
				}
				return k.verify, nil
			},
		}
	}
	return v
}

// Verify checks raw and returns its claims when it is a valid token of type
// want. Every failure is a refusal wrapping exactly one sentinel (see
// Reason). Checks, cheapest first: size; three non-empty, strictly
// base64url-encoded segments; header JSON without duplicate members or
// "crit"; an "alg" we support; a "kid" in our set whose algorithm equals
// "alg"; "typ" equal to want; payload JSON without duplicate members; then
// the signature and registered claims via golang-jwt (exp required, iat not
// in the future, nbf, iss, aud, leeway); then iat, sub, jti and sid present.
// "jku", "x5u", "jwk" and "x5c" are ignored: keys only come from our set.
func (v *Verifier) Verify(raw string, want Type) (*Claims, error) {
	if v.badSetup != nil {
		return nil, v.badSetup
	}
	if !want.valid() {
		return nil, fmt.Errorf("%w: verifier asked for unknown type %.40q", ErrWrongType, want)
	}
	if len(raw) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(raw), MaxTokenSize)
	}
	h, p, ok := splitToken(raw)
	if !ok {
		return nil, fmt.Errorf("%w: want three non-empty base64url segments", ErrMalformed)
	}
	hdr, err := parseHeader(h)
	if err != nil {
		return nil, err
	}
	switch string(hdr.alg) {
	case AlgEdDSA, AlgES256, AlgRS256, AlgHS256:
	default:
		return nil, fmt.Errorf("%w: alg %.40q", ErrAlgorithm, hdr.alg)
	}
	if len(hdr.kid) == 0 {
		return nil, fmt.Errorf("%w: no kid in header", ErrUnknownKey)
	}
	vk := v.keys[string(hdr.kid)] // no allocation for a map index
	if vk == nil {
		return nil, fmt.Errorf("%w: kid %.40q", ErrUnknownKey, hdr.kid)
	}
	if string(hdr.alg) != vk.alg {
		return nil, fmt.Errorf("%w: token alg %s, key alg %s", ErrAlgorithm, hdr.alg, vk.alg)
	}
	if !typIs(hdr.typ, want) {
		return nil, fmt.Errorf("%w: typ %.40q, want %s", ErrWrongType, hdr.typ, want)
	}
	payload, err := decodeSegment(p)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if err := walkObject(payload, checkClaimName); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}

	var c inClaims
	if _, err := vk.parser.ParseWithClaims(raw, &c, vk.keyFunc); err != nil {
		return nil, jwtError(err)
	}
	switch {
	case !c.IssuedAt.set: // WithIssuedAt checks iat only when present
		return nil, fmt.Errorf("%w: iat is required", ErrClaims)
	case c.Subject == "":
		return nil, fmt.Errorf("%w: sub is required", ErrClaims)
	case c.ID == "":
		return nil, fmt.Errorf("%w: jti is required", ErrClaims)
	case c.SessionID == "":
		return nil, fmt.Errorf("%w: sid is required", ErrClaims)
	}
	return &Claims{
		Type:      want,
		Issuer:    c.Issuer,
		Subject:   c.Subject,
		Audience:  v.audience, // aud may be a list; it contains ours
		ID:        c.ID,
		SessionID: c.SessionID,
		Username:  c.Username,
		Roles:     c.Roles,
		IssuedAt:  c.IssuedAt.d.Time,
		ExpiresAt: c.ExpiresAt.d.Time,
	}, nil
}

// typIs compares a header typ with want, ignoring ASCII case only (media
// types are case-insensitive; strings.ToLower would also fold non-ASCII).
func typIs(typ []byte, want Type) bool {
	if len(typ) != len(want) {
		return false
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != want[i] {
			return false
		}
	}
	return true
}

// splitToken returns the header and payload of a compact JWS with exactly
// three non-empty segments of base64url characters whose lengths a
// padding-free encoding can produce. The signature segment is left to the
// parser, which decodes it strictly.
func splitToken(raw string) (header, payload string, ok bool) {
	i := strings.IndexByte(raw, '.')
	if i <= 0 {
		return "", "", false
	}
	j := strings.IndexByte(raw[i+1:], '.')
	if j <= 0 {
		return "", "", false
	}
	j += i + 1
	if j == len(raw)-1 {
		return "", "", false
	}
	for _, seg := range [3]string{raw[:i], raw[i+1 : j], raw[j+1:]} {
		if len(seg)%4 == 1 {
			return "", "", false
		}
		for k := 0; k < len(seg); k++ {
			if !isB64URL(seg[k]) { // also refuses a fourth '.', '=' and "+/"
				return "", "", false
			}
		}
	}
	return raw[:i], raw[i+1 : j], true
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

var strictB64 = base64.RawURLEncoding.Strict()

// decodeSegment decodes like jwt.WithStrictDecoding: no padding, and the
// unused trailing bits must be zero, so each token has one spelling.
func decodeSegment(s string) ([]byte, error) { return strictB64.DecodeString(s) }

// header holds the members we read, as bytes: comparing and indexing a map
// with them needs no string allocations.
type header struct{ alg, kid, typ []byte }

func parseHeader(seg string) (header, error) {
	var h header
	b, err := decodeSegment(seg)
	if err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	err = walkObject(b, func(name, value []byte) error {
		var dst *[]byte
		switch string(name) {
		case "crit":
			// We implement no header extensions, so any critical one is
			// unknown to us (RFC 7515 4.1.11).
			return errCrit
		case "alg":
			dst = &h.alg
		case "kid":
			dst = &h.kid
		case "typ":
			dst = &h.typ
		default:
			return nil
		}
		s, ok := jsonStringBytes(value)
		if !ok {
			return fmt.Errorf("header %s must be a string", name)
		}
		*dst = s
		return nil
	})
	if err != nil {
		return h, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	return h, nil
}

var errCrit = errors.New(`"crit" header extensions are not supported`)

// jwtError turns a golang-jwt error into our sentinel. Order matters: claim
// validation joins several errors, and the first match names the refusal.
func jwtError(err error) error {
	var s error
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		s = ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		s = ErrSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		s = ErrExpired
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		s = ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		s = ErrIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		s = ErrAudience
	default: // ErrTokenRequiredClaimMissing and anything new
		s = ErrClaims
	}
	return fmt.Errorf("%w: %v", s, err)
}
