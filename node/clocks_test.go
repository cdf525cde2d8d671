package node_test

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// skewedCluster starts four nodes: n0 and n1 on the real clock, n2's clock
// 10 minutes fast, n3's 10 minutes slow. ann is registered (verified) on n0
// and known to n1 and n2 (n3 refuses what the others write: it is in its
// future).
func skewedCluster(t *testing.T) *nodetest.Cluster {
	t.Helper()
	c := nodetest.New(t)
	c.Clock = func(i int) func() time.Time {
		switch i {
		case 2:
			return func() time.Time { return time.Now().Add(10 * time.Minute) }
		case 3:
			return func() time.Time { return time.Now().Add(-10 * time.Minute) }
		}
		return nil
	}
	// A clock is measured by a probe acknowledged within the probe timeout:
	// the shrunk 50 ms is missed under load (the race detector on two busy
	// cores), and then no sample is taken. Give the probes memberlist's LAN
	// timeout.
	c.TuneGossip = func(_ int, g *gossip.Config) {
		g.ProbeTimeout, g.ProbeInterval = 500*time.Millisecond, time.Second
	}
	c.Start(4)
	if code := c.Members[0].Call("PUT", "/v1/users/ann@example.com", map[string]any{"login": "ann", "verified_via": "registration"}, nil); code != http.StatusOK {
		t.Fatalf("register ann: %d", code)
	}
	c.WaitFor(10*time.Second, "ann verified on n0, n1 and n2", func() bool {
		for _, m := range c.Members[:3] {
			if u, err := m.Store().User("ann@example.com"); err != nil || !u.Verified.V.OK {
				return false
			}
		}
		return true
	})
	return c
}

// memberStatus is the status of member name in m's status, once its clock
// is measured.
func memberStatus(t *testing.T, c *nodetest.Cluster, m *nodetest.Member, name string) (client.Status, client.MemberStatus) {
	t.Helper()
	var (
		st  client.Status
		got client.MemberStatus
	)
	c.WaitFor(20*time.Second, m.Name()+" measuring "+name+"'s clock", func() bool {
		st = client.Status{}
		if m.Call("GET", "/v1/status", nil, &st) != http.StatusOK {
			return false
		}
		for _, ms := range st.Members {
			if ms.Name == name && ms.ClockSkew != nil {
				got = ms
				return true
			}
		}
		return false
	})
	return st, got
}

