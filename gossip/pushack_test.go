package gossip

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ussync/ussync/session"
)

// slowGossip starts two members whose gossip, probes (memberlist
// piggybacks gossip on them) and periodic push/pull wait an hour: a change
// reaches the other member by its eager push or not at all.
func slowGossip(t *testing.T, tune func(i int, c *Config)) (a, b *member) {
	return slowGossipFree(t, tune, nil)
}

// slowGossipFree is slowGossip with the second member's store reading its
// free space from free.
func slowGossipFree(t *testing.T, tune func(i int, c *Config), free func(string) (uint64, error)) (a, b *member) {
	t.Helper()
	key := newKey(t)
	var ms []*member
	for i := range 2 {
		c := testConfig(t, fmt.Sprintf("n%d", i), key)
		c.GossipInterval, c.PushPullInterval, c.ProbeInterval = time.Hour, time.Hour, time.Hour
		m := &member{cfg: c, dir: t.TempDir(), faults: &Faults{}}
		if tune != nil {
			tune(i, &m.cfg)
		}
		if i == 1 && free != nil {
			m.free = free
		}
		m.cfg.Faults = m.faults
		m.start(t)
		if i > 0 {
			if _, err := m.g.Join([]string{ms[0].g.Addr()}); err != nil {
				t.Fatal(err)
			}
		}
		ms = append(ms, m)
	}
	waitFor(t, 5*time.Second, "both members alive", func() bool {
		return len(ms[0].g.LiveMembers()) == 2 && len(ms[1].g.LiveMembers()) == 2 &&
			acks(ms[0], "n1") == !ms[1].cfg.noAcks && acks(ms[1], "n0") == !ms[0].cfg.noAcks
	})
	return ms[0], ms[1]
}

// acks reports whether m holds member name as acknowledging pushes.
func acks(m *member, name string) bool {
	_, acking := m.g.memberAcks(name)
	return acking
}

// unacked is how many of m's pushes to name await an acknowledgement.
func unacked(m *member, name string) int {
	m.g.peersMu.Lock()
	p := m.g.peers[name]
	m.g.peersMu.Unlock()
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.unacked)
}

// A push whose packets are lost is sent again until one arrives; gossip,
// which would carry it seconds later in a busy cluster (peer's doc), is
// held off here. Before pushes were acknowledged, the session never
// arrived.
func TestGossip_PushSentAgainUntilAcknowledged(t *testing.T) {
	a, b := slowGossip(t, nil)
	a.faults.DropNext(3, KindDelta, b.g.Addr())
	login(a, "s1")
	waitFor(t, 10*time.Second, "the session on n1", func() bool { return has(b, "s1") })
	waitFor(t, 5*time.Second, "the push acknowledged", func() bool { return unacked(a, "n1") == 0 })
	if st := a.g.Stats(); st.PushRetries < 3 || st.PushesGivenUp != 0 {
		t.Errorf("n0 sent %d pushes again and gave up %d; want at least 3 and none", st.PushRetries, st.PushesGivenUp)
	}
}

// A lost acknowledgement makes the sender push again: the receiver drops
// the copy unread and acknowledges it again.
func TestGossip_LostAckIsAnsweredAgain(t *testing.T) {
	a, b := slowGossip(t, nil)
	b.faults.DropNext(1, KindAck, a.g.Addr())
	login(a, "s1")
	waitFor(t, 5*time.Second, "the session on n1", func() bool { return has(b, "s1") })
	waitFor(t, 5*time.Second, "the push acknowledged", func() bool { return unacked(a, "n1") == 0 })
	if a.g.Stats().PushRetries < 1 || b.g.Stats().Duplicates < 1 {
		t.Errorf("n0 sent %d pushes again, n1 dropped %d copies; want at least 1 each", a.g.Stats().PushRetries, b.g.Stats().Duplicates)
	}
	if got := b.g.Stats().DeltasApplied; got != 1 {
		t.Errorf("n1 applied %d records, want the session once", got)
	}
}

