package node

import (
	"sort"
	"strings"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// The service's containment operations (docs/security.md, "Containing a
// site"): revoke a site, take a revocation back, reset a damaged user
// record. Like every operation they go through apply: merged here, then
// gossiped to every node.

// siteState is one site as this node knows it: a member gossip knows (alive
// or not), a site record (revoked now or before), or both.
type siteState struct {
	Name   string
	Member *gossip.Member // nil: not a member this node knows of now
	Record session.Site   // zero: never revoked
}

// revoked reports whether this node's own site is revoked.
func (s *service) revoked() bool { return s.Store.Site(s.Name).IsRevoked() }

// checkNotRevoked is ErrSiteRevoked when this node's own site is revoked: a
// revoked node changes no replicated record, so that a site whose backend
// or API token is compromised can neither undo its revocation, nor revoke
// others, nor write users or sessions through its node.
func (s *service) checkNotRevoked() error {
	if !s.revoked() {
		return nil
	}
	x := s.Store.Site(s.Name)
	return refuse(ErrSiteRevoked, "this site (%s) was revoked by an administrator (on %s, at %s): its node changes nothing; "+
		"an administrator takes the revocation back from another node with `ussync sites unrevoke %s`",
		s.Name, x.Revoked.By, x.Revoked.At.Time().Format("2006-01-02 15:04:05 UTC"), s.Name)
}

// sites lists every site this node knows of, by name: the members gossip
// knows and the sites with a record.
func (s *service) sites() []siteState {
	byName := map[string]*siteState{s.Name: {Name: s.Name}}
	if s.Members != nil {
		for _, m := range s.Members() {
			st := byName[m.Name]
			if st == nil {
				st = &siteState{Name: m.Name}
				byName[m.Name] = st
			}
			st.Member = &m
		}
	}
	for _, x := range s.Store.Sites() {
		st := byName[x.Name]
		if st == nil {
			st = &siteState{Name: x.Name}
			byName[x.Name] = st
		}
		st.Record = x
	}
	out := make([]siteState, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// site returns the site name as this node knows it, and whether it knows
// it at all.
func (s *service) site(name string) (siteState, bool) {
	for _, st := range s.sites() {
		if st.Name == name {
			return st, true
		}
	}
	return siteState{Name: name}, false
}

// errUnknownSite is the refusal of a site operation on a name this node
// knows nothing of (a typo, most likely).
func (s *service) errUnknownSite(name string) error {
	var names []string
	for _, st := range s.sites() {
		names = append(names, st.Name)
	}
	return refuse(ErrUnknownSite, "no such site: %q is no member this node knows of and was never revoked (known: %s); "+
		"to revoke it all the same, force it", name, strings.Join(names, ", "))
}

// revokeSite revokes site name on every node (session.RevokeSite): every
// session it minted stops being active, its tickets are refused, and its
// URL is no longer a redirect target or a CORS origin. A name this node
// knows nothing of is ErrUnknownSite unless force is set. Revoking a site
// revoked already raises its RevokedBefore (harmless: its sessions are not
// active either way). It returns the site as it now stands.
func (s *service) revokeSite(name string, force bool) (siteState, error) {
	if err := validName(name); err != nil {
		return siteState{Name: name}, refuse(errInvalidField, "site name: %v", err)
	}
	st, known := s.site(name)
	if !known && !force {
		return st, s.errUnknownSite(name)
	}
	st, err := s.applySite(st, session.RevokeSite(name, s.Store.Clock().Now(), s.Name))
	if err != nil {
		return st, err
	}
	s.Log.Warn("site revoked: its sessions end on every node, its tickets and its URL are refused", "site", name)
	return st, nil
}

// unrevokeSite takes site name's revocation back on every node
// (session.UnrevokeSite): its new logins are active again; the sessions it
// minted until now stay revoked. A site that is not revoked is left as it
// is. A name with no record is ErrUnknownSite.
func (s *service) unrevokeSite(name string) (siteState, error) {
	if err := validName(name); err != nil {
		return siteState{Name: name}, refuse(errInvalidField, "site name: %v", err)
	}
	st, known := s.site(name)
	if !known {
		return st, s.errUnknownSite(name)
	}
	if !st.Record.IsRevoked() {
		return st, nil
	}
	st, err := s.applySite(st, session.UnrevokeSite(name, s.Store.Clock().Now(), s.Name))
	if err != nil {
		return st, err
	}
	s.Log.Warn("site revocation taken back: its new logins are active again", "site", name)
	return st, nil
}

// applySite merges and publishes x, a change of st's site record, and
// returns st with the record as it then stands.
func (s *service) applySite(st siteState, x session.Site) (siteState, error) {
	merged, err := s.apply(nil, session.Record{Site: &x})
	if err != nil {
		return st, err
	}
	st.Record = x
	if len(merged) > 0 {
		st.Record = *merged[0].Site
	}
	return st, nil
}