// TestClocks_Skewed: with per-node clocks. A node 10 minutes fast cannot
// end a login made later elsewhere with its "log out everywhere", and
// poisons no one (its records are refused, counted, and the others' clocks
// never follow them); its own logins stay on it. Both the fast node and a
// node 10 minutes slow are reported as skewed: in status (table and JSON),
// with a warning, and on /metrics.
func TestClocks_Skewed(t *testing.T) {
	c := skewedCluster(t)
	n0, n1, fast, slow := c.Members[0], c.Members[1], c.Members[2], c.Members[3]

	t.Run("a fast node's logout everywhere cannot end a later login elsewhere", func(t *testing.T) {
		if code := fast.Call("POST", "/v1/users/ann@example.com/logout-everywhere", nil, nil); code != http.StatusOK {
			t.Fatalf("logout everywhere on the fast node: %d", code)
		}
		c.WaitFor(10*time.Second, "n0 and n1 refusing the fast node's record", func() bool {
			return n0.Store().Refused()[session.RefusedClockAhead] > 0 && n1.Store().Refused()[session.RefusedClockAhead] > 0
		})
		later := login(t, n0, "ann@example.com")
		for _, m := range []*nodetest.Member{n0, n1} {
			c.WaitFor(10*time.Second, "the later login active on "+m.Name(), func() bool {
				code, _ := checkOn(t, m, later.Session.ID)
				return code == http.StatusOK
			})
		}
	})

	t.Run("it poisons no one", func(t *testing.T) {
		limit := session.MakeHLC(time.Now().Add(5*time.Second).UnixMilli(), 0)
		for _, m := range []*nodetest.Member{n0, n1} {
			u, err := m.Store().User("ann@example.com")
			if err != nil {
				t.Fatal(err)
			}
			if u.RevokedBefore > limit || m.Store().Clock().Last() > limit {
				t.Errorf("%s followed the fast clock: revoked_before %s, clock %s", m.Name(), u.RevokedBefore, m.Store().Clock().Last())
			}
		}
		// Its own logins stay on it.
		mine := login(t, fast, "ann@example.com")
		if code, _ := checkOn(t, fast, mine.Session.ID); code != http.StatusOK {
			t.Errorf("the fast node's own login on itself: %d", code)
		}
		c.WaitFor(10*time.Second, "n0 counting the fast node's records as refused from it", func() bool {
			_, ms := memberStatus(t, c, n0, "n2")
			return ms.RecordsRefused > 0
		})
		if code, _ := checkOn(t, n0, mine.Session.ID); code != http.StatusNotFound {
			t.Errorf("the fast node's login on n0: %d, want 404 (refused)", code)
		}
	})

	t.Run("both are reported as skewed", func(t *testing.T) {
		for _, want := range []struct {
			name string
			skew float64
			word string
		}{{"n2", 600, "ahead of this node's"}, {"n3", -600, "behind this node's"}} {
			st, ms := memberStatus(t, c, n0, want.name)
			if math.Abs(*ms.ClockSkew-want.skew) > st.MaxOffset || !ms.ClockSkewed {
				t.Errorf("n0's status of %s: skew %v s (skewed %v), want %v s", want.name, *ms.ClockSkew, ms.ClockSkewed, want.skew)
			}
			warned := false
			for _, w := range st.Warnings {
				warned = warned || strings.Contains(w, "member "+want.name+"'s clock is") && strings.Contains(w, want.word)
			}
			if !warned {
				t.Errorf("n0's status warns nothing of %s: %q", want.name, st.Warnings)
			}
			v := metricValue(t, scrapeText(t, n0), fmt.Sprintf(`ussync_member_clock_skew_seconds{member=%q}`, want.name))
			if math.Abs(v-want.skew) > st.MaxOffset {
				t.Errorf("ussync_member_clock_skew_seconds of %s on n0: %v, want about %v", want.name, v, want.skew)
			}
		}
		// n1 is within the offset of n0: no warning about it.
		st, ms := memberStatus(t, c, n0, "n1")
		if ms.ClockSkewed || math.Abs(*ms.ClockSkew) > st.MaxOffset {
			t.Errorf("n1 reported skewed by n0: %+v", ms)
		}
		// The slow node sees the others ahead.
		_, ms = memberStatus(t, c, slow, "n0")
		if math.Abs(*ms.ClockSkew-600) > st.MaxOffset || !ms.ClockSkewed {
			t.Errorf("the slow node's status of n0: %v s, want about +600 s", *ms.ClockSkew)
		}
	})
}

// TestClocks_OneMaxOffset: the offset by which a node refuses a peer's
// records is the one by which it reports the peer's clock as off: with
// cluster.max_clock_offset at 1 s and a member 3 s ahead, that member's
// records are refused and its clock is reported beyond the offset (there
// were two settings, and a clock could be refused without a word).
func TestClocks_OneMaxOffset(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) { cfg.Cluster.MaxClockOffset = node.Duration(time.Second) }
	c.Clock = func(i int) func() time.Time {
		if i == 1 {
			return func() time.Time { return time.Now().Add(3 * time.Second) }
		}
		return nil
	}
	c.TuneGossip = func(_ int, g *gossip.Config) { // as skewedCluster does
		g.ProbeTimeout, g.ProbeInterval = 500*time.Millisecond, time.Second
	}
	c.Start(2)
	n0, ahead := c.Members[0], c.Members[1]
	if code := ahead.Call("PUT", "/v1/users/ann@example.com", map[string]any{"verified_via": "registration"}, nil); code != http.StatusOK {
		t.Fatalf("register ann on n1: %d", code)
	}
	c.WaitFor(10*time.Second, "n0 refusing n1's record", func() bool { return n0.Store().Refused()[session.RefusedClockAhead] > 0 })
	st, ms := memberStatus(t, c, n0, "n1")
	if st.MaxOffset != 1 || !ms.ClockSkewed {
		t.Fatalf("n0's status: max offset %v s, n1's clock %+.3f s skewed %v; want 1 s, skewed", st.MaxOffset, *ms.ClockSkew, ms.ClockSkewed)
	}
	warned := false
	for _, w := range st.Warnings {
		warned = warned || strings.Contains(w, "member n1's clock is") && strings.Contains(w, "cluster.max_clock_offset (1s)")
	}
	if !warned {
		t.Errorf("n0's status warns nothing of n1: %q", st.Warnings)
	}
}

