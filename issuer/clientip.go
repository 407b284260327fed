package issuer

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientIP returns the address failures are counted against and sessions record.
//
// It is the socket peer, unless the peer is a trusted proxy: then X-Forwarded-For is walked from the right
// (each proxy appends the address it received the request from), trusted hops are skipped, and the first untrusted
// address is the client. Everything left of it was written by someone we do not trust and is ignored. When every
// hop is trusted the leftmost is the client. A malformed entry on the way means a proxy we trust did not write
// it, so we fall back to the peer rather than guess. Several X-Forwarded-For lines count as one comma list, in
// order.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseAddr(r.RemoteAddr)
	if !ok {
		return "" // not a TCP peer (tests, unix sockets): nothing to count by
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return peer.String()
	}
	hops := strings.Split(strings.Join(xff, ","), ",")
	var client netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil || a.Zone() != "" {
			return peer.String()
		}
		client = a.Unmap()
		if !isTrusted(client, trusted) {
			break
		}
	}
	return client.String()
}

// parseAddr reads RemoteAddr ("ip:port", or a bare IP some servers and tests set).
func parseAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
