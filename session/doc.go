// Package session owns the domain of ussync: users, sessions, the hybrid
// logical clock that orders their changes, the merge rules that make every
// replica converge, and the Badger store that keeps them on disk.
//
// # Convergence
//
// Every record (a User or a Session) is a state-based CRDT: Merge is a join
// (commutative, associative, idempotent), so replicas that receive the same
// records in any order, any number of times, reach identical state and an
// identical Digest. The rules:
//
//   - User fields login, display name and verification are last-writer-wins
//     registers ordered by (HLC, node name); an exact tie (which a real writer
//     never produces) is broken by the value so the join stays well defined.
//   - User.RevokedBefore only grows (max). "Log out everywhere" raises it.
//   - User.Created is the earliest creation seen (min over non-zero).
//   - User.MovedTo (an administrator moved the user to a new address) is a
//     last-writer-wins register too; while it names an address, none of the
//     user's sessions is active.
//   - A session is immutable but for Ended/EndReason. Ended wins over alive;
//     of two ends the earliest (HLC, reason) wins, so the first cause is kept.
//
// The records each operation of the cluster writes are built here too
// (change.go): UpdateUser (a profile, a verification), EndSession (a
// logout, an administrator's revoke), RevokeAll ("log out everywhere") and
// Move (an administrator's rename). Each is an inflation of the state it was
// built from (old ⊔ change = change) when stamped above it, which the
// property tests check, and the convergence tests draw their histories from
// them as well as from arbitrary records.
//
// A session is active when it is not ended, not expired, and created after
// its user's RevokedBefore. The last rule is what keeps a revoked user
// revoked: a login created before a "log out everywhere" that reaches a node
// late (delayed, reordered, replayed by anti-entropy) is never active.
//
// # Hazards
//
// The wall clock feeds the HLC; a node whose clock runs far ahead makes its
// writes win LWW registers until real time catches up. Expiry uses the
// receiving node's wall clock, so nodes with skewed clocks may disagree about
// a session for the size of the skew.
//
// History is swept deterministically: a session is deleted once
// history_retention has passed since its end (its Ended time, or ExpiresAt if
// it never ended), a rule that depends only on the record, so every node
// deletes the same records; Apply refuses records that are already past it, so
// anti-entropy from a node that has not swept yet cannot resurrect them.
// Users are never swept.
//
// The store never holds a session token, a verification code or a password:
// a Session is identified by the hex SHA-256 of its token.
package session
