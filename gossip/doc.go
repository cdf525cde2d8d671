// Package gossip spreads session changes between ussync nodes over
// hashicorp/memberlist, and is the only package that imports it.
//
// Four mechanisms, each needed:
//
//  1. Eager push: Publish sends a local change at once, straight to every
//     live member, through one sender per peer. A sender takes everything
//     queued for its peer when it wakes, so changes batch by themselves under
//     load and go alone when idle. Small batches travel as one UDP packet
//     (SendBestEffort), larger ones over TCP (SendReliable). A packet push
//     asks its receiver for an acknowledgement (kindPush, kindAck; a
//     receiver gathers those due to one sender for 10 ms) and is
//     sent again, after a retransmission timeout computed as TCP's (RFC
//     6298), until one comes or it was sent six times, each try under a
//     new number so that every acknowledgement times a round trip (as
//     QUIC's packet numbers, RFC 9002); a stream that failed
//     is sent again the same way. Gossip cannot stand in for a lost push:
//     memberlist sends a few queued changes per packet and GossipInterval,
//     so during a burst the one a push lost waits seconds in the queue.
//     Members of older versions (no meta.Acks) get plain kindDelta pushes.
//     A change that sets a few fields of a large record may travel as a
//     delta state (PublishWithDeltas; session.RevocationDelta for a log out
//     everywhere, session.SitesDelta for a login: a user names every site
//     that knows it, about 55 bytes a site, and outgrows a packet from about
//     20 sites, which would send the push over a TCP stream to every
//     member, a handshake's round trip across the internet). A batch of up
//     to ten packets (TCP's initial window) goes as packets. A delta joins into any state
//     like the change it carries (delta-state CRDTs, Almeida et al. 2018).
//  2. Gossip: the same records enter memberlist's broadcast queue, and a node
//     that learns something new from a peer re-queues it, as Serf does with
//     user events, so a member that missed the push still hears it: the
//     merged state when it fits in a packet (memberlist never gossips a
//     larger broadcast), else the state it received, often a delta. A delta
//     is queued under a key of its own: it neither replaces a queued state of
//     its record nor is replaced by one. The queue
//     is pruned at MaxQueueDepth; anti-entropy covers what pruning drops.
//  3. Anti-entropy: memberlist's push/pull carries a digest (one 64-bit hash
//     per bucket, 2 KiB in all) instead of the state. For the buckets that
//     differ each side sends the other its (key hash, record hash) pairs, 16
//     bytes a record (a pull), and each sends back exactly the records the
//     other lacks or holds in another state, over SendReliable in chunks of
//     at most MaxChunkBytes. In-sync nodes exchange only the digests; during
//     a burst of logins a round costs the pairs of the busy buckets, not
//     their records. A bucket of many records (64 or more, by the puller's
//     count: a store of 16,000 records) is pulled by its leaves instead
//     ("Pulls by leaves", below), so that a heal after a long partition
//     lists and reads the records of the leaves that differ, not the whole
//     store, and never receives a state it would only discard. A pull goes
//     in parts of at most 8 buckets, two parts
//     answered at a time (the next part leaves when one is applied), so a
//     new member holds a few parts of records in memory, not the store its
//     peer reads faster than it writes; and a bucket that a round with one
//     peer is pulling is not pulled from another meanwhile. Repairs are
//     decoded by the apply loop and merged by a repair loop of their own
//     (session.Store.ApplyRepairs), so decoding one batch overlaps merging
//     the last and pushes are not held behind a catch-up. A member that is
//     not catching up does not pull from one that started on an empty store
//     and is catching up for the first time (digestFresh, below): what it
//     holds came from its peers or was pushed. Rounds are tracked and
//     retried: see below.
//  4. Reconnect: memberlist gives up on a member declared dead. A loop keeps
//     re-joining failed members, the join addresses at which no live member
//     answers (alone or not) and the members remembered from the last run,
//     each with a jittered backoff capped at ReconnectMaxBackoff (20 s by
//     default); between tries each is pinged (one UDP packet that only a
//     holder of the cluster key answers) every ReconnectInterval, and an
//     answer makes it due at once. So a partition heals within about
//     ReconnectInterval (2 s lan, 5 s wan) of the network coming back,
//     whatever its length, and a member that stays away costs a ping per
//     interval.
//
// # Anti-entropy rounds
//
// A round is one member pulling from one peer. It starts when the member
// compares the peer's digest with its own (the peer's push/pull state: the
// digest of what its store has committed, read without waiting for a write
// in progress, so that a push/pull never waits behind a large catch-up or
// bulk write). It is complete when either
//
//   - the digests are equal, or differ only in buckets the peer's digest
//     shows empty: the member held everything the peer held; or
//   - the member sent its pull for every bucket that differs (in parts, when
//     large), the peer answered every part, and every repair chunk of the
//     answer is applied to the store. The peer tags each chunk with the
//     pull's round and part; a part's last chunk (sent even when empty) says
//     how many there were, so the member can tell "nothing to send" from
//     "lost on the way". A part by leaves is answered when the peer's
//     answer naming the leaves that differ has come and every repair chunk
//     answering the leaf pulls it sent is applied (none: when no leaf
//     differed).
//
// A complete round means: this member now holds every record the peer held
// when it read its buckets to answer (what the peer writes afterwards comes
// by push). The other direction (the peer pulling from this member) is the
// peer's round, held from the same push/pull, and tracked by the peer.
//
// A round that cannot complete is retried rather than left to the next
// periodic push/pull (60 s under the wan profile): a pull that could not be
// sent, and a digest or repair this member had to drop (a full inbox or
// anti-entropy queue), fail their round at once; a round whose pull the
// peer dropped, or whose repair was lost without an error, gets no repair
// for RoundTimeout (twice TCPTimeout, at least 10 s; every chunk applied
// pushes it back) and times out. Either way the member owes the peer a
// round, and starts a push/pull
// with it (a resync) after ResyncInterval, doubling to ResyncMaxBackoff,
// jittered, until one completes. A member back from failure, remembered
// from the last run, or back at a new address is owed a round at once, and
// the same retries apply. While a round with a peer is under way, its
// digests start no other (a large catch-up outlasts push/pull periods).
// Anti-entropy work waits per peer (the newest digest replaces an older
// one) and is done by a few workers, one peer at a time each, so a slow or
// dead peer does not hold up the others.
//
// # Pulls by leaves
//
// The store splits each bucket into session.Leaves leaves below the digest,
// kept as the digest is (the XOR of the hashes of the records in the leaf;
// a Merkle level of one step, as Cassandra's and Riak's repair trees split
// a token range, and as fine as the digest is coarse: 2 MiB of hashes).
// For a bucket it holds many records of, a member of aeProto 4 pulling
// from a peer of aeProto 4 sends the bucket's leaves (kindLeaves) folded to
// about four of its records a leaf (between 16 and session.Leaves leaves:
// 2 bytes a record where the pairs take 16), and the part goes in four
// steps instead of two:
//
//  1. the puller sends its leaves, read from memory (no record is read);
//  2. the peer folds its own leaves alike and names the leaves that
//     differ (kindDiffer, a bitmap a bucket, tagged with the round and
//     part, in one chunk), again from memory. The puller takes it ahead
//     of the pulls the peer queued for it (a worker reads buckets for
//     those one after another), and only as the answer the part awaits:
//     from the round's peer, once, for the buckets the part asked at the
//     bits it sent, each once; anything else is refused, counted as a
//     bad message and logged by peer at most once a minute, and an
//     answer of the round's peer that cannot complete its part gives the
//     round up, to be tried again;
//  3. the puller reads its own records of those leaves and pulls them
//     (kindLeafPull, a part of the round of its own number): their (key
//     hash, record hash) pairs, and beside every record that provably
//     dominates another state of itself the hash of that state
//     (session.BucketEntry.Dominates: the alive form of a session the
//     puller holds ended). The pulls are cut at leaf boundaries into
//     messages under MaxChunkBytes; a leaf whose pairs alone would not fit
//     (keys whose KeyHash share their top bits: 16,000 of one bucket in
//     one leaf) goes over several messages, each naming the leaf with some
//     of its pairs, and the peer's answer to each carries the leaf's
//     records not listed in it, some of which the puller holds (as a
//     bucket split over parts of a pull by pairs). If the records it read
//     do not add up to a leaf it keeps, its digest drifted (a bug): the
//     store scrubs that bucket at once (session.Store.LeafEntries);
//  4. the peer reads its records of those leaves and sends, as the repairs
//     of a pull, those whose state is neither listed nor dominated: never
//     the alive copy of a session logged out on the puller's side of a
//     partition, which a pull of aeProto 3 sends only for the merge to
//     discard.
//
// So a pull lists and reads the records of the leaves that differ, not of
// the bucket (each side still walks the bucket's keys to find them, and
// reads no value outside those leaves). A bucket the puller holds nothing
// of is pulled by an empty list of pairs as before, so a newcomer's
// catch-up goes as it did; a bucket of few records (a store under 16,000)
// costs less by its pairs than by its leaves and two more trips, and is
// pulled by pairs.
//
// # Catching up
//
// A member that starts with peers to ask (join addresses, or members
// remembered from its last run in the store's node-local keys, as Serf's
// snapshot does) is catching up until a round with a live member completes;
// so is a member that was cut off from every member while it had peers to
// reach, from the moment one is back; so is a member whose store refused
// records a peer sent because its disk was full (session.ErrStorageFull):
// its catch-up asks a live member as soon as the store accepts writes
// again (rounds owed meanwhile start at once, their backoff reset), rather
// than leave the records to the next periodic push/pull, and no round
// ends it while the disk is still full. Until then its store answers from
// what it held, and a session logged out meanwhile may look active:
// CatchingUp, Health and Stats say so, for a node to serve /readyz, status
// and a field on session checks. While catching up with nothing under way
// it asks a live member itself. A member alone by design (no join address,
// nothing remembered: the first of a cluster) has nothing to catch up on.
//
// A round with a peer that is itself behind makes this member only as fresh
// as that peer. A peer of an older version does not say when its answer is
// complete: a round with it counts once the pull is sent (best effort, for
// the time of a rolling upgrade).
//
// # A member back at a new address
//
// memberlist refuses a name at a new address while the old one looks alive,
// and, by default, until the dead entry is forgotten. Here DeadNodeReclaimTime
// lets a new address take a dead member's name at once; a peer that sees the
// conflict while the old address still looks alive pings both (only a member
// holding the cluster key and answering to that name acknowledges) and, if
// only the new one answers, follows the name there at once: eager pushes,
// anti-entropy and the member list use the new address. The moved member
// holds a round with every member, which carries its new address to each.
// Two live nodes claiming one name are logged as an error and nothing moves.
//
// # The gossip port
//
// Every message is encrypted and authenticated by memberlist's AES-GCM
// keyring, with keys the caller derives from the cluster secret; a node with
// another secret can neither join nor inject anything. Before memberlist
// sees a byte, the transport checks what arrives: a packet no installed key
// decrypts is dropped; a stream must send its first message within
// TCPTimeout, be encrypted, stay under MaxMessageBytes plus framing (a
// push/pull state is a 2 KiB digest plus ~600 bytes a member), and is
// buffered only as its bytes arrive; at most MaxInboundStreams streams from
// known addresses and MaxStrangerStreams from others are open at once. What
// fails is counted per source (Stats, Health.Foreign) and logged at most
// once a minute per source, never once per packet. A join address or member
// that answers in another key, or a member's address sending memberlist
// traffic no key opens, is a key mismatch (a node that missed a rotation);
// a member with no live peer while it has some to reach is Isolated.
//
// Delegate callbacks never block and never keep memberlist's buffers: they
// copy and hand off to bounded queues, and a full queue drops (and counts,
// and owes the sender a round) rather than stall memberlist.
//
// # Refused records, clocks and revoked sites
//
// Records from peers go through the store's checks (session.Store.
// ApplyChecked, and ApplyRepairs for anti-entropy's repairs): a record stamped more than the max offset ahead of this
// node's clock, invalid, or living too long is refused, never merged and
// never rebroadcast, so it stops at the first honest node. Every record
// message names its sender ("f"), so refusals are counted per peer
// (RefusedFrom) and logged at most once a minute per peer.
//
// Each probe's ack carries the acker's wall clock (memberlist's
// PingDelegate, as Consul's coordinates ride on the probes); the prober
// estimates the member's offset within half the round trip, keeping the
// sample of shortest trip among the last eight (NTP's clock filter): Clocks.
//
// While an administrator has revoked a member's site (a session.Site record),
// its alive messages are ignored (memberlist's AliveDelegate): it cannot
// join, come back, or refute a suspicion, and the reconnect loop does not
// chase it. memberlist cannot remove a member that still answers probes: a
// revoked node already alive stays listed until it fails or leaves.
//
// # Faults
//
// Faults is the one fault-injecting layer of the project (tests, nodetest,
// `ussync bench`): cuts, one-way delay with jitter, random loss of packets
// and streams, and drops of the next messages of a kind, all seeded and
// reproducible, applied by the transport and the senders. Nil in production.
//
// # Wire compatibility
//
// The digest ends with the sender's anti-entropy protocol (aeProto). Peers
// of protocol 2 get pulls (kindPull) and answer with tagged repairs; older
// peers get kindHashes and answer untagged, as before. Older versions ignore
// the protocol byte and the tags. Protocol 3 adds a flags byte after the
// protocol: digestFresh, set by a member catching up on the store it started
// empty, tells its peers of protocol 3 not to pull from it meanwhile (it
// holds nothing of its own that it did not push); older peers ignore it and
// pull as before. Protocol 4 adds pulls by leaves (kindLeaves, answered with
// kindDiffer, then kindLeafPull, answered with tagged repairs): a member sends
// them only to peers whose digest says 4 or more, pulls from older peers by
// pairs as before, and answers every older request as before.
package gossip
