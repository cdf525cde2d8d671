package gossip

import (
	"net"
	"testing"

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
