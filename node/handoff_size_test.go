package node

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
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
		ms := []gossip.Member{{Name: "site-a", SiteURL: siteAURL, State: "alive", Handoff: handoffVersion}}
		for i := range n {
			ms = append(ms, gossip.Member{Name: name(i), SiteURL: fmt.Sprintf("https://s%02d.example/", i), State: "alive", Handoff: handoffVersion})
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
	t.Run("names too long for one URL: legs", func(t *testing.T) {
		// 26 sites, names as long as allowed and as incompressible as
		// hashes, the user's fields at their longest: no chain through
		// every site fits in a URL. The chain is split into legs; every
		// site gets the session.
		kr := testKeyring(t)
		f := newFamily(t, kr, 25, func(i int) string {
			var b strings.Builder
			for j := 0; b.Len() < session.MaxSiteNameBytes-8; j++ {
				fmt.Fprintf(&b, "%x", sha256.Sum256([]byte(fmt.Sprint(i, j))))
			}
			return b.String()[:session.MaxSiteNameBytes]
		})
		origin := f.envs[0]
		email := "margaret.hamilton-smith." + long("x", 40) + "@example.com"
		origin.do("PUT", "/v1/users/"+email, map[string]string{"login": long("l", session.MaxNameBytes), "display_name": long("D", session.MaxNameBytes),
			"verified_via": session.VerifiedRegistration}).want(t, http.StatusOK, nil)
		var a client.LoginAnswer
		origin.do("POST", "/v1/sessions", map[string]string{"email": email, "ip": "203.0.113.77", "user_agent": long("U", session.MaxUserAgentBytes),
			"return_to": siteAURL + "after?" + long("r", 600)}).want(t, http.StatusCreated, &a)
		if a.Sync.Error != nil || a.Sync.Chain == "" {
			t.Fatalf("sync: error %+v, chain %d characters", a.Sync.Error, len(a.Sync.Chain))
		}
		b := f.browser(t)
		b.set(siteAURL, cookieSession, a.Token) // as the origin's site does at login
		end, way := b.follow(a.Sync.Chain)
		if last := way[len(way)-1]; last.status != http.StatusSeeOther {
			t.Fatalf("%s answered %d", last.step, last.status)
		}
		if end != siteAURL+"after?"+long("r", 600) {
			t.Fatalf("the hand-off ended at %.80q after %d steps", end, len(way))
		}
		legs := 0
		for _, w := range way {
			if w.refused != "" {
				t.Errorf("%s refused: %s", w.step, w.refused)
			}
			if strings.HasSuffix(w.step, "site-a chain") {
				legs++
			}
			if w.long > 8<<10 {
				t.Errorf("%s: a URL of %d characters", w.step, w.long)
			}
		}
		if legs < 2 {
			t.Errorf("%d legs: the test does not split the chain", legs)
		}
		for _, e := range f.envs[1:] {
			tok := b.get(e.h.self.URL.String(), cookieSession)
			if tok == "" || e.sessionOf(t, tok) != a.Session.ID {
				t.Errorf("%.12s… did not get the session", e.h.Name)
			}
		}
		if m := origin.do("GET", "/metrics", nil); !strings.Contains(string(m.Body), fmt.Sprintf("ussync_handoff_legs_total %d", legs-1)) ||
			strings.Contains(string(m.Body), `ussync_handoff_unavailable_total{reason="handoff_too_large"} 1`) {
			t.Errorf("legs not counted (%d legs):\n%s", legs, m.Body)
		}
		t.Logf("%d sites in %d legs, %d steps", len(f.envs)-1, legs, len(way))

		// A leg's way home (the continuation, on the origin's bind step)
		// is no credential: in another browser it is refused at once, and
		// on another site it is not the site's.
		var cont string
		for i, w := range way {
			if i > 0 && strings.HasSuffix(w.step, "site-a bind") {
				cont = w.url
				break
			}
		}
		if cont == "" {
			t.Fatal("no continuation on the way")
		}
		if _, w := f.browser(t).follow(cont); len(w) != 1 || w[0].status != http.StatusForbidden {
			t.Errorf("the continuation in another browser: %+v", w)
		}
		u, _ := url.Parse(cont)
		u.Host = "s00.example"
		if _, w := b.follow(u.String()); len(w) != 1 || w[0].status != http.StatusForbidden {
			t.Errorf("the continuation on another site: %+v", w)
		}
	})
	t.Run("a site no URL can carry: sync.error", func(t *testing.T) {
		// Records within their limits always fit a leg of one site (the
		// subtests above, at their longest). What cannot is a member whose
		// name alone is longer than a ticket: no node.name passes Validate
		// at that length (64 characters), but the node takes the names of
		// the members it hears of as they come (a peer of a later version,
		// or configured as a library without Validate). Incompressible
		// (hex), and sorted first: every leg holds it, none is sealed.
		var b strings.Builder
		for j := 0; b.Len() < 2*crypto.MaxTicketBytes; j++ {
			fmt.Fprintf(&b, "%x", sha256.Sum256([]byte(fmt.Sprint("huge", j))))
		}
		huge := b.String()
		names := []string{huge, "site-b"}
		e := newHoEnv(t, testKeyring(t), "site-a", siteAURL, withSites(len(names), func(i int) string { return names[i] }))
		const counted = `ussync_handoff_unavailable_total{reason="` + client.SyncTooLarge + `"} `
		if m := e.do("GET", "/metrics", nil); !strings.Contains(string(m.Body), counted+"0\n") {
			t.Fatalf("before the login, no %s0:\n%s", counted, m.Body)
		}
		email := "ada@example.com"
		e.do("PUT", "/v1/users/"+email, map[string]string{"verified_via": session.VerifiedRegistration}).want(t, http.StatusOK, nil)
		var a client.LoginAnswer
		e.do("POST", "/v1/sessions", map[string]string{"email": email, "ip": "203.0.113.77"}).want(t, http.StatusCreated, &a)

		// The login stands on its own site, and travels (Synced) though
		// no link was offered; the answer says why.
		if a.Token == "" || !a.Synced || e.sessionOf(t, a.Token) != a.Session.ID {
			t.Fatalf("the login: token %t, synced %t, session %q", a.Token != "", a.Synced, a.Session.ID)
		}
		if a.Sync.Error == nil || a.Sync.Error.Code != client.SyncTooLarge || a.Sync.Error.Message == "" {
			t.Fatalf("sync.error %+v, want code %q and a message", a.Sync.Error, client.SyncTooLarge)
		}
		if a.Sync.Chain != "" || len(a.Sync.URLs) != 0 {
			t.Errorf("sync.error with links: chain %d characters, %d URLs", len(a.Sync.Chain), len(a.Sync.URLs))
		}
		if m := e.do("GET", "/metrics", nil); !strings.Contains(string(m.Body), counted+"1\n") {
			t.Errorf("not counted, want %s1:\n%s", counted, m.Body)
		}
		logged := false
		for line := range strings.Lines(e.logs.String()) {
			logged = logged || strings.Contains(line, `msg="login: no hand-off offered"`) &&
				strings.Contains(line, "code="+client.SyncTooLarge) && strings.Contains(line, "session="+a.Session.ID)
		}
		if !logged {
			t.Errorf("no log line for the hand-off not offered:\n%s", e.logs)
		}
	})
}

