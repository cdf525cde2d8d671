package session

import (
	"errors"
	"fmt"
	"maps"
)

// MaxSitesPerUser bounds User.Sites in a record Validate accepts. Honest
// nodes write only their own entry, so a user has at most one entry per
// site of the cluster; a record naming more sites than any cluster of
// ussync runs is refused. (A join never truncates: the bound is on each
// record received, so every replica still merges the same set.)
const MaxSitesPerUser = 1024

// Why a session stays on its own site (User.Travels), as the API reports it.
const (
	// ReasonNotVerified: the user's address is not verified.
	ReasonNotVerified = "email_not_verified"
	// ReasonSiteNotBound: the address is verified, but not by this site nor
	// through a hand-off it received: the site binds it by proving the
	// mailbox (a code or link) itself.
	ReasonSiteNotBound = "site_not_bound"
)

// SiteBinding is what one site knows of a user, each fact with the time it
// was last established (zero: never). Both only grow (max).
type SiteBinding struct {
	// Known is when the site's backend last said it has the user (a PUT of
	// the user, or a login it made). It survives unverification: it says
	// what the site holds, not what it proved.
	Known HLC `json:"k,omitempty"`
	// Bound is when the site last proved the user's mailbox itself (at
	// registration, by a code or link, by an administrator of that site) or
	// received the user through a hand-off the user completed. It counts
	// only while later than the user's UnboundBefore.
	Bound HLC `json:"b,omitempty"`
}

func joinBinding(a, b SiteBinding) SiteBinding {
	return SiteBinding{Known: max(a.Known, b.Known), Bound: max(a.Bound, b.Bound)}
}

// joinSites joins two Sites maps per key. It shares an input when that
// input already holds the join (the common case: a record merged with a
// state it is part of), and otherwise makes a new map: inputs are never
// modified.
func joinSites(a, b map[string]SiteBinding) map[string]SiteBinding {
	switch {
	case covers(a, b):
		return a
	case covers(b, a):
		return b
	}
	out := maps.Clone(a)
	for k, v := range b {
		out[k] = joinBinding(out[k], v)
	}
	return out
}

// covers reports whether a already holds everything b does.
func covers(a, b map[string]SiteBinding) bool {
	if len(b) == 0 {
		return true
	}
	for k, v := range b {
		if joinBinding(a[k], v) != a[k] {
			return false
		}
	}
	return true
}

func validateSites(sites map[string]SiteBinding) error {
	if len(sites) > MaxSitesPerUser {
		return fmt.Errorf("%d sites, limit %d", len(sites), MaxSitesPerUser)
	}
	for name, b := range sites {
		switch {
		case name == "" || len(name) > MaxSiteNameBytes:
			return fmt.Errorf("a site name empty or over %d bytes", MaxSiteNameBytes)
		case b == SiteBinding{}:
			return errors.New("a site entry without a time")
		}
	}
	return nil
}

// withSite returns u's Sites with site's entry joined with b, as a new map.
func (u *User) withSite(site string, b SiteBinding) bool {
	old := u.Sites[site]
	nb := joinBinding(old, b)
	if nb == old {
		return false
	}
	sites := make(map[string]SiteBinding, len(u.Sites)+1)
	maps.Copy(sites, u.Sites)
	sites[site] = nb
	u.Sites = sites
	return true
}

// MarkKnown records that site's backend has the user, at at. It reports
// whether u changed (false when the site's mark is already as late).
func (u *User) MarkKnown(site string, at HLC) bool {
	return u.withSite(site, SiteBinding{Known: at})
}

// Bind records that site proved the user's mailbox itself, or received the
// user through a hand-off the user completed, at at (take it from
// Clock.Now: a binding at or before UnboundBefore does not count). It does
// not mark the user known: only the site's backend says it has the user
// (MarkKnown). It reports whether u changed.
func (u *User) Bind(site string, at HLC) bool {
	return u.withSite(site, SiteBinding{Bound: at})
}

// Verify marks the address verified by method (VerifiedRegistration,
// VerifiedAdmin, VerifiedCode) at site, at at, and binds site: the site
// that proved the mailbox is bound to it. It reports whether u changed.
//
// An explicit verification (VerifiedAdmin, VerifiedCode) is written even
// when the address already reads as verified here: this node may not have
// received an unverify made elsewhere before at, and the later act must win
// when the two meet (last writer wins), as Unverify restamps for the mirror
// case. The register is restamped at at by site but keeps its method: the
// method says how the address was first proved (sites verify a registered
// user as administrators to bind themselves, and that must not rewrite
// it). The site the register named before stays bound (a record from
// before bindings existed was bound only through Verified.By). A
// registration cannot be repeated after an unverify, and sites re-PUT users
// they registered, so a VerifiedRegistration of an address already
// verified leaves the register alone.
func (u *User) Verify(method, site string, at HLC) bool {
	changed := false
	switch old := u.Verified; {
	case !old.V.OK:
		u.Verified, changed = Set(Verification{OK: true, Method: method}, at, site), true
	case method != VerifiedRegistration && at > old.At:
		if old.By != "" && old.At > u.UnboundBefore {
			u.Bind(old.By, old.At)
		}
		u.Verified, changed = Set(old.V, at, site), true
	}
	return u.Bind(site, at) || changed
}

