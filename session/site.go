package session

import (
	"errors"
	"fmt"
	"maps"
	"sync/atomic"
)

// Site is the cluster's record of one site (node name) an administrator
// revoked: `ussync sites revoke NAME`, like Serf's force-leave plus a ban.
// It travels by gossip and anti-entropy like users and sessions (key "n" +
// name). A site never revoked has no record.
//
// While Revoked.V is true, every session the site minted (Session.Site ==
// Name) is not active, whenever it was created, and the site's tickets and
// URL are not to be trusted. Revoked is a last-writer-wins register, so an
// administrator can take the revocation back; RevokedBefore only grows and
// is raised by both, so the sessions the site minted up to the last
// revocation or un-revocation stay dead after it: un-revoking a site lets
// its new logins in, never what it minted while it was not trusted.
type Site struct {
	Name          string         `json:"name"`
	Revoked       Register[bool] `json:"revoked"`
	RevokedBefore HLC            `json:"revoked_before,omitempty"`
}

// JoinSite merges two states of the same site's record.
func JoinSite(a, b Site) Site {
	return Site{
		Name:          a.Name,
		Revoked:       joinRegister(a.Revoked, b.Revoked),
		RevokedBefore: max(a.RevokedBefore, b.RevokedBefore),
	}
}

// RevokeSite is the record change that revokes site name at at, written by
// node by: apply it as Record{Site: &x}; it merges with whatever the store
// holds.
func RevokeSite(name string, at HLC, by string) Site {
	return Site{Name: name, Revoked: Set(true, at, by), RevokedBefore: at}
}

// UnrevokeSite is the record change that takes a revocation back at at: the
// site's sessions created from then on are active again; those created
// before stay revoked.
func UnrevokeSite(name string, at HLC, by string) Site {
	return Site{Name: name, Revoked: Set(false, at, by), RevokedBefore: at}
}

// IsRevoked reports whether the site is revoked now: its tickets and its
// URL are not to be trusted.
func (x Site) IsRevoked() bool { return x.Revoked.V }

// Revokes reports whether x, the record of s's site, makes s inactive.
func (x Site) Revokes(s *Session) bool {
	return x.Name != "" && s.Site == x.Name && (x.Revoked.V || s.Created <= x.RevokedBefore)
}

func (x *Site) validate() error {
	switch {
	case x.Name == "":
		return errors.New("site without a name")
	case longName(x.Name, x.Revoked.By):
		return fmt.Errorf("a site name over %d bytes", MaxSiteNameBytes)
	}
	return nil
}

// siteView is the store's in-memory copy of every Site record: there are
// few (one per site ever revoked), and the session check reads one on every
// page view, so it must cost a map lookup, not a Badger read.
type siteView struct {
	p atomic.Pointer[map[string]Site]
}

func (v *siteView) get(name string) (Site, bool) {
	m := v.p.Load()
	if m == nil {
		return Site{}, false
	}
	x, ok := (*m)[name]
	return x, ok
}

// put installs sites just committed (copy on write; the writer goroutine
// and load are the only callers).
func (v *siteView) put(sites ...Site) {
	if len(sites) == 0 {
		return
	}
	var m map[string]Site
	if old := v.p.Load(); old != nil {
		m = maps.Clone(*old)
	} else {
		m = make(map[string]Site, len(sites))
	}
	for _, x := range sites {
		m[x.Name] = x
	}
	v.p.Store(&m)
}

// Site returns the record of the site (node) name: the zero Site when the
// site was never revoked. It reads memory only (the hot path of a session
// check: Session.StateIn(user, store.Site(s.Site), now)).
func (s *Store) Site(name string) Site {
	x, _ := s.sites.get(name)
	return x
}

// Sites returns every Site record the store holds (sites revoked now or
// before), in no particular order.
func (s *Store) Sites() []Site {
	m := s.sites.p.Load()
	if m == nil {
		return nil
	}
	out := make([]Site, 0, len(*m))
	for _, x := range *m {
		out = append(out, x)
	}
	return out
}
