package node

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// withSites makes the cluster site-a and n other sites named by name(i).
func withSites(n int, name func(int) string) hoOption {
	return func(s *hoSetup) {
		ms := []gossip.Member{{Name: "site-a", SiteURL: siteAURL, State: "alive"}}
		for i := range n {
			ms = append(ms, gossip.Member{Name: name(i), SiteURL: fmt.Sprintf("https://s%02d.example/", i), State: "alive"})
		}
		s.cfg.Members = func() []gossip.Member { return ms }
	}
}

// TestHandoff_SizeNeverSilent (issue 13, item 5): 26 sites and every field
// at its longest. A hand-off that fits is offered whole; one that cannot
// fit in a URL is not silently dropped: the login answer says so in
// sync.error, the node logs it and counts it.
func TestHandoff_SizeNeverSilent(t *testing.T) {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	t.Run("26 sites, the longest fields", func(t *testing.T) {
		e := newHoEnv(t, testKeyring(t), "site-a", siteAURL, withSites(25, func(i int) string { return fmt.Sprintf("site-%02d-example-com", i) }))
		email := "margaret.hamilton-smith." + long("x", 40) + "@example.com"
		e.do("PUT", "/v1/users/"+email, map[string]string{"login": long("l", session.MaxNameBytes), "display_name": long("D", session.MaxNameBytes),
			"verified_via": session.VerifiedRegistration}).want(t, http.StatusOK, nil)
		var a client.LoginAnswer
		e.do("POST", "/v1/sessions", map[string]string{"email": email, "ip": "203.0.113.77", "user_agent": long("U", session.MaxUserAgentBytes)}).
			want(t, http.StatusCreated, &a)
		if a.Sync.Error != nil || a.Sync.Chain == "" || len(a.Sync.URLs) != 25 {
			t.Fatalf("sync: error %+v, chain %d characters, %d URLs", a.Sync.Error, len(a.Sync.Chain), len(a.Sync.URLs))
		}
		// The chain's ticket, sealed by the origin between the passes, fits
		// too: the longest it gets, with every site's commitment.
		s, u := e.session(t, a.Session.ID)
		route := make([]string, 25)
		for i := range route {
			route[i] = fmt.Sprintf("site-%02d-example-com", i)
		}
		binds := make([]crypto.Binding, len(route))
		for i, n := range route {
			binds[i] = testBinding(n)
		}
		if _, err := e.h.sealChain(route, binds, &s, &u, "203.0.113.77"); err != nil {
			t.Fatalf("the chain ticket of 26 sites and the longest fields: %v", err)
		}
	})
	t.Run("names too long for a URL", func(t *testing.T) {
		e := newHoEnv(t, testKeyring(t), "site-a", siteAURL, withSites(25, func(i int) string {
			// Names as long as allowed, and as incompressible as hashes.
			var b strings.Builder
			for j := 0; b.Len() < session.MaxSiteNameBytes-8; j++ {
				fmt.Fprintf(&b, "%x", sha256.Sum256([]byte(fmt.Sprint(i, j))))
			}
			return b.String()[:session.MaxSiteNameBytes]
		}))
		l := e.login(t, "ann@example.com", true)
		var a client.LoginAnswer
		e.do("POST", "/v1/sessions", map[string]string{"email": "ann@example.com", "ip": "203.0.113.77", "user_agent": "t"}).want(t, http.StatusCreated, &a)
		if a.Sync.Error == nil || a.Sync.Error.Code != client.SyncTooLarge || a.Sync.Error.Message == "" || a.Sync.Chain != "" {
			t.Fatalf("a hand-off that cannot fit: sync %+v (login %v)", a.Sync, l.Synced)
		}
		if m := e.do("GET", "/metrics", nil); !strings.Contains(string(m.Body), `ussync_handoff_unavailable_total{reason="handoff_too_large"} 2`) {
			t.Errorf("not counted:\n%s", m.Body)
		}
	})
}
