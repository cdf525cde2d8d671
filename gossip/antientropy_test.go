package gossip

import (
	"errors"
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
		cfg.LeafPullMin = leafMin
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
	if _, err := b.differ("peer", repairTag{Round: id, Part: 1, Chunks: 1}, nil, time.Minute); err != nil {
		t.Fatalf("the answer to part 1 was not taken: %v", err)
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
	if _, err := b.differ("peer", repairTag{Round: id, Part: 2, Chunk: 0, Chunks: 1}, nil, time.Minute); err != nil {
		t.Fatalf("the answer to part 2 was not taken: %v", err)
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

// leafRound starts a round with peer on b: a part by pairs (bucket 1) and
// a part by leaves asking buckets 2 and 3 at 4 bits (part 1).
func leafRound(t *testing.T, b *roundBook, peer string) uint64 {
	t.Helper()
	id, buckets, _ := b.claim(peer, "127.0.0.1:1", time.Minute, []uint8{1, 2, 3})
	if len(buckets) != 3 {
		t.Fatalf("claimed %v", buckets)
	}
	var l session.LeafHashes
	msgs := encodeRound("me", "127.0.0.1:2", id, []bucketHashes{{bucket: 1, hashes: map[uint64]uint64{}}},
		[]bucketLeaves{{bucket: 2, bits: 4, hashes: l.Fold(4)}, {bucket: 3, bits: 4, hashes: l.Fold(4)}})
	b.setParts(id, msgs, nodeAt(peer, "127.0.0.1:1"))
	return id
}

// TestRoundBook_DifferRefusals: an answer to a part by leaves is taken
// once, from the round's peer, for the buckets the part asked at the bits
// it sent; anything else is refused, and only a taken answer pushes the
// round's deadline back.
func TestRoundBook_DifferRefusals(t *testing.T) {
	set := func(bucket, bits uint8) leafSet {
		s := newLeafSet(bucket, bits)
		s.add(1)
		return s
	}
	for _, tc := range []struct {
		name string
		from string
		part uint32
		sets []leafSet
		want error
	}{
		{"from another member", "intruder", 1, []leafSet{set(2, 4)}, errAnswerSender},
		{"to the part by pairs", "peer", 0, nil, errAnswerPart},
		{"to a part never sent", "peer", 7, nil, errAnswerPart},
		{"naming a bucket not asked", "peer", 1, []leafSet{set(1, 4)}, errAnswerBucket},
		{"at other bits", "peer", 1, []leafSet{set(2, 5)}, errAnswerBucket},
		{"naming a bucket twice", "peer", 1, []leafSet{set(2, 4), set(3, 4), set(2, 4)}, errAnswerBucket},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newRoundBook()
			id := leafRound(t, b, "peer")
			deadline := b.rounds[id].deadline
			if _, err := b.differ(tc.from, repairTag{Round: id, Part: tc.part, Chunks: 1}, tc.sets, time.Hour); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if r := b.rounds[id]; r == nil || r.deadline != deadline || r.leaf[1].decided {
				t.Fatalf("a refused answer changed the round: %+v", r)
			}
		})
	}
	b := newRoundBook()
	id := leafRound(t, b, "peer")
	if _, err := b.differ("peer", repairTag{Round: id + 1, Part: 1, Chunks: 1}, nil, time.Minute); !errors.Is(err, errNoRound) {
		t.Fatalf("an answer to no round: %v", err)
	}
	if node, err := b.differ("peer", repairTag{Round: id, Part: 1, Chunks: 1}, []leafSet{set(3, 4), set(2, 4)}, time.Minute); err != nil || node == nil {
		t.Fatalf("the answer: %v, %v", node, err)
	}
	if _, err := b.differ("peer", repairTag{Round: id, Part: 1, Chunks: 1}, []leafSet{set(3, 4)}, time.Minute); !errors.Is(err, errAnswerAgain) {
		t.Fatalf("a second answer: %v", err)
	}
}

// TestGossip_DifferRefusedCounted: answers refused reach neither the store
// nor the wire: each is counted as a bad message, and an answer of the
// round's peer that cannot complete its part gives the round up (it is
// tried again), where one from another member leaves it alone.
func TestGossip_DifferRefusedCounted(t *testing.T) {
	m := startMember(t, slowed(testConfig(t, "n0", newKey(t))))
	id := leafRound(t, m.g.rounds, "peer")
	answer := func(from string, part uint32, sets ...leafSet) {
		t.Helper()
		msg, err := decodeMessage(encodeDiffer(from, repairTag{Round: id, Part: part, Chunks: 1}, sets))
		if err != nil {
			t.Fatal(err)
		}
		m.g.receiveDiffer(msg)
	}
	answer("intruder", 1)
	if st := m.g.Stats(); st.BadMessages != 1 || st.RoundsFailed != 0 || !m.g.rounds.pending("peer") {
		t.Fatalf("an answer from another member: %+v", st)
	}
	answer("peer", 1, newLeafSet(9, 4))
	if st := m.g.Stats(); st.BadMessages != 2 || st.RoundsFailed != 1 || m.g.rounds.pending("peer") {
		t.Fatalf("an answer naming a bucket not asked: %+v", st)
	}
	answer("peer", 1) // the round is gone: late, dropped uncounted
	if st := m.g.Stats(); st.BadMessages != 2 || st.RoundsFailed != 1 {
		t.Fatalf("a late answer: %+v", st)
	}
}

// TestLeafPacker: the pulls of the leaves that differ go in messages of at
// most the limit's bytes of buckets, checked before every leaf (the first
// of a bucket too); a leaf too large for one message goes over several,
// every pair (and covered state) in one of them; every message decodes.
func TestLeafPacker(t *testing.T) {
	const bits = 4
	entries := func(bucket uint8, leaf, n int) []session.BucketEntry {
		var out []session.BucketEntry
		for i := 0; len(out) < n; i++ {
			s := session.Session{ID: fmt.Sprintf("k%d-%d", bucket, i), Email: "ann@example.com", Created: 1, ExpiresAt: 2}
			if i%3 == 0 {
				s.Ended, s.EndReason = 2, "logout" // dominates its alive form: a covered state
			}
			key := session.Record{Session: &s}.Key()
			if int(session.LeafOf(key)>>(session.LeafBits-bits)) != leaf {
				continue
			}
			enc := encodeRecord(session.Record{Session: &s})
			out = append(out, session.BucketEntry{Key: key, Hash: uint64(i + 1), Enc: enc})
		}
		return out
	}
	head := leafPullBytes(bits, 0, 0)
	limit := head + 10*hashEntryBytes
	k := &leafPacker{limit: limit}
	leaves := []struct {
		bucket uint8
		leaf   int
		es     []session.BucketEntry
	}{
		{1, 2, entries(1, 2, 3)},
		{1, 5, entries(1, 5, 4)},
		{2, 0, entries(2, 0, 3)}, // the first of its bucket: over the limit with bucket 1's
		{2, 7, entries(2, 7, 40)},
		{2, 9, entries(2, 9, 1)},
		{3, 1, nil}, // held nowhere here: named, no pair
	}
	want := map[uint64]bool{}
	var wantPairs uint64
	for _, l := range leaves {
		k.add(l.bucket, bits, l.leaf, l.es)
		for _, e := range l.es {
			want[keyHash(e.Key)] = true
			wantPairs++
			if _, ok := e.Dominates(); ok {
				wantPairs++
			}
		}
	}
	msgs := k.finish()
	got := map[uint64]bool{}
	named := map[[2]int]bool{}
	for i, ps := range msgs {
		size := 0
		for _, p := range ps {
			size += leafPullBytes(p.bits, len(p.hashes), len(p.covers))
			for kh := range p.hashes {
				got[kh] = true
			}
			for kh := range p.covers {
				if _, ok := p.hashes[kh]; !ok {
					t.Fatalf("message %d: a covered state without its record's pair", i)
				}
			}
			for l := range 1 << bits {
				if p.has(l) {
					named[[2]int{int(p.bucket), l}] = true
				}
			}
		}
		if size > limit {
			t.Fatalf("message %d holds %d bytes of buckets, limit %d", i, size, limit)
		}
		wire := encodeLeafPull("n0", "127.0.0.1:1", 1, uint32(i), ps)
		if _, err := decodeMessage(wire); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if len(got) != len(want) || k.pairs != wantPairs {
		t.Fatalf("%d keys packed of %d; %d pairs counted, want %d", len(got), len(want), k.pairs, wantPairs)
	}
	for _, l := range leaves {
		if !named[[2]int{int(l.bucket), l.leaf}] {
			t.Fatalf("bucket %d, leaf %d not pulled", l.bucket, l.leaf)
		}
	}
	if len(msgs) < 6 {
		t.Fatalf("%d messages: the leaf of 40 records was not split", len(msgs))
	}
}

// TestGossip_HealByLeavesSplitLeaves: a heal whose leaves' pairs do not
// fit in one leaf pull (a limit of two pairs a message, as a leaf of
// 16,000 colliding keys at the default) converges, every message under the
// limit, none refused, no round failed.
func TestGossip_HealByLeavesSplitLeaves(t *testing.T) {
	const limit = 12 + 2*hashEntryBytes // a leaf set at 4 bits, then two pairs
	ms := leafCluster(t, 2, 3000, 4, func(i int, c *Config) { c.leafPullMax = limit })
	a, b := ms[0], ms[1]
	for i := range 300 {
		logout(a, fmt.Sprintf("h%063x", i))
		unpublished(t, a, fmt.Sprintf("a%063x", i))
		unpublished(t, b, fmt.Sprintf("b%063x", i))
	}
	repaired0, _, byLeaf0 := aeTotals(ms)
	if err := b.g.SyncWith(a.g.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both to converge", func() bool {
		return converged(ms) && !a.g.rounds.pending("") && !b.g.rounds.pending("")
	})
	repaired, _, byLeaf := aeTotals(ms)
	if byLeaf == byLeaf0 || repaired == repaired0 {
		t.Fatal("nothing was pulled by leaves")
	}
	for _, m := range ms {
		if st := m.g.Stats(); st.BadMessages != 0 || st.RoundsFailed != 0 {
			t.Fatalf("%s: %d bad messages, %d rounds failed", m.g.cfg.Name, st.BadMessages, st.RoundsFailed)
		}
		if m.store.Scrubbed() != 0 {
			t.Fatalf("%s: %d buckets scrubbed", m.g.cfg.Name, m.store.Scrubbed())
		}
	}
	for _, m := range ms {
		if !hasEnded(m, fmt.Sprintf("h%063x", 0)) || !has(m, fmt.Sprintf("b%063x", 299)) || !has(m, fmt.Sprintf("a%063x", 299)) {
			t.Fatalf("%s: wrong state after the heal", m.g.cfg.Name)
		}
	}
}

// TestAEQueue_AnswersFirst: a peer's answer to this member's own round
// (kindDiffer) is taken before the pulls the peer queued earlier (each a
// read of buckets for the peer), and before its digest; the pulls keep
// their order.
func TestAEQueue_AnswersFirst(t *testing.T) {
	q := newAEQueue()
	for i := range 3 {
		if !q.add(message{kind: kindLeafPull, from: "peer", part: partOf{part: uint32(i)}}) {
			t.Fatal("pull dropped")
		}
	}
	q.add(message{kind: kindDigest, from: "peer"})
	q.add(message{kind: kindDiffer, from: "peer", tag: &repairTag{Round: 9}})
	name, p := q.take()
	var order []string
	for {
		m, ok := q.next(name, p)
		if !ok {
			break
		}
		order = append(order, fmt.Sprintf("%d/%d", m.kind, m.part.part))
	}
	want := fmt.Sprintf("[%d/0 %d/0 %d/0 %d/1 %d/2]", kindDiffer, kindDigest, kindLeafPull, kindLeafPull, kindLeafPull)
	if got := fmt.Sprint(order); got != want {
		t.Fatalf("order %s, want %s", got, want)
	}
}