// A batch too large for packets goes over a stream; one that fails is sent
// again (it was dropped, and left to gossip and anti-entropy).
func TestGossip_FailedPushStreamSentAgain(t *testing.T) {
	a, b := slowGossip(t, nil)
	a.faults.DropNext(1, KindDelta, b.g.Addr())
	var recs []session.Record
	for i := range 200 { // ~40 KB: past maxPushPackets packets
		s := session.Session{ID: fmt.Sprintf("s%03d", i), Email: "ann@example.com", Site: "n0", Created: a.store.Clock().Now(), ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
		changed, err := a.store.Apply(session.Record{Session: &s})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, changed...)
	}
	a.g.Publish(recs)
	waitFor(t, 10*time.Second, "every session on n1", func() bool { return has(b, "s000") && has(b, "s199") && converged([]*member{a, b}) })
	if st := a.g.Stats(); st.PushRetries < 1 || a.faults.Stats().MessagesDropped != 1 {
		t.Errorf("n0 sent %d pushes again, the faults dropped %d; want at least 1 and 1", st.PushRetries, a.faults.Stats().MessagesDropped)
	}
}

// A member of an older version neither asks for acknowledgements nor sends
// them: it gets plain deltas, and nobody waits for its answer.
func TestGossip_OlderMemberGetsPlainPushes(t *testing.T) {
	a, b := slowGossip(t, func(i int, c *Config) { c.noAcks = i == 1 })
	login(a, "s1")
	login(b, "s2")
	waitFor(t, 5*time.Second, "each session on the other member", func() bool { return has(b, "s1") && has(a, "s2") })
	for _, m := range []*member{a, b} {
		if st := m.g.Stats(); st.BadMessages != 0 || st.PushRetries != 0 {
			t.Errorf("%s: %d bad messages, %d pushes sent again; want none", m.cfg.Name, st.BadMessages, st.PushRetries)
		}
	}
	if n := unacked(a, "n1"); n != 0 {
		t.Errorf("n0 awaits %d acknowledgements from a member that sends none", n)
	}
}

// testPeer is the sender to a member n1 that is not (or no longer) a
// member: its tries are numbered and held, and nothing is sent.
func testPeer() *peer {
	return &peer{g: &Gossip{clocks: newClockBook(), cfg: Config{Name: "n0"}}, name: "n1",
		unacked: map[uint64]*inflight{}, retried: map[uint64]*inflight{}}
}

// A peer holds at most maxUnacked pushes and maxUnackedBytes of them: past
// either, the oldest is given up (left to gossip and anti-entropy).
func TestPeer_HoldsBoundedPushes(t *testing.T) {
	p := testPeer()
	for s := uint64(1); s <= maxUnacked+10; s++ {
		p.holdLocked(s, &inflight{msg: make([]byte, 100)})
	}
	if len(p.unacked) != maxUnacked || p.unacked[10] != nil || p.unacked[11] == nil || p.g.stats.pushesGivenUp.Load() != 10 {
		t.Fatalf("held %d, given up %d; want %d held, the 10 oldest given up", len(p.unacked), p.g.stats.pushesGivenUp.Load(), maxUnacked)
	}
	big := make([]byte, MaxChunkBytes)
	for s := uint64(1 << 20); p.held <= maxUnackedBytes-MaxChunkBytes; s++ {
		p.holdLocked(s, &inflight{msg: big, stream: true})
	}
	p.holdLocked(1<<30, &inflight{msg: big, stream: true})
	if p.held > maxUnackedBytes || p.unacked[1<<30] == nil {
		t.Fatalf("held %d bytes, over %d, or the newest given up", p.held, maxUnackedBytes)
	}
}

// A push sent again is held under each number it went under, but counted
// once against maxUnacked and maxUnackedBytes, and given up (the oldest,
// or after its last try) under every number at once.
func TestPeer_RetriedPushesBounded(t *testing.T) {
	p := testPeer()
	msg := encodeRecords(kindDelta, "n0", nil)
	t0 := time.Unix(1_000_000, 0)
	var first []uint64 // the first try's number of each push
	for range maxUnacked {
		p.track(msg, false, t0)
		first = append(first, p.seq)
	}
	size := p.held / maxUnacked
	now := t0
	for range maxPushTries - 1 {
		now = now.Add(maxPushRTO)
		p.resendDue(now) // n1 is no member: nothing is sent
	}
	if len(p.unacked) != maxUnacked || len(p.retried) != (maxPushTries-1)*maxUnacked || p.held != maxUnacked*size {
		t.Fatalf("held %d pushes under %d more numbers, %d bytes; want %d under %d more, %d bytes",
			len(p.unacked), len(p.retried), p.held, maxUnacked, (maxPushTries-1)*maxUnacked, maxUnacked*size)
	}
	p.track(msg, false, now) // past maxUnacked: the oldest push goes, with its numbers
	if p.lookupLocked(first[0]) != nil || len(p.unacked) != maxUnacked || len(p.retried) != (maxPushTries-1)*(maxUnacked-1) || p.held != maxUnacked*size {
		t.Fatalf("after the oldest was given up: %d pushes under %d more numbers, %d bytes", len(p.unacked), len(p.retried), p.held)
	}
	p.resendDue(now.Add(maxPushRTO)) // the last tries are over: all but the newest given up
	if len(p.unacked) != 1 || len(p.retried) != 1 || p.held != size || p.g.stats.pushesGivenUp.Load() != maxUnacked {
		t.Fatalf("held %d pushes under %d more numbers, %d bytes, given up %d; want the newest push, sent twice, and %d given up",
			len(p.unacked), len(p.retried), p.held, p.g.stats.pushesGivenUp.Load(), maxUnacked)
	}
}