// TestClocks_InjectedEndOfTime: a member holding the cluster secret pushes
// a user record with revoked_before = 2^64-1 through gossip (its encoder,
// Publish). Every node refuses it and counts it, none stores or spreads it,
// no clock wraps: a logout after it is a logout, and a login after it is
// active everywhere.
func TestClocks_InjectedEndOfTime(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	before := login(t, c.Members[1], "ann@example.com")
	waitAll(t, c, before.Session.ID, http.StatusOK, "")

	kr, err := crypto.ParseKeyring(c.Secret + "\n")
	if err != nil {
		t.Fatal(err)
	}
	_, keys := kr.GossipKeys()
	st, err := session.Open(session.Options{InMemory: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := gossip.DefaultConfig(gossip.ProfileLocal)
	cfg.Name, cfg.BindAddr, cfg.Keys = "rogue", "127.0.0.1:0", keys
	cfg.SiteURL, cfg.Version = "http://rogue.localhost/", "test"
	cfg.Shrink()
	cfg.Logger = slog.New(slog.DiscardHandler)
	rogue, err := gossip.New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	if _, err := rogue.Join([]string{c.Members[0].GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(10*time.Second, "the rogue a member of every node", func() bool {
		for _, m := range c.Members {
			if len(m.Gossip().LiveMembers()) != 4 {
				return false
			}
		}
		return len(rogue.LiveMembers()) == 4
	})
	poison := session.User{Email: "ann@example.com", RevokedBefore: session.MaxHLC, Login: session.Set("mallory", session.MaxHLC, "rogue")}
	rogue.Publish([]session.Record{{User: &poison}})

	c.WaitFor(10*time.Second, "every node refusing the record", func() bool {
		for _, m := range c.Members {
			if m.Store().Refused()[session.RefusedClockAhead] == 0 {
				return false
			}
		}
		return true
	})
	for _, m := range c.Members {
		v := metricValue(t, scrapeText(t, m), `ussync_records_refused_total{reason="clock_ahead"}`)
		if v < 1 {
			t.Errorf("%s: ussync_records_refused_total{reason=\"clock_ahead\"} %v", m.Name(), v)
		}
		u, err := m.Store().User("ann@example.com")
		if err != nil || u.RevokedBefore == session.MaxHLC || u.Login.V == "mallory" {
			t.Errorf("%s stored the record: %+v %v", m.Name(), u, err)
		}
		if m.Store().Clock().Last() > session.MakeHLC(time.Now().Add(time.Minute).UnixMilli(), 0) {
			t.Errorf("%s's clock followed it: %s", m.Name(), m.Store().Clock().Last())
		}
		if m.Gossip().RefusedFrom()["rogue"] == 0 {
			t.Errorf("%s does not say the refused record came from the rogue: %v", m.Name(), m.Gossip().RefusedFrom())
		}
	}
	// Anti-entropy has rounds with the rogue, whose store holds nothing of
	// it: nothing spreads. A logout is a logout, a later login is active.
	c.WaitConverged(10 * time.Second)
	if code := c.Members[2].Call("DELETE", "/v1/sessions/"+before.Session.ID, nil, nil); code != http.StatusOK {
		t.Fatalf("logout after the poison: %d", code)
	}
	waitAll(t, c, before.Session.ID, http.StatusGone, client.CodeSessionEnded)
	after := login(t, c.Members[0], "ann@example.com")
	waitAll(t, c, after.Session.ID, http.StatusOK, "")
	if _, err := st.User("ann@example.com"); err == nil {
		if u, _ := st.User("ann@example.com"); u.RevokedBefore == session.MaxHLC {
			t.Error("the rogue's own store took it back from a peer")
		}
	}
}
