package gossip

import (
	"testing"
	"time"

	"github.com/ussync/ussync/session"
)

// TestGossip_ClockSkew: a member whose clock runs 3 s ahead is seen 3 s
// ahead by its peer, and its peer 3 s behind by it, within the probes'
// round trip.
func TestGossip_ClockSkew(t *testing.T) {
	key := newKey(t)
	a := startMember(t, testConfig(t, "a", key))
	ahead := func() time.Time { return time.Now().Add(3 * time.Second) }
	cfg := testConfig(t, "b", key)
	b := &member{cfg: cfg, dir: t.TempDir(), faults: &Faults{}}
	st, err := session.Open(session.Options{Dir: b.dir, Logger: cfg.Logger, Now: ahead})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close(); st.Close() })
	if _, err := g.Join([]string{a.g.Addr()}); err != nil {
		t.Fatal(err)
	}
	near := func(d, want time.Duration) bool { return d > want-time.Second && d < want+time.Second }
	waitFor(t, 10*time.Second, "both skews estimated", func() bool {
		sa, sb := a.g.ClockSkew(), g.ClockSkew()
		return near(sa["b"], 3*time.Second) && near(sb["a"], -3*time.Second)
	})
	if _, ok := a.g.ClockSkew()["a"]; ok {
		t.Error("a member estimates its own skew")
	}
	g.Close()
	waitFor(t, 10*time.Second, "the departed member's estimate dropped", func() bool {
		_, ok := a.g.ClockSkew()["b"]
		return !ok
	})
}
