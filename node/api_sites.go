package node

import (
	"net/http"

	"github.com/ussync/ussync/client"
)

// The private API's calls on sites (docs/security.md, "Containing a
// site"): list the sites, revoke one, take a revocation back. (The reset
// of a damaged user record, the other containment call, is a user call:
// api_users.go.) Each handler checks its request, calls the service
// and answers its result or returns its error.

// newSiteView shows a site as the service knows it.
func newSiteView(st *siteState) client.SiteInfo {
	v := client.SiteInfo{Name: st.Name, Revoked: st.Record.IsRevoked(), By: st.Record.Revoked.By}
	if st.Member != nil {
		v.SiteURL, v.State = st.Member.SiteURL, st.Member.State
	}
	v.Since = hlcTime(st.Record.Revoked.At)
	v.RevokedBefore = hlcTime(st.Record.RevokedBefore)
	return v
}

// listSites is GET /v1/sites: every site this node knows of, by name.
func (a *api) listSites(w http.ResponseWriter, r *http.Request) error {
	if _, err := queryOnly(r); err != nil {
		return err
	}
	sites := a.svc.sites()
	views := make([]client.SiteInfo, len(sites))
	for i := range sites {
		views[i] = newSiteView(&sites[i])
	}
	return writeJSON(w, http.StatusOK, &client.SiteList{Sites: views})
}

type revokeSiteRequest struct {
	// Force revokes a name this node knows nothing of.
	Force bool `json:"force"`
}

// revokeSite is POST /v1/sites/{name}/revoke [{"force":true}].
func (a *api) revokeSite(w http.ResponseWriter, r *http.Request) error {
	var req revokeSiteRequest
	if err := decodeBody(w, r, &req, true); err != nil {
		return err
	}
	st, err := a.svc.revokeSite(r.PathValue("name"), req.Force)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newSiteView(&st))
}

// unrevokeSite is POST /v1/sites/{name}/unrevoke.
func (a *api) unrevokeSite(w http.ResponseWriter, r *http.Request) error {
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	st, err := a.svc.unrevokeSite(r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newSiteView(&st))
}
