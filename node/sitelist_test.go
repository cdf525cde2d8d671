package node

import (
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// TestHandoff_SiteListFollowsMembers: the member sites a node redirects to
// follow the members at once when they change, not a second later. A node
// that read its list before it joined (itself alone) refused every
// redirect to the others' sites for the list's lifetime: in the rolling
// upgrade test, the restarted node answered a chain link 400 bad_redirect.
func TestHandoff_SiteListFollowsMembers(t *testing.T) {
	st, err := session.Open(session.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var (
		mu      sync.Mutex
		members = []gossip.Member{{Name: "site-a", SiteURL: siteAURL, State: "alive", Handoff: handoffVersion}}
		ver     atomic.Uint64
	)
	set := func(ms ...gossip.Member) {
		mu.Lock()
		members = ms
		mu.Unlock()
		ver.Add(1) // as gossip's, after the change
	}
	svc := newService(serviceConfig{Store: st, Name: "site-a", MembersVersion: ver.Load})
	h, err := newHandoff(handoffConfig{Keyring: testKeyring(t), Service: svc, Name: "site-a", SiteURL: siteAURL,
		TicketTTL: time.Minute, Members: func() []gossip.Member {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(members)
		}})
	if err != nil {
		t.Fatal(err)
	}
	next := siteBURL + "page"
	if _, err := memberRedirect(h.sites(), "next", next); err == nil {
		t.Fatal("a redirect to site-b accepted before site-b is a member")
	}
	a := gossip.Member{Name: "site-a", SiteURL: siteAURL, State: "alive", Handoff: handoffVersion}
	b := gossip.Member{Name: "site-b", SiteURL: siteBURL, State: "alive", Handoff: handoffVersion}
	set(a, b)
	if _, err := memberRedirect(h.sites(), "next", next); err != nil {
		t.Fatalf("site-b joined, then: %v", err)
	}
	if !h.goodSite("site-b") {
		t.Fatal("site-b is not on the hand-offs' route once it joined")
	}
	set(a)
	if _, err := memberRedirect(h.sites(), "next", next); err == nil {
		t.Fatal("a redirect to site-b accepted after site-b left")
	}
}

// TestHandoff_OlderVersionSkipped: a live member that advertises an older
// hand-off than this node's, or none (a node of a version before the
// advertisement), is left out of the route with the reason older_version:
// no bind or hop/ask step of a new hand-off is sent there. It stays a
// member site (a redirect target, an origin), and a chain an older node
// made still goes on through it by sync, which every version has.
func TestHandoff_OlderVersionSkipped(t *testing.T) {
	st, err := session.Open(session.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	members := []gossip.Member{
		{Name: "site-a", SiteURL: siteAURL, State: "alive", Handoff: handoffVersion},
		{Name: "site-b", SiteURL: siteBURL, State: "alive"},                                      // advertises none
		{Name: "site-c", SiteURL: siteCURL, State: "alive", Handoff: handoffVersion - 1},         // an older one
		{Name: "site-d", SiteURL: "https://d.example/", State: "alive", Handoff: handoffVersion}, // this one
	}
	svc := newService(serviceConfig{Store: st, Name: "site-a"})
	h, err := newHandoff(handoffConfig{Keyring: testKeyring(t), Service: svc, Name: "site-a", SiteURL: siteAURL,
		TicketTTL: time.Minute, Members: func() []gossip.Member { return members }})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"site-b", "site-c"} {
		if h.goodSite(name) || h.skipReason(name) != skipOlderVersion {
			t.Errorf("%s: on the route %v, skipped %q; want off it, %q", name, h.goodSite(name), h.skipReason(name), skipOlderVersion)
		}
		if _, ok := siteNamed(h.sites(), name); !ok {
			t.Errorf("%s is no member site any more (no redirect to it, no origin)", name)
		}
	}
	if !h.goodSite("site-d") || h.skipReason("site-d") != "" {
		t.Errorf("site-d: on the route %v, skipped %q", h.goodSite("site-d"), h.skipReason("site-d"))
	}
	var route []string
	for _, s := range h.routeSites() {
		route = append(route, s.Name)
	}
	if !slices.Equal(route, []string{"site-d"}) {
		t.Errorf("route %v, want [site-d]", route)
	}
	names := func(on []onward) (out []string) {
		for _, o := range on {
			u, _ := url.Parse(o.URL)
			out = append(out, u.Host)
		}
		return out
	}
	link := func(s site) string { return s.link(pathBind, nil) }
	rest := []string{"site-b", "site-c", "site-d"}
	if got := names(h.routeOnward(h.sites(), rest, link, false)); !slices.Equal(got, []string{"d.example"}) {
		t.Errorf("a bind pass goes on to %v, want [d.example] only", got)
	}
	if got := names(h.routeOnward(h.sites(), rest, link, true)); !slices.Equal(got, []string{"b.example", "c.example", "d.example"}) {
		t.Errorf("an older node's chain goes on by sync to %v, want all three", got)
	}
	if v := skippedCount(t, h, skipOlderVersion); v != 2 {
		t.Errorf("skips counted with older_version: %v, want 2 (the sites before the first kept)", v)
	}
}

// skippedCount is ussync_handoff_sites_skipped_total{reason} of h, -1
// when the series is not there.
func skippedCount(t *testing.T, h *handoff, reason string) float64 {
	t.Helper()
	mfs, err := h.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ussync_handoff_sites_skipped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}
