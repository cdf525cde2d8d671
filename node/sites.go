package node

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/ussync/ussync/gossip"
)

// The member sites (the member list is the list of sites) and the URLs a
// browser may be sent to.

// site is one member site: a node name and its parsed site URL.
type site struct {
	Name string
	URL  *url.URL // absolute http(s), path ending in "/"
	// Origin is scheme://host[:port] in lower case, without a default port:
	// what browsers send in Origin.
	Origin string
}

// parseSite parses a member's advertised site URL; a URL that is not
// absolute http(s) with a path ending in "/" is no site.
func parseSite(name, raw string) (site, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasSuffix(u.Path, "/") ||
		!cleanPath(u) || !plainHost(u.Hostname()) {
		return site{}, false
	}
	return site{Name: name, URL: u, Origin: originOf(u)}, true
}

// plainHost reports whether h is an IP address or a DNS name of letters,
// digits, '-', '_' and '.': what may go into an origin, a CSP source and a
// Location header as is.
func plainHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// originOf is u's origin as a browser serializes it.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80") && !(scheme == "https" && p == "443") {
		host += ":" + p
	}
	return scheme + "://" + host
}

// contains reports whether u is this site's URL or under it: same origin,
// and a path inside the site's path (a site at /blog/ contains /blog and
// /blog/x, not /blogx).
func (s site) contains(u *url.URL) bool {
	if originOf(u) != s.Origin {
		return false
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	return strings.HasPrefix(p, s.URL.Path) || p+"/" == s.URL.Path
}

// link is the URL of one of the site's public endpoints with a query.
func (s site) link(path string, q url.Values) string {
	return s.URL.String() + path + "?" + q.Encode()
}

// https reports whether the site is served over https.
func (s site) https() bool { return s.URL.Scheme == "https" }

// localhost reports whether the site's host is one browsers treat as a
// secure context over plain http (localhost, *.localhost, loopback).
func (s site) localhost() bool {
	h := strings.ToLower(s.URL.Hostname())
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "127.0.0.1" || h == "::1"
}

// siteList is a member list read at a time (wall clock, not the store's).
type siteList struct {
	at time.Time
	// ver is the members' version (serviceConfig.MembersVersion) read
	// before the list: a list whose version moved since is not reused.
	ver   uint64
	sites []site
	// route are the other sites a hand-off goes through: those of sites
	// that speak this node's hand-off (handoffVersion) and are known to be
	// good (gossip.Member.Good: their own node's last check of the site
	// passed and its reports are fresh, or it reports nothing).
	// skipped are the others, by name, with why.
	route   []site
	skipped map[string]string
	// older are the sites skipped only for their older hand-off
	// (skipOlderVersion) that are good otherwise: a chain an older node
	// made may still go on through them, by the sync step every version
	// has (mayVisit).
	older []site
}

// Why a live member site is left out of the hand-offs (siteList.skipped,
// ussync_handoff_sites_skipped_total's reason).
const (
	skipSiteDown  = "site_down"  // its node reports that its site does not answer
	skipSiteStale = "site_stale" // its node's reports stopped (crashed, or cut off)
	// skipOlderVersion: its node advertises an older hand-off protocol
	// than handoffVersion, or none (a version before the advertisement):
	// its site has no step this node's hand-off sends browsers to.
	skipOlderVersion = "older_version"
)

// handoffVersion is the browser hand-off protocol this node's site speaks,
// advertised in its gossip metadata (gossip.Config.Handoff). A member
// advertising less is left out of this node's hand-offs (skipOlderVersion)
// and stays a full member otherwise: it replicates, and its own
// hand-offs, and its links to this site, go on as its version makes them.
// Move it up when a change to the public endpoints would send an older
// site's browser to a step it does not have (docs/compatibility.md,
// "Tickets (browser hand-off)").
//
//   - 0: no advertisement (every version before it).
//   - 2: the two-pass chain through every site's bind step, with tickets
//     bound to the browser (docs/handoff.md). Version 1, the one-pass
//     chain of unbound tickets, was never advertised.
const handoffVersion = 2

// sites lists the live member sites, this one first, then the others by
// name, as they were at most sitesTTL ago. A member with an unusable site
// URL, or whose site an administrator revoked, is left out (it cannot be
// redirected to, framed by or handed a ticket); this site is always in,
// even before gossip has started. The slice is shared: read it, never change it.
func (h *handoff) sites() []site { return h.siteList().sites }

// routeSites lists the other sites a new hand-off goes through, by name:
// the live member sites known to be good (docs/operations.md, "A site that
// does not answer"). A site whose node reports it down, or whose reports
// stopped, is skipped: a browser sent there would not come back. Shared:
// read it, never change it.
func (h *handoff) routeSites() []site { return h.siteList().route }

// goodSite reports whether a hand-off may send a browser to the site name
// (one of routeSites).
func (h *handoff) goodSite(name string) bool {
	_, ok := siteNamed(h.siteList().route, name)
	return ok
}

// mayVisit reports whether a step may send a browser to the member site
// name now, and if not, why (a skip reason, "" for a site that is no live
// member). A site of routeSites may be; with older, so may a good site
// left out only for its older hand-off: older is for the sync step of a
// chain, which every version has, and whose route, when an older node
// made it, names older sites that redeem its tickets. The steps a new
// hand-off starts (bind, hop/ask) pass older false.
func (h *handoff) mayVisit(name string, older bool) (string, bool) {
	l := h.siteList()
	if _, ok := siteNamed(l.route, name); ok {
		return "", true
	}
	if _, ok := siteNamed(l.older, name); ok && older {
		return "", true
	}
	return l.skipped[name], false
}

// skipReason is why a live member site name is left out of the hand-offs
// (skipSiteDown, skipSiteStale, skipOlderVersion), or "" when it is not
// (or is no live member site).
func (h *handoff) skipReason(name string) string { return h.siteList().skipped[name] }

// siteList returns the member sites, reread when the members changed
// (a member joined, left or changed its metadata) or sitesTTL passed (a
// site's reports may have stopped meanwhile). A list reused across a change
// of members was the upgrade test's bug: a node that had just joined kept
// the list it read before its join, itself alone, for a second, and refused
// every redirect to the others' sites (400 bad_redirect).
func (h *handoff) siteList() *siteList {
	now := time.Now()
	ver := h.membersVersion()
	if l := h.cache.Load(); l != nil && l.ver == ver && now.Sub(l.at) < sitesTTL && !now.Before(l.at) {
		return l
	}
	l := h.loadSites(now)
	l.ver = ver
	h.cache.Store(l)
	return l
}

// membersVersion is serviceConfig.MembersVersion's, or 0.
func (h *handoff) membersVersion() uint64 {
	if h.Service == nil || h.Service.MembersVersion == nil {
		return 0
	}
	return h.Service.MembersVersion()
}

func (h *handoff) loadSites(now time.Time) *siteList {
	l := &siteList{at: now, sites: []site{h.self}, skipped: map[string]string{}}
	if h.Members == nil {
		return l
	}
	for _, m := range h.Members() {
		// A revoked site is no site: no redirect to it, no CORS from it,
		// no ticket for it (its own node is still listed first).
		if m.Name == h.Name || h.Service.Store.Site(m.Name).IsRevoked() {
			continue
		}
		s, ok := parseSite(m.Name, m.SiteURL)
		if !ok {
			continue
		}
		l.sites = append(l.sites, s)
		why := ""
		switch {
		case m.Good():
		case m.Site == gossip.SiteDown:
			why = skipSiteDown
		default:
			why = skipSiteStale
		}
		switch {
		case m.Handoff < handoffVersion:
			// Before its site's state: a site up and fresh is no use to
			// a browser sent to a step its site does not have (a 404 it
			// does not come back from).
			l.skipped[m.Name] = skipOlderVersion
			if why == "" {
				l.older = append(l.older, s)
			}
		case why == "":
			l.route = append(l.route, s)
		default:
			l.skipped[m.Name] = why
		}
	}
	return l
}

// siteNamed returns the member site of the node name.
func siteNamed(sites []site, name string) (site, bool) {
	for _, s := range sites {
		if s.Name == name {
			return s, true
		}
	}
	return site{}, false
}

// memberOrigin reports whether origin (an Origin header) is a member site's.
func memberOrigin(sites []site, origin string) bool {
	if origin == "" {
		return false
	}
	o := strings.ToLower(origin)
	for _, s := range sites {
		if s.Origin == o {
			return true
		}
	}
	return false
}

// parseRedirect parses a URL given as a redirect target (next, return,
// return_to). It must be absolute http(s), with no user info, no backslash,
// no control character and no dot segment or encoded slash or dot in its
// path, so that what is checked is what a browser will load.
func parseRedirect(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("empty")
	}
	if len(raw) > maxRedirectBytes {
		return nil, fmt.Errorf("longer than %d bytes", maxRedirectBytes)
	}
	if strings.ContainsAny(raw, "\\\t\r\n ") {
		return nil, errors.New("holds a backslash or white space")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("not an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("holds a user name")
	}
	if !cleanPath(u) {
		return nil, errors.New("its path has dot segments or encoded slashes")
	}
	return u, nil
}

// cleanPath reports whether u's path has no "." or ".." segment and no
// encoded '/', '\' or '.' that a server or browser might decode later.
func cleanPath(u *url.URL) bool {
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	ep := strings.ToLower(u.EscapedPath())
	return !strings.Contains(ep, "%2f") && !strings.Contains(ep, "%5c") && !strings.Contains(ep, "%2e")
}

func errBadRedirect(what, why string) error {
	return refuse(ErrBadRedirect, "%s %s", what, why)
}

// memberRedirect checks that raw is a URL under a member site's URL and
// returns it parsed; otherwise a 400 bad_redirect naming what (a parameter).
func memberRedirect(sites []site, what, raw string) (*url.URL, error) {
	u, err := parseRedirect(raw)
	if err != nil {
		return nil, errBadRedirect(what, "is not a usable URL: "+err.Error())
	}
	for _, s := range sites {
		if s.contains(u) {
			return u, nil
		}
	}
	return nil, errBadRedirect(what, "is not under a member site's URL")
}

// selfRedirect is memberRedirect restricted to this site.
func (h *handoff) selfRedirect(what, raw string) (*url.URL, error) {
	u, err := parseRedirect(raw)
	if err != nil {
		return nil, errBadRedirect(what, "is not a usable URL: "+err.Error())
	}
	if !h.self.contains(u) {
		return nil, errBadRedirect(what, "is not under this site's URL "+h.self.URL.String())
	}
	return u, nil
}
