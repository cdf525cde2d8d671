package gossip

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ussync/ussync/session"
)

// TestGossip_FreshPeerNotPulled: a member does not pull from a peer whose
// digest says it started empty and is catching up (digestFresh), pulls from
// it once the flag is gone, and pulls from it all the same while catching
// up itself.
func TestGossip_FreshPeerNotPulled(t *testing.T) {
	m := startMember(t, slowed(testConfig(t, "n0", newKey(t))))
	if m.g.CatchingUp() {
		t.Fatal("a member without peers is catching up")
	}
	// Each case names another peer and bucket: a pull sent (to nowhere)
	// claims its buckets until the send fails.
	digest := func(name string, b uint8, fresh bool) message {
		var d session.Digest
		d[b] = 1 // the peer holds something this member lacks
		return message{kind: kindDigest, from: name, addr: "127.0.0.1:1", digest: &d, proto: aeProto, fresh: fresh}
	}
	pulled := func() uint64 { return m.g.Stats().BucketsRepaired }

	m.g.compare(digest("newcomer", 1, true))
	if got := pulled(); got != 0 {
		t.Fatalf("pulled %d buckets from a fresh peer catching up", got)
	}
	m.g.compare(digest("newcomer", 2, false))
	if got := pulled(); got != 1 {
		t.Fatalf("pulled %d buckets from the same peer once caught up, want 1", got)
	}
	m.g.startCatchUp(CatchUpStalled)
	m.g.compare(digest("another", 3, true))
	if got := pulled(); got != 2 {
		t.Fatalf("a member catching up pulled %d buckets in all from a fresh peer, want 2", got)
	}
}

// TestGossip_DigestFlags: a member says digestFresh while it catches up for
// the first time on the store it started empty, and never again once it has
// caught up.
func TestGossip_DigestFlags(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := ln.Addr().String()
	ln.Close()
	cfg := slowed(testConfig(t, "late", newKey(t)))
	cfg.Join = []string{nowhere} // a peer to reach: it starts catching up
	m := startMember(t, cfg)
	if h := m.g.Health(); !h.CatchingUp || h.CatchUpReason != CatchUpStarting || !m.store.Fresh() {
		t.Fatalf("started empty with a peer to reach: %+v, fresh %v", h, m.store.Fresh())
	}
	if got := m.g.digestFlags(); got != digestFresh {
		t.Fatalf("flags %#x while catching up on an empty store, want digestFresh", got)
	}
	if msg, err := decodeMessage((*delegate)(m.g).LocalState(false)); err != nil || !msg.fresh {
		t.Fatalf("its push/pull state: %+v, %v", msg, err)
	}
	// A member playing an older version says nothing of it.
	m.g.proto.Store(2)
	if msg, err := decodeMessage((*delegate)(m.g).LocalState(false)); err != nil || msg.fresh || msg.proto != 2 {
		t.Fatalf("an aeProto 2 member's push/pull state: %+v, %v", msg, err)
	}
	m.g.proto.Store(aeProto)
	m.g.caughtUp("n0", "test")
	if got := m.g.digestFlags(); got != 0 {
		t.Fatalf("flags %#x once caught up", got)
	}
	m.g.startCatchUp(CatchUpStalled)
	if got := m.g.digestFlags(); got != 0 {
		t.Fatalf("flags %#x catching up again after having caught up once", got)
	}
}