// A peer dropped (its member failed or left) counts what it held as given
// up or dropped, and holds nothing after.
func TestPeer_AbandonCounts(t *testing.T) {
	p := testPeer()
	msg := encodeRecords(kindDelta, "n0", nil)
	for range 3 {
		p.track(msg, false, time.Now())
	}
	p.resendDue(time.Now().Add(time.Hour))
	p.pending = [][]byte{[]byte("a"), []byte("b")}
	p.abandon()
	if got, dropped := p.g.stats.pushesGivenUp.Load(), p.g.stats.dropped.Load(); got != 3 || dropped != 2 {
		t.Fatalf("given up %d, dropped %d; want 3 and 2", got, dropped)
	}
	if len(p.unacked) != 0 || len(p.retried) != 0 || p.held != 0 || len(p.pending) != 0 {
		t.Fatalf("still held: %d pushes under %d more numbers, %d bytes, %d pending", len(p.unacked), len(p.retried), p.held, len(p.pending))
	}
	p.holdLocked(9, &inflight{msg: make([]byte, 10)}) // a stream retry racing the drop
}

// The retransmission timeout follows the time to an acknowledgement
// (RFC 6298); numbers of pushes not held are ignored.
func TestPeer_TimeToAckLearned(t *testing.T) {
	p := testPeer()
	t0 := time.Unix(1_000_000, 0)
	p.track(encodeRecords(kindDelta, "n0", nil), false, t0)
	p.acked([]uint64{p.seq, p.seq + 99}, t0.Add(300*time.Millisecond))
	if len(p.unacked) != 0 || p.held != 0 {
		t.Fatalf("%d pushes, %d bytes still held", len(p.unacked), p.held)
	}
	if p.srtt != 300*time.Millisecond || p.rttvar != 150*time.Millisecond {
		t.Fatalf("srtt %v, rttvar %v: want 300ms and 150ms", p.srtt, p.rttvar)
	}
}

