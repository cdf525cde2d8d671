package node_test

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// wipe kills member i, empties its data dir, as a lost disk would, and
// starts it again on it (joining another member).
func wipe(t *testing.T, c *nodetest.Cluster, i int) {
	t.Helper()
	c.Kill(i)
	dir := c.Members[i].Dir
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.Restart(i)
}

// TestFreshStore_Wiped: a node restarted on an empty data dir. What was
// replicated comes back from its peers; of what was node-local, the replay
// cache must not be trusted (a ticket used before the wipe would open
// again), and the rest is lost in ways that fail safe.
func TestFreshStore_Wiped(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)
	b.lax = true

	// A new name is new to the cluster: it refuses nothing, even a ticket
	// issued within the clock skew of its start.
	t.Run("a new node accepts its first tickets", func(t *testing.T) {
		n3 := c.Add()
		c.WaitMembers(10 * time.Second)
		c.WaitFor(10*time.Second, "n3 to know its name is new", func() bool {
			h := n3.Health()
			return h.FreshStore && h.TicketsRefusedUntil == nil && !h.CatchingUp
		})
		if _, r := handOff(t, b, c, 0, "n3"); !opened(r) {
			t.Fatalf("n3's first ticket: %d %s", r.Status, r.Body)
		}
	})

	// ann logs in on n1 too (n1 is a site with users of its own), then a
	// login on n0 hands her session to n1, by an iframe's link and by the
	// chain.
	onN1 := login(t, c.Members[1], "ann@example.com")
	waitAll(t, c, onN1.Session.ID, http.StatusOK, "") // the others keep it through the wipe
	l, r := handOff(t, b, c, 0, "n1")
	if !opened(r) {
		t.Fatalf("the hand-off to n1: %d %s", r.Status, r.Body)
	}
	url1 := r.URL // n1's sync step, with its ticket
	if r := b.get(url1); r.Status != http.StatusConflict || r.errorCode() != client.CodeTicketReplayed {
		t.Fatalf("a replay before the wipe: %d %s", r.Status, r.Body)
	}
	chain1 := ""
	_, way := b.follow(l.Sync.Chain)
	for _, r := range way {
		if b.member(r.URL).Name() == "n1" && strings.Contains(r.URL, "/ussync/v1/sync?") {
			chain1 = r.URL
		}
	}
	if chain1 == "" {
		t.Fatalf("the chain does not reach n1: %s", b.steps(way))
	}
	// A ticket n1 has not redeemed yet, issued before the wipe.
	tk, nonce := handoffTicket(t, c, 0, l, "n1")
	// A site-only session on n1 (an unverified user), and a user n1's
	// backend knows.
	local := login(t, c.Members[1], "newbie@example.com")
	if local.Synced {
		t.Fatalf("an unverified user's session travelled: %+v", local)
	}
	alias := b.cookie(c.Members[1].SiteURL(), "ussync_session")
	if alias == nil || sessionOn(t, c.Members[1], alias.Value) != l.Session.ID {
		t.Fatalf("n1's own cookie for ann: %v", alias)
	}

	wipe(t, c, 1)
	n1 := c.Members[1]
	c.WaitMembers(10 * time.Second)
	c.WaitFor(10*time.Second, "n1 to catch up", func() bool { return !n1.Health().CatchingUp })

	t.Run("replicated records come back", func(t *testing.T) {
		c.WaitConverged(10 * time.Second)
		if code, _ := checkOn(t, n1, l.Session.ID); code != http.StatusOK {
			t.Errorf("ann's session on the wiped n1: %d", code)
		}
	})
	t.Run("a ticket used before the wipe is refused", func(t *testing.T) {
		h := n1.Health()
		if !h.FreshStore || h.TicketsRefusedUntil == nil {
			t.Fatalf("health of the wiped n1: %+v", h)
		}
		r := b.get(url1)
		if r.Status != http.StatusConflict || r.errorCode() != client.CodeTicketBeforeStart || r.cookie("ussync_session") != nil {
			t.Fatalf("the replayed sync URL on the wiped n1: %d %s (cookie %v), want 409 %s and no cookie",
				r.Status, r.Body, r.cookie("ussync_session"), client.CodeTicketBeforeStart)
		}
		// The chain's ticket, replayed: the same refusal, and the browser
		// goes on.
		if r := b.get(chain1); r.cookie("ussync_session") != nil || (r.Status != http.StatusConflict && r.Header.Get("X-Ussync-Refused") != client.CodeTicketBeforeStart) {
			t.Fatalf("the replayed chain on the wiped n1: %d %s (cookie %v)", r.Status, r.Body, r.cookie("ussync_session"))
		}
		// The site's own redemption of a ticket issued before the wipe,
		// never used: it may have been, for all n1 knows.
		wantCode(t, n1, "POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "ip": "192.0.2.1", "nonce": nonce}, http.StatusConflict, client.CodeTicketBeforeStart)
		if v := metric(t, c, n1, `ussync_tickets_redeemed_total{result="ticket_before_start"}`); v == "" || v == "0" {
			t.Errorf("the refusals are not counted: %q", v)
		}
	})
	t.Run("site-only sessions and cookie aliases are lost", func(t *testing.T) {
		if code, ec := checkOn(t, n1, local.Session.ID); code != http.StatusNotFound || ec != client.CodeNotFound {
			t.Errorf("the site-only session on the wiped n1: %d %s, want 404 (the user logs in again)", code, ec)
		}
		// n1's own cookie for ann named an alias only n1 kept: ann's
		// browser gets a session there again by the next hand-off.
		if id := sessionOn(t, n1, alias.Value); id != "" {
			t.Errorf("n1's cookie for ann after the wipe stands for %s, want nothing", id)
		}
	})
	t.Run("tickets issued once the skew has passed open", func(t *testing.T) {
		waitTicketsOpen(t, c, 0, n1)
	})
}

