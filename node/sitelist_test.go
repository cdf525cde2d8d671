package node

import (
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
		members = []gossip.Member{{Name: "site-a", SiteURL: siteAURL, State: "alive"}}
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
	a := gossip.Member{Name: "site-a", SiteURL: siteAURL, State: "alive"}
	b := gossip.Member{Name: "site-b", SiteURL: siteBURL, State: "alive"}
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
