package token

import "testing"

func BenchmarkVerify(b *testing.B) {
	fk := testKeys()
	v := testVerifier(b, keySet(fk.ed, fk.ec, fk.rsa, fk.hmac))
	for _, k := range []*key{fk.ed, fk.ec, fk.rsa, fk.hmac} {
		raw := mustSign(b, k, baseClaims(Access))
		b.Run(k.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(raw, Access); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Refusals before any signature work stay cheap.
	b.Run("refused/wrong-type", func(b *testing.B) {
		raw := mustSign(b, fk.ed, baseClaims(Refresh))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(raw, Access); err == nil {
				b.Fatal("verified")
			}
		}
	})
}

func BenchmarkSign(b *testing.B) {
	fk := testKeys()
	for _, k := range []*key{fk.ed, fk.ec, fk.rsa} {
		s := testSigner(b, k)
		b.Run(k.alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(baseClaims(Access)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
