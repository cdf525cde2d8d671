package node

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ussync/ussync/session"
)

// E-mail verification in the private API, and for Go callers of the node
// (the admin page's "resend code"). The verifier is in verifier.go, the
// page a verification link opens in verify_page.go.

// newVerifier builds the node's verifier from its config: the mailer (with
// the SMTP password read now), the templates (an operator's directory is
// checked now, so a broken template stops the start, not a user's request).
func (n *Node) newVerifier() (*verifier, error) {
	var m *mailer
	if n.cfg.SMTP.Enabled() {
		pw, err := n.cfg.SMTPPassword()
		if err != nil {
			return nil, err
		}
		m = newMailer(n.cfg.SMTP, pw)
	}
	tpl, err := loadMailTemplates(n.cfg.Verification.Templates)
	if err != nil {
		return nil, err
	}
	return newVerifier(verifierConfig{
		Keyring:           n.keyring,
		Store:             n.store,
		Name:              n.cfg.Node.Name,
		SiteURL:           n.cfg.Site.URL,
		CodeTTL:           time.Duration(n.cfg.Verification.CodeTTL),
		MaxAttempts:       n.cfg.Verification.MaxAttempts,
		ResendInterval:    time.Duration(n.cfg.Verification.ResendInterval),
		MaxSendsPerHour:   n.cfg.Verification.MaxSendsPerHour,
		MaxFailuresPerDay: n.cfg.Verification.MaxFailuresPerDay,
		MaxOffset:         time.Duration(n.cfg.Cluster.MaxClockOffset),
		Mailer:            m,
		Templates:         tpl,
		Log:               n.log,
		Metrics:           n.metrics,
	})
}

// SendVerification sends a verification code and link to email, as POST
// /v1/users/{email}/verification does (the admin page's "resend code"):
// nil when the message was sent, or when the address has no user (nothing
// is sent, and nothing says so). Otherwise session.ErrInvalidEmail,
// ErrRateLimited (its message says when to retry), ErrMailFailed (the
// cause is logged), ErrMailDisabled; or another error (store failure). It
// blocks for the send, at most smtp.timeout per step or until ctx ends.
// Call it after Start.
func (n *Node) SendVerification(ctx context.Context, email string) error {
	if n.verify == nil {
		return errors.New("send verification: the node is not started")
	}
	e, err := session.NormalizeEmail(email)
	if err != nil {
		return refuse(session.ErrInvalidEmail, "not a valid address (%v)", err)
	}
	_, err = n.verify.send(ctx, e)
	return err
}

// requestVerification is POST /v1/users/{email}/verification: send a code
// and a link. 202 {"status":"sent"} whether or not the address has a user.
func (a *api) requestVerification(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	if a.Verify == nil {
		return ErrMailDisabled
	}
	wait, err := a.Verify.send(r.Context(), email)
	if wait > 0 {
		w.Header().Set("Retry-After", retrySeconds(wait))
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, &struct {
		Status string `json:"status"`
	}{"sent"})
}

type verifyCodeRequest struct {
	Code *string `json:"code"`
}

// verifyCode is POST /v1/users/{email}/verify {"code"}: 200 with the user,
// now verified, when the code is the pending one.
func (a *api) verifyCode(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	var req verifyCodeRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Code == nil || *req.Code == "" {
		return refuse(errInvalidField, "field \"code\" is required")
	}
	if len(*req.Code) > 64 {
		return ErrInvalidCode
	}
	if a.Verify == nil {
		return ErrInvalidCode
	}
	u, err := a.svc.verifyAddress(a.Verify, proof{Email: email, Code: *req.Code})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.userView(&u))
}
