package node

import (
	"crypto/sha256"
	"encoding/base64"
	htmltemplate "html/template"
	"net/http"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// The page a verification link opens (GET <site>ussync/v1/verify?c=…), on
// the public listener.

// verifyPageStyle is the one stylesheet of the verification pages,
// allowed by its hash in their CSP.
const verifyPageStyle = `body{margin:0;padding:48px 16px;background:#f4f4f5;color:#18181b;font:16px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}` +
	`main{max-width:28rem;margin:0 auto;padding:32px;background:#fff;border-radius:8px;border-top:4px solid #16a34a}` +
	`main.refused{border-top-color:#dc2626}h1{margin:0 0 16px;font-size:1.4rem}a{color:#2563eb}`

var (
	verifyPage = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/verify_page.html.tmpl"))
	// verifyPageCSP allows nothing but the page's own style block.
	verifyPageCSP = func() string {
		sum := sha256.Sum256([]byte(verifyPageStyle))
		return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	}()
)

// verifyPageData is what the verification page shows.
type verifyPageData struct {
	OK      bool
	Title   string
	Message string
	Site    string // the site's URL, for the way back
	Host    string
	Style   htmltemplate.CSS
}

// verify is GET /ussync/v1/verify?c=TOKEN, the link in the message: verify
// the address and say so on a small HTML page, or refuse with a 4xx page
// that says why (and X-Ussync-Refused: <code>).
func (p *public) verify(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	q, err := queryParams(r, "c")
	if err != nil {
		return err
	}
	var email string
	if p.verifier == nil {
		err = refuse(session.ErrNotFound, "this node verifies no e-mail")
	} else {
		email, err = p.verifier.redeemLink(q["c"])
	}
	if err == nil {
		_, err = p.svc.markVerified(email)
	}
	d := verifyPageData{Site: p.h.self.URL.String(), Host: p.h.self.URL.Host, Style: htmltemplate.CSS(verifyPageStyle)}
	status := http.StatusOK
	a, _, known := answerOf(err)
	switch refused := known && a.status < 500; {
	case err == nil:
		d.OK, d.Title, d.Message = true, "Your e-mail is verified", "Thank you: your address is confirmed. You can close this page."
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
	}
	return "The link is not valid. Open it exactly as it was sent (some mail programs break long links), or ask the site for a new code."
}
