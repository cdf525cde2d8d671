package node

import (
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries are read: a
// header stuffed with thousands of entries costs no more than this.
const maxForwardedHops = 32

// clientAddr is who sent a request to the public listener, as far as the
// node can tell.
type clientAddr struct {
	// IP is the client's address: the socket's peer, or, when the peer is a
	// trusted proxy, the rightmost X-Forwarded-For entry that is not one.
	// Invalid when the socket address does not parse (never on a real
	// listener).
	IP netip.Addr
	// HTTPS is true when the request came over TLS, or through a trusted
	// proxy that says (X-Forwarded-Proto) it did.
	HTTPS bool
}

// String is the address in the form tickets carry ("" when unknown).
func (c clientAddr) String() string {
	if !c.IP.IsValid() {
		return ""
	}
	return c.IP.String()
}

// clientOf works out who sent r. X-Forwarded-For and X-Forwarded-Proto are
// believed only when the socket peer is inside one of trusted; entries are
// read from the right (the nearest proxy) and every trusted one is skipped,
// so a client cannot choose its address by sending the header itself. An
// entry that is not an address stops the walk at the last one believed.
func clientOf(r *http.Request, trusted []netip.Prefix) clientAddr {
	c := clientAddr{HTTPS: r.TLS != nil}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return c
	}
	c.IP = ap.Addr().Unmap()
	if !inPrefixes(c.IP, trusted) {
		return c
	}
	if proto := firstForwarded(r.Header.Values("X-Forwarded-Proto")); strings.EqualFold(proto, "https") {
		c.HTTPS = true
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(hops[i])
		if err != nil {
			break
		}
		c.IP = ip.Unmap().WithZone("")
		if !inPrefixes(c.IP, trusted) {
			break
		}
	}
	return c
}

// forwardedFor splits X-Forwarded-For header lines into entries, left to
// right, keeping at most the maxForwardedHops rightmost ones.
func forwardedFor(lines []string) []string {
	var hops []string
	for _, l := range lines {
		for e := range strings.SplitSeq(l, ",") {
			hops = append(hops, strings.TrimSpace(e))
		}
	}
	if len(hops) > maxForwardedHops {
		hops = hops[len(hops)-maxForwardedHops:]
	}
	return hops
}

// firstForwarded is the first entry of a comma-separated forwarded header:
// the value the outermost proxy set.
func firstForwarded(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	first, _, _ := strings.Cut(lines[0], ",")
	return strings.TrimSpace(first)
}

func inPrefixes(ip netip.Addr, pfx []netip.Prefix) bool {
	for _, p := range pfx {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// sameIP reports whether two address strings name the same address
// (IPv4-mapped IPv6 equals its IPv4 form). Anything that does not parse
// matches nothing.
func sameIP(a, b string) bool {
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x.Unmap().WithZone("") == y.Unmap().WithZone("")
}
