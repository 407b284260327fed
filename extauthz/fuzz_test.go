package extauthz

import (
	"context"
	"testing"

	"gatehouse/token"
)

// FuzzCheckAuthorization feeds hostile Authorization values and paths through the whole decision. Whatever
// arrives, Check answers a CheckResponse (never an error or panic) and allows only the one token we signed.
func FuzzCheckAuthorization(f *testing.F) {
	h := newHarness(&testing.T{})
	valid := h.sign(h.claims(token.Access, "user"))
	for _, s := range []string{"Bearer " + valid, "bearer " + valid, "Bearer", "Bearer  x.y.z", "Basic dXNlcjpwdw==",
		"Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer a.b.c.d", "Bearer " + valid + "," + valid, "\x00\xff"} {
		f.Add(s, "/me")
	}
	f.Add("Bearer "+valid, "/users/profile?x=1")
	f.Add("Bearer "+valid, "/auth/%2e%2e/me")
	f.Fuzz(func(t *testing.T, authz, path string) {
		req := NewCheckRequest("GET", "api.example.com", path, map[string]string{"authorization": authz})
		resp, err := h.srv.Check(context.Background(), req)
		if err != nil || resp == nil {
			t.Fatalf("Check error: %v", err)
		}
		if resp.GetOkResponse() == nil {
			return
		}
		r := rule(resp)
		if r == "auth" {
			return // public
		}
		var rq request
		rq.fill(req)
		tok, why := bearerToken(&rq)
		if why != "" || tok != valid {
			t.Fatalf("allowed %q on %q (rule %s) with a token we did not sign", authz, path, r)
		}
	})
}

// bearerToken is the token the decider would verify for h: one Bearer token of RFC 6750 b64token characters.
func bearerToken(h *request) (tok, reason string) {
	tok, reason = bearerCandidate(h)
	if reason == "" && !token.IsB64Token(tok) {
		return "", ReasonTokenInvalid
	}
	return tok, reason
}
