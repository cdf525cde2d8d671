package gossip

import (
	"testing"
	"time"
)

// TestGossip_LongPartitionHeals: a partition that outlasts memberlist's
// GossipToTheDeadTime and the reconnect timeout (both sides forget each
// other's failed members) still heals once the network is back: the join
// addresses are tried whenever no live member answers at them, not only
// while a node is alone (issue 13, item 8).
func TestGossip_LongPartitionHeals(t *testing.T) {
	key := newKey(t)
	var ms []*member
	for i, name := range []string{"n0", "n1", "n2"} {
		cfg := testConfig(t, name, key)
		cfg.ReconnectTimeout = 300 * time.Millisecond // failed members are forgotten during the split
		if i > 0 {
			cfg.Join = []string{ms[0].g.Addr()}
		}
		m := startMember(t, cfg)
		if i > 0 {
			if _, err := m.g.Join(cfg.Join); err != nil {
				t.Fatal(err)
			}
		}
		ms = append(ms, m)
	}
	waitFor(t, 10*time.Second, "all members alive", func() bool {
		for _, m := range ms {
			if len(m.g.LiveMembers()) != 3 {
				return false
			}
		}
		return true
	})
	a, b, c := ms[0], ms[1], ms[2]
	login(a, "before")
	waitFor(t, 10*time.Second, "before everywhere", func() bool { return converged(ms) })

	// {n0} | {n1, n2}: n0 is their only join address.
	a.faults.Block(b.g.Addr(), c.g.Addr())
	b.faults.Block(a.g.Addr())
	c.faults.Block(a.g.Addr())
	waitFor(t, 10*time.Second, "each side to forget the other", func() bool {
		return len(a.g.Members()) == 1 && len(b.g.Members()) == 2 && len(c.g.Members()) == 2
	})
	logout(a, "before")
	login(b, "during")
	for _, m := range ms {
		m.faults.Heal()
	}
	waitFor(t, 20*time.Second, "the partition to heal and converge", func() bool {
		for _, m := range ms {
			if len(m.g.LiveMembers()) != 3 {
				return false
			}
		}
		return converged(ms)
	})
	for _, m := range ms {
		if !hasEnded(m, "before") || !has(m, "during") {
			t.Fatalf("%s: wrong state after the heal", m.g.cfg.Name)
		}
	}
}

// TestConfig_ReconnectBackoffIsCapped: whatever the profile, a partition
// heals within about 20 s of the network coming back: reconnects back off
// to at most 20 s, each wait drawn below the backoff.
func TestConfig_ReconnectBackoffIsCapped(t *testing.T) {
	for _, p := range []Profile{ProfileLAN, ProfileWAN, ProfileLocal} {
		c := DefaultConfig(p)
		if c.ReconnectMaxBackoff > 20*time.Second || c.ReconnectInterval > c.ReconnectMaxBackoff || c.ResyncMaxBackoff > 10*time.Second {
			t.Errorf("%s: reconnect %v up to %v, resync up to %v", p, c.ReconnectInterval, c.ReconnectMaxBackoff, c.ResyncMaxBackoff)
		}
	}
	for _, d := range []time.Duration{0, 1, 3, time.Second, 20 * time.Second} {
		for range 1000 {
			if j := jitter(d); j > d || j < d/2 {
				t.Fatalf("jitter(%v) = %v, want within [%v, %v]", d, j, d/2, d)
			}
		}
	}
}

// TestGossip_PingBringsBackAMemberInBackoff: a failed member whose next
// re-join is an hour away (a backoff grown over a long split) is still
// re-joined soon after the network heals: it is pinged meanwhile, and its
// answer makes it due at once.
func TestGossip_PingBringsBackAMemberInBackoff(t *testing.T) {
	ms := startCluster(t, 2)
	a, b := ms[0], ms[1]
	a.faults.Block(b.g.Addr())
	b.faults.Block(a.g.Addr())
	waitFor(t, 10*time.Second, "each to see the other fail", func() bool {
		return len(a.g.LiveMembers()) == 1 && len(b.g.LiveMembers()) == 1
	})
	waitFor(t, 10*time.Second, "each past GossipToTheDeadTime for the other: only the reconnect loop heals", func() bool {
		return deadToGossip(a, b) && deadToGossip(b, a)
	})
	for _, m := range ms {
		m.g.failedMu.Lock()
		for _, f := range m.g.failed {
			f.next, f.backoff = time.Now().Add(time.Hour), time.Hour
		}
		for _, p := range m.g.probes {
			p.next, p.backoff = time.Now().Add(time.Hour), time.Hour
		}
		m.g.failedMu.Unlock()
	}
	login(a, "during")
	a.faults.Heal()
	b.faults.Heal()
	waitFor(t, 15*time.Second, "the members back and in sync", func() bool {
		return len(a.g.LiveMembers()) == 2 && len(b.g.LiveMembers()) == 2 && converged(ms)
	})
}
