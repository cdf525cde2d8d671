package node

import (
	"net/http"
	"net/url"
	"time"

	"github.com/ussync/ussync/crypto"
)

// Lazy mode's endpoints (docs/handoff.md, "lazy"): a site without a cookie
// asks the other sites, one after the other, for the browser's session.

// setChecked sets ussync_checked for sync.hop_interval.
func (p *public) setChecked(w http.ResponseWriter, pr *publicReq) {
	p.setCookie(w, cookieChecked, "1", int(p.h.policy().HopInterval/time.Second), http.SameSiteLaxMode, p.secure(pr, false))
}

// hop is GET /ussync/v1/hop?return=URL, lazy mode on a site without a
// cookie: ask the other sites, one after the other, for the browser's
// session.
func (p *public) hop(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	q, err := queryParams(r, "return")
	if err != nil {
		return err
	}
	ret, err := p.h.selfRedirect(`query parameter "return"`, q["return"])
	if err != nil {
		return err
	}
	if _, ok, err := p.cookieSession(r); err != nil {
		return err
	} else if ok { // nothing to ask: the browser has a session here
		redirect(w, ret.String())
		return nil
	}
	others := pr.sites[1:]
	if len(others) == 0 {
		p.setChecked(w, pr)
		redirect(w, ret.String())
		return nil
	}
	ask := make([]string, len(others))
	for i, s := range others {
		ask[i] = s.Name
	}
	hr, err := p.h.sealHop(ret.String(), ask, p.h.clientBinding(pr.client.String()))
	if err != nil {
		return err
	}
	redirect(w, others[0].link(pathHopAsk, url.Values{"h": {hr}}))
	return nil
}

// hopAsk is GET /ussync/v1/hop/ask?h=HOP on an asked site: hand the
// browser's session to the asking site if it has one here, else ask the
// next site, else go back to the asking site's hop/done.
func (p *public) hopAsk(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	raw, t, hp, err := p.hopRequest(r, pr)
	if err != nil {
		return err
	}
	if t.Target == p.h.Name {
		return refuse(ErrTicketWrongTarget, "a hop request is asked of the other sites, not of the site that made it")
	}
	asker, ok := siteNamed(pr.sites, t.Target)
	if !ok {
		return errBadRedirect("the asking site", "is not a live member")
	}
	ret, err := memberRedirect([]site{asker}, "the hop's return URL", hp.Return)
	if err != nil {
		return err
	}
	bs, ok, err := p.cookieSession(r)
	if err != nil {
		return err
	}
	if ok && !bs.Session.Local {
		tk, err := p.h.sealSession(asker.Name, &bs.Session, &bs.User, bs.Token, p.h.clientBinding(pr.client.String()))
		if err != nil {
			return err
		}
		redirect(w, syncLink(asker, tk, ret.String()))
		return nil
	}
	// Ask the sites listed after this one (a site not listed asks no one).
	var after []string
	for i, name := range hp.Ask {
		if name == p.h.Name {
			after = hp.Ask[i+1:]
			break
		}
	}
	for _, name := range after {
		if s, ok := siteNamed(pr.sites, name); ok && s.Name != p.h.Name && s.Name != asker.Name {
			redirect(w, s.link(pathHopAsk, url.Values{"h": {raw}}))
			return nil
		}
	}
	redirect(w, asker.link(pathHopDone, url.Values{"h": {raw}}))
	return nil
}

// hopRequest opens the hop request in the query (?h=HOP) of a hop/ask or
// hop/done, returning it raw (to pass on) and opened.
func (p *public) hopRequest(r *http.Request, pr *publicReq) (string, crypto.Ticket, ticketPayload, error) {
	q, err := queryParams(r, "h")
	if err != nil {
		return "", crypto.Ticket{}, ticketPayload{}, err
	}
	t, hp, err := p.h.openHop(q["h"], pr.client.String())
	return q["h"], t, hp, err
}

// hopDone is GET /ussync/v1/hop/done?h=HOP back on the asking site: no
// other site had a session; remember the browser was checked and return.
func (p *public) hopDone(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	_, t, hp, err := p.hopRequest(r, pr)
	if err != nil {
		return err
	}
	if t.Target != p.h.Name {
		return refuse(ErrTicketWrongTarget, "the hop request was made by another site")
	}
	ret, err := p.h.selfRedirect("the hop's return URL", hp.Return)
	if err != nil {
		return err
	}
	p.setChecked(w, pr)
	redirect(w, ret.String())
	return nil
}
