package node

import (
	"net/http"
	"net/url"
	"time"
)

// Where a step sends the browser when the next site may have died since the
// hand-off was planned (docs/handoff.md, "A site that dies mid-hand-off"):
// not one Location but every place it may go, in order, each with the
// health URL a browser probes before it goes there. The public listener
// turns them into a step page (step_page.go) for a browser's navigation
// whose next site the node's own probe finds not answering (step_probe.go);
// a plain 303 to the first goes to everything else.

// probeTimeout is how long a step page waits for the next site's health
// URL before it skips the site: a stopped web server refuses at once, a
// machine that is gone answers nothing, and the browser must still be home
// within the ticket's minute after a few of those.
const probeTimeout = 4 * time.Second

// pathProbe is the endpoint a step page probes: answered by the node
// through the site's own proxy, with CORS for the member origins, so a
// proxy answering 502 for a dead node fails the probe as a dead site does.
const pathProbe = publicPrefix + "healthz"

// onward is one place a step may send the browser: the URL, and the URL
// the step page fetches first to know the site answers ("" for a link on
// this very site, which is answering now).
type onward struct {
	URL   string
	Probe string
	// site is the name of the member whose site holds URL ("" for this
	// site): the node probes that member's site URL (stepPageNeeded).
	site string
}

// onwardTo is the onward of link on site s.
func (h *handoff) onwardTo(s site, link string) onward {
	if s.Name == h.Name {
		return onward{URL: link}
	}
	return onward{URL: link, Probe: s.URL.String() + pathProbe, site: s.Name}
}

// onwardURL is the onward of u, a URL already checked to be under a member
// site of sites (a next or a return URL): probed on the site that holds it.
func (h *handoff) onwardURL(sites []site, u string) onward {
	pu, err := url.Parse(u)
	if err != nil || h.self.contains(pu) {
		return onward{URL: u}
	}
	for _, s := range sites {
		if s.contains(pu) {
			return h.onwardTo(s, u)
		}
	}
	return onward{URL: u}
}

// routeOnward lists the sites of names (a route's rest, in order) the
// browser may be sent to now (nextSite; older as mayVisit's), each as
// link(site). A site left out is logged and counted once: by the step that
// would have sent the browser there first, so only those before the first
// site kept.
func (h *handoff) routeOnward(sites []site, names []string, link func(site) string, older bool) []onward {
	var out []onward
	for _, name := range names {
		var s site
		var ok bool
		if len(out) == 0 {
			s, ok = h.nextSite(sites, name, older)
		} else {
			s, ok = siteNamed(sites, name)
			if ok && s.Name != h.Name {
				_, ok = h.mayVisit(name, older)
			} else {
				ok = false
			}
		}
		if ok {
			out = append(out, h.onwardTo(s, link(s)))
		}
	}
	return out
}

// redirectOnward is a 303 to the first of on, with the rest as where a
// step page goes when it does not answer. on must not be empty.
func redirectOnward(on []onward, cookies ...*http.Cookie) stepResult {
	r := redirectTo(on[0].URL, cookies...)
	r.Onward = on
	return r
}
