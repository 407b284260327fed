package token

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Type is the explicit token type carried in the JOSE header "typ"
// (RFC 8725 section 3.11). Each kind is accepted only where it is wanted, so a
// refresh or MFA-step token can never pass as an access token.
type Type string

const (
	Access  Type = "at+jwt"
	Refresh Type = "refresh+jwt"
	MFA     Type = "mfa+jwt"
)

func (t Type) valid() bool { return t == Access || t == Refresh || t == MFA }

// Claims is what Gatehouse puts in and reads out of a token.
type Claims struct {
	Type      Type
	Issuer    string
	Subject   string // user id
	Audience  string
	ID        string // jti: revocation key for this token
	SessionID string // sid: revocation key for the session
	Username  string
	Roles     []string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// outClaims is the payload we sign: fixed member order, integer times, aud
// as a single string.
type outClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  string   `json:"aud"`
	ExpiresAt int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ID        string   `json:"jti"`
	SessionID string   `json:"sid"`
	Username  string   `json:"username,omitempty"`
	Roles     []string `json:"roles,omitempty"`
}

// jwt.NewWithClaims wants a jwt.Claims; nothing validates what we sign.
func (outClaims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (outClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (outClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (outClaims) GetIssuer() (string, error)                   { return "", nil }
func (outClaims) GetSubject() (string, error)                  { return "", nil }
func (outClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// inClaims is the payload we verify. It is a concrete struct rather than
// jwt.MapClaims (no map, fewer interface conversions per request) and its
// field types are stricter than jwt.RegisteredClaims: times must be JSON
// numbers, never strings.
type inClaims struct {
	Issuer    string      `json:"iss"`
	Subject   string      `json:"sub"`
	Audience  audience    `json:"aud"`
	ExpiresAt numericDate `json:"exp"`
	NotBefore numericDate `json:"nbf"`
	IssuedAt  numericDate `json:"iat"`
	ID        string      `json:"jti"`
	SessionID string      `json:"sid"`
	Username  string      `json:"username"`
	Roles     []string    `json:"roles"`
}

var _ jwt.Claims = (*inClaims)(nil)

func (c *inClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt.get(), nil }
func (c *inClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt.get(), nil }
func (c *inClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore.get(), nil }
func (c *inClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *inClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *inClaims) GetAudience() (jwt.ClaimStrings, error)       { return jwt.ClaimStrings(c.Audience), nil }

var (
	errNumericType  = errors.New("numeric date must be a JSON number")
	errNumericRange = errors.New("numeric date out of range")
	errAudienceType = errors.New("aud must be a string or an array of strings")
)

// maxNumericDate bounds times well inside what time.Unix and float64 handle
// exactly (about year 5138), so odd values cannot wrap around.
const maxNumericDate = 1e11

// numericDate is a NumericDate that refuses the string form ("exp":"123")
// jwt.NumericDate accepts, and out-of-range values. JSON null means absent.
type numericDate struct {
	d   jwt.NumericDate
	set bool
}

func (n *numericDate) get() *jwt.NumericDate {
	if !n.set {
		return nil
	}
	return &n.d
}

func (n *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) == 0 || !(b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		return errNumericType
	}
	s := string(b)
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		if sec < 0 || sec >= maxNumericDate {
			return errNumericRange
		}
		n.d, n.set = jwt.NumericDate{Time: time.Unix(sec, 0)}, true
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errNumericType
	}
	if !(f >= 0 && f < maxNumericDate) { // also refuses NaN
		return errNumericRange
	}
	sec := int64(f)
	n.d, n.set = jwt.NumericDate{Time: time.Unix(sec, int64((f-float64(sec))*1e9))}, true
	return nil
}

// audience accepts "aud" as a string or an array of strings (RFC 7519 4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) == 0 {
		return errAudienceType
	}
	switch b[0] {
	case 'n':
		return nil // null: absent
	case '"':
		s, ok := jsonStringBytes(b)
		if !ok {
			return errAudienceType
		}
		*a = audience{string(s)}
		return nil
	case '[':
		var ss []string
		if err := json.Unmarshal(b, &ss); err != nil {
			return err
		}
		*a = ss
		return nil
	}
	return errAudienceType
}
