package token

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// members is an ordered JSON object, so tests can write duplicates.
type members [][2]string

func (m members) json() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(kv[0]))
		b.WriteByte(':')
		b.WriteString(kv[1])
	}
	b.WriteByte('}')
	return b.String()
}

func (m members) without(name string) members {
	var out members
	for _, kv := range m {
		if kv[0] != name {
			out = append(out, kv)
		}
	}
	return out
}

// set replaces name's value, or appends the member.
func (m members) set(name, raw string) members {
	out := append(members(nil), m...)
	for i := range out {
		if out[i][0] == name {
			out[i][1] = raw
			return out
		}
	}
	return append(out, [2]string{name, raw})
}

// add appends even when name exists.
func (m members) add(name, raw string) members {
	return append(append(members(nil), m...), [2]string{name, raw})
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

func stdPayload() members {
	return members{
		{"iss", strconv.Quote(testIss)},
		{"sub", `"user-42"`},
		{"aud", strconv.Quote(testAud)},
		{"exp", unix(testNow.Add(10 * time.Minute))},
		{"iat", unix(testNow.Add(-time.Minute))},
		{"jti", `"jti-1"`},
		{"sid", `"sess-1"`},
		{"username", `"alice"`},
		{"roles", `["user"]`},
	}
}

func stdHeader(k *key, typ Type) members {
	return members{{"alg", strconv.Quote(k.alg)}, {"kid", strconv.Quote(k.kid)}, {"typ", strconv.Quote(string(typ))}}
}

type verifyCase struct {
	name string
	raw  string
	want Type
	err  error
}

// verifyCases is the refusal table, shared with FuzzVerify's seeds.
func verifyCases(t testing.TB) []verifyCase {
	fk := testKeys()
	ed, ec, rs := fk.ed, fk.ec, fk.rsa
	hdr := stdHeader(ed, Access)
	pl := stdPayload()
	signed := func(h, p members) string { return craft(t, h.json(), p.json(), ed, "") }
	withExp := func(d time.Duration) string { return signed(hdr, pl.set("exp", unix(testNow.Add(d)))) }
	withIat := func(d time.Duration) string { return signed(hdr, pl.set("iat", unix(testNow.Add(d)))) }
	valid := mustSign(t, ed, baseClaims(Access))
	vh, vp, vs := splitRaw(valid)

	pubPEM := func(k *key) []byte {
		der, err := x509.MarshalPKIXPublicKey(k.public)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	ecPoint, _ := fk.ecPriv.PublicKey.Bytes()
	// hs256With signs an HS256 token for kid with secret: the classic
	// "verify with the public key as HMAC secret" confusion.
	hs256With := func(kid string, secret []byte) string {
		h := members{{"alg", `"HS256"`}, {"kid", strconv.Quote(kid)}, {"typ", `"at+jwt"`}}
		fake := &key{method: fk.hmac.method, sign: secret}
		return craft(t, h.json(), pl.json(), fake, "")
	}
	// An attacker's own key, offered in the header.
	attacker := mustKey(newKey("ed-1", ed25519Priv(99)))

	return []verifyCase{
		{"valid EdDSA", valid, Access, nil},
		{"valid ES256", mustSign(t, ec, baseClaims(Access)), Access, nil},
		{"valid RS256", mustSign(t, rs, baseClaims(Access)), Access, nil},
		{"valid refresh", mustSign(t, ed, baseClaims(Refresh)), Refresh, nil},
		{"valid mfa", mustSign(t, ed, baseClaims(MFA)), MFA, nil},
		{"valid hand-crafted", signed(hdr, pl), Access, nil},
		{"typ upper case", signed(hdr.set("typ", `"AT+JWT"`), pl), Access, nil},
		{"aud array containing ours", signed(hdr, pl.set("aud", `["other","gatehouse"]`)), Access, nil},
		{"fractional exp", signed(hdr, pl.set("exp", unix(testNow.Add(time.Hour))+".5")), Access, nil},
		{"unknown claims ignored", signed(hdr, pl.set("extra", `{"a":[1,{"b":2}]}`)), Access, nil},
		{"jku present is ignored", signed(hdr.set("jku", `"https://evil.test/jwks"`).set("x5u", `"https://evil.test/x"`), pl), Access, nil},

		// time
		{"expired", withExp(-31 * time.Second), Access, ErrExpired},
		{"expired at leeway edge", withExp(-30 * time.Second), Access, ErrExpired},
		{"expired just inside leeway", withExp(-29 * time.Second), Access, nil},
		{"long expired", withExp(-24 * time.Hour), Access, ErrExpired},
		{"iat in future beyond leeway", withIat(31 * time.Second), Access, ErrNotYetValid},
		{"iat in future within leeway", withIat(29 * time.Second), Access, nil},
		{"nbf in future", signed(hdr, pl.set("nbf", unix(testNow.Add(time.Minute)))), Access, ErrNotYetValid},

		// required claims
		{"missing exp", signed(hdr, pl.without("exp")), Access, ErrClaims},
		{"missing iat", signed(hdr, pl.without("iat")), Access, ErrClaims},
		{"missing iss", signed(hdr, pl.without("iss")), Access, ErrClaims},
		{"missing aud", signed(hdr, pl.without("aud")), Access, ErrClaims},
		{"missing sub", signed(hdr, pl.without("sub")), Access, ErrClaims},
		{"missing jti", signed(hdr, pl.without("jti")), Access, ErrClaims},
		{"missing sid", signed(hdr, pl.without("sid")), Access, ErrClaims},
		{"empty sub", signed(hdr, pl.set("sub", `""`)), Access, ErrClaims},
		{"null exp", signed(hdr, pl.set("exp", `null`)), Access, ErrClaims},
		{"empty aud array", signed(hdr, pl.set("aud", `[]`)), Access, ErrClaims},
		{"wrong iss", signed(hdr, pl.set("iss", `"https://evil.test"`)), Access, ErrIssuer},
		{"wrong aud", signed(hdr, pl.set("aud", `"other"`)), Access, ErrAudience},
		{"aud array without ours", signed(hdr, pl.set("aud", `["a","b"]`)), Access, ErrAudience},

		// claim types
		{"string exp", signed(hdr, pl.set("exp", strconv.Quote(unix(testNow.Add(time.Hour))))), Access, ErrMalformed},
		{"string iat", signed(hdr, pl.set("iat", strconv.Quote(unix(testNow)))), Access, ErrMalformed},
		{"string nbf", signed(hdr, pl.set("nbf", strconv.Quote(unix(testNow)))), Access, ErrMalformed},
		{"negative exp", signed(hdr, pl.set("exp", `-1`)), Access, ErrMalformed},
		{"huge exp", signed(hdr, pl.set("exp", `1e300`)), Access, ErrMalformed},
		{"bool exp", signed(hdr, pl.set("exp", `true`)), Access, ErrMalformed},
		{"numeric iss", signed(hdr, pl.set("iss", `1`)), Access, ErrMalformed},
		{"numeric aud element", signed(hdr, pl.set("aud", `["gatehouse",1]`)), Access, ErrMalformed},
		{"roles not strings", signed(hdr, pl.set("roles", `[1]`)), Access, ErrMalformed},
		{"payload array", craft(t, hdr.json(), `[1]`, ed, ""), Access, ErrMalformed},
		{"payload trailing data", craft(t, hdr.json(), pl.json()+`{}`, ed, ""), Access, ErrMalformed},
		{"payload invalid UTF-8", craft(t, hdr.json(), pl.set("username", "\"\xff\"").json(), ed, ""), Access, ErrMalformed},

		// duplicates and case folding
		{"duplicate sub", signed(hdr, pl.add("sub", `"admin"`)), Access, ErrMalformed},
		{"duplicate exp", signed(hdr, pl.add("exp", unix(testNow.Add(time.Hour)))), Access, ErrMalformed},
		{"duplicate by case", signed(hdr, pl.add("SUB", `"admin"`)), Access, ErrMalformed},
		{"folded claim name", signed(hdr, pl.without("sub").add("Sub", `"admin"`)), Access, ErrMalformed},
		{"unicode folded claim name", signed(hdr, pl.without("sub").add("ſub", `"admin"`)), Access, ErrMalformed},
		{"duplicate nested", signed(hdr, pl.set("x", `{"a":1,"a":2}`)), Access, ErrMalformed},
		{"duplicate header kid", signed(hdr.add("kid", `"ec-1"`), pl), Access, ErrMalformed},
		{"duplicate header alg", signed(hdr.add("alg", `"none"`), pl), Access, ErrMalformed},
		{"duplicate header escaped", craft(t, `{"alg":"EdDSA","kid":"ed-1","typ":"at+jwt","t\u0079p":"refresh+jwt"}`, pl.json(), ed, ""), Access, ErrMalformed},
		{"duplicate claim escaped", craft(t, hdr.json(), strings.TrimSuffix(pl.json(), "}")+`,"s\u0075b":"admin"}`, ed, ""), Access, ErrMalformed},

		// typ
		{"refresh as access", mustSign(t, ed, baseClaims(Refresh)), Access, ErrWrongType},
		{"mfa as access", mustSign(t, ed, baseClaims(MFA)), Access, ErrWrongType},
		{"access as refresh", valid, Refresh, ErrWrongType},
		{"access as mfa", valid, MFA, ErrWrongType},
		{"mfa as refresh", mustSign(t, ed, baseClaims(MFA)), Refresh, ErrWrongType},
		{"no typ", signed(hdr.without("typ"), pl), Access, ErrWrongType},
		{"typ JWT", signed(hdr.set("typ", `"JWT"`), pl), Access, ErrWrongType},
		{"typ application/at+jwt", signed(hdr.set("typ", `"application/at+jwt"`), pl), Access, ErrWrongType},
		{"typ not a string", signed(hdr.set("typ", `1`), pl), Access, ErrMalformed},
		{"unknown wanted type", valid, Type("JWT"), ErrWrongType},

		// keys and algorithms
		{"unknown kid", signed(hdr.set("kid", `"nope"`), pl), Access, ErrUnknownKey},
		{"no kid", signed(hdr.without("kid"), pl), Access, ErrUnknownKey},
		{"empty kid", signed(hdr.set("kid", `""`), pl), Access, ErrUnknownKey},
		{"kid as path", signed(hdr.set("kid", `"../../etc/passwd"`), pl), Access, ErrUnknownKey},
		{"alg none, empty signature", craft(t, hdr.set("alg", `"none"`).json(), pl.json(), nil, ""), Access, ErrMalformed},
		{"alg none", craft(t, hdr.set("alg", `"none"`).json(), pl.json(), nil, "AAAA"), Access, ErrAlgorithm},
		{"alg NONE", craft(t, hdr.set("alg", `"NONE"`).json(), pl.json(), nil, "AAAA"), Access, ErrAlgorithm},
		{"alg None no kid", craft(t, hdr.set("alg", `"None"`).without("kid").json(), pl.json(), nil, "AAAA"), Access, ErrAlgorithm},
		{"no alg", signed(hdr.without("alg"), pl), Access, ErrAlgorithm},
		{"alg eddsa lower case", signed(hdr.set("alg", `"eddsa"`), pl), Access, ErrAlgorithm},
		{"alg ES256 for EdDSA key", craft(t, stdHeader(ec, Access).set("kid", `"ed-1"`).json(), pl.json(), ec, ""), Access, ErrAlgorithm},
		{"alg PS256", signed(hdr.set("alg", `"PS256"`).set("kid", `"rsa-1"`), pl), Access, ErrAlgorithm},
		{"HS256 with Ed25519 public key bytes", hs256With("ed-1", fk.ed.public.(ed25519PublicKey)), Access, ErrAlgorithm},
		{"HS256 with Ed25519 public PEM", hs256With("ed-1", pubPEM(fk.ed)), Access, ErrAlgorithm},
		{"HS256 with ECDSA public point", hs256With("ec-1", ecPoint), Access, ErrAlgorithm},
		{"HS256 with ECDSA public PEM", hs256With("ec-1", pubPEM(fk.ec)), Access, ErrAlgorithm},
		{"HS256 with RSA public PEM", hs256With("rsa-1", pubPEM(fk.rsa)), Access, ErrAlgorithm},
		{"jwk header with attacker key", craft(t, hdr.set("jwk", fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":%q}`, b64(attacker.public.(ed25519PublicKey)))).json(), pl.json(), attacker, ""), Access, ErrSignature},
		{"x5c header with attacker key", craft(t, hdr.set("x5c", `["MIIB"]`).json(), pl.json(), attacker, ""), Access, ErrSignature},
		{"crit header", signed(hdr.set("crit", `["exp"]`).set("exp", `1`), pl), Access, ErrMalformed},
		{"empty crit header", signed(hdr.set("crit", `[]`), pl), Access, ErrMalformed},
		{"b64 false with crit", signed(hdr.set("b64", `false`).set("crit", `["b64"]`), pl), Access, ErrMalformed},

		// integrity
		{"tampered payload", vh + "." + b64([]byte(pl.set("sub", `"admin"`).json())) + "." + vs, Access, ErrSignature},
		{"tampered signature", vh + "." + vp + "." + flipChar(vs, 3), Access, ErrSignature},
		{"signature from other token", vh + "." + vp + "." + sigOf(mustSign(t, ed, baseClaims(Refresh))), Access, ErrSignature},
		{"truncated signature", vh + "." + vp + "." + vs[:84], Access, ErrSignature},
		{"HS256 token for HMAC-less set", craft(t, stdHeader(fk.hmac, Access).json(), pl.json(), fk.hmac, ""), Access, ErrUnknownKey},

		// encoding
		{"header padded", vh + "=." + vp + "." + vs, Access, ErrMalformed},
		{"signature padded", vh + "." + vp + "." + vs + "==", Access, ErrMalformed},
		{"std alphabet +", vh + "." + vp + "." + strings.Replace(vs, vs[:1], "+", 1), Access, ErrMalformed},
		{"std alphabet /", vh + "." + vp + "." + strings.Replace(vs, vs[:1], "/", 1), Access, ErrMalformed},
		{"non-canonical trailing bits", vh + "." + vp + "." + vs[:len(vs)-1] + nextB64(vs[len(vs)-1]), Access, ErrMalformed},
		{"non-canonical header bits", nonCanonical(t, vh) + "." + vp + "." + vs, Access, ErrMalformed},
		{"impossible length", vh + "." + vp + "." + vs + "AAA", Access, ErrMalformed},
		{"space inside", vh + "." + vp + " ." + vs, Access, ErrMalformed},
		{"leading space", " " + valid, Access, ErrMalformed},
		{"trailing newline", valid + "\n", Access, ErrMalformed},
		{"bearer prefix", "Bearer " + valid, Access, ErrMalformed},
		{"two segments", vh + "." + vp, Access, ErrMalformed},
		{"four segments", valid + "." + vs, Access, ErrMalformed},
		{"empty header", "." + vp + "." + vs, Access, ErrMalformed},
		{"empty payload", vh + ".." + vs, Access, ErrMalformed},
		{"empty signature", vh + "." + vp + ".", Access, ErrMalformed},
		{"dots only", "..", Access, ErrMalformed},
		{"empty", "", Access, ErrMalformed},
		{"header not JSON", b64([]byte("alg")) + "." + vp + "." + vs, Access, ErrMalformed},
		{"header array", b64([]byte(`["alg"]`)) + "." + vp + "." + vs, Access, ErrMalformed},
		{"oversize", strings.Repeat("A", MaxTokenSize+1), Access, ErrTooLarge},
		{"oversize valid shape", signed(hdr, pl.set("pad", strconv.Quote(strings.Repeat("x", MaxTokenSize)))), Access, ErrTooLarge},
		{"max size not too large", strings.Repeat("A", MaxTokenSize), Access, ErrMalformed},
	}
}

func TestVerify(t *testing.T) {
	tests := verifyCases(t)
	v := testVerifier(t, allKeys())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(tc.raw, tc.want)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if c.Subject == "" || c.ID == "" || c.SessionID == "" || c.Type != tc.want {
					t.Fatalf("claims incomplete: %+v", c)
				}
				return
			}
			t.Logf("%v", err)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Verify error = %v, want %v", err, tc.err)
			}
			if c != nil {
				t.Fatalf("claims returned with error: %+v", c)
			}
			if got, want := Reason(err), Reason(tc.err); got != want {
				t.Fatalf("Reason = %q, want %q", got, want)
			}
		})
	}
}

