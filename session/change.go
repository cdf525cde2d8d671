package session

// Record changes: the records each operation of the cluster writes, built
// here beside the merge so that the property tests hold them to it
// (change_test.go, and the histories of merge_test.go that mix them with
// arbitrary records).
//
// Every function takes at, the HLC its writes are stamped with, and by, the
// writing node's name. The caller takes at from the store's clock after it
// has read the records it passes in: the clock has then observed their
// stamps, so at is above them, and each change is an inflation of what it
// was built from: old ⊔ change = change. A replica holding the old state
// that receives the change ends at the change; a replica that receives the
// old state late keeps the change. None of them reads the clock or the
// store: the same inputs give the same records.

// UserChange is what an update of a user sets; a nil field is left as it is.
type UserChange struct {
	Login       *string
	DisplayName *string
	Verified    *Verification
}

// Empty reports whether c sets nothing.
func (c UserChange) Empty() bool {
	return c.Login == nil && c.DisplayName == nil && c.Verified == nil
}

// UpdateUser returns u with c written at at by node by, and whether the
// result differs from u. known says whether u was read from the store; a
// user that was not (u is then User{Email: …}) is created at at. A field c
// sets to the value u already holds is left with its old stamp.
//
// It is the raw register write SiteUpdate builds on; the node calls
// SiteUpdate, never UpdateUser itself (PUT /v1/users/{email}, a login, an
// administrator's verify all go through SiteUpdate). c.Verified here sets
// the verification register alone, without binding a site or voiding the
// bindings, which is why SiteUpdate does not pass it on: a verification and
// its removal go through User.Verify and User.Unverify (binding.go), which
// bind the verifying site or void every binding as well.
func UpdateUser(u User, known bool, c UserChange, at HLC, by string) (User, bool) {
	changed := !known
	if !known {
		u.Created = at
	}
	changed = setRegister(&u.Login, c.Login, at, by) || changed
	changed = setRegister(&u.DisplayName, c.DisplayName, at, by) || changed
	changed = setRegister(&u.Verified, c.Verified, at, by) || changed
	return u, changed
}

// SiteUpdate returns u with site's write c made at at, and whether the
// result differs from u: the change of PUT /v1/users/{email} from site's
// backend, of an administrator's verify or unverify on site, and of a login
// on site (c names the login and display name, no verification, ack set).
// known says whether u was read from the store (see UpdateUser).
//
//   - A verification in c (OK) means site proved the mailbox: User.Verify,
//     which binds site. Clearing it is an administrator's unverify:
//     User.Unverify, which voids every site's binding.
//   - The login and display name: an unverified address is nobody's proved
//     mailbox, so any site that has the user may write them; once verified,
//     only a site bound to the address may (User.MayWriteProfile), and c's
//     names from another site are left as they are (profileKept reports
//     it). A site that is not bound writes a field at a floor stamp
//     (FloorStamp, ProfileFloorEnd) when u was not read from the store or
//     no bound site wrote the field: another site may hold the user,
//     verified, and its profile must win when the records meet. A bound
//     site claims the fields it holds at a floor stamp (User.ClaimProfile).
//   - ack says site's backend has the user (User.MarkKnown): false for an
//     administrator's verify or unverify alone.
//
// Like the other changes it is an inflation of u when at is above u's
// stamps (a floor write is above the floor stamp it replaces).
func SiteUpdate(u User, known bool, c UserChange, ack bool, at HLC, site string) (nu User, changed, profileKept bool) {
	nu, changed = UpdateUser(u, known, UserChange{}, at, site) // creates a new user
	if v := c.Verified; v != nil {
		if v.OK {
			changed = nu.Verify(v.Method, site, at) || changed
		} else {
			changed = nu.Unverify(site, at) || changed
		}
	}
	bound := nu.BoundTo(site)
	if !known || !nu.Verified.V.OK || nu.MayWriteProfile(site) {
		stamp := func(r Register[string]) HLC {
			if !bound && (!known || r.At < ProfileFloorEnd) {
				return FloorStamp(r)
			}
			return at
		}
		var lc, dc bool
		nu, lc = UpdateUser(nu, true, UserChange{Login: c.Login}, stamp(nu.Login), site)
		nu, dc = UpdateUser(nu, true, UserChange{DisplayName: c.DisplayName}, stamp(nu.DisplayName), site)
		changed = changed || lc || dc
	} else {
		profileKept = c.Login != nil || c.DisplayName != nil
	}
	if bound {
		changed = nu.ClaimProfile(site, at) || changed
	}
	if ack && !nu.KnownTo(site) {
		changed = nu.MarkKnown(site, at) || changed
	}
	return nu, changed, profileKept
}

// setRegister sets r to *v written at at by by, when v is given and differs
// from r's value; it reports whether it did.
func setRegister[T comparable](r *Register[T], v *T, at HLC, by string) bool {
	if v == nil || *v == r.V {
		return false
	}
	*r = Set(*v, at, by)
	return true
}

