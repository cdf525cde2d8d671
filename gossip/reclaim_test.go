package gossip

import (
	"testing"
	"time"
)

// TestGossip_MovedMemberReclaimsItsName: a member restarted under its name
// at a new address is followed there at once: a logout published on a
// peer right after the restart reaches it, though periodic push/pull,
// reconnects and memberlist's forgetting of dead members (which ends its
// "conflicting address" refusal) all wait an hour (issue 13, item 2).
func TestGossip_MovedMemberReclaimsItsName(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fast: the peers' failure detector is off, so the old address
		// still looks alive to them when the member comes back.
		fast bool
	}{
		{"after its old address was declared dead", false},
		{"while its old address still looks alive", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := startSlowCluster(t, 3, func(_ int, c *Config) {
				c.GossipToTheDeadTime = time.Hour
				if tc.fast {
					c.ProbeInterval = time.Hour
				}
			})
			a, b, n := ms[0], ms[1], ms[2]
			login(b, "s1")
			waitFor(t, 10*time.Second, "s1 everywhere", func() bool { return converged(ms) })
			old := n.g.Addr()
			n.kill()
			if !tc.fast {
				waitDead(t, n, a, b)
			}
			unpublished(t, a, "marker")
			n.restart(t, true, a.g.Addr())
			if n.g.Addr() == old {
				t.Fatal("restarted at the same address")
			}
			// Once the member holds what a wrote straight into its store, its
			// round with a is over: what comes next comes by push, or by the
			// peers' resync with it at its new address.
			waitFor(t, 10*time.Second, "the member's round with a", func() bool { return has(n, "marker") })
			logout(b, "s1")
			waitFor(t, 10*time.Second, "the logout on the moved member", func() bool { return hasEnded(n, "s1") })
			defer func() {
				if t.Failed() {
					for _, m := range []*member{a, b} {
						t.Logf("%s lists %+v, stats %+v", m.g.cfg.Name, m.g.LiveMembers(), m.g.Stats())
					}
					t.Logf("n2 at %s", n.g.Addr())
				}
			}()
			waitFor(t, 10*time.Second, "a and b to list the member at its new address", func() bool {
				for _, m := range []*member{a, b} {
					found := false
					for _, x := range m.g.LiveMembers() {
						found = found || x.Name == "n2" && x.Addr == n.g.Addr()
					}
					if !found {
						return false
					}
				}
				return true
			})
		})
	}
}