func TestVerifyClaimsRoundTrip(t *testing.T) {
	fk := testKeys()
	for _, k := range []*key{fk.ed, fk.ec, fk.rsa, fk.hmac} {
		t.Run(k.alg, func(t *testing.T) {
			in := baseClaims(Access)
			raw := mustSign(t, k, in)
			got, err := testVerifier(t, keySet(k)).Verify(raw, Access)
			if err != nil {
				t.Fatal(err)
			}
			if got.Issuer != in.Issuer || got.Subject != in.Subject || got.Audience != in.Audience ||
				got.SessionID != in.SessionID || got.Username != in.Username || got.ID == "" ||
				strings.Join(got.Roles, ",") != "user,admin" ||
				!got.IssuedAt.Equal(in.IssuedAt) || !got.ExpiresAt.Equal(in.ExpiresAt) {
				t.Fatalf("got %+v, signed %+v", got, in)
			}
			h, _, _ := splitRaw(raw)
			hb, _ := decodeSegment(h)
			want := fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":"at+jwt"}`, k.alg, k.kid)
			if string(hb) != want {
				t.Fatalf("header %s, want %s", hb, want)
			}
		})
	}
}

func TestVerifierOptions(t *testing.T) {
	fk := testKeys()
	expiredBy := func(d time.Duration) string {
		c := baseClaims(Access)
		c.IssuedAt, c.ExpiresAt = testNow.Add(-time.Hour), testNow.Add(-d)
		return mustSign(t, fk.ed, c)
	}
	tests := []struct {
		name string
		o    VerifierOptions
		raw  string
		err  error
	}{
		{"leeway clamped to 30s", VerifierOptions{Issuer: testIss, Audience: testAud, Leeway: time.Hour, Now: fixedNow}, expiredBy(31 * time.Second), ErrExpired},
		{"small leeway kept", VerifierOptions{Issuer: testIss, Audience: testAud, Leeway: 5 * time.Second, Now: fixedNow}, expiredBy(6 * time.Second), ErrExpired},
		{"small leeway inside", VerifierOptions{Issuer: testIss, Audience: testAud, Leeway: 5 * time.Second, Now: fixedNow}, expiredBy(4 * time.Second), nil},
		{"negative leeway is none", VerifierOptions{Issuer: testIss, Audience: testAud, Leeway: -1, Now: fixedNow}, expiredBy(time.Second), ErrExpired},
		{"no issuer fails closed", VerifierOptions{Audience: testAud, Now: fixedNow}, mustSign(t, fk.ed, baseClaims(Access)), ErrIssuer},
		{"no audience fails closed", VerifierOptions{Issuer: testIss, Now: fixedNow}, mustSign(t, fk.ed, baseClaims(Access)), ErrAudience},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(allKeys(), tc.o).Verify(tc.raw, Access)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
	t.Run("nil key set fails closed", func(t *testing.T) {
		_, err := NewVerifier(nil, VerifierOptions{Issuer: testIss, Audience: testAud}).Verify(mustSign(t, fk.ed, baseClaims(Access)), Access)
		if !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrTooLarge, "token_too_large"},
		{ErrMalformed, "token_malformed"},
		{ErrUnknownKey, "token_unknown_key"},
		{ErrAlgorithm, "token_algorithm"},
		{ErrSignature, "token_signature"},
		{ErrExpired, "token_expired"},
		{ErrNotYetValid, "token_not_yet_valid"},
		{ErrWrongType, "token_wrong_type"},
		{ErrClaims, "token_claims"},
		{ErrIssuer, "token_issuer"},
		{ErrAudience, "token_audience"},
		{fmt.Errorf("context: %w", ErrExpired), "token_expired"},
		{errors.New("something new"), "token_malformed"},
	}
	for _, tc := range tests {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func splitRaw(raw string) (h, p, s string) {
	parts := strings.Split(raw, ".")
	return parts[0], parts[1], parts[2]
}

func sigOf(raw string) string { _, _, s := splitRaw(raw); return s }

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// flipChar changes the i-th character to another alphabet character.
func flipChar(s string, i int) string {
	c := strings.IndexByte(b64Alphabet, s[i])
	return s[:i] + string(b64Alphabet[(c+1)%64]) + s[i+1:]
}

// nextB64 is the following alphabet character: the same decoded bytes when
// only unused trailing bits change.
func nextB64(c byte) string {
	return string(b64Alphabet[(strings.IndexByte(b64Alphabet, c)+1)%64])
}

// nonCanonical re-spells a segment with non-zero unused trailing bits, which
// lenient decoders read as the same bytes.
func nonCanonical(t testing.TB, seg string) string {
	t.Helper()
	if len(seg)%4 == 0 {
		t.Fatalf("segment %q has no unused bits", seg)
	}
	return seg[:len(seg)-1] + nextB64(seg[len(seg)-1])
}

// One Verifier serves every request goroutine; run with -race.
func TestVerifyConcurrent(t *testing.T) {
	fk := testKeys()
	v := testVerifier(t, allKeys())
	toks := []string{mustSign(t, fk.ed, baseClaims(Access)), mustSign(t, fk.ec, baseClaims(Access)), mustSign(t, fk.rsa, baseClaims(Access))}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			var err error
			for i := 0; i < 20 && err == nil; i++ {
				_, err = v.Verify(toks[(g+i)%len(toks)], Access)
				if _, rerr := v.Verify(toks[i%len(toks)], Refresh); !errors.Is(rerr, ErrWrongType) {
					err = fmt.Errorf("refresh check: %v", rerr)
				}
			}
			done <- err
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
