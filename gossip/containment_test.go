package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/session"
)

// TestClockBook_ShortestTrip: the estimate is the offset measured by the
// sample of shortest round trip among the last clockWindow (NTP's clock
// filter), and old samples leave the window.
func TestClockBook_ShortestTrip(t *testing.T) {
	b := newClockBook()
	if _, ok := b.estimate("n1"); ok {
		t.Fatal("an estimate before any sample")
	}
	at := time.Unix(1000, 0)
	b.add("n1", clockSample{offset: 900 * time.Millisecond, rtt: 300 * time.Millisecond, at: at})
	b.add("n1", clockSample{offset: 1010 * time.Millisecond, rtt: 20 * time.Millisecond, at: at})
	b.add("n1", clockSample{offset: 1200 * time.Millisecond, rtt: 400 * time.Millisecond, at: at})
	c, ok := b.estimate("n1")
	if !ok || c.Offset != 1010*time.Millisecond || c.RTT != 20*time.Millisecond || c.Samples != 3 {
		t.Fatalf("estimate %+v", c)
	}
	for range clockWindow {
		b.add("n1", clockSample{offset: -time.Second, rtt: 100 * time.Millisecond, at: at})
	}
	if c, _ := b.estimate("n1"); c.Offset != -time.Second {
		t.Fatalf("after the window moved on: %+v", c)
	}
	b.forget("n1")
	if _, ok := b.estimate("n1"); ok {
		t.Fatal("an estimate of a forgotten member")
	}
}

// TestGossip_Clocks: members measure each other's clock from their probes;
// on one machine the offset is within the probes' round trip of zero.
func TestGossip_Clocks(t *testing.T) {
	// A clock is measured by a probe acknowledged within the probe timeout:
	// give the probes memberlist's LAN timeout, which load does not miss.
	key := newKey(t)
	var ms []*member
	for _, name := range []string{"n0", "n1"} {
		cfg := testConfig(t, name, key)
		cfg.ProbeTimeout, cfg.ProbeInterval = 500*time.Millisecond, time.Second
		ms = append(ms, startMember(t, cfg))
	}
	if _, err := ms[1].g.Join([]string{ms[0].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	var c MemberClock
	waitFor(t, 10*time.Second, "n0 measuring n1's clock", func() bool {
		cs := ms[0].g.Clocks()
		if len(cs) != 1 {
			return false
		}
		c = cs[0]
		return true
	})
	if c.Name != "n1" || c.Samples == 0 || c.Offset > c.RTT/2+time.Millisecond || -c.Offset > c.RTT/2+time.Millisecond {
		t.Fatalf("n0's view of n1's clock: %+v", c)
	}
}

// TestGossip_RefusedRecordsByPeer: a member pushes a record stamped at the
// end of time. The store refuses it (counted by reason), gossip counts it
// against the sender, does not rebroadcast it, and logs the peer once a
// minute at most.
func TestGossip_RefusedRecordsByPeer(t *testing.T) {
	ms := startCluster(t, 3)
	// Two users, two messages: a message byte for byte the same as one just
	// taken is dropped as a copy before it is decoded (PacketCopies).
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		poison := session.User{Email: email, RevokedBefore: session.MaxHLC}
		msg := encodeRecords(kindDelta, "n1", [][]byte{encodeRecord(session.Record{User: &poison})})
		if err := ms[1].g.list.SendReliable(ms[0].g.member("n0"), msg); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "n0 refusing both", func() bool { return ms[0].g.RefusedFrom()["n1"] == 2 })
	if got := ms[0].store.Refused()[session.RefusedClockAhead]; got != 2 {
		t.Fatalf("the store counted %d clock_ahead refusals", got)
	}
	if st := ms[0].g.Stats(); st.RecordsRefused != 2 || st.DeltasApplied != 0 || st.Rebroadcasts != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		if _, err := ms[0].store.User(email); err == nil {
			t.Fatalf("the record of %s was stored", email)
		}
	}
	// Anti-entropy leaves everyone without it.
	waitFor(t, 10*time.Second, "convergence", func() bool { return converged(ms) })
	for _, m := range ms {
		if _, err := m.store.User("ann@example.com"); err == nil {
			t.Fatalf("%s holds the record", m.g.cfg.Name)
		}
	}

	t.Run("logged once a minute per peer", func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		b := newRefusalBook(recordsRefused)
		r := []session.Refusal{{Key: "uann@example.com", Err: session.ErrClockAhead}}
		t0 := time.Unix(5000, 0)
		b.add(log, "n1", r, t0)
		b.add(log, "n1", r, t0.Add(10*time.Second))
		b.add(log, "n2", r, t0.Add(20*time.Second))
		b.add(log, "n1", r, t0.Add(time.Minute))
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "peer=n1") || !strings.Contains(lines[1], "peer=n2") ||
			!strings.Contains(lines[2], "peer=n1 total=3") || !strings.Contains(lines[2], "clock_ahead=2") {
			t.Fatalf("log:\n%s", buf.String())
		}
		if got := b.counts(); got["n1"] != 3 || got["n2"] != 1 {
			t.Fatalf("counts %v", got)
		}
	})
}

// TestGossip_RevokedSiteCannotRejoin: while a site is revoked, its member's
// alive messages are ignored: killed and restarted, it cannot join again,
// and it is not chased by the reconnect loop. Once the revocation is taken
// back, it joins.
func TestGossip_RevokedSiteCannotRejoin(t *testing.T) {
	ms := startCluster(t, 3)
	n0, n1, n2 := ms[0], ms[1], ms[2]
	at := n0.store.Clock().Now()
	x := session.RevokeSite("n2", at, "n0")
	for _, m := range []*member{n0, n1} {
		if _, err := m.store.Apply(session.Record{Site: &x}); err != nil {
			t.Fatal(err)
		}
	}
	n2.kill()
	waitFor(t, 10*time.Second, "n0 and n1 seeing n2 gone", func() bool {
		return len(n0.g.LiveMembers()) == 2 && len(n1.g.LiveMembers()) == 2
	})
	n2.restart(t, false, n0.g.Addr())
	waitFor(t, 10*time.Second, "n0 ignoring n2's alive messages", func() bool { return n0.g.Stats().RevokedAlive > 0 })
	for _, m := range []*member{n0, n1} {
		for _, l := range m.g.LiveMembers() {
			if l.Name == "n2" {
				t.Fatalf("%s lists the revoked n2 alive", m.g.cfg.Name)
			}
		}
	}

	un := session.UnrevokeSite("n2", n0.store.Clock().Now(), "n0")
	for _, m := range []*member{n0, n1} {
		if _, err := m.store.Apply(session.Record{Site: &un}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "n2 back once un-revoked", func() bool {
		return len(n0.g.LiveMembers()) == 3 && len(n1.g.LiveMembers()) == 3
	})
}
