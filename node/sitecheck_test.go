package node_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// fakeSite is a site's health endpoint whose answer the test sets.
type fakeSite struct {
	srv    *httptest.Server
	status atomic.Int32
}

func newFakeSite(t *testing.T) *fakeSite {
	f := &fakeSite{}
	f.status.Store(http.StatusOK)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(f.status.Load()))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// siteMemberStatus is how m's status shows the member named name.
func siteMemberStatus(t *testing.T, m *nodetest.Member, name string) client.MemberStatus {
	t.Helper()
	var st client.Status
	if code := m.Call("GET", "/v1/status", nil, &st); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	for _, x := range st.Members {
		if x.Name == name {
			return x
		}
	}
	return client.MemberStatus{}
}

// TestSiteCheck_Reports: each node checks its own site and advertises the
// answer; a site that answers an error (a proxy that strips the path
// answers 404) or does not answer at all is shown down on every node, and
// its own node says so; once it answers again, it is up everywhere.
func TestSiteCheck_Reports(t *testing.T) {
	sites := []*fakeSite{newFakeSite(t), newFakeSite(t), newFakeSite(t)}
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		cfg.Site.HealthURL = sites[i].srv.URL + "/ussync/v1/healthz"
		cfg.Site.HealthInterval = node.Duration(time.Second)
	}
	c.Start(3)
	n0, n1 := c.Members[0], c.Members[1]
	// The default health URL, <site url>ussync/v1/healthz, is the node's.
	if resp, err := http.Get("http://" + n0.PublicAddr() + "/ussync/v1/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the public listener's ussync/v1/healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	c.WaitFor(10*time.Second, "every site up on n0", func() bool {
		for _, m := range c.Members {
			if x := siteMemberStatus(t, n0, m.Name()); x.SiteState != "up" || !x.Handoff {
				return false
			}
		}
		return true
	})

	for _, tc := range []struct {
		name string
		fail func()
	}{
		{"a proxy that strips the path", func() { sites[1].status.Store(http.StatusNotFound) }},
		{"a web server that is stopped", func() { sites[1].srv.Listener.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fail()
			c.WaitFor(10*time.Second, "n1's site down on n0 and n2", func() bool {
				for _, m := range []*nodetest.Member{n0, c.Members[2]} {
					if x := siteMemberStatus(t, m, "n1"); x.SiteState != "down" || x.Handoff || x.State != "alive" {
						return false
					}
				}
				return true
			})
			var h healthz
			if code := n1.Call("GET", "/healthz", nil, &h); code != http.StatusOK || !h.SiteDown || h.Gossip != "site_down" || !strings.Contains(h.Reason, "health check") {
				t.Errorf("n1's healthz: %d %+v", code, h)
			}
			if v := metric(t, c, n1, "ussync_site_down"); v != "1" {
				t.Errorf("ussync_site_down %q", v)
			}
		})
		if t.Failed() {
			return
		}
	}

	// The site answers again (a new server at the same address is not
	// possible with httptest: point the check at a healthy one).
	sites[1].status.Store(http.StatusOK)
	c.Kill(1)
	sites[1] = newFakeSite(t)
	c.Restart(1)
	c.WaitFor(10*time.Second, "n1's site up again on n0", func() bool {
		x := siteMemberStatus(t, n0, "n1")
		return x.SiteState == "up" && x.Handoff
	})
	var h healthz
	if code := c.Members[1].Call("GET", "/healthz", nil, &h); code != http.StatusOK || h.SiteDown {
		t.Errorf("n1's healthz once its site answers: %d %+v", code, h)
	}
}
