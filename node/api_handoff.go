package node

import (
	"net/http"
	"net/netip"

	"github.com/ussync/ussync/client"
)

// maxStepCookies bounds the cookies one POST /v1/handoff may pass.
const maxStepCookies = 64

// handoffStep is POST /v1/handoff: one step of a browser's hand-off, for a
// site that answers <site>ussync/v1/<step> itself (the WordPress plugin):
// the site passes the step, the browser's query, cookies and address, and
// relays the answer (client.HandoffAnswer): status, Location, cookies. A
// refused step is answered 200 with the refusal's status and error inside,
// so that the site can tell a refused browser from a refused call.
func (a *api) handoffStep(w http.ResponseWriter, r *http.Request) error {
	if a.Handoff == nil {
		return refuse(errUnavailable, "this node has no hand-off configured")
	}
	var req client.HandoffStep
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if _, ok := steps[req.Step]; !ok {
		return refuse(errInvalidField, "field \"step\" must be one of sync, bind, chain, hop, hop/ask, hop/done, not %q", req.Step)
	}
	if len(req.Cookies) > maxStepCookies {
		return refuse(errInvalidField, "field \"cookies\" holds over %d cookies", maxStepCookies)
	}
	br := &browser{client: clientAddr{HTTPS: req.HTTPS}}
	if req.IP != "" {
		ip, err := netip.ParseAddr(req.IP)
		if err != nil {
			return refuse(errInvalidField, "field \"ip\" is not an IP address")
		}
		br.client.IP = ip.Unmap().WithZone("")
	}
	for name, value := range req.Cookies {
		br.cookies = append(br.cookies, &http.Cookie{Name: name, Value: value})
	}
	res, err := a.Handoff.runStep(req.Step, req.Query, br, a.Handoff.sites())
	ans := client.HandoffAnswer{Cookies: []client.SetCookie{}}
	if err != nil {
		st, msg, ok := answerOf(err)
		if !ok || st.status >= 500 {
			return err
		}
		ans.Status, ans.Error = st.status, &client.StepError{Code: st.code, Message: msg}
		writeJSON(w, http.StatusOK, &ans)
		return nil
	}
	ans.Status, ans.Location, ans.Refused = res.Status, res.Location, res.Refused
	if req.Navigate && a.Handoff.stepPageNeeded(r.Context(), &res) {
		hdr := http.Header{}
		securityHeaders(hdr, a.Handoff.sites())
		page, csp, err := stepPage(res.Onward, hdr.Get("Content-Security-Policy"))
		if err != nil {
			return err
		}
		ans.Status, ans.Location, ans.Page, ans.CSP = http.StatusOK, "", string(page), csp
	}
	for _, c := range res.Cookies {
		ss := "Lax"
		if c.SameSite == http.SameSiteNoneMode {
			ss = "None"
		}
		ans.Cookies = append(ans.Cookies, client.SetCookie{Name: c.Name, Value: c.Value, Path: c.Path,
			MaxAge: c.MaxAge, Secure: c.Secure, HttpOnly: c.HttpOnly, SameSite: ss})
	}
	if rd := res.Redeemed; rd != nil {
		v, _ := a.svc.view(&rd.Session, &rd.User, a.svc.now())
		u := a.userView(&rd.User)
		ans.Session, ans.User, ans.NewUser, ans.SiteWasBound = &v, &u, rd.NewUser, rd.WasBound
	}
	writeJSON(w, http.StatusOK, &ans)
	return nil
}

type redeemRequest struct {
	Ticket string `json:"ticket"`
	IP     string `json:"ip"`
	// Nonce is the value of the browser's nonce cookie on this site
	// (ussync_nonce, or __Host-ussync_nonce): the ticket is bound to it.
	Nonce string `json:"nonce"`
	// Session is the browser's session token on this site, if it has one:
	// a ticket of another user is refused rather than replace it.
	Session string `json:"session"`
}

// redeemTicket is POST /v1/tickets/redeem: a site that keeps its own
// cookies redeems the ticket its browser brought, with the same checks as
// GET /ussync/v1/sync.
func (a *api) redeemTicket(w http.ResponseWriter, r *http.Request) error {
	if a.Handoff == nil {
		return refuse(errUnavailable, "this node does not redeem tickets (no hand-off configured)")
	}
	var req redeemRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Ticket == "" {
		return refuse(errInvalidField, "field \"ticket\" is required")
	}
	br := &browser{}
	if req.IP != "" {
		ip, err := netip.ParseAddr(req.IP)
		if err != nil {
			return refuse(errInvalidField, "field \"ip\" is not an IP address")
		}
		br.client.IP = ip.Unmap().WithZone("")
	}
	if req.Nonce != "" {
		br.cookies = append(br.cookies, &http.Cookie{Name: a.Handoff.cookieName(cookieNonce), Value: req.Nonce})
	}
	if req.Session != "" {
		br.cookies = append(br.cookies, &http.Cookie{Name: a.Handoff.cookieName(cookieSession), Value: req.Session})
	}
	rd, err := a.Handoff.redeem(req.Ticket, br)
	if err != nil {
		return err
	}
	ans := client.Redemption{Token: rd.Token, User: a.userView(&rd.User), NewUser: rd.NewUser, SiteWasBound: rd.WasBound}
	ans.Session, _ = a.svc.view(&rd.Session, &rd.User, a.svc.now())
	return writeJSON(w, http.StatusOK, &ans)
}
