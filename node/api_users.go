package node

import (
	"fmt"
	"net/http"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// The private API's user calls. Each handler checks and decodes its
// request, calls the service, and answers its result or returns its error
// (answered by writeError, through the table of httperr.go).

type putUserRequest struct {
	Email       *string `json:"email"`
	Login       *string `json:"login"`
	DisplayName *string `json:"display_name"`
	VerifiedVia *string `json:"verified_via"`
	// Verified false clears the verification (an administrator's
	// "unverify"); true is accepted only beside verified_via.
	Verified *bool `json:"verified"`
}

// change checks the request against the path's email and returns what it
// sets.
func (req *putUserRequest) change(email string) (session.UserChange, error) {
	c := session.UserChange{Login: req.Login, DisplayName: req.DisplayName}
	if req.Email != nil {
		e, err := session.NormalizeEmail(*req.Email)
		if err != nil {
			return c, refuse(session.ErrInvalidEmail, "field \"email\" is not a valid address (%v)", err)
		}
		if e != email {
			return c, refuse(errEmailImmutable, "a user's e-mail never changes: the body's %q differs from the path's", "email")
		}
	}
	if req.VerifiedVia != nil {
		switch m := *req.VerifiedVia; m {
		case "":
		case session.VerifiedRegistration, session.VerifiedAdmin:
			c.Verified = &session.Verification{OK: true, Method: m}
		default:
			return c, refuse(errInvalidField, "field \"verified_via\" must be %q, %q or empty, not %q",
				session.VerifiedRegistration, session.VerifiedAdmin, m)
		}
	}
	if req.Verified != nil {
		switch {
		case *req.Verified && c.Verified == nil:
			return c, refuse(errInvalidField, "field \"verified\" may only be false (to clear the verification); to verify, send \"verified_via\"")
		case !*req.Verified && c.Verified != nil:
			return c, refuse(errInvalidField, "field \"verified\": false contradicts \"verified_via\"")
		case !*req.Verified:
			c.Verified = &session.Verification{}
		}
	}
	if err := checkName("login", req.Login); err != nil {
		return c, err
	}
	return c, checkName("display_name", req.DisplayName)
}

// adminOnly reports whether the request is an administrator's verify or
// unverify and nothing else: it does not tell that the site's backend has
// the user (see siteUsers).
func (req *putUserRequest) adminOnly() bool {
	return req.Email == nil && req.Login == nil && req.DisplayName == nil &&
		(req.Verified != nil || (req.VerifiedVia != nil && *req.VerifiedVia == session.VerifiedAdmin))
}

// putUser is PUT /v1/users/{email}: create or update a user.
func (a *api) putUser(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	var req putUserRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	c, err := req.change(email)
	if err != nil {
		return err
	}
	u, err := a.svc.updateUser(email, c, !req.adminOnly())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a.userView(&u))
}

// getUser is GET /v1/users/{email}.
func (a *api) getUser(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	u, known, err := a.svc.user(email)
	if err != nil {
		return err
	}
	if !known {
		return refuse(session.ErrNotFound, "no such user")
	}
	return writeJSON(w, http.StatusOK, a.userView(&u))
}

// listUsers is GET /v1/users?after=&limit=: one page of users in e-mail
// order, after the e-mail given, and the cursor of the next page ("" after
// the last).
func (a *api) listUsers(w http.ResponseWriter, r *http.Request) error {
	q, err := queryOnly(r, "after", "limit")
	if err != nil {
		return err
	}
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	page, next, err := a.svc.Store.ListUsers(q.Get("after"), limit)
	if err != nil {
		return err
	}
	views := make([]client.UserInfo, len(page))
	for i := range page {
		views[i] = a.userView(&page[i])
	}
	return writeJSON(w, http.StatusOK, &client.UserPage{Users: views, Next: next})
}

// logoutEverywhere is POST /v1/users/{email}/logout-everywhere: end every
// session of the user, on every site, including those created earlier that
// reach a node later.
func (a *api) logoutEverywhere(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	n, err := a.svc.logoutEverywhere(email)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &struct {
		Ended int `json:"ended"`
	}{n})
}

// userSessions is GET /v1/users/{email}/sessions?state=active|all.
func (a *api) userSessions(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	var all bool
	switch st := r.URL.Query().Get("state"); st {
	case "", "active":
	case "all":
		all = true
	default:
		return refuse(errInvalidField, "query parameter \"state\" must be \"active\" or \"all\", not %q", st)
	}
	u, known, err := a.svc.user(email)
	if err != nil {
		return err
	}
	list, err := a.svc.Store.UserSessions(email, all, 0)
	if err != nil {
		return fmt.Errorf("read sessions: %w", err)
	}
	if !known && len(list) == 0 {
		return refuse(session.ErrNotFound, "no such user")
	}
	now := a.svc.now()
	views := make([]client.SessionInfo, len(list))
	for i := range list {
		views[i], _ = a.svc.view(&list[i], &u, now)
	}
	return writeJSON(w, http.StatusOK, &struct {
		Sessions []client.SessionInfo `json:"sessions"`
	}{views})
}

type renameRequest struct {
	NewEmail string `json:"new_email"`
}

// renameUser is POST /v1/users/{email}/rename {"new_email"}: an
// administrator moves a user to a new address (service.move). The user at
// the new address takes the old one's login, display name, creation time
// and verification; the old address is logged out everywhere and refused
// from then on (409 user_moved). Renaming to the address a user was moved
// from moves it back.
func (a *api) renameUser(w http.ResponseWriter, r *http.Request) error {
	from, err := pathEmail(r)
	if err != nil {
		return err
	}
	var req renameRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.NewEmail == "" {
		return refuse(errInvalidField, "field \"new_email\" is required")
	}
	to, err := session.NormalizeEmail(req.NewEmail)
	if err != nil {
		return refuse(session.ErrInvalidEmail, "field \"new_email\" is not a valid address (%v)", err)
	}
	if to == from {
		return refuse(errInvalidField, "field \"new_email\" is the user's address already")
	}
	nu, ended, err := a.svc.move(from, to)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &client.Rename{User: a.userView(&nu), MovedFrom: from, Ended: ended})
}

// resetUser is POST /v1/users/{email}/reset: a new generation of the
// user's record, on every site (service.resetUser).
func (a *api) resetUser(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	u, ended, err := a.svc.resetUser(email)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &client.Reset{User: newUserView(&u), Ended: ended})
}
