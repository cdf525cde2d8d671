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
	if req.Navigate && needsStepPage(&res) {
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
