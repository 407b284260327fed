package portal

import (
	"errors"
	"fmt"
	"time"

	"gatehouse/issuer"
)

// sentence is what a person reads for an issuer error: a plain sentence that says what happened and what to do,
// never a code, a cause or a stack. Narrow kinds are tested before the broad ones they belong to
// (ErrCodeReplayed is an ErrMFACodeInvalid; ErrMFATokenExpired an ErrMFATokenInvalid, an ErrInvalidToken).
func sentence(err error, now time.Time) string {
	var rl *issuer.RateLimitedError
	switch {
	case errors.As(err, &rl):
		wait := rl.RetryAfter
		if !rl.Until.IsZero() && rl.Until.After(now) {
			wait = rl.Until.Sub(now)
		}
		return "Too many attempts. Try again in " + waitPhrase(wait) + "."
	case errors.Is(err, issuer.ErrRateLimited):
		return "Too many attempts. Try again later."
	case errors.Is(err, issuer.ErrInvalidCredentials):
		return "The username or password is not right. Check them and try again."
	case errors.Is(err, issuer.ErrCodeReplayed):
		return "That code has already been used. Wait for your app to show a new code, then enter it."
	case errors.Is(err, issuer.ErrMFACodeInvalid):
		return "That code is not right. Check your authenticator app, or use one of your backup codes."
	case errors.Is(err, issuer.ErrMFATokenExpired):
		return "Your sign-in expired before the code was entered. Please sign in again."
	case errors.Is(err, issuer.ErrMFATokenInvalid):
		return "This sign-in can no longer be completed. Please sign in again."
	case errors.Is(err, issuer.ErrMFASetupNotFound):
		return "The setup expired after 5 minutes. Start again to get a new QR code."
	case errors.Is(err, issuer.ErrMFAAlreadyEnabled):
		return "Two-step verification is already on."
	case errors.Is(err, issuer.ErrMFANotEnabled):
		return "Two-step verification is already off."
	case errors.Is(err, issuer.ErrInvalidToken):
		return "You have been signed out. Please sign in again."
	case errors.Is(err, issuer.ErrForbidden):
		return "That session belongs to someone else."
	case errors.Is(err, issuer.ErrNotFound):
		return "That session has already ended."
	case errors.Is(err, issuer.ErrUnavailable):
		return "The service is busy right now. Please try again in a moment."
	case errors.Is(err, issuer.ErrInvalidRequest):
		return "Some of the information was missing or not valid. Please check the form and try again."
	}
	return "Something went wrong on our side. Please try again."
}

// waitPhrase renders a lockout's remaining time the way a person says it, rounding up so "Try again in 4 minutes"
// is never too early: 40s → "40 seconds", 61s → "2 minutes", 3h → "3 hours".
func waitPhrase(d time.Duration) string {
	switch {
	case d < time.Second:
		return "1 second"
	case d < time.Minute:
		return plural(int((d+time.Second-1)/time.Second), "second")
	case d <= 90*time.Minute:
		return plural(int((d+time.Minute-1)/time.Minute), "minute")
	}
	return plural(int((d+time.Hour-1)/time.Hour), "hour")
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
