package node

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// The browser's steps of the hand-off (docs/handoff.md): each takes what
// the browser sent (a query, its ussync cookies, its address) and answers
// where to send it next and which cookies to set. The public listener
// serves them as HTTP (public.go); a site that answers <site>ussync/v1/…
// itself (the WordPress plugin) calls them through the private API, POST
// /v1/handoff (api_handoff.go), and relays the answer: one call per step.

// Cookies of the hand-off, scoped to the site (docs/handoff.md,
// "Cookies"). On a site served over https at the root of its host they
// take the __Host- prefix (RFC 6265bis): Secure, Path=/, no Domain, so
// that no other host of the domain (a sibling sub-domain, a plain-http
// page) can set or overwrite them.
const (
	// cookieSession holds the browser's session token on this site: the
	// login's token on the site that logged in, a token of the site's own
	// (an alias) on the sites a hand-off brought it to.
	cookieSession = "ussync_session"
	// cookieChecked marks a browser that lazy mode just sent round the
	// other sites: its backend does not send it again before it expires.
	cookieChecked = "ussync_checked"
	// cookieNonce binds hand-offs to this browser: a random value the site
	// sets before a ticket is made for it, whose commitment the ticket
	// names (crypto.Binding).
	cookieNonce = "ussync_nonce"
	// hostPrefix is the cookie-name prefix of sites at an https root.
	hostPrefix = "__Host-"
)

// Paths of the steps, under <site path>.
const (
	pathBind  = publicPrefix + "bind"
	pathChain = publicPrefix + "chain"
)

// browser is what a step knows of the browser: its address and scheme, and
// the cookies it sent to this site (only the ussync ones are read).
type browser struct {
	client  clientAddr
	cookies []*http.Cookie
}

// browserOf is the browser of an HTTP request to the public listener.
func browserOf(r *http.Request, c clientAddr) *browser {
	return &browser{client: c, cookies: r.Cookies()}
}

// hostCookies reports whether the site's cookies take the __Host- prefix:
// served over https at the root of its host.
func (s site) hostCookies() bool { return s.https() && s.URL.Path == "/" }

// cookieName is the name of this site's cookie base (cookieSession, …).
func (h *handoff) cookieName(base string) string {
	if h.self.hostCookies() {
		return hostPrefix + base
	}
	return base
}

// cookieValues returns the values of the browser's cookies of base: under
// this site's name first, then under the other form (a cookie set before
// the site moved to, or from, an https root), at most maxCookieTries
// non-empty ones no longer than maxTokenBytes.
func (h *handoff) cookieValues(br *browser, base string) []string {
	names := []string{hostPrefix + base, base}
	if !h.self.hostCookies() {
		names[0], names[1] = base, hostPrefix+base
	}
	var out []string
	for _, n := range names {
		for _, c := range br.cookies {
			if c.Name == n && c.Value != "" && len(c.Value) <= maxTokenBytes && len(out) < maxCookieTries {
				out = append(out, c.Value)
			}
		}
	}
	return out
}

// cookie is a cookie of this site: HttpOnly, named and scoped for the site
// (the nonce and the verification page's token under <site
// path>ussync/v1/, unless they are __Host- cookies, which must have
// Path=/), Secure when secure. maxAge < 0 deletes it.
func (h *handoff) cookie(base, value string, maxAge int, sameSite http.SameSite, secure bool) *http.Cookie {
	path := h.self.URL.EscapedPath()
	if (base == cookieNonce || base == cookieVerify) && !h.self.hostCookies() {
		path += publicPrefix // sent to the steps only, not to every page
	}
	return &http.Cookie{
		Name:     h.cookieName(base),
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   secure || h.self.hostCookies(),
		SameSite: sameSite,
	}
}

// secure reports whether cookies set for br get Secure: the site is https,
// or the request came over TLS (directly or through a trusted proxy), or it
// is an iframe hand-off on a localhost site (browsers treat localhost as
// secure, and SameSite=None needs Secure).
func (h *handoff) secure(br *browser, iframe bool) bool {
	return h.self.https() || br.client.HTTPS || (iframe && h.self.localhost())
}

// sameSite is the SameSite of the hand-off's cookies: Lax at the top level
// (chain, lazy), None inside a cross-site iframe.
func sameSite(iframe bool) http.SameSite {
	if iframe {
		return http.SameSiteNoneMode
	}
	return http.SameSiteLaxMode
}

// nonceMaxAge is how long a nonce cookie lives: the first pass of a chain
// (a ticket TTL), the chain ticket's own TTL, and the clocks' offset.
func (h *handoff) nonceMaxAge() int {
	return int((2*h.policy().TicketTTL + h.MaxOffset + time.Second - 1) / time.Second)
}

// nonce returns the browser's nonce on this site (the one its cookie holds,
// or a new one) and the cookie that sets it (again: its life starts anew).
// Only this site makes nonces: one taken from a URL would let whoever wrote
// the URL choose it.
func (h *handoff) nonce(br *browser, iframe bool) (string, *http.Cookie, error) {
	n := ""
	for _, v := range h.cookieValues(br, cookieNonce) {
		if crypto.ValidNonce(v) {
			n = v
			break
		}
	}
	if n == "" {
		var err error
		if n, err = crypto.NewNonce(); err != nil {
			return "", nil, err
		}
	}
	return n, h.cookie(cookieNonce, n, h.nonceMaxAge(), sameSite(iframe), h.secure(br, iframe)), nil
}