// family is a set of sites, each a node of its own (its own store and
// public listener), sharing a keyring and a member list: a hand-off
// between them runs in process, without gossip (a ticket carries what its
// target needs).
type family struct {
	envs   []*hoEnv
	byHost map[string]*hoEnv
}

// newFamily makes site-a and n other sites named by name(i) at
// https://sNN.example/.
func newFamily(t *testing.T, kr *crypto.Keyring, n int, name func(int) string) *family {
	f := &family{byHost: map[string]*hoEnv{}}
	members := withSites(n, name)
	f.envs = append(f.envs, newHoEnv(t, kr, "site-a", siteAURL, members))
	for i := range n {
		f.envs = append(f.envs, newHoEnv(t, kr, name(i), fmt.Sprintf("https://s%02d.example/", i), members))
	}
	for _, e := range f.envs {
		f.byHost[e.h.self.URL.Host] = e
	}
	return f
}

// familyBrowser is a browser among a family's sites: its cookies by host
// and name, sent to the host's node as a proxy would.
type familyBrowser struct {
	f       *family
	t       *testing.T
	cookies map[string]map[string]string
}

func (f *family) browser(t *testing.T) *familyBrowser {
	return &familyBrowser{f: f, t: t, cookies: map[string]map[string]string{}}
}

func (b *familyBrowser) set(siteURL, base, value string) {
	u, _ := url.Parse(siteURL)
	e := b.f.byHost[u.Host]
	if b.cookies[u.Host] == nil {
		b.cookies[u.Host] = map[string]string{}
	}
	b.cookies[u.Host][e.h.cookieName(base)] = value
}

func (b *familyBrowser) get(siteURL, base string) string {
	u, _ := url.Parse(siteURL)
	return b.cookies[u.Host][b.f.byHost[u.Host].h.cookieName(base)]
}

// familyStep is one answer on a browser's way.
type familyStep struct {
	step    string // "<site name> <path>"
	url     string
	status  int
	refused string // X-Ussync-Refused
	long    int    // the URL's length
}

// follow goes from loc through the hand-off's steps as a browser does,
// and returns where it ends (the first URL that is no step) and the way.
func (b *familyBrowser) follow(loc string) (string, []familyStep) {
	b.t.Helper()
	var way []familyStep
	for range 200 {
		u, err := url.Parse(loc)
		if err != nil || !strings.Contains(u.Path, "/ussync/v1/") {
			return loc, way
		}
		e := b.f.byHost[u.Host]
		if e == nil {
			b.t.Fatalf("the hand-off went to %.80q, no site of the family", loc)
		}
		req, _ := http.NewRequest("GET", e.pub.URL+u.RequestURI(), nil)
		for n, v := range b.cookies[u.Host] {
			req.AddCookie(&http.Cookie{Name: n, Value: v})
		}
		cl := e.pub.Client()
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := cl.Do(req)
		if err != nil {
			b.t.Fatal(err)
		}
		resp.Body.Close()
		name := e.h.Name
		if len(name) > 12 {
			name = name[:12] + "…"
		}
		way = append(way, familyStep{step: name + " " + strings.TrimPrefix(u.Path, "/ussync/v1/"), url: loc, status: resp.StatusCode,
			refused: resp.Header.Get(refusedHeader), long: len(loc)})
		for _, c := range resp.Cookies() {
			if b.cookies[u.Host] == nil {
				b.cookies[u.Host] = map[string]string{}
			}
			if c.MaxAge < 0 {
				delete(b.cookies[u.Host], c.Name)
			} else {
				b.cookies[u.Host][c.Name] = c.Value
			}
		}
		if resp.StatusCode != http.StatusSeeOther {
			return "", way
		}
		loc = resp.Header.Get("Location")
	}
	b.t.Fatal("the hand-off does not end")
	return "", nil
}
