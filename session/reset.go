package session

// ResetUser is the record change that resets a damaged user record
// cluster-wide: a record carrying a timestamp no write can outbid (a
// revoked_before of 2^64-1, a register stamped in the year 10889) cannot be
// repaired by a later write, so the reset starts a new generation of the
// record instead. JoinUser compares Reset first: a state with a greater
// Reset replaces the other whole, wherever and in whatever order the two
// meet, and states of one generation join field by field as before. The
// order is lexicographic (a chain, then the join of the old fields), which
// is still a join-semilattice: merge_test.go proves it.
//
// at is the reset's time, from Clock.Now on the node the administrator
// uses; it must be later than u.Reset (it is, since a store's clock has
// observed every record it holds, unless the record was already ahead of
// the clock when the store opened: then reset on another node). The new
// generation keeps, and restamps at at so that any later write wins:
//
//   - Email (the identity) and Created (when it is not later than at);
//   - Login and DisplayName (their values: a site's backend rewrites them
//     on its next PUT, and an administrator can correct them);
//   - MovedTo, when the user was moved (a moved user stays moved).
//
// It clears what a damaged record cannot be trusted with:
//
//   - Verified is cleared and every site binding dropped: the address must
//     be proved again (a code, or an administrator's verify) before a login
//     travels;
//   - RevokedBefore is at: every session created before the reset is
//     revoked (a log out everywhere), so no session minted under the
//     damaged record survives it.
//
// Writes a node made without having heard of the reset (during a partition,
// or in the milliseconds it takes to reach it) belong to the old generation
// and are lost when the reset arrives: an administrator repeats what matters
// (a log out everywhere is subsumed, since the reset revokes every earlier
// session). A node of a version without Reset drops the field and joins
// field by field: reset only once every node is upgraded.
func ResetUser(u User, at HLC) User {
	out := User{
		Email:         u.Email,
		Login:         Set(u.Login.V, at, ""),
		DisplayName:   Set(u.DisplayName.V, at, ""),
		Verified:      Set(Verification{}, at, ""),
		RevokedBefore: at,
		Created:       u.Created,
		Reset:         at,
	}
	if out.Created == 0 || out.Created > at {
		out.Created = at
	}
	if u.MovedTo != (Register[string]{}) {
		out.MovedTo = Set(u.MovedTo.V, at, "")
	}
	return out
}
