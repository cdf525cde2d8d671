package node

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// The first pass of a hand-off and the origin's step between the two
// passes (docs/handoff.md, "Bound to the browser"): each site of the route
// sets a nonce and writes its commitment into the bind state; the origin
// checks the browser holds the session and seals the ticket that names the
// commitments.

// bindStep is GET bind?h=STATE[&m=iframe], the first pass of a hand-off
// on each site of its route: set (or keep) this browser's nonce cookie,
// write its commitment into the bind state, and send the browser to the
// next site of the route, or back to the origin's chain step when none is
// left. On the origin itself (a chain's and an iframe's link start there),
// it first checks the browser holds the session the hand-off was made for;
// a continuation (no route) starts the next leg of a split chain there
// (nextLeg). A browser's navigation to another site gets the step page
// that skips a site that does not answer (stepResult.Onward).
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
	var bs *browserSession
	if origin {
		if bs, err = h.heldSession(br, t.SessionID); err != nil {
			return stepResult{}, err
		}
	}
	if origin && len(st.Route) == 0 {
		return h.nextLeg(q, br, sites, t, &st, bs)
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
	home, ok := siteNamed(sites, t.Target)
	if !ok {
		return stepResult{}, errBadRedirect("the hand-off's origin", "is not a live member site")
	}
	// The sites after this one, then the origin's chain step: a site that
	// does not answer writes no commitment, and the ticket leaves it out.
	q2 := withMode(url.Values{"h": {state}}, iframe)
	on := h.routeOnward(sites, st.Route[i+1:], func(s site) string { return s.link(pathBind, q2) }, false)
	on = append(on, h.onwardTo(home, home.link(pathChain, q2)))
	res := redirectOnward(on, ck)
	if iframe {
		res.Onward = nil
	}
	return res, nil
}

// nextLeg is the origin's bind step for a continuation (a state with no
// route, ticketPayload.After): a leg of a split chain came back; seal the
// next leg, through the sites whose names sort after After that may be
// sent to now, and run it as a chain starting here. None left: the
// hand-off is over, to its return URL.
func (h *handoff) nextLeg(q map[string]string, br *browser, sites []site, t crypto.Ticket, st *ticketPayload, bs *browserSession) (stepResult, error) {
	ret, err := h.selfRedirect("the hand-off's return URL", st.Return)
	if err != nil {
		return stepResult{}, err
	}
	var route []string
	for _, s := range h.routeSites() {
		if s.Name > st.After {
			route = append(route, s.Name)
		}
	}
	slices.Sort(route)
	if len(route) == 0 || bs.Session.Local {
		return redirectTo(ret.String()), nil
	}
	state, err := h.sealLeg(route, ret.String(), &bs.Session, t.ClientIP)
	if err != nil {
		// What fitted once may not now (the records grew): the sites left
		// miss this hand-off, the browser goes home.
		h.unavailableFor(t.SessionID, err)
		return redirectTo(ret.String()), nil
	}
	q2 := map[string]string{"h": state, "m": q["m"]}
	return h.bindStep(q2, br, sites)
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
	if st.After != "" && ret != "" && !bs.Session.Local {
		// A leg of a split chain: it comes back to this site's bind step
		// with a continuation, which starts the next leg.
		cont, err := h.sealBindState(nil, ret, t.SessionID, t.ClientIP, st.After)
		if err != nil {
			return stepResult{}, err
		}
		ret = h.self.link(pathBind, url.Values{"h": {cont}})
	}
	var on []onward
	if len(route) > 0 && !bs.Session.Local {
		tk, err := h.sealChain(route, binds, &bs.Session, &bs.User, t.ClientIP)
		if err != nil {
			return stepResult{}, err
		}
		on = h.chainOnward(sites, tk, route, ret, iframe)
	} else if ret != "" {
		on = []onward{{URL: ret}}
	}
	if len(on) == 0 {
		return stepResult{Status: http.StatusNoContent}, nil
	}
	res := redirectOnward(on)
	if iframe {
		res.Onward = nil
	}
	return res, nil
}

// sessionOf is session id and its user, when it is active.
func (h *handoff) sessionOf(id string) (*browserSession, error) {
	s, u, err := h.Service.session(id)
	if err != nil {
		return nil, err
	}
	if s.StateIn(u, h.Service.Store.Site(s.Site), h.now()) != session.StateActive {
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
	case len(p.After) > session.MaxSiteNameBytes:
		return errors.New("a site name too long")
	case (len(p.Route) == 0 && p.After == "") || len(p.Route) > session.MaxSitesPerUser:
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