// holdsNonce reports whether one of the browser's nonce cookies on this
// site commits to b.
func (h *handoff) holdsNonce(br *browser, b crypto.Binding) bool {
	ok := false
	for _, v := range h.cookieValues(br, cookieNonce) {
		ok = b.Matches(h.Name, v) || ok // every cookie compared: no early exit
	}
	return ok
}

// browserSession is an active session of a browser's cookie on this site.
type browserSession struct {
	Token   string
	Session session.Session
	User    session.User
}

// browserSessions returns the active sessions of the browser's session
// cookies on this site, in the order of cookieValues. A cookie is the
// login's token or an alias this site minted (service.session resolves
// both).
func (h *handoff) browserSessions(br *browser) ([]browserSession, error) {
	return browserSessionsOf(h.Service, h.cookieValues(br, cookieSession))
}

func browserSessionsOf(svc *service, tokens []string) ([]browserSession, error) {
	var out []browserSession
	now := svc.now()
	for _, tok := range tokens {
		s, u, err := svc.session(crypto.SessionID(tok))
		if errors.Is(err, session.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if s.StateIn(u, svc.Store.Site(s.Site), now) == session.StateActive {
			out = append(out, browserSession{Token: tok, Session: s, User: u})
		}
	}
	return out, nil
}

// stepResult is a step's answer: a redirect (303 to Location) or no
// content (204), the cookies to set, and, when a ticket was refused but the
// browser is sent on all the same, the refusal's code.
type stepResult struct {
	Status   int
	Location string
	Cookies  []*http.Cookie
	Refused  string
	// Onward, when set, lists every place the browser may go next, in
	// order, Location first: a browser's navigation gets a step page that
	// skips those whose site does not answer (step_onward.go). Never set
	// in an iframe, which strands no one.
	Onward []onward
	// Redeemed is the session a sync step handed to this site (nil: none).
	Redeemed *redemption
}

func redirectTo(loc string, cookies ...*http.Cookie) stepResult {
	return stepResult{Status: http.StatusSeeOther, Location: loc, Cookies: cookies}
}

// stepFunc is one step: q holds the query parameters the step declares
// (see steps), each given at most once.
type stepFunc func(h *handoff, q map[string]string, br *browser, sites []site) (stepResult, error)

// step is a step and the query parameters it reads.
type step struct {
	params []string
	run    stepFunc
}

// steps are the browser's steps by their path under <site path>ussync/v1/.
var steps = map[string]step{
	"sync":     {[]string{"t", "next", "m"}, (*handoff).syncStep},
	"bind":     {[]string{"h", "m"}, (*handoff).bindStep},
	"chain":    {[]string{"h", "m"}, (*handoff).chainStep},
	"hop":      {[]string{"return"}, (*handoff).hopStep},
	"hop/ask":  {[]string{"h"}, (*handoff).hopAskStep},
	"hop/done": {[]string{"h"}, (*handoff).hopDoneStep},
}

// runStep runs the step named path (a key of steps) with the raw query.
func (h *handoff) runStep(path, rawQuery string, br *browser, sites []site) (stepResult, error) {
	st, ok := steps[path]
	if !ok {
		return stepResult{}, refuse(session.ErrNotFound, "no such step %q", path)
	}
	q, err := queryOf(rawQuery, st.params...)
	if err != nil {
		return stepResult{}, err
	}
	return st.run(h, q, br, sites)
}

// iframeMode reads the query parameter m.
func iframeMode(m string) (bool, error) {
	switch m {
	case "":
		return false, nil
	case client.ModeIframe:
		return true, nil
	}
	return false, refuse(errInvalidField, "query parameter \"m\" must be %q or absent", client.ModeIframe)
}

// withMode adds m=iframe to a step's link when iframe.
func withMode(q url.Values, iframe bool) url.Values {
	if iframe {
		q.Set("m", client.ModeIframe)
	}
	return q
}

// syncStep is GET sync?t=TICKET[&next=URL][&m=iframe]: redeem a ticket,
// set this site's session cookie, then go down a chain ticket's route, to
// next, or answer 204. A refused ticket still sends the browser on when it
// has somewhere to go (Refused says why), so one bad site does not strand
// the user.
func (h *handoff) syncStep(q map[string]string, br *browser, sites []site) (stepResult, error) {
	iframe, err := iframeMode(q["m"])
	if err != nil {
		return stepResult{}, err
	}
	next := ""
	if raw, ok := q["next"]; ok {
		u, err := memberRedirect(sites, "query parameter \"next\"", raw)
		if err != nil {
			return stepResult{}, err
		}
		next = u.String()
	}
	rd, err := h.redeem(q["t"], br)
	on := h.chainOnward(sites, q["t"], rd.Rest, next, iframe)
	loc := ""
	if len(on) > 0 {
		loc = on[0].URL
	}
	var res stepResult
	if err != nil {
		a, _, ok := answerOf(err)
		if !ok || a.status >= 500 || loc == "" {
			return res, err
		}
		res.Refused = a.code // logged and counted by redeem
	} else {
		res.Redeemed = &rd
		res.Cookies = append(res.Cookies, h.cookie(cookieSession, rd.Token,
			maxAgeUntil(rd.Session.ExpiresAt, h.now()), sameSite(iframe), h.secure(br, iframe)))
	}
	if loc == "" {
		res.Status = http.StatusNoContent
		return res, nil
	}
	res.Status, res.Location = http.StatusSeeOther, loc
	if !iframe {
		res.Onward = on
	}
	return res, nil
}

// maxAgeUntil is a cookie Max-Age (seconds, at least 1) that ends at the
// Unix-millisecond time end.
func maxAgeUntil(end int64, now time.Time) int {
	return max(1, int((end-now.UnixMilli())/1000))
}
