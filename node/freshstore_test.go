package node_test

import (
	"io"
	"net/http"
	"net/url"
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
	register(t, c, 0, "ann@example.com")
	b := &plainBrowser{newBrowser(t, c, nil)}

	// A new name is new to the cluster: it refuses nothing, even a ticket
	// issued within the clock skew of its start.
	t.Run("a new node accepts its first tickets", func(t *testing.T) {
		n3 := c.Add()
		c.WaitMembers(10 * time.Second)
		c.WaitFor(10*time.Second, "n3 to know its name is new", func() bool {
			h := n3.Health()
			return h.FreshStore && h.TicketsRefusedUntil == nil && !h.CatchingUp
		})
		l := loginSync(t, c.Members[0], "ann@example.com", "")
		if r := b.get(syncURLFor(t, l, "n3")); !opened(r) {
			t.Fatalf("n3's first ticket: %d %s", r.Status, r.Body)
		}
	})

	// ann logs in on n1 too (n1 is a site with users of its own), then a
	// login on n0 hands her session to n1 through the chain.
	onN1 := login(t, c.Members[1], "ann@example.com")
	waitAll(t, c, onN1.Session.ID, http.StatusOK, "") // the others keep it through the wipe
	l := loginSync(t, c.Members[0], "ann@example.com", "")
	url1 := syncURLFor(t, l, "n1")
	if r := b.get(url1); !opened(r) {
		t.Fatalf("the hand-off to n1: %d %s", r.Status, r.Body)
	}
	if r := b.get(url1); r.Status != http.StatusConflict || r.errorCode() != client.CodeTicketReplayed {
		t.Fatalf("a replay before the wipe: %d %s", r.Status, r.Body)
	}
	// A site-only session on n1 (an unverified user), and a user n1's
	// backend knows.
	local := login(t, c.Members[1], "newbie@example.com")
	if local.Synced {
		t.Fatalf("an unverified user's session travelled: %+v", local)
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
		// The chain URL, replayed: the same refusal where it reaches n1.
		chain := l.Sync.Chain
		for b.member(chain).Name() != "n1" {
			r := b.get(chain)
			if r.Status != http.StatusFound {
				t.Fatalf("the chain before n1: %d %s", r.Status, r.Body)
			}
			chain = r.Header.Get("Location")
		}
		if r := b.get(chain); r.cookie("ussync_session") != nil || (r.Status != http.StatusConflict && r.Header.Get("X-Ussync-Refused") != client.CodeTicketBeforeStart) {
			t.Fatalf("the replayed chain on the wiped n1: %d %s (cookie %v)", r.Status, r.Body, r.cookie("ussync_session"))
		}
		// The site's own redemption, too.
		tk := ticketFor(t, l, "n1")
		wantCode(t, n1, "POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "ip": "192.0.2.1"}, http.StatusConflict, client.CodeTicketBeforeStart)
		if v := metric(t, c, n1, `ussync_tickets_redeemed_total{result="ticket_before_start"}`); v == "" || v == "0" {
			t.Errorf("the refusals are not counted: %q", v)
		}
	})
	t.Run("site-only sessions are lost", func(t *testing.T) {
		if code, ec := checkOn(t, n1, local.Session.ID); code != http.StatusNotFound || ec != client.CodeNotFound {
			t.Errorf("the site-only session on the wiped n1: %d %s, want 404 (the user logs in again)", code, ec)
		}
	})
	t.Run("tickets issued once the skew has passed open", func(t *testing.T) {
		// The guard refuses what may predate the store: issued before its
		// start plus the 5 s tickets allow for clocks. Wait that out.
		c.WaitFor(15*time.Second, "a ticket issued now to open on n1", func() bool {
			l := loginSync(t, c.Members[0], "ann@example.com", "")
			for _, u := range l.Sync.URLs {
				if u.Site == "n1" { // (absent while n0 suspects n1, on a loaded machine)
					return opened(b.get(u.URL))
				}
			}
			return false
		})
	})
}

// plainBrowser is a browser that does not check the security headers of
// each answer (the frame ancestors follow the live members, which flap on
// a loaded machine with the test's shrunk timers; public_test.go checks
// them).
type plainBrowser struct{ *browser }

func (b *plainBrowser) get(raw string) *response {
	b.t.Helper()
	m := b.member(raw)
	u, err := url.Parse(raw)
	if err != nil {
		b.t.Fatal(err)
	}
	u.Host = m.PublicAddr()
	resp, err := b.client.Get(u.String())
	if err != nil {
		b.t.Fatalf("GET %.80s on %s: %v", raw, m.Name(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// opened reports whether a sync URL's answer set the session cookie.
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

// TestFreshStore_UnknownUserSite: a site that only takes users it knows
// (site.on_unknown_user: reject), wiped, still knows those who logged in
// there: that knowledge is in the replicated sessions.
func TestFreshStore_UnknownUserSite(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		if i == 1 {
			cfg.Site.OnUnknownUser = node.UnknownUserReject
		}
	}
	c.Start(2)
	register(t, c, 0, "ann@example.com")
	l := login(t, c.Members[1], "ann@example.com")
	waitAll(t, c, l.Session.ID, http.StatusOK, "") // on n0 too: the wipe loses only n1's copy
	wipe(t, c, 1)
	n1 := c.Members[1]
	c.WaitMembers(10 * time.Second)
	c.WaitConverged(10 * time.Second)
	c.WaitFor(15*time.Second, "a hand-off of ann to be accepted by the wiped n1", func() bool {
		l := loginSync(t, c.Members[0], "ann@example.com", "")
		code, raw := n1.CallRaw("POST", "/v1/tickets/redeem", map[string]string{"ticket": ticketFor(t, l, "n1"), "ip": "192.0.2.1"})
		if code == http.StatusForbidden && strings.Contains(string(raw), client.CodeUnknownUser) {
			t.Fatalf("the wiped site forgot a user who logged in there: %s", raw)
		}
		return code == http.StatusOK
	})
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
