package node_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// TestHandoff_SkipsSitesDown: a member whose own node reports that its site
// does not answer (a stopped web server, a proxy that strips the path) is
// left out of every hand-off: a login's links, a chain already under way,
// and lazy mode's round of the sites. A browser is never sent where it
// could not come back from (issue 13, items 1 and 7).
func TestHandoff_SkipsSitesDown(t *testing.T) {
	sites := []*fakeSite{newFakeSite(t), newFakeSite(t), newFakeSite(t)}
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		cfg.Site.HealthURL = sites[i].srv.URL + "/ussync/v1/healthz"
		cfg.Site.HealthInterval = node.Duration(time.Second)
	}
	c.Start(3)
	n0, n1 := c.Members[0], c.Members[1]
	register(t, c, 0, "ann@example.com")
	c.WaitFor(10*time.Second, "every site up on n0", func() bool {
		for _, m := range c.Members {
			if x := siteMemberStatus(t, n0, m.Name()); !x.Handoff {
				return false
			}
		}
		return true
	})
	before := loginSync(t, n0, "ann@example.com", "") // its chain goes through n1 and n2

	sites[2].status.Store(http.StatusNotFound) // n2's proxy strips the path
	c.WaitFor(10*time.Second, "n2's site down on n0 and n1", func() bool {
		return !siteMemberStatus(t, n0, "n2").Handoff && !siteMemberStatus(t, n1, "n2").Handoff
	})
	// The hand-off reads the member list at most a second old.
	c.WaitFor(10*time.Second, "n0's login answers to leave n2 out", func() bool {
		_, raw := n0.CallRaw("POST", "/v1/sessions", map[string]any{"email": "ann@example.com", "ip": "192.0.2.1", "user_agent": "test"})
		return strings.Contains(string(raw), `"skipped":["n2"]`)
	})

	t.Run("a login's links leave the site out", func(t *testing.T) {
		l := loginSync(t, n0, "ann@example.com", "")
		for _, u := range l.Sync.URLs {
			if u.Site == "n2" {
				t.Errorf("an iframe link to n2: %+v", l.Sync.URLs)
			}
		}
		b := newBrowser(t, c, nil)
		b.lax = true
		b.setSession(n0.SiteURL(), l.Token)
		end, way := b.follow(l.Sync.Chain)
		if end != n0.SiteURL() || strings.Contains(b.steps(way), "n2 ") {
			t.Fatalf("the chain: %s, ending on %q; want it to skip n2 and end on n0", b.steps(way), end)
		}
		if ck := b.cookie(n1.SiteURL(), "ussync_session"); ck == nil || sessionOn(t, n1, ck.Value) != l.Session.ID {
			t.Errorf("n1 did not get the session")
		}
	})
	t.Run("a chain under way skips it", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		b.lax = true
		b.setSession(n0.SiteURL(), before.Token)
		end, way := b.follow(before.Sync.Chain)
		if end != n0.SiteURL() || strings.Contains(b.steps(way), "n2 ") || !strings.Contains(b.steps(way), "n1 sync") {
			t.Fatalf("the chain made before n2 went down: %s, ending on %q", b.steps(way), end)
		}
	})
	t.Run("lazy mode does not ask it", func(t *testing.T) {
		l := loginSync(t, n0, "ann@example.com", "")
		b := newBrowser(t, c, nil)
		b.lax = true
		b.setSession(n0.SiteURL(), l.Token)
		_, way := b.follow(n1.SiteURL() + "ussync/v1/hop?return=" + n1.SiteURL())
		if steps := b.steps(way); strings.Contains(steps, "n2 ") || !strings.Contains(steps, "n0 hop/ask") {
			t.Fatalf("lazy mode from n1: %s", steps)
		}
	})
	if v := metric(t, c, n0, `ussync_handoff_sites_skipped_total{reason="site_down"}`); v == "" || v == "0" {
		t.Errorf("the skips are not counted: %q", v)
	}

	// Back up: in the hand-offs again.
	sites[2].status.Store(http.StatusOK)
	c.WaitFor(10*time.Second, "n0's login answers to hand off to n2 again", func() bool {
		l := loginSync(t, n0, "ann@example.com", "")
		return slices.ContainsFunc(l.Sync.URLs, func(u struct {
			Site string `json:"site"`
			URL  string `json:"url"`
		}) bool {
			return u.Site == "n2"
		})
	})
}
