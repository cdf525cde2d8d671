package gossip

import (
	"testing"
	"time"
)

// memberOn is how m sees the member named name in its live members.
func memberOn(m *member, name string) (Member, bool) {
	for _, x := range m.g.LiveMembers() {
		if x.Name == name {
			return x, true
		}
	}
	return Member{}, false
}

// TestGossip_SiteHealth: a member's report of its own site reaches its
// peers: good while it says up and keeps reporting; not good once it says
// down, nor once its reports stop (its node crashed, though memberlist may
// still list it alive); good again once it reports up. A member that never
// reports is taken as good (an older version).
func TestGossip_SiteHealth(t *testing.T) {
	ms := startCluster(t, 3)
	n0, n1, n2 := ms[0], ms[1], ms[2]
	if x, _ := memberOn(n0, "n1"); x.Site != "" || !x.Good() {
		t.Fatalf("a member that reports nothing: %+v, good %v", x, x.Good())
	}
	const every = 50 * time.Millisecond
	report := func(state string) {
		t.Helper()
		if err := n1.g.SetSite(state, every, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	seen := func(state string, good bool) func() bool {
		return func() bool {
			for _, m := range []*member{n0, n2} {
				if x, ok := memberOn(m, "n1"); !ok || x.Site != state || x.Good() != good {
					return false
				}
			}
			return true
		}
	}
	report(SiteUp)
	waitFor(t, 5*time.Second, "n1 up and good on the others", seen(SiteUp, true))
	report(SiteDown)
	waitFor(t, 5*time.Second, "n1 down on the others", seen(SiteDown, false))
	report(SiteUp)
	waitFor(t, 5*time.Second, "n1 up again", seen(SiteUp, true))
	// Its reports stop: within three periods and the slack, it is stale.
	waitFor(t, 3*every+siteStaleSlack+5*time.Second, "n1's silence noticed", seen(SiteUp, false))
	if x, _ := memberOn(n0, "n1"); x.State != "alive" || x.SiteFresh {
		t.Fatalf("n1 on n0: %+v", x)
	}
	report(SiteUp)
	waitFor(t, 5*time.Second, "n1 reporting again", seen(SiteUp, true))
	// A member's own entry is fresh by definition.
	if x, _ := memberOn(n1, "n1"); !x.Good() {
		t.Fatalf("n1 on itself: %+v", x)
	}
	// Leaving keeps the leaving mark: a report after Leave changes nothing.
	if err := n1.g.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n1.g.SetSite(SiteDown, every, time.Second); err != nil {
		t.Fatal(err)
	}
}
