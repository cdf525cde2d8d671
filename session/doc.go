// Package session owns the domain of ussync: users, sessions, the sites an
// administrator revoked, the hybrid logical clock that orders their
// changes, the merge rules that make every replica converge, and the Badger
// store that keeps them on disk.
//
// # Convergence
//
// Every record (a User, a Session or a Site) is a state-based CRDT: Join is
// a join (commutative, associative, idempotent), so replicas that receive
// the same records in any order, any number of times, reach identical state
// and an identical Digest. merge_test.go proves it with property tests over
// every field and kind. The rules:
//
//   - User fields login, display name and verification are last-writer-wins
//     registers ordered by (HLC, node name); an exact tie (which a real writer
//     never produces) is broken by the value so the join stays well defined.
//   - User.RevokedBefore only grows (max). "Log out everywhere" raises it.
//   - User.Created is the earliest creation seen (min over non-zero).
//   - User.MovedTo (an administrator moved the user to a new address) is a
//     last-writer-wins register too; while it names an address, none of the
//     user's sessions is active.
//   - User.Sites holds, per site (node name), when its backend last had the
//     user (Known) and when it last proved the mailbox or received the user
//     by a completed hand-off (Bound); both join per site by max.
//     User.UnboundBefore only grows: Unverify raises it, voiding every
//     binding made until then.
//   - User.Reset is the record's generation: JoinUser compares it first and
//     the state with the greater Reset wins whole; states of one generation
//     join field by field (a lexicographic join). ResetUser starts a new
//     generation: it is how an administrator repairs a record stamped with
//     a timestamp nothing can outbid.
//   - A session is immutable but for Ended/EndReason. Ended wins over alive;
//     of two ends the earliest (HLC, reason) wins, so the first cause is kept.
//   - A Site record's Revoked is a last-writer-wins register (an
//     administrator can take a revocation back); its RevokedBefore only
//     grows and is raised by revoke and un-revoke alike.
//
// The records each operation of the cluster writes are built here too
// (change.go): UpdateUser (a profile), SiteUpdate (a site's write of a
// user: its verification, its profile at its clock or at a floor stamp, its
// acknowledgement), EndSession (a logout, an administrator's revoke),
// RevokeAll ("log out everywhere") and Move (an administrator's rename); a
// verification, its removal, a binding and a
// site's acknowledgement are User.Verify, Unverify, Bind and MarkKnown
// (binding.go); a site's revocation is RevokeSite and UnrevokeSite
// (site.go); the reset of a damaged user is ResetUser (reset.go). Each is
// an inflation of the state it was built from (old ⊔ change = change) when
// stamped above it, which the property tests check (genChange,
// change_test.go, draws every one of them); the algebra and the
// convergence tests draw their records from them as well as from arbitrary
// records.
//
// A session is active when it is not ended, not expired, created after its
// user's RevokedBefore, its user is not moved, and its site is not revoked
// nor was when it was created (created after the site's RevokedBefore). The
// revoked-before rules are what keep a revoked user revoked: a login created
// before a "log out everywhere" that reaches a node late (delayed,
// reordered, replayed by anti-entropy) is never active.
//
// # The digest
//
// Digest is one 64-bit hash a bucket (BucketOf: the first byte of the
// key's SHA-256), the XOR of the hashes of the bucket's replicated records
// (their key and stored encoding); each bucket is split further into
// Leaves leaves (LeafOf: the top bits of the key's KeyHash), kept the same
// way (Store.Leaves), so that anti-entropy finds which part of a bucket
// differs without reading it. Every write keeps both, Close saves them and
// Open reads them back (a saved state without leaves of its own is read
// again from the records), and Store.VerifyDigest checks them against the
// records (exactly, a bucket at a time under the writers' lock). BucketEntry.Dominates names a state that a record's state
// provably dominates (the alive form of an ended session): a peer holding
// it needs nothing from this one.
//
// # Identity and bindings
//
// NormalizeEmail is the one door for addresses: NFC and ASCII-only case
// folding for the local part, IDNA (UTS #46) for the domain, and a refusal
// for whatever cannot be made unambiguous (docs/users.md). A login travels
// to the other sites only when User.Travels(site) says so: the address is
// verified and site is bound to it (User.BoundTo). A site that is not bound
// never overwrites an existing user's profile (User.MayWriteProfile).
// User.Sites is never modified in place: MarkKnown, Bind, Verify and
// Unverify copy it, and User values share it.
//
// # Clocks
//
// The wall clock feeds the HLC. A timestamp more than the max offset
// (Options.MaxOffset, 5 s by default, the same on every node) ahead of this
// node's wall clock is refused: Apply does not merge the record, the clock
// does not observe it, the refusal is counted (Store.Refused) and logged at
// most once a minute per reason. One observed timestamp from the far future
// would drag every later write with it for good; 2^64-1 would wrap the
// clock. The clock never wraps (it saturates at MaxHLC) and never goes back.
// Apply also refuses a session whose lifetime exceeds Options.MaxSessionTTL
// plus the max offset, and records whose fields are out of bounds.
//
// # Hazards
//
// Clocks must agree within the max offset (NTP). A node whose clock is
// slower than that refuses its peers' newer records, so its view goes stale
// (a session logged out everywhere stays active there) until its clock is
// fixed; its refusal counter says so. A node whose clock is faster has its
// records refused by every other node: its logins stay on its own site and
// its logouts do not reach the others. Within the offset, a node's records
// win last-writer-wins registers for at most the size of its lead, and
// expiry is judged by each node's own wall clock, so nodes may disagree
// about a session for the size of the skew. docs/security.md ("Records and
// clocks") states what is refused and what is accepted in each case.
//
// A reset discards the writes a node made to the user without having heard
// of it (its old generation). A node of a version that knows no Reset,
// Sites or Site record ignores them (it drops the unknown fields; a Site
// record decodes as an empty record and is refused as invalid), and its
// digest differs from the upgraded nodes' for the records that carry them
// until it is upgraded.
//
// History is swept deterministically: a session is deleted once
// history_retention has passed since its expiry, ended or not, a rule that
// depends only on the record, so every node deletes the same records; Apply
// refuses records that are already past it, so anti-entropy from a node that
// has not swept yet cannot resurrect them. An ended session is kept as long
// as its alive form could be alive and unswept anywhere: swept at its end
// plus retention, as earlier builds did, a session of a year logged out on its
// first day would have come back to life on every node once a node away
// for more than retention (or restored from an old backup) sent its alive
// copy. A node of an earlier build, which sweeps by the end, refuses the
// ends its upgraded peers still hold, and its digest differs from theirs
// there until it is upgraded.
// Users and Site records are never swept.
//
// The digest is kept by XORing each write's old hash out and its new hash
// in; a bug in that bookkeeping (one was a group commit whose record cache
// kept a state that a repair in the same group had replaced) leaves a
// bucket that differs from its records for good, which anti-entropy pulls
// from every peer for ever and carries nothing. Store.Scrub compares one
// bucket and its leaves with its records and corrects them (the node
// scrubs one every 15 s; anti-entropy scrubs a bucket at once when the
// records of a leaf it reads anyway do not add up to the leaf:
// Store.LeafEntries), so such a bug costs minutes of a bucket's repairs,
// logged and counted, not a cluster that never converges again.
//
// Badger writes through memory-mapped files: a full filesystem would make
// a write a SIGBUS. The store keeps Options.MinFree (64 MiB) free and
// refuses every write below it with ErrStorageFull (space.go); reads go on.
//
// The store never holds a session token, a verification code or a password:
// a Session is identified by the hex SHA-256 of its token.
//
// # For the node
//
// What a service does with this package, each in a few lines:
//
//   - Addresses: NormalizeEmail on every address that comes in.
//   - PUT of a user by site S, an administrator's verify or unverify on S,
//     a login on S: SiteUpdate(u, known, change, ack, clock.Now(), S). It
//     leaves the profile alone when S may not write it (User.MayWriteProfile),
//     stamps it at a floor when S is not bound, and does u.Verify,
//     u.Unverify, u.ClaimProfile and u.MarkKnown as the write says. A rename
//     is Move, which unverifies the old address.
//   - Login on S: ok, reason := u.Travels(S); the session is Local unless
//     ok (or sync.require_verified is off); the answer's sync reason is
//     reason (ReasonNotVerified, ReasonSiteNotBound: "send a code").
//     u.MarkKnown(S, at) replaces the node-local "known" mark; a site's
//     "new user" flag is !u.KnownTo(S).
//   - Code or link redeemed at S: u.Verify(VerifiedCode, S, at). A hand-off
//     ticket redeemed at S (the user completed it): u.Bind(S, at). A ticket
//     carries u.WithoutSites().
//   - Session check: s.StateIn(u, store.Site(s.Site), now); StateSiteRevoked
//     is a 410 with end reason EndSiteRevoked.
//   - Revoke a site: x := RevokeSite(name, clock.Now(), self), written
//     through the node's one write path (service.apply: Store.Apply, then
//     publish); UnrevokeSite to take it back; store.Site(name).IsRevoked()
//     for its tickets and its URL; store.Sites() for status.
//   - Reset a user: r := ResetUser(u, clock.Now()), written through
//     service.apply like every change.
//   - Store.Fresh: the node started on an empty data dir; its replay cache
//     is gone, so refuse tickets for one ticket TTL. Site-only (Local)
//     sessions are node-local too and are lost with it (their users log in
//     again on that site): they never travel.
//   - Open the store with Options.MaxOffset and Options.MaxSessionTTL from
//     the cluster's configuration; report Store.Refused() as a metric by
//     reason; records from a peer go through ApplyChecked (anti-entropy's
//     repairs through ApplyRepairs, which leaves them out of the record
//     cache) to count and log refusals per peer; a ticket's time is checked with Clock.CheckTime or
//     crypto's OpenTicketWithin.
package session