// handOff follows a new login's iframe hand-off (its sync URL for the
// site name) in b, which gets the login's session on the origin member's
// site, and returns the login and the answer of the sync step on that site
// (its URL holds the ticket). It retries while a member flaps (a loaded
// machine, a node just restarted): the hand-off skips a site that is not a
// live member at that moment.
func handOff(t *testing.T, b *browser, c *nodetest.Cluster, origin int, name string) (syncLogin, *response) {
	t.Helper()
	var l syncLogin
	var last *response
	c.WaitFor(20*time.Second, "a hand-off from "+c.Members[origin].Name()+" to reach "+name, func() bool {
		l = loginSync(t, c.Members[origin], "ann@example.com", "")
		b.setSession(c.Members[origin].SiteURL(), l.Token)
		u := ""
		for _, s := range l.Sync.URLs {
			if s.Site == name {
				u = s.URL
			}
		}
		if u == "" {
			return false
		}
		_, way := b.follow(u)
		last = way[len(way)-1]
		return b.member(last.URL).Name() == name && strings.Contains(last.URL, "/ussync/v1/sync?")
	})
	return l, last
}

// waitTicketsOpen waits until a hand-off ticket for m, issued now by the
// member origin, is redeemed: m, restarted on an empty data dir, refuses
// those issued before its start plus the clocks' skew.
func waitTicketsOpen(t *testing.T, c *nodetest.Cluster, origin int, m *nodetest.Member) {
	t.Helper()
	b := newBrowser(t, c, nil)
	b.lax = true
	c.WaitFor(30*time.Second, "a ticket issued now to open on "+m.Name(), func() bool {
		_, r := handOff(t, b, c, origin, m.Name())
		if r.Status >= 400 && r.errorCode() != client.CodeTicketBeforeStart {
			t.Fatalf("a ticket issued after the start on %s: %d %s", m.Name(), r.Status, r.Body)
		}
		return opened(r)
	})
}

// opened reports whether a sync step's answer set the session cookie.
func opened(r *response) bool {
	return r.Status < 400 && r.cookie("ussync_session") != nil && r.cookie("ussync_session").Value != ""
}

// syncURLFor is login l's sync URL for node name.
func syncURLFor(t *testing.T, l syncLogin, name string) string {
	t.Helper()
	for _, u := range l.Sync.URLs {
		if u.Site == name {
			return u.URL
		}
	}
	t.Fatalf("no sync URL for %s in %+v", name, l.Sync.URLs)
	return ""
}

// TestFreshStore_Verification: pending verification codes and the send
// counters are node-local. After a wipe the old code and link verify
// nothing (the user asks for a new code) and the counters start again.
func TestFreshStore_Verification(t *testing.T) {
	sink := node.NewSMTPSink(t)
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) { cfg.SMTP = sink.SMTPSection() }
	c.Start(2)
	const email = "ann@b.example"
	if code := c.Members[1].Call("PUT", "/v1/users/"+email, map[string]any{"login": "ann"}, nil); code != http.StatusOK {
		t.Fatalf("PUT: %d", code)
	}
	c.WaitConverged(10 * time.Second)
	n0 := c.Members[0]
	if code := n0.Call("POST", "/v1/users/"+email+"/verification", nil, nil); code != http.StatusAccepted {
		t.Fatalf("request: %d", code)
	}
	msgs := sink.Messages()
	pm := node.ParseMail(t, msgs[len(msgs)-1].Data)
	wantCode(t, n0, "POST", "/v1/users/"+email+"/verification", nil, http.StatusTooManyRequests, client.CodeRateLimited)

	wipe(t, c, 0)
	n0 = c.Members[0]
	c.WaitMembers(10 * time.Second)
	c.WaitConverged(10 * time.Second)

	wantCode(t, n0, "POST", "/v1/users/"+email+"/verify", map[string]string{"code": pm.Code}, http.StatusBadRequest, client.CodeInvalidCode)
	if a := openOn(t, c.HTTP, n0.PublicAddr(), pm.Link); a.Status < 400 {
		t.Errorf("the old link on the wiped node: %d %s", a.Status, a.Body)
	}
	if u, err := n0.Store().User(email); err != nil || u.Verified.V.OK {
		t.Fatalf("the user after the old code and link: %+v %v", u.Verified, err)
	}
	// The counters went with the disk: a new code may be sent at once.
	if code := n0.Call("POST", "/v1/users/"+email+"/verification", nil, nil); code != http.StatusAccepted {
		t.Fatalf("a new request after the wipe: %d", code)
	}
	msgs = sink.Messages()
	pm = node.ParseMail(t, msgs[len(msgs)-1].Data)
	if code := n0.Call("POST", "/v1/users/"+email+"/verify", map[string]string{"code": pm.Code}, nil); code != http.StatusOK {
		t.Fatalf("the new code: %d", code)
	}
}
