// Package token signs and verifies Gatehouse's JWTs (compact JWS).
//
// Keys come only from our configuration (LoadKeyDir, GenerateKeySet,
// NewHMACKeySet); each key has one kid and one algorithm, and a token's "alg"
// must equal the algorithm of the key its "kid" names. Tokens are explicitly
// typed (header "typ": at+jwt, refresh+jwt, mfa+jwt) and a Verifier accepts
// only the type asked for. See LoadKeyDir for kid naming and key rotation,
// and Verifier.Verify for the list of checks.
//
// Import direction: token depends on the standard library and golang-jwt only.
package token