// EndSession returns s ended at at for reason (EndLogout, EndAdmin, …): the
// change of a logout or of an administrator's revoke. A session already
// ended is returned as it is: its first end is the one every replica keeps.
func EndSession(s Session, at HLC, reason string) Session {
	if s.Ended != 0 {
		return s
	}
	s.Ended, s.EndReason = at, reason
	return s
}

// RevokeAll returns the records of a "log out everywhere" of u: u with its
// RevokedBefore raised to at, then every session of active ended at at with
// reason EndLogoutEverywhere. The raised RevokedBefore is what also ends
// the sessions created before at that reach a replica later (a late or
// reordered login never resurrects a revoked user). known says whether u
// was read from the store: a user this node has only seen sessions of is
// written anyway, created at at, and joins with its real record when that
// arrives. active is not modified.
func RevokeAll(u User, known bool, active []Session, at HLC) []Record {
	if !known {
		u.Created = at
	}
	u.RevokedBefore = max(u.RevokedBefore, at)
	recs := make([]Record, 0, 1+len(active))
	recs = append(recs, Record{User: &u})
	for _, s := range active {
		s := EndSession(s, at, EndLogoutEverywhere)
		recs = append(recs, Record{Session: &s})
	}
	return recs
}

// RevocationDelta returns the part of u that a "log out everywhere" sets:
// its address, generation (Reset), creation and RevokedBefore, every other
// field zero. It is a delta state in the sense of delta-state CRDTs
// (Almeida, Shoker and Baquero, "Delta State Replicated Data Types", 2018):
// joined into a replica that holds u as it was before the revocation (or
// anything later), it gives what joining u itself would; joined into any
// other replica it adds nothing u would not, so a later join of u gives the
// same result either way. It is what a revocation pushes: a few dozen
// bytes, where u names every site that knows the user (about 55 bytes a
// site) and outgrows a packet from about 20 sites, which sends the push
// over a TCP stream to every member.
func RevocationDelta(u User) User {
	return User{Email: u.Email, RevokedBefore: u.RevokedBefore, Created: u.Created, Reset: u.Reset}
}

// SitesDelta is u, a state of the user reached from before by a change of
// one generation (a login marking the user known to its site, with its
// names), with only the sites whose entry differs from before's: a delta
// state (Almeida et al. 2018) of that change. Joined into a replica that
// holds before (or more) it gives what u gives; on any replica, u joined
// later gives what u alone gives (TestSitesDelta). A user names every site
// that knows it, about 55 bytes a site: from about 20 sites the whole user
// outgrows a packet, and a login's push would take a TCP stream to every
// member (a handshake's round trip across the internet, a second when a
// SYN is lost), where its delta, the site it logged in at, fits one.
func SitesDelta(u, before User) User {
	d := u
	d.Sites = nil
	for name, b := range u.Sites {
		if old, ok := before.Sites[name]; ok && old == b {
			continue
		}
		if d.Sites == nil {
			d.Sites = map[string]SiteBinding{}
		}
		d.Sites[name] = b
	}
	return d
}

// Move returns the records of an administrator of site by moving user old
// to the address of to, whose current state is given (User{Email: address}
// when the store holds none). In order: the user at the new address, which
// takes old's login, display name and verification (when old is verified)
// and the earlier of the two creation times, is marked not moved (a move
// away from it that has not reached this replica yet is older, and loses),
// and is known to by when old was (by knew the old address: it knows the
// new one; the other sites learn it when their backend PUTs it, or as a
// new user); old, marked moved to the new address, revoked at at and
// unverified (User.Unverify: every binding to the old address is void;
// were it moved back, each site proves it again); then every session of
// active ended at at with reason EndAdmin. Moving a user back to the
// address it was moved from is a Move too: the later move wins the
// registers. active is not modified.
func Move(old, to User, active []Session, at HLC, by string) []Record {
	if to.Created == 0 || (old.Created != 0 && old.Created < to.Created) {
		to.Created = old.Created
	}
	if to.Created == 0 {
		to.Created = at
	}
	if old.Login.V != "" {
		setRegister(&to.Login, &old.Login.V, at, by)
	}
	if old.DisplayName.V != "" {
		setRegister(&to.DisplayName, &old.DisplayName.V, at, by)
	}
	if old.Verified.V.OK {
		setRegister(&to.Verified, &old.Verified.V, at, by)
	}
	to.MovedTo = Set("", at, by)
	old.MovedTo = Set(to.Email, at, by)
	old.RevokedBefore = max(old.RevokedBefore, at)
	old.Unverify(by, at)
	if old.KnownTo(by) {
		to.MarkKnown(by, at)
	}
	recs := make([]Record, 0, 2+len(active))
	recs = append(recs, Record{User: &to}, Record{User: &old})
	for _, s := range active {
		s := EndSession(s, at, EndAdmin)
		recs = append(recs, Record{Session: &s})
	}
	return recs
}