// Unverify clears the verification (an administrator's unverify; a rename
// does it to the old address) and voids every binding made so far: each
// site must prove the mailbox again, or receive the user through a
// hand-off from one that did. The register is restamped even when it
// holds no verification here: a verification written before at that this
// node has not received yet must lose to the unverify when it arrives
// (last writer wins), not come back. It reports whether u changed.
func (u *User) Unverify(site string, at HLC) bool {
	changed := false
	if at > u.Verified.At {
		u.Verified, changed = Set(Verification{}, at, site), true
	}
	if at > u.UnboundBefore {
		u.UnboundBefore, changed = at, true
	}
	return changed
}

// KnownTo reports whether site's backend has the user (it PUT the user, or
// logged the user in). A user who reached a site by a hand-off and whom its
// backend has not acknowledged yet is bound there but not known: the
// site's "new user".
func (u User) KnownTo(site string) bool { return u.Sites[site].Known != 0 }

// BoundTo reports whether site is bound to the user's address: its latest
// binding is later than UnboundBefore. The site that wrote the current
// verification (Verified.By, while Verified.V.OK) is bound too, as of that
// write: a user verified before bindings were recorded is bound to the
// site that verified it, with no migration.
func (u User) BoundTo(site string) bool {
	if site == "" {
		return false
	}
	if u.Sites[site].Bound > u.UnboundBefore {
		return true
	}
	v := u.Verified
	return v.V.OK && v.By == site && v.At > u.UnboundBefore
}

// Travels reports whether a session site creates for u may travel to the
// other sites: only when the address is verified and site is bound to it.
// Otherwise it gives the reason, ReasonNotVerified or ReasonSiteNotBound.
func (u User) Travels(site string) (bool, string) {
	switch {
	case !u.Verified.V.OK:
		return false, ReasonNotVerified
	case !u.BoundTo(site):
		return false, ReasonSiteNotBound
	}
	return true, ""
}

// MayWriteProfile reports whether site may change the user's profile
// fields (login, display name): a new user (never created), or a site
// bound to the address. A site that is not bound never overwrites an
// existing user's profile.
func (u User) MayWriteProfile(site string) bool {
	return u.Created == 0 || u.BoundTo(site)
}

// ProfileFloorEnd ends the stamps of floor writes: a profile field (login,
// display name) written by a site that is not bound to the address is
// stamped below it (FloorStamp), not at its clock, while the field was
// never written by a bound site, or the writer does not hold the user at
// all. Another site may hold the user already, verified, with a profile its
// bound site wrote (a partition, a node that lost its data dir, a site still
// catching up): every write at a clock is later than every floor write, so
// an unbound site fills an empty profile and never overwrites a proved one.
// Floor writes among themselves are ordered by a counter, like a Lamport
// clock. It is 2000-01-01T00:00:00Z: no honest clock reads earlier.
const ProfileFloorEnd HLC = 946684800000 << logicalBits

// FloorStamp is the stamp of a floor write over register r (see
// ProfileFloorEnd): after r's own floor stamp, or 1 for a field never
// written.
func FloorStamp(r Register[string]) HLC {
	if r.At >= ProfileFloorEnd-1 {
		return ProfileFloorEnd - 1
	}
	return r.At + 1
}

// ClaimProfile restamps, at at by site, the profile fields still at a
// floor stamp (ProfileFloorEnd): a site bound to the address takes the
// profile it holds as its own, so no floor write of another site wins it
// later. Call it only for a site bound to u. It reports whether u changed.
func (u *User) ClaimProfile(site string, at HLC) bool {
	changed := false
	for _, r := range []*Register[string]{&u.Login, &u.DisplayName} {
		if r.At != 0 && r.At < ProfileFloorEnd {
			*r, changed = Set(r.V, at, site), true
		}
	}
	return changed
}

// WithoutSites is u without its per-site knowledge, for a hand-off ticket:
// the target records its own binding when it redeems the ticket, and the
// rest reaches it by gossip. (Records join: what is left out is not lost.)
func (u User) WithoutSites() User {
	u.Sites = nil
	return u
}
