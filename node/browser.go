package node

import (
	"errors"
	"fmt"
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
	return int((2*h.TicketTTL + h.MaxOffset + time.Second - 1) / time.Second)
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
		if s.StateAt(u, now) == session.StateActive {
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
	loc := h.chainNext(sites, q["t"], rd.Rest, next, iframe)
	if loc == "" {
		loc = next
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
	return res, nil
}

// maxAgeUntil is a cookie Max-Age (seconds, at least 1) that ends at the
// Unix-millisecond time end.
func maxAgeUntil(end int64, now time.Time) int {
	return max(1, int((end-now.UnixMilli())/1000))
}

// bindStep is GET bind?h=STATE[&m=iframe], the first pass of a hand-off
// on each site of its route: set (or keep) this browser's nonce cookie,
// write its commitment into the bind state, and send the browser to the
// next site of the route, or back to the origin's chain step when none is
// left. On the origin itself (an iframe's link starts there), it first
// checks the browser holds the session the hand-off was made for.
func (h *handoff) bindStep(q map[string]string, br *browser, sites []site) (stepResult, error) {
	iframe, err := iframeMode(q["m"])
	if err != nil {
		return stepResult{}, err
	}
	t, st, err := h.openBindState(q["h"], br)
	if err != nil {
		return stepResult{}, err
	}
	i := indexOf(st.Route, h.Name)
	origin := t.Target == h.Name
	if (i >= 0) == origin { // the origin is on no route of its own
		return stepResult{}, refuse(ErrTicketWrongTarget, "the hand-off's route does not name this site")
	}
	if origin {
		if _, err := h.heldSession(br, t.SessionID); err != nil {
			return stepResult{}, err
		}
	}
	n, ck, err := h.nonce(br, iframe)
	if err != nil {
		return stepResult{}, err
	}
	if origin {
		st.Origin = crypto.BindingOf(h.Name, n).String()
	} else {
		st.Bound[i] = crypto.BindingOf(h.Name, n).String()
	}
	state, err := h.resealBindState(t, &st)
	if err != nil {
		return stepResult{}, err
	}
	for _, name := range st.Route[i+1:] {
		if s, ok := siteNamed(sites, name); ok && name != h.Name {
			return redirectTo(s.link(pathBind, withMode(url.Values{"h": {state}}, iframe)), ck), nil
		}
	}
	home, ok := siteNamed(sites, t.Target)
	if !ok {
		return stepResult{}, errBadRedirect("the hand-off's origin", "is not a live member site")
	}
	return redirectTo(home.link(pathChain, withMode(url.Values{"h": {state}}, iframe)), ck), nil
}

// heldSession returns the browser's active session of id on this site;
// ErrOtherBrowser when it holds none.
func (h *handoff) heldSession(br *browser, id string) (*browserSession, error) {
	held, err := h.browserSessions(br)
	if err != nil {
		return nil, err
	}
	var bs *browserSession
	for i := range held {
		if crypto.Equal(held[i].Session.ID, id) {
			bs = &held[i]
		}
	}
	if bs == nil {
		return nil, refuse(ErrOtherBrowser, "this browser does not hold the session the hand-off was started for: it only works in the browser that logged in")
	}
	return bs, nil
}

// chainStep is GET chain?h=STATE[&m=iframe] on the site that logged the
// browser in, between the two passes of a hand-off: the browser must hold
// the session it was started for (its cookie here), or the nonce this site
// set when the state started here; then this site seals the chain ticket,
// which names each site's commitment, and sends the browser down the route
// to redeem it.
func (h *handoff) chainStep(q map[string]string, br *browser, sites []site) (stepResult, error) {
	iframe, err := iframeMode(q["m"])
	if err != nil {
		return stepResult{}, err
	}
	t, st, err := h.openBindState(q["h"], br)
	if err != nil {
		return stepResult{}, err
	}
	if t.Target != h.Name {
		return stepResult{}, refuse(ErrTicketWrongTarget, "the hand-off was started on another site")
	}
	ret := ""
	if st.Return != "" {
		u, err := h.selfRedirect("the hand-off's return URL", st.Return)
		if err != nil {
			return stepResult{}, err
		}
		ret = u.String()
	}
	// The browser that logged in: it holds the session here, or, when the
	// state started here (an iframe's), the nonce this site set then.
	bs, err := h.heldSession(br, t.SessionID)
	if err != nil && st.Origin != "" {
		if b, perr := crypto.ParseBinding(st.Origin); perr == nil && h.holdsNonce(br, b) {
			bs, err = h.sessionOf(t.SessionID)
		}
	}
	if err != nil {
		return stepResult{}, err
	}
	var route []string
	var binds []crypto.Binding
	for i, name := range st.Route {
		if b, err := crypto.ParseBinding(st.Bound[i]); err == nil {
			route, binds = append(route, name), append(binds, b)
		}
	}
	var first string
	if len(route) > 0 && !bs.Session.Local {
		tk, err := h.sealChain(route, binds, &bs.Session, &bs.User, t.ClientIP)
		if err != nil {
			return stepResult{}, err
		}
		first = h.chainNext(sites, tk, route, ret, iframe)
	}
	switch {
	case first != "":
		return redirectTo(first), nil
	case ret != "":
		return redirectTo(ret), nil
	}
	return stepResult{Status: http.StatusNoContent}, nil
}

// sessionOf is session id and its user, when it is active.
func (h *handoff) sessionOf(id string) (*browserSession, error) {
	s, u, err := h.Service.session(id)
	if err != nil {
		return nil, err
	}
	if s.StateAt(u, h.now()) != session.StateActive {
		return nil, refuse(ErrSessionEnded, "the session the hand-off was started for is no longer active")
	}
	return &browserSession{Session: s, User: u}, nil
}

// openBindState opens a bind state presented by br: a ticket of kind bind,
// unexpired, matching its IP binding, with a well-formed route.
func (h *handoff) openBindState(raw string, br *browser) (crypto.Ticket, ticketPayload, error) {
	var p ticketPayload
	t, err := h.Keyring.OpenTicketWithin(raw, h.now(), h.limits())
	if err != nil {
		return t, p, ticketError(err)
	}
	if err := decodeBindState(t.Payload, &p); err != nil {
		return t, p, refuse(crypto.ErrTicketMalformed, "not a hand-off's bind state (%v)", err)
	}
	if t.ClientIP != "" && !sameIP(t.ClientIP, br.client.String()) {
		return t, p, refuse(ErrTicketIPMismatch, "the hand-off is bound to another client address")
	}
	return t, p, nil
}

// decodeBindState decodes and checks the payload of a bind state: kind
// bind, a route of distinct names (at most session.MaxSitesPerUser), and
// one commitment per name, each empty or a binding.
func decodeBindState(b []byte, p *ticketPayload) error {
	if err := decodePayload(b, p); err != nil {
		return err
	}
	switch {
	case p.Kind != ticketKindBind:
		return errors.New("not a bind state")
	case len(p.Route) == 0 || len(p.Route) > session.MaxSitesPerUser:
		return fmt.Errorf("a route of %d sites", len(p.Route))
	case len(p.Bound) != len(p.Route):
		return errors.New("not one commitment per site")
	case p.Session != nil || p.User != nil || len(p.Ask) > 0:
		return errors.New("fields of another kind")
	}
	if p.Origin != "" {
		if _, err := crypto.ParseBinding(p.Origin); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(p.Route))
	for i, name := range p.Route {
		if name == "" || len(name) > session.MaxSiteNameBytes || seen[name] {
			return errors.New("a site name empty, too long or twice in the route")
		}
		seen[name] = true
		if p.Bound[i] != "" {
			if _, err := crypto.ParseBinding(p.Bound[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// hopStep is GET hop?return=URL, lazy mode on a site without a cookie: set
// (or keep) this browser's nonce cookie, then ask the other sites, one
// after the other, for the browser's session, with a hop request that names
// the nonce's commitment (the ticket an asked site makes is bound to it).
func (h *handoff) hopStep(q map[string]string, br *browser, sites []site) (stepResult, error) {
	ret, err := h.selfRedirect(`query parameter "return"`, q["return"])
	if err != nil {
		return stepResult{}, err
	}
	held, err := h.browserSessions(br)
	if err != nil {
		return stepResult{}, err
	}
	if len(held) > 0 { // nothing to ask: the browser has a session here
		return redirectTo(ret.String()), nil
	}
	others := sites[1:]
	if len(others) == 0 {
		return redirectTo(ret.String(), h.checkedCookie(br)), nil
	}
	ask := make([]string, len(others))
	for i, s := range others {
		ask[i] = s.Name
	}
	n, ck, err := h.nonce(br, false)
	if err != nil {
		return stepResult{}, err
	}
	hr, err := h.sealHop(ret.String(), ask, crypto.BindingOf(h.Name, n), h.clientBinding(br.client.String()))
	if err != nil {
		return stepResult{}, err
	}
	return redirectTo(others[0].link(pathHopAsk, url.Values{"h": {hr}}), ck), nil
}

// checkedCookie is ussync_checked for sync.hop_interval.
func (h *handoff) checkedCookie(br *browser) *http.Cookie {
	return h.cookie(cookieChecked, "1", int(h.HopInterval/time.Second), http.SameSiteLaxMode, h.secure(br, false))
}

// hopAskStep is GET hop/ask?h=HOP on an asked site: hand the browser's
// session to the asking site, bound to the nonce the browser holds there,
// if it has one here; else ask the next site, else go back to the asking
// site's hop/done.
func (h *handoff) hopAskStep(q map[string]string, br *browser, sites []site) (stepResult, error) {
	raw := q["h"]
	t, hp, err := h.openHop(raw, br.client.String())
	if err != nil {
		return stepResult{}, err
	}
	if t.Target == h.Name {
		return stepResult{}, refuse(ErrTicketWrongTarget, "a hop request is asked of the other sites, not of the site that made it")
	}
	asker, ok := siteNamed(sites, t.Target)
	if !ok {
		return stepResult{}, errBadRedirect("the asking site", "is not a live member")
	}
	ret, err := memberRedirect([]site{asker}, "the hop's return URL", hp.Return)
	if err != nil {
		return stepResult{}, err
	}
	held, err := h.browserSessions(br)
	if err != nil {
		return stepResult{}, err
	}
	for _, bs := range held {
		if bs.Session.Local {
			continue
		}
		tk, err := h.sealSession(asker.Name, &bs.Session, &bs.User, t.Bindings[0], h.clientBinding(br.client.String()))
		if err != nil {
			return stepResult{}, err
		}
		return redirectTo(syncLink(asker, tk, ret.String(), false)), nil
	}
	// Ask the sites listed after this one (a site not listed asks no one).
	var after []string
	if i := indexOf(hp.Ask, h.Name); i >= 0 {
		after = hp.Ask[i+1:]
	}
	for _, name := range after {
		if s, ok := siteNamed(sites, name); ok && s.Name != h.Name && s.Name != asker.Name {
			return redirectTo(s.link(pathHopAsk, url.Values{"h": {raw}})), nil
		}
	}
	return redirectTo(asker.link(pathHopDone, url.Values{"h": {raw}})), nil
}

// hopDoneStep is GET hop/done?h=HOP back on the asking site: no other site
// had a session; remember the browser was checked and return.
func (h *handoff) hopDoneStep(q map[string]string, br *browser, _ []site) (stepResult, error) {
	t, hp, err := h.openHop(q["h"], br.client.String())
	if err != nil {
		return stepResult{}, err
	}
	if t.Target != h.Name {
		return stepResult{}, refuse(ErrTicketWrongTarget, "the hop request was made by another site")
	}
	ret, err := h.selfRedirect("the hop's return URL", hp.Return)
	if err != nil {
		return stepResult{}, err
	}
	return redirectTo(ret.String(), h.checkedCookie(br)), nil
}