// history writes n sessions, the same in every store, straight into the
// stores of ms (not published): a cluster that has run for a while.
func history(t *testing.T, ms []*member, n int) []session.Record {
	t.Helper()
	recs := make([]session.Record, n)
	at := ms[0].store.Clock().Now()
	for i := range recs {
		s := session.Session{ID: fmt.Sprintf("h%063x", i), Email: "ann@example.com", Site: "n0", Created: at, ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
		recs[i] = session.Record{Session: &s}
	}
	for _, m := range ms {
		if _, err := m.store.Apply(recs...); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

// leafCluster starts n members holding the same history of records
// sessions, each pulling a bucket by its leaves from leafMin records (as a
// store of a million does from 64), joined, and quiet: the same records,
// no round in flight.
func leafCluster(t *testing.T, n, records, leafMin int, tune func(i int, c *Config)) []*member {
	t.Helper()
	key := newKey(t)
	ms := make([]*member, n)
	for i := range ms {
		cfg := testConfig(t, fmt.Sprintf("n%d", i), key)
		cfg.leafMin = leafMin
		debugLogs(t)(i, &cfg) // the story of a failure
		if tune != nil {
			tune(i, &cfg)
		}
		ms[i] = startMember(t, cfg)
	}
	history(t, ms, records)
	for i, m := range ms[1:] {
		for _, o := range ms[:i+1] {
			if _, err := m.g.Join([]string{o.g.Addr()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, 10*time.Second, "a quiet cluster", func() bool {
		for _, m := range ms {
			if len(m.g.LiveMembers()) != n || m.g.rounds.pending("") {
				return false
			}
		}
		return converged(ms)
	})
	return ms
}

// endSession ends the session id on m and publishes it.
func endSession(t *testing.T, m *member, id string) {
	t.Helper()
	logout(m, id)
}

// stateHashes maps every replicated record of m to its hash.
func stateHashes(t *testing.T, m *member) map[string]uint64 {
	t.Helper()
	h, err := m.store.RecordHashes()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// aeTotals sums the records repaired, the pairs sent and the buckets pulled
// by leaves over ms.
func aeTotals(ms []*member) (repaired, pairs, byLeaf uint64) {
	for _, m := range ms {
		st := m.g.Stats()
		repaired, pairs, byLeaf = repaired+st.RecordsRepaired, pairs+st.PairsSent, byLeaf+st.BucketsByLeaf
	}
	return repaired, pairs, byLeaf
}

// TestGossip_HealByLeaves: a 1 | 2 split over a shared history heals by
// pulls by leaves (aeProto 4): every node gets exactly the records it
// lacked or held older, none it would only have discarded (the alive copy
// of a session ended on its side: a one-way pull of aeProto 3 sends it),
// and the pairs listed cover the leaves that differ, not the stores (a
// pull of aeProto 3 lists every record of every differing bucket).
func TestGossip_HealByLeaves(t *testing.T) {
	const records = 3000
	ms := leafCluster(t, 3, records, 4, nil)
	a, b, c := ms[0], ms[1], ms[2]
	// {a} | {b, c}
	a.faults.Block(b.g.Addr(), c.g.Addr())
	b.faults.Block(a.g.Addr())
	c.faults.Block(a.g.Addr())
	waitFor(t, 10*time.Second, "each side to see the other dead", func() bool {
		return len(a.g.LiveMembers()) == 1 && len(b.g.LiveMembers()) == 2 && len(c.g.LiveMembers()) == 2
	})
	// Each side ends sessions of the history (the other holds them alive)
	// and logs in new ones.
	for i := range 40 {
		endSession(t, a, fmt.Sprintf("h%063x", i))
		login(a, fmt.Sprintf("a%063x", i))
	}
	for i := range 20 {
		endSession(t, []*member{b, c}[i%2], fmt.Sprintf("h%063x", 1000+i))
		login([]*member{b, c}[i%2], fmt.Sprintf("b%063x", i))
	}
	waitFor(t, 10*time.Second, "each side to agree, its gossip sent", func() bool {
		return converged(ms[1:]) && a.g.QueuedBroadcasts() == 0 && b.g.QueuedBroadcasts() == 0 && c.g.QueuedBroadcasts() == 0
	})
	before := make([]map[string]uint64, len(ms))
	for i, m := range ms {
		before[i] = stateHashes(t, m)
	}
	repaired0, pairs0, byLeaf0 := aeTotals(ms)

	for _, m := range ms {
		m.faults.Heal()
	}
	waitFor(t, 20*time.Second, "the split to heal and converge", func() bool {
		return len(a.g.LiveMembers()) == 3 && converged(ms) && !a.g.rounds.pending("") && !b.g.rounds.pending("") && !c.g.rounds.pending("")
	})
	final := stateHashes(t, a)
	lacked := 0 // what each node lacked or held in another state: the least a heal sends
	for i := range ms {
		for k, h := range final {
			if before[i][k] != h {
				lacked++
			}
		}
	}
	repaired, pairsSent, byLeaf := aeTotals(ms)
	repaired, pairsSent, byLeaf = repaired-repaired0, pairsSent-pairs0, byLeaf-byLeaf0
	t.Logf("%d records lacked, %d repaired; %d pairs sent; %d buckets pulled by leaves", lacked, repaired, pairsSent, byLeaf)
	if byLeaf == 0 {
		t.Error("no bucket was pulled by its leaves")
	}
	if repaired > uint64(lacked) {
		t.Errorf("%d records repaired for %d lacked: some were sent to a node that held them or newer", repaired, lacked)
	}
	if pairsSent > records/2 {
		t.Errorf("%d pairs sent for %d records that differ among %d: whole buckets were listed", pairsSent, lacked, records)
	}
	for _, m := range ms {
		if !hasEnded(m, fmt.Sprintf("h%063x", 0)) || !hasEnded(m, fmt.Sprintf("h%063x", 1000)) || !has(m, fmt.Sprintf("b%063x", 19)) {
			t.Fatalf("%s: wrong state after the heal", m.g.cfg.Name)
		}
	}
}

// TestGossip_LeavesNotSentToOlderPeer: a member of aeProto 3 (no pulls by
// leaves) and one of this version converge both ways over a history large
// enough for leaves: the new one pulls from it as before (kindPull), it
// pulls as before, and neither drops a message it cannot read.
func TestGossip_LeavesNotSentToOlderPeer(t *testing.T) {
	ms := leafCluster(t, 2, 3000, 4, func(i int, c *Config) {
		*c = slowed(*c)
	})
	old, nw := ms[0], ms[1]
	old.g.proto.Store(3)
	for i := range 30 {
		logout(old, fmt.Sprintf("h%063x", i))
		unpublished(t, old, fmt.Sprintf("o%063x", i))
		logout(nw, fmt.Sprintf("h%063x", 100+i))
		unpublished(t, nw, fmt.Sprintf("n%063x", i))
	}
	// Both pull: the push/pull gives each the other's digest (the old
	// member's names aeProto 3).
	if err := nw.g.SyncWith(old.g.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both to converge", func() bool { return converged(ms) })
	for _, m := range ms {
		st := m.g.Stats()
		if st.BucketsByLeaf != 0 || st.BadMessages != 0 || st.RoundsFailed != 0 {
			t.Fatalf("%s: %+v", m.g.cfg.Name, st)
		}
	}
	// Among members of this version, the same pulls go by leaves.
	old.g.proto.Store(aeProto)
	unpublished(t, old, "after")
	if err := nw.g.SyncWith(old.g.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both to converge again", func() bool { return converged(ms) })
	if got := nw.g.Stats().BucketsByLeaf; got == 0 {
		t.Fatal("members of this version pulled no bucket by its leaves")
	}
}

// nothing reports an outcome that sends nothing and completes nothing.
func nothing(o partOutcome) bool { return o.next == nil && !o.done && o.peer == "" }

// TestRoundBook_LeafParts: a round of a pull part and two parts by leaves
// (two sent at once, pullWindow) is complete only once the pull part's
// repairs are applied, a part by leaves that found nothing differing is
// done at once, and the other's leaf pulls are each answered; repairs
// under a number the round never gave are ignored.
func TestRoundBook_LeafParts(t *testing.T) {
	b := newRoundBook()
	node := nodeAt("peer", "127.0.0.1:1")
	id, buckets, _ := b.claim("peer", "127.0.0.1:1", time.Minute, []uint8{1, 2, 3})
	if len(buckets) != 3 {
		t.Fatalf("claimed %v", buckets)
	}
	var l session.LeafHashes
	msgs := encodeRound("me", "127.0.0.1:2", id, []bucketHashes{{bucket: 1, hashes: map[uint64]uint64{}}},
		[]bucketLeaves{{bucket: 2, bits: 4, hashes: l.Fold(4)}})
	msgs = append(msgs, encodeRound("me", "127.0.0.1:2", id, nil, []bucketLeaves{{bucket: 3, bits: 4, hashes: l.Fold(4)}})...)
	numberParts(msgs) // parts 0 (pull), 1 and 2 (leaves)
	if first := b.setParts(id, msgs, node); len(first) != pullWindow {
		t.Fatalf("%d parts sent first", len(first))
	}
	// Part 1 by leaves: two leaf pulls, numbered from 3.
	if _, _, ok := b.differ(repairTag{Round: id, Part: 1, Chunks: 1}, nil, time.Minute); !ok {
		t.Fatal("the answer to part 1 was not taken")
	}
	first, out, ok := b.pulling(id, 1, 2)
	if !ok || first != 3 || !nothing(out) {
		t.Fatalf("pulling: %d, %+v, %v", first, out, ok)
	}
	// A repair tagged with the part by leaves itself is no answer of ours.
	if out := b.applied(repairTag{Round: id, Part: 1, Chunks: 1}, time.Minute); !nothing(out) {
		t.Fatalf("a repair for the part by leaves: %+v", out)
	}
	if out := b.applied(repairTag{Round: id, Part: 3, Chunks: 1}, time.Minute); !nothing(out) {
		t.Fatalf("one leaf pull of two answered: %+v", out)
	}
	// Part 1 complete: the third part goes out.
	out = b.applied(repairTag{Round: id, Part: 4, Chunk: 0, Chunks: 1}, time.Minute)
	if out.next == nil || out.to != node || out.done {
		t.Fatalf("part 1 complete: %+v", out)
	}
	// Part 2 by leaves: nothing differs, nothing to pull.
	if _, _, ok := b.differ(repairTag{Round: id, Part: 2, Chunk: 0, Chunks: 1}, nil, time.Minute); !ok {
		t.Fatal("the answer to part 2 was not taken")
	}
	if _, out, ok := b.pulling(id, 2, 0); !ok || out.done || out.next != nil {
		t.Fatalf("part 2 with nothing to pull: %+v, %v", out, ok)
	}
	if !b.pending("peer") {
		t.Fatal("the round is over before its pull part is answered")
	}
	if out := b.applied(repairTag{Round: id, Part: 9, Chunks: 1}, time.Minute); !nothing(out) {
		t.Fatalf("a repair under a number never given: %+v", out)
	}
	out = b.applied(repairTag{Round: id, Part: 0, Chunks: 1}, time.Minute)
	if !out.done || out.peer != "peer" || b.pending("") {
		t.Fatalf("every part answered: %+v", out)
	}
}
