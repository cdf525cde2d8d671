package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	htmltemplate "html/template"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/ussync/ussync/client"
)

// stepRefusalMessage is what a person reads when a hand-off step their
// browser opened is refused: what happened and what to do, in words, for
// the codes a browser meets (the others get a general sentence).
func stepRefusalMessage(code string) string {
	switch code {
	case client.CodeOtherBrowser:
		return "This sign-in link was made for another browser, or this browser's cookies for the site were cleared. Log in again on this site."
	case client.CodeTicketExpired:
		return "This sign-in link has expired (they last about a minute), or the sites' clocks disagree. Log in again on this site."
	case client.CodeTicketReplayed:
		return "This sign-in link was already used. Log in again on this site."
	case client.CodeSessionEnded, client.CodeSessionExpired, client.CodeSessionRevoked:
		return "Your session has ended (you logged out, it expired, or it was revoked). Log in again on this site."
	case client.CodeSessionConflict:
		return "This browser is logged in on this site as another user. Log out here first, then log in again."
	case client.CodeUnknownUser:
		return "This site only accepts users who registered here. Register or log in on this site."
	case client.CodeNoSession:
		return "This browser is not logged in on this site. Log in again on this site."
	case client.CodeBadRedirect:
		return "This link leads to a site outside this family of sites, so it was not followed. Log in again on this site."
	}
	return "Your sign-in could not be carried to this site. Log in again on this site."
}

// wantsHTML reports whether r is a browser's top-level navigation (or
// otherwise asks for HTML before JSON): its refusal is then a page for
// people; API clients and scripts keep the JSON error.
func wantsHTML(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Mode") == "navigate" {
		return true
	}
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "text/html", "application/xhtml+xml":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

// writeStepRefusal answers a refused hand-off step, opened by a browser
// (wantsHTML), with the same status as the JSON answer and a small page:
// the same verification-page template and stylesheet, the refusal's code
// in X-Ussync-Refused, a CSP that allows nothing but the page's style
// (frame-ancestors stays the member sites', as securityHeaders set it,
// for iframe mode), and a link back to this site. Errors of no known kind
// are logged and answered 500, as writeError does.
func (p *public) writeStepRefusal(w http.ResponseWriter, r *http.Request, err error) {
	d := verifyPageData{Site: p.h.self.URL.String(), Host: p.h.self.URL.Host, Style: htmltemplate.CSS(verifyPageStyle)}
	a, _, known := answerOf(err)
	status := http.StatusInternalServerError
	if !known || a.status >= 500 {
		if !known {
			p.log.Error("api request failed", "route", routeLabel(r), "method", r.Method, "err", err)
		} else {
			status = a.status
			w.Header().Set(refusedHeader, a.code)
		}
		d.Title, d.Message = "Something went wrong", "Your sign-in could not be carried to this site just now. Please try again in a moment, or log in again on this site."
	} else {
		status = a.status
		w.Header().Set(refusedHeader, a.code)
		d.Title, d.Message, d.Code = "You are not logged in here yet", stepRefusalMessage(a.code), a.code
	}
	if a.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	h := w.Header()
	csp := h.Get("Content-Security-Policy")
	ancestors := "frame-ancestors 'none'"
	if i := strings.Index(csp, "frame-ancestors"); i >= 0 {
		ancestors = csp[i:]
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src '"+verifyStyleHash+"'; base-uri 'none'; form-action 'none'; "+ancestors)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := verifyPage.Execute(w, &d); err != nil {
		p.log.Debug("write step page", "err", err) // the browser went away
	}
}

// stepOnwardScript is the one script of a step page (writeStepOnward),
// allowed by its hash in the page's CSP: it probes each place the browser
// may go next (the links of #onward, in order) with a CORS fetch of the
// site's health URL, without cookies or referrer, and goes to the first
// whose site answers 2xx within the timeout; the last is gone to
// unprobed (there is nowhere else). A fetch that fails (connection
// refused, no CORS header: a proxy's 502 for a dead node) or times out
// skips the site.
const stepOnwardScript = `(async()=>{const o=document.getElementById("onward"),l=[...o.querySelectorAll("a")],t=+o.dataset.timeout||4000;` +
	`for(let i=0;i<l.length;i++){const p=l[i].dataset.probe;if(p&&i<l.length-1){const c=new AbortController(),w=setTimeout(()=>c.abort(),t);` +
	`let ok=false;try{ok=(await fetch(p,{mode:"cors",credentials:"omit",cache:"no-store",referrerPolicy:"no-referrer",signal:c.signal})).ok}catch(e){}` +
	`clearTimeout(w);if(!ok)continue}location.replace(l[i].href);return}})()`

var (
	stepOnwardPage = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/step_onward.html.tmpl"))
	// stepOnwardScriptHash is stepOnwardScript's CSP hash source.
	stepOnwardScriptHash = func() string {
		sum := sha256.Sum256([]byte(stepOnwardScript))
		return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	}()
)

// stepOnwardData is what a step page shows.
type stepOnwardData struct {
	Onward    []onward
	TimeoutMS int64
	Style     htmltemplate.CSS
	Script    htmltemplate.JS
}

// needsStepPage reports whether a step's answer to a browser's navigation
// may be a step page rather than a bare 303: it goes to another site
// first, and has somewhere else to go if that site does not answer. It is
// one when the node's own probe of that site fails too (stepPageNeeded).
func needsStepPage(res *stepResult) bool {
	return res.Status == http.StatusSeeOther && len(res.Onward) > 1 && res.Onward[0].Probe != ""
}

// stepPage renders the step page of on (needsStepPage) and returns it
// with its Content-Security-Policy: the page's own script and style by
// hash, fetches only to the health URLs it probes, no base, no form, and
// frame-ancestors as csp (the securityHeaders one) has it.
func stepPage(on []onward, csp string) ([]byte, string, error) {
	var b bytes.Buffer
	d := stepOnwardData{Onward: on, TimeoutMS: probeTimeout.Milliseconds(),
		Style: htmltemplate.CSS(verifyPageStyle), Script: htmltemplate.JS(stepOnwardScript)}
	if err := stepOnwardPage.Execute(&b, &d); err != nil {
		return nil, "", err
	}
	var connect []string
	for _, o := range on {
		if u, err := url.Parse(o.Probe); err == nil && o.Probe != "" {
			if src := originOf(u); !slices.Contains(connect, src) {
				connect = append(connect, src)
			}
		}
	}
	ancestors := "frame-ancestors 'none'"
	if i := strings.Index(csp, "frame-ancestors"); i >= 0 {
		ancestors = csp[i:]
	}
	return b.Bytes(), "default-src 'none'; script-src '" + stepOnwardScriptHash + "'; style-src '" + verifyStyleHash +
		"'; connect-src " + strings.Join(connect, " ") + "; base-uri 'none'; form-action 'none'; " + ancestors, nil
}

// writeStepOnward answers a browser's navigation with the step page of
// res (needsStepPage): 200, res's cookies set, X-Ussync-Refused kept.
func (p *public) writeStepOnward(w http.ResponseWriter, res *stepResult) error {
	h := w.Header()
	body, csp, err := stepPage(res.Onward, h.Get("Content-Security-Policy"))
	if err != nil {
		return err
	}
	for _, c := range res.Cookies {
		http.SetCookie(w, c)
	}
	if res.Refused != "" {
		h.Set(refusedHeader, res.Refused)
	}
	if res.Redeemed != nil {
		h.Set(wasBoundHeader, strconv.FormatBool(res.Redeemed.WasBound))
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // an error: the browser went away
	return nil
}
