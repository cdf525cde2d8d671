package node

import (
	"crypto/sha256"
	"encoding/base64"
	htmltemplate "html/template"
	"net/http"
	"strings"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// The page a verification link opens (GET <site>ussync/v1/verify?c=…), on
// the public listener.

// verifyPageStyle is the one stylesheet of the verification pages,
// allowed by its hash in their CSP.
const verifyPageStyle = `body{margin:0;padding:48px 16px;background:#f4f4f5;color:#18181b;font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}` +
	`main{max-width:28rem;margin:0 auto;padding:32px;background:#fff;border-radius:8px;border-top:4px solid #16a34a}` +
	`main.refused{border-top-color:#dc2626}main.ask{border-top-color:#2563eb}h1{margin:0 0 16px;font-size:1.4rem}a{color:#2563eb}` +
	`button{font:inherit;padding:8px 16px;border:0;border-radius:6px;background:#2563eb;color:#fff;cursor:pointer}`

var (
	verifyPage = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/verify_page.html.tmpl"))
	// verifyPageCSP allows nothing but the page's own style block, and its
	// form to post to this site; nothing may frame the button.
	verifyPageCSP = "default-src 'none'; style-src '" + verifyStyleHash +
		"'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	// verifyStyleHash is verifyPageStyle's CSP hash source.
	verifyStyleHash = func() string {
		sum := sha256.Sum256([]byte(verifyPageStyle))
		return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
	}()
)

// cookieVerify is the confirmation page's CSRF cookie: the POST of its
// button must carry the same value in its form (a double-submit token), so
// only the page this browser loaded can confirm.
const cookieVerify = "ussync_verify"

// maxVerifyForm bounds the confirmation's POST body.
const maxVerifyForm = 8 << 10

// verifyPageData is what the verification page shows.
type verifyPageData struct {
	OK      bool
	Title   string
	Message string
	// Code is a refused hand-off step's error code, shown for support
	// (the same as X-Ussync-Refused); empty on the verification pages.
	Code  string
	Site  string // the site's URL, for the way back
	Host  string
	Style htmltemplate.CSS
	// Confirm shows the button that posts the link (Link) with the
	// page's CSRF token to Action.
	Confirm bool
	Email   string
	Link    string
	CSRF    string
	Action  string
}

// verify is the link in the message, GET /ussync/v1/verify?c=TOKEN: a
// page that asks the user to confirm, with a button that POSTs the link
// back with a CSRF token (mail scanners open links: a GET verifies
// nothing). POST /ussync/v1/verify (c, csrf) verifies the address, binds
// this site to it and says so; a refusal is a 4xx page that says why (and
// X-Ussync-Refused: <code>).
func (p *public) verify(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	br := browserOf(r, pr.client)
	d := verifyPageData{Site: p.h.self.URL.String(), Host: p.h.self.URL.Host, Style: htmltemplate.CSS(verifyPageStyle)}
	var c, email string
	var err error
	if r.Method == http.MethodPost {
		c, err = p.confirmation(w, r, br)
	} else {
		var q map[string]string
		if q, err = queryParams(r, "c"); err == nil {
			c = q["c"]
		}
	}
	if err == nil && p.verifier == nil {
		err = refuse(session.ErrNotFound, "this node verifies no e-mail")
	}
	if err == nil && r.Method != http.MethodPost {
		if email, err = p.verifier.inspectLink(c); err == nil {
			token, cerr := crypto.NewNonce()
			if cerr != nil {
				return cerr
			}
			http.SetCookie(w, p.h.cookie(cookieVerify, token, int(p.verifier.CodeTTL/time.Second)+60, http.SameSiteStrictMode, p.h.secure(br, false)))
			d.Confirm, d.Email, d.Link, d.CSRF, d.Action = true, email, c, token, p.h.self.URL.EscapedPath()+pathVerify
			d.Title, d.Message = "Confirm your e-mail address", "Press the button to confirm that this address is yours."
		}
	} else if err == nil {
		_, err = p.svc.verifyAddress(p.verifier, proof{Link: c})
		if err == nil {
			http.SetCookie(w, p.h.cookie(cookieVerify, "", -1, http.SameSiteStrictMode, p.h.secure(br, false)))
			d.OK, d.Title, d.Message = true, "Your e-mail is verified", "Thank you: your address is confirmed. You can close this page."
		}
	}
	status := http.StatusOK
	a, _, known := answerOf(err)
	switch refused := known && a.status < 500; {
	case err == nil:
	case !refused:
		p.log.Error("verify link", "err", err)
		status, d.Title, d.Message = http.StatusInternalServerError, "Something went wrong", "Your address could not be verified just now. Please open the link again in a moment."
	default:
		status = a.status
		w.Header().Set(refusedHeader, a.code)
		d.Title, d.Message = "This link does not work", verifyRefusal(a.code)
	}
	h := w.Header()
	h.Set("Content-Security-Policy", verifyPageCSP)
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := verifyPage.Execute(w, &d); err != nil {
		p.log.Debug("write verify page", "err", err) // the browser went away
	}
	return nil
}

// confirmation reads the POST of the confirmation page's button: the link
// (c), and a CSRF token equal to the page's cookie; a form posted from
// another origin, or without the page's cookie, is refused (errCSRF).
func (p *public) confirmation(w http.ResponseWriter, r *http.Request, br *browser) (string, error) {
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !strings.EqualFold(o, p.h.self.Origin) {
		return "", refuse(errCSRF, "the confirmation was posted from another site")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxVerifyForm)
	if err := r.ParseForm(); err != nil {
		return "", refuse(errBadRequest, "the form does not parse")
	}
	c, token := r.PostForm.Get("c"), r.PostForm.Get("csrf")
	ok := false
	for _, v := range p.h.cookieValues(br, cookieVerify) {
		ok = (crypto.ValidNonce(token) && crypto.Equal(v, token)) || ok
	}
	if !ok {
		return "", refuse(errCSRF, "the confirmation did not come from the page this browser opened")
	}
	return c, nil
}

// verifyRefusal says, for people, why a link was refused.
func verifyRefusal(code string) string {
	switch code {
	case client.CodeTicketExpired:
		return "The link has expired. Ask the site for a new verification code."
	case client.CodeTicketReplayed:
		return "The link was already used. If you opened it before, your address is verified; otherwise ask the site for a new code."
	case client.CodeLinkStale:
		return "The link is no longer valid: its code was already used, or a newer code was sent. Use the most recent message, or ask the site for a new code."
	case client.CodeTicketWrongTarget:
		return "The link is for another site. Open it as it was sent, without changing it."
	case client.CodeCSRF:
		return "The confirmation did not come from the page this browser opened. Open the link in the message again, then press the button."
	}
	return "The link is not valid. Open it exactly as it was sent (some mail programs break long links), or ask the site for a new code."
}
