package node

import (
	htmltemplate "html/template"
	"mime"
	"net/http"
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
