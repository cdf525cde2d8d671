package node_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node/nodetest"
)

// TestHandoff_SkipsOlderVersion: a member that advertises no hand-off
// version (a node of a version before the advertisement, during a rolling
// upgrade) is left out of every hand-off with the reason older_version, in
// the login answer, the status and the metrics: a browser sent to it would
// meet a step its site does not have (404). It stays a full member: what is
// written on it reaches the others and the other way round, and this node
// still accepts its site as a redirect target (docs/compatibility.md).
func TestHandoff_SkipsOlderVersion(t *testing.T) {
	c := nodetest.New(t)
	c.TuneGossip = func(i int, g *gossip.Config) {
		if i == 2 {
			g.Handoff = 0 // as a node of a version before the field
		}
	}
	c.Start(3)
	n0, n1, n2 := c.Members[0], c.Members[1], c.Members[2]
	if v := metric(t, c, n0, `ussync_handoff_sites_skipped_total{reason="older_version"}`); v != "0" {
		t.Errorf("the older_version series before any skip: %q, want 0", v)
	}
	registerEverywhere(t, c, 0, "ann@example.com") // every site bound: a login on n2 travels too

	// The status says why n2 is handed no browser; n1 is.
	c.WaitFor(10*time.Second, "n0's status to see n1 and n2 alive", func() bool {
		return siteMemberStatus(t, n0, "n1").State == client.MemberAlive && siteMemberStatus(t, n0, "n2").State == client.MemberAlive
	})
	if s := siteMemberStatus(t, n0, "n2"); s.Handoff || s.HandoffSkipped != "older_version" {
		t.Errorf("n0's status of n2: handoff %v, skipped %q; want false, older_version", s.Handoff, s.HandoffSkipped)
	}
	if s := siteMemberStatus(t, n0, "n1"); !s.Handoff || s.HandoffSkipped != "" {
		t.Errorf("n0's status of n1: handoff %v, skipped %q; want true and no reason", s.Handoff, s.HandoffSkipped)
	}

	l := loginSync(t, n0, "ann@example.com", "")
	t.Run("a login's links leave it out", func(t *testing.T) {
		_, raw := n0.CallRaw("POST", "/v1/sessions", map[string]any{"email": "ann@example.com", "ip": "192.0.2.1", "user_agent": "test"})
		if !strings.Contains(string(raw), `"skipped":["n2"]`) {
			t.Errorf("the login answer does not name n2 skipped: %s", raw)
		}
		for _, u := range l.Sync.URLs {
			if u.Site == "n2" {
				t.Errorf("an iframe link to n2: %+v", l.Sync.URLs)
			}
		}
	})
	t.Run("the chain never visits it", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		b.lax = true
		b.setSession(n0.SiteURL(), l.Token)
		end, way := b.follow(l.Sync.Chain)
		steps := b.steps(way)
		if end != n0.SiteURL() || strings.Contains(steps, "n2 ") || !strings.Contains(steps, "n1 bind") || !strings.Contains(steps, "n1 sync") {
			t.Fatalf("the chain: %s, ending on %q; want it through n1 only, back to n0", steps, end)
		}
		if ck := b.cookie(n1.SiteURL(), "ussync_session"); ck == nil || sessionOn(t, n1, ck.Value) != l.Session.ID {
			t.Errorf("n1 did not get the session")
		}
	})
	t.Run("its own hand-offs still come home through this node", func(t *testing.T) {
		// n2 (this version's code, advertising none) hands off to n0 and
		// n1: n0 still takes n2's site as the origin and the return URL
		// of a hand-off, as a node of an older version's chain needs.
		l2 := loginSync(t, n2, "ann@example.com", n2.SiteURL()+"home")
		b := newBrowser(t, c, nil)
		b.lax = true
		b.setSession(n2.SiteURL(), l2.Token)
		end, way := b.follow(l2.Sync.Chain)
		if end != n2.SiteURL()+"home" || !strings.Contains(b.steps(way), "n0 sync") {
			t.Fatalf("n2's chain: %s, ending on %q; want it through n0 and back to n2", b.steps(way), end)
		}
	})
	if v := metric(t, c, n0, `ussync_handoff_sites_skipped_total{reason="older_version"}`); v == "" || v == "0" {
		t.Errorf("the skips are not counted: %q", v)
	}

	// Replication is unaffected, both ways.
	waitAll(t, c, l.Session.ID, http.StatusOK, "")
	s2 := login(t, n2, "ann@example.com")
	waitAll(t, c, s2.Session.ID, http.StatusOK, "")
}
