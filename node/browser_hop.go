package node

import (
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
)

// Lazy mode's steps (docs/handoff.md, "Lazy mode"): a site without a
// cookie sets its nonce and asks the other sites, one after the other, for
// the browser's session.

// hopStep is GET hop?return=URL, lazy mode on a site without a cookie: set
// (or keep) this browser's nonce cookie, then ask the other sites, one
// after the other, for the browser's session, with a hop request that names
// the nonce's commitment (the ticket an asked site makes is bound to it).
// The round comes back to URL with client.HopMark added; a URL that has it
// already is sent straight back (a browser that keeps no cookie).
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
	if ret.Query().Has(client.HopMark) {
		// Back from a round, still without a cookie here: the browser keeps
		// none. Another round would end the same way, and so on forever.
		return redirectTo(ret.String(), h.checkedCookie(br)), nil
	}
	// Wherever the round ends, it ends there, marked (the site's own
	// parameters left as they were).
	if ret.RawQuery != "" {
		ret.RawQuery += "&"
	}
	ret.RawQuery += client.HopMark + "=1"
	others := h.routeSites() // a site that does not answer is not asked
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
	q2 := url.Values{"h": {hr}}
	on := make([]onward, 0, len(others)+1)
	for _, s := range others {
		on = append(on, h.onwardTo(s, s.link(pathHopAsk, q2)))
	}
	on = append(on, onward{URL: h.self.link(pathHopDone, q2)})
	return redirectOnward(on, ck), nil
}

// checkedCookie is ussync_checked for sync.hop_interval.
func (h *handoff) checkedCookie(br *browser) *http.Cookie {
	return h.cookie(cookieChecked, "1", int(h.policy().HopInterval/time.Second), http.SameSiteLaxMode, h.secure(br, false))
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
	after = slices.DeleteFunc(slices.Clone(after), func(n string) bool { return n == asker.Name })
	q2 := url.Values{"h": {raw}}
	on := h.routeOnward(sites, after, func(s site) string { return s.link(pathHopAsk, q2) }, false)
	on = append(on, h.onwardTo(asker, asker.link(pathHopDone, q2)))
	return redirectOnward(on), nil
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
