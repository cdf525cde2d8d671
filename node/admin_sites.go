package node

import (
	"fmt"
	"net/http"

	"github.com/ussync/ussync/client"
)

// The admin page's containment (docs/security.md, "Containing a site"): the
// sites, revoke one, take a revocation back, reset a damaged user record.
// Each action calls the service, as the private API does. Revoking and
// resetting need the form's "sure" box ticked.

// sites is GET /admin/sites: the members and the revoked sites.
func (a *admin) sites(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	sites := a.svc.sites()
	page := &adminSites{Rows: make([]client.SiteInfo, len(sites)), SelfRevoked: a.svc.revoked()}
	for i := range sites {
		page.Rows[i] = newSiteView(&sites[i])
	}
	a.render(w, r, http.StatusOK, s, "sites", adminPage{Title: "Sites", Nav: "sites", Sites: page})
	return nil
}

// confirmed refuses a drastic action whose form's "sure" box is not ticked.
func confirmed(r *http.Request, what string) error {
	if r.PostForm.Get("confirm") != "yes" {
		return refuse(errInvalidField, "Tick the box beside the button to %s.", what)
	}
	return nil
}

// revokeSite is POST /admin/sites/{name}/revoke.
func (a *admin) revokeSite(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	name := r.PathValue("name")
	if err := confirmed(r, "revoke "+name); err != nil {
		return err
	}
	if _, err := a.svc.revokeSite(name, false); err != nil {
		return err
	}
	a.redirect(w, r, s, &adminFlash{"ok", "Site " + name + " is revoked, on every node: the sessions it created end, its tickets and its URL are refused, and its node changes nothing."})
	return nil
}

// unrevokeSite is POST /admin/sites/{name}/unrevoke.
func (a *admin) unrevokeSite(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	name := r.PathValue("name")
	if _, err := a.svc.unrevokeSite(name); err != nil {
		return err
	}
	a.redirect(w, r, s, &adminFlash{"ok", "Site " + name + " is trusted again: its new logins are active (what it created before stays revoked)."})
	return nil
}

// resetUser is POST /admin/users/{email}/reset: the same function as POST
// /v1/users/{email}/reset.
func (a *admin) resetUser(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	if err := confirmed(r, "reset "+email); err != nil {
		return err
	}
	_, n, err := a.svc.resetUser(email)
	if err != nil {
		return err
	}
	a.redirect(w, r, s, &adminFlash{"ok", fmt.Sprintf("%s is reset on every site: %d active session%s ended; the address is unverified until proved again (verify it here, or a code).", email, n, adminPlural(n))})
	return nil
}