// Each try of a push goes under a number of its own (RFC 9002, section
// 2), so an acknowledgement of any try forgets the push and times the
// round trip from that try's send; the acknowledgements of its other
// tries, coming after, change nothing. Before, an acknowledgement of a
// push sent again gave no sample (Karn's rule), and the timeout learnt
// only from the fastest round trips.
func TestPeer_EveryTryTimed(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name     string
		try      int           // the try acknowledged first: 0 the first, 1 the second
		at       time.Duration // when, after the first send (the second is at minPushRTO)
		wantSRTT time.Duration
	}{
		{"second try acknowledged", 1, minPushRTO + 30*time.Millisecond, 30 * time.Millisecond},
		{"first try acknowledged after the second was sent", 0, minPushRTO + 30*time.Millisecond, minPushRTO + 30*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPeer()
			delta := encodeRecords(kindDelta, "n0", nil)
			sent := p.track(delta, false, t0)
			p.track(delta, false, t0.Add(time.Hour)) // another push, not due
			other := p.seq
			p.resendDue(t0.Add(minPushRTO)) // n1 is no member: nothing is sent
			f := p.unacked[other-1]
			if f == nil || len(f.sends) != 2 || f.sends[1].at != t0.Add(minPushRTO) || f.sends[1].seq <= other {
				t.Fatalf("the push sent again: %+v; want a second try, numbered past the other push", f)
			}
			seq, _, body, _ := pushHeader(f.msg)
			_, _, body0, _ := pushHeader(sent)
			if seq != f.sends[1].seq || !bytes.Equal(body, body0) {
				t.Fatalf("the second try is numbered %d, want %d, or its records changed", seq, f.sends[1].seq)
			}
			held := p.held
			p.acked([]uint64{f.sends[tc.try].seq}, t0.Add(tc.at))
			if p.lookupLocked(f.sends[0].seq) != nil || p.lookupLocked(f.sends[1].seq) != nil || len(p.retried) != 0 || p.held != held-len(f.msg) {
				t.Fatalf("the push is still held (%d bytes, %d numbers of tries)", p.held, len(p.retried))
			}
			if p.srtt != tc.wantSRTT || p.rttvar != tc.wantSRTT/2 || p.backoff != 0 {
				t.Fatalf("srtt %v, rttvar %v, backoff %v; want %v, %v, none", p.srtt, p.rttvar, p.backoff, tc.wantSRTT, tc.wantSRTT/2)
			}
			// The other try's acknowledgement, and the same one again, come
			// late: the push is forgotten, and nothing changes.
			p.acked([]uint64{f.sends[1-tc.try].seq, f.sends[tc.try].seq}, t0.Add(time.Minute))
			if p.srtt != tc.wantSRTT || p.rttvar != tc.wantSRTT/2 || p.held != held-len(f.msg) || p.unacked[other] == nil {
				t.Fatalf("after late acknowledgements: srtt %v, rttvar %v, %d bytes held, other push held %v", p.srtt, p.rttvar, p.held, p.unacked[other] != nil)
			}
		})
	}
}

// A push the receiver's store refused (a full disk) is not acknowledged,
// and its next copy is applied, not dropped as a duplicate of the refused
// one (which was then acknowledged unapplied). Anti-entropy is held off:
// only the push can carry it.
func TestGossip_PushRefusedIsAppliedWhenSentAgain(t *testing.T) {
	var free atomic.Uint64
	free.Store(1 << 40)
	a, b := slowGossipFree(t, nil, func(string) (uint64, error) { return free.Load(), nil })
	free.Store(session.DefaultMinFree - 1)
	b.faults.DropNext(1<<30, KindPushPull, a.g.Addr())
	a.faults.DropNext(1<<30, KindPull, b.g.Addr())
	b.faults.DropNext(1<<30, KindPull, a.g.Addr())
	login(a, "s1")
	waitFor(t, 5*time.Second, "n1 to refuse the push", func() bool { return b.g.Health().CatchUpReason == CatchUpStorageFull })
	if has(b, "s1") || unacked(a, "n1") != 1 {
		t.Fatalf("n1 holds s1 (%v) or n0 awaits %d acknowledgements, want 1", has(b, "s1"), unacked(a, "n1"))
	}
	free.Store(1 << 40)
	waitFor(t, 10*time.Second, "the session on n1, by the push sent again", func() bool { return has(b, "s1") && unacked(a, "n1") == 0 })
	if got := b.g.Stats().DeltasApplied; got != 1 {
		t.Errorf("n1 applied %d records from pushes, want the session", got)
	}
}

// A timeout doubled by a retry is kept for new pushes until an
// acknowledgement gives a sample (RFC 6298, 5.7), of whichever try.
func TestPeer_BackedOffTimeoutKept(t *testing.T) {
	p := testPeer()
	msg := encodeRecords(kindDelta, "n0", nil)
	t0 := time.Unix(1_000_000, 0)
	p.track(msg, false, t0)
	first := p.seq
	if f := p.unacked[first]; f.rto != minPushRTO {
		t.Fatalf("first timeout %v, want %v", f.rto, minPushRTO)
	}
	p.resendDue(t0.Add(time.Second)) // n1 is no member: nothing is sent
	p.track(msg, false, t0.Add(time.Second))
	second := p.seq
	if got := p.unacked[second].rto; got != 2*minPushRTO {
		t.Fatalf("timeout of a push after a retry %v, want the doubled %v", got, 2*minPushRTO)
	}
	p.acked([]uint64{second}, t0.Add(time.Second+20*time.Millisecond))
	p.track(msg, false, t0.Add(2*time.Second))
	if got := p.unacked[p.seq].rto; got != minPushRTO || p.backoff != 0 {
		t.Fatalf("after a sample of 20ms: timeout %v, backoff %v; want %v and none", got, p.backoff, minPushRTO)
	}
}
