package portal

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"sync"
	"time"

	"gatehouse/issuer"
	"gatehouse/token"
)

// refresh is GET <prefix>/refresh?return_to=URL, where the sidecar sends a browser whose access cookie expired.
// With a refresh cookie it rotates the tokens (issuer.Refresh), sets both cookies and redirects (302) to the
// return URL; without one, or when the refresh is refused, it clears the cookies and redirects to sign-in with
// the same return URL. An invalid return URL becomes the portal home.
//
// It is a GET with an effect because a redirect can only make a GET. That is safe: it needs the HttpOnly refresh
// cookie, which SameSite=Lax sends on top-level navigations only, it can only rotate the caller's own tokens,
// and it only redirects to allowed return URLs.
func (p *Portal) refresh(w http.ResponseWriter, r *http.Request) error {
	ret := p.returnURL(r.URL.Query().Get("return_to"))
	raw, ok := singleCookie(r, p.cfg.RefreshCookie)
	if !ok || raw == "" || len(raw) > token.MaxTokenSize {
		p.clearSession(w)
		http.Redirect(w, r, p.withReturn(p.SignInURL(), ret), http.StatusFound)
		return nil
	}
	t, err := p.refresher.refresh(r.Context(), raw, p.cfg.ClientIP(r), r.UserAgent())
	switch {
	case errors.Is(err, issuer.ErrInvalidToken), errors.Is(err, issuer.ErrInvalidRequest):
		p.clearSession(w)
		http.Redirect(w, r, p.withReturn(p.SignInURL(), ret), http.StatusFound)
		return nil
	case err != nil:
		return &pageError{status: http.StatusServiceUnavailable, message: sentence(err, p.now()),
			back: p.withReturn(p.RefreshURL(), ret), backLabel: "Try again", cause: err}
	}
	if err := p.setSession(w, t); err != nil {
		return err
	}
	http.Redirect(w, r, ret, http.StatusFound)
	return nil
}

// refreshGrace is how long the result of a refresh is handed again to the same browser presenting the same
// refresh token.
//
// Why: the issuer rotates refresh tokens and treats a spent one presented again as theft, ending the session.
// A browser easily presents one twice: two tabs whose access cookie expired together both land here with the
// old refresh cookie before either response has replaced it. Without a grace the second tab would sign the person
// out everywhere. So concurrent and closely following refreshes with one token, from the same client IP and
// User-Agent, share one issuer.Refresh and its result. Anyone else presenting the token (another IP or
// User-Agent), or anyone after the grace, reaches the issuer, whose reuse detection is untouched. The grace is
// per portal instance: behind a load balancer, tabs that hit different instances still race (sticky sessions
// avoid it).
const refreshGrace = 10 * time.Second

// maxRecentRefreshes bounds the grace table; past it, refreshes simply go to the issuer without a grace.
const maxRecentRefreshes = 10_000

type refresher struct {
	iss Issuer
	now func() time.Time

	mu     sync.Mutex
	recent map[[sha256.Size]byte]*refreshCall // by SHA-256 of the refresh token
}

type refreshCall struct {
	client [sha256.Size]byte // SHA-256 of client IP and User-Agent
	done   chan struct{}
	at     time.Time // when it finished
	tokens issuer.Tokens
	err    error
}

func newRefresher(iss Issuer, now func() time.Time) *refresher {
	return &refresher{iss: iss, now: now, recent: map[[sha256.Size]byte]*refreshCall{}}
}

func (f *refresher) refresh(ctx context.Context, raw, ip, ua string) (issuer.Tokens, error) {
	key := sha256.Sum256([]byte(raw))
	client := sha256.Sum256([]byte(ip + "\x00" + ua))
	f.mu.Lock()
	if c := f.recent[key]; c != nil && c.client == client {
		select {
		case <-c.done:
			if f.now().Sub(c.at) < refreshGrace && c.err == nil {
				f.mu.Unlock()
				return c.tokens, nil
			}
		default:
			f.mu.Unlock()
			select {
			case <-c.done:
				return c.tokens, c.err
			case <-ctx.Done():
				return issuer.Tokens{}, issuer.ErrUnavailable
			}
		}
	}
	if len(f.recent) >= 256 {
		f.prune()
	}
	c := &refreshCall{client: client, done: make(chan struct{})}
	cached := len(f.recent) < maxRecentRefreshes
	if cached {
		f.recent[key] = c
	}
	f.mu.Unlock()

	c.tokens, c.err = f.iss.Refresh(ctx, raw, ip, ua)
	f.mu.Lock()
	c.at = f.now()
	if c.err != nil && f.recent[key] == c {
		delete(f.recent, key) // a refused token goes to the issuer again, which refuses it again
	}
	close(c.done)
	f.mu.Unlock()
	return c.tokens, c.err
}

// prune drops finished entries past the grace. Called with mu held.
func (f *refresher) prune() {
	now := f.now()
	for k, c := range f.recent {
		select {
		case <-c.done:
			if now.Sub(c.at) >= refreshGrace {
				delete(f.recent, k)
			}
		default:
		}
	}
}
