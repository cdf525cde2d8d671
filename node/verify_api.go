package node

import (
	"net/http"
)

// E-mail verification in the private API. The verifier (and the node's
// Node.SendVerification, for the admin page's "resend code") is in
// verifier.go, its one-click links in verifier_link.go, the page a link
// opens in verify_page.go.

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
