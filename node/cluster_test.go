package node_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

type sessionJSON struct {
	ID        string  `json:"id"`
	Email     string  `json:"email"`
	Site      string  `json:"site"`
	Active    bool    `json:"active"`
	EndedAt   *string `json:"ended_at"`
	EndReason string  `json:"end_reason"`
}

type loginAnswer struct {
	Session sessionJSON `json:"session"`
	Token   string      `json:"token"`
	Synced  bool        `json:"synced"`
	Reason  string      `json:"reason"`
}

type checkAnswer struct {
	Session sessionJSON `json:"session"`
	Error   struct {
		Code string `json:"code"`
	} `json:"error"`
}

// register creates a verified user on one node and waits until every node
// knows it verified (a login elsewhere before that stays local, rightly).
// Only that node's site is bound to the address: a login on another site
// stays there (site_not_bound) until a hand-off or a proof binds it; see
// vouch.
func register(t *testing.T, c *nodetest.Cluster, on int, email string) {
	t.Helper()
	if code := c.Members[on].Call("PUT", "/v1/users/"+email, map[string]any{"login": "u", "display_name": "U", "verified_via": "registration"}, nil); code != http.StatusOK {
		t.Fatalf("register %s: %d", email, code)
	}
	c.WaitFor(5*time.Second, "the user on every node", func() bool {
		for _, m := range c.Members {
			if u, err := m.Store().User(email); err != nil || !u.Verified.V.OK {
				return false
			}
		}
		return true
	})
}

// registerEverywhere is register, then every other site's administrator
// vouches for the address (verified_via: admin, through that site's API):
// every site is bound, so a login on any of them travels. The vouching
// says nothing of the sites' user lists (no site but on knows the user).
func registerEverywhere(t *testing.T, c *nodetest.Cluster, on int, email string) {
	t.Helper()
	register(t, c, on, email)
	for _, m := range c.Members {
		if code := m.Call("PUT", "/v1/users/"+email, map[string]any{"verified_via": "admin"}, nil); code != http.StatusOK {
			t.Fatalf("vouch for %s on %s: %d", email, m.Name(), code)
		}
	}
}

func login(t *testing.T, m *nodetest.Member, email string) loginAnswer {
	t.Helper()
	var a loginAnswer
	if code := m.Call("POST", "/v1/sessions", map[string]any{"email": email, "ip": "192.0.2.1", "user_agent": "test"}, &a); code != http.StatusCreated {
		t.Fatalf("login %s on %s: %d", email, m.Name(), code)
	}
	return a
}

// checkOn returns the status code and error code of a session check.
func checkOn(t *testing.T, m *nodetest.Member, id string) (int, string) {
	t.Helper()
	var a checkAnswer
	code := m.Call("GET", "/v1/sessions/"+id, nil, &a)
	return code, a.Error.Code
}

// waitAll waits until every member answers the session check with want.
func waitAll(t *testing.T, c *nodetest.Cluster, id string, want int, wantCode string) {
	t.Helper()
	c.WaitFor(5*time.Second, fmt.Sprintf("session check %d %s on every node", want, wantCode), func() bool {
		for _, m := range c.Members {
			if code, ec := checkOn(t, m, id); code != want || ec != wantCode {
				return false
			}
		}
		return true
	})
}

func TestCluster_LoginLogoutEverywhere(t *testing.T) {
	c := nodetest.NewCluster(t, 5)
	registerEverywhere(t, c, 0, "ann@example.com")

	t.Run("login on one node is active on all", func(t *testing.T) {
		a := login(t, c.Members[0], "ann@example.com")
		if !a.Synced || a.Token == "" || len(a.Session.ID) != 64 {
			t.Fatalf("login answer %+v", a)
		}
		waitAll(t, c, a.Session.ID, http.StatusOK, "")

		t.Run("logout on another node ends it on all", func(t *testing.T) {
			if code := c.Members[3].Call("DELETE", "/v1/sessions/"+a.Session.ID, nil, nil); code != http.StatusOK {
				t.Fatalf("logout: %d", code)
			}
			waitAll(t, c, a.Session.ID, http.StatusGone, "session_ended")
		})
	})

	t.Run("logout everywhere ends every session on every node", func(t *testing.T) {
		var ids []string
		for i := 0; i < 3; i++ {
			ids = append(ids, login(t, c.Members[i], "ann@example.com").Session.ID)
		}
		for _, id := range ids {
			waitAll(t, c, id, http.StatusOK, "")
		}
		var out struct{ Ended int }
		if code := c.Members[4].Call("POST", "/v1/users/ann@example.com/logout-everywhere", nil, &out); code != http.StatusOK || out.Ended != 3 {
			t.Fatalf("logout-everywhere: %d, ended %d", code, out.Ended)
		}
		for _, id := range ids {
			waitAll(t, c, id, http.StatusGone, "session_ended")
		}
		t.Run("a login made afterwards is alive", func(t *testing.T) {
			a := login(t, c.Members[1], "ann@example.com")
			waitAll(t, c, a.Session.ID, http.StatusOK, "")
		})
	})

	t.Run("a late login created before logout-everywhere stays dead", func(t *testing.T) {
		register(t, c, 0, "bob@example.com")
		// A login stamped before the revocation, but held back: it reaches
		// the cluster only after the logout-everywhere did.
		n2 := c.Members[2]
		late := session.Session{ID: fmt.Sprintf("%064x", 42), Email: "bob@example.com", Site: n2.Name(), Created: n2.Store().Clock().Now(), ExpiresAt: time.Now().Add(time.Hour).UnixMilli()}
		if code := c.Members[0].Call("POST", "/v1/users/bob@example.com/logout-everywhere", nil, nil); code != http.StatusOK {
			t.Fatalf("logout-everywhere: %d", code)
		}
		c.WaitConverged(5 * time.Second)
		changed, err := n2.Store().Apply(session.Record{Session: &late})
		if err != nil {
			t.Fatal(err)
		}
		n2.Gossip().Publish(changed)
		c.WaitFor(5*time.Second, "the late login everywhere", func() bool {
			for _, m := range c.Members {
				if _, err := m.Store().Session(late.ID); err != nil {
					return false
				}
			}
			return true
		})
		waitAll(t, c, late.ID, http.StatusGone, "session_revoked")
	})
}

func TestCluster_UnverifiedSessionsStayHome(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	if code := c.Members[0].Call("PUT", "/v1/users/eve@example.com", map[string]any{"login": "eve"}, nil); code != http.StatusOK {
		t.Fatalf("put user: %d", code)
	}
	a := login(t, c.Members[0], "eve@example.com")
	if a.Synced || a.Reason == "" {
		t.Fatalf("unverified login synced: %+v", a)
	}
	if code, _ := checkOn(t, c.Members[0], a.Session.ID); code != http.StatusOK {
		t.Fatalf("local check: %d", code)
	}
	// Verification travels, and binds the site that made it: a login on
	// another site still stays there.
	if code := c.Members[1].Call("PUT", "/v1/users/eve@example.com", map[string]any{"verified_via": "admin"}, nil); code != http.StatusOK {
		t.Fatalf("verify: %d", code)
	}
	c.WaitConverged(5 * time.Second)
	if b := login(t, c.Members[0], "eve@example.com"); b.Synced || b.Reason != session.ReasonSiteNotBound {
		t.Fatalf("a login on a site that proved nothing: %+v", b)
	}
	// The site proves the address itself (an administrator through its
	// API): the user's next login there travels.
	if code := c.Members[0].Call("PUT", "/v1/users/eve@example.com", map[string]any{"verified_via": "admin"}, nil); code != http.StatusOK {
		t.Fatalf("verify on n0: %d", code)
	}
	b := login(t, c.Members[0], "eve@example.com")
	if !b.Synced {
		t.Fatalf("verified login not synced: %+v", b)
	}
	waitAll(t, c, b.Session.ID, http.StatusOK, "")
	for _, m := range c.Members[1:] {
		if code, _ := checkOn(t, m, a.Session.ID); code != http.StatusNotFound {
			t.Fatalf("the unverified session reached %s: %d", m.Name(), code)
		}
	}
}

func TestCluster_PartitionHeals(t *testing.T) {
	c := nodetest.NewCluster(t, 5)
	registerEverywhere(t, c, 0, "ann@example.com")
	registerEverywhere(t, c, 0, "bob@example.com")
	before := login(t, c.Members[0], "ann@example.com")
	waitAll(t, c, before.Session.ID, http.StatusOK, "")

	c.Partition([]int{0, 1}, []int{2, 3, 4})
	c.WaitFor(10*time.Second, "each side to see the other fail", func() bool {
		return len(c.Members[0].Gossip().LiveMembers()) == 2 && len(c.Members[4].Gossip().LiveMembers()) == 3
	})
	// Changes on both sides while apart.
	if code := c.Members[3].Call("POST", "/v1/users/ann@example.com/logout-everywhere", nil, nil); code != http.StatusOK {
		t.Fatalf("logout-everywhere: %d", code)
	}
	minority := login(t, c.Members[1], "bob@example.com")
	majority := login(t, c.Members[2], "bob@example.com")
	if code, _ := checkOn(t, c.Members[0], before.Session.ID); code != http.StatusOK {
		t.Fatalf("the logout crossed the partition: %d", code)
	}

	c.Heal()
	c.WaitMembers(20 * time.Second)
	c.WaitConverged(20 * time.Second)
	waitAll(t, c, before.Session.ID, http.StatusGone, "session_ended")
	waitAll(t, c, minority.Session.ID, http.StatusOK, "")
	waitAll(t, c, majority.Session.ID, http.StatusOK, "")
}

func TestCluster_KilledNodeCatchesUp(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	kept := login(t, c.Members[2], "ann@example.com")
	waitAll(t, c, kept.Session.ID, http.StatusOK, "")

	c.Kill(2)
	c.WaitFor(10*time.Second, "the others to see n2 fail", func() bool { return len(c.Members[0].Gossip().LiveMembers()) == 2 })
	missed := login(t, c.Members[0], "ann@example.com")
	if code := c.Members[1].Call("DELETE", "/v1/sessions/"+kept.Session.ID, nil, nil); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	c.Restart(2)
	c.WaitMembers(10 * time.Second)
	c.WaitConverged(10 * time.Second)
	if code, _ := checkOn(t, c.Members[2], missed.Session.ID); code != http.StatusOK {
		t.Fatalf("restarted node missed a login: %d", code)
	}
	if code, ec := checkOn(t, c.Members[2], kept.Session.ID); code != http.StatusGone || ec != "session_ended" {
		t.Fatalf("restarted node missed a logout: %d %s", code, ec)
	}

	// A user's change alone, missed while down: only anti-entropy over the
	// user records brings it, and convergence is judged by the records.
	c.Kill(2)
	c.WaitFor(10*time.Second, "the others to see n2 fail again", func() bool { return len(c.Members[0].Gossip().LiveMembers()) == 2 })
	if code := c.Members[0].Call("PUT", "/v1/users/ann@example.com", map[string]any{"display_name": "Ann while n2 was down"}, nil); code != http.StatusOK {
		t.Fatalf("rename: %d", code)
	}
	c.Restart(2)
	c.WaitMembers(10 * time.Second)
	c.WaitConverged(10 * time.Second)
	if u, err := c.Members[2].Store().User("ann@example.com"); err != nil || u.DisplayName.V != "Ann while n2 was down" {
		t.Fatalf("restarted node missed a user's change: %+v, %v", u.DisplayName, err)
	}
}

func TestCluster_StatusListsMembers(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	var st struct {
		Node    string
		Members []struct {
			Name, Address, State string
			SiteURL              string `json:"site_url"`
		}
		Keyring []struct{ Fingerprint string }
	}
	if code := c.Members[1].Call("GET", "/v1/status", nil, &st); code != http.StatusOK {
		t.Fatalf("status: %d", code)
	}
	if st.Node != "n1" || len(st.Members) != 3 || len(st.Keyring) != 1 {
		t.Fatalf("status %+v", st)
	}
	for i, m := range st.Members {
		if m.Name != fmt.Sprintf("n%d", i) || m.State != "alive" || m.SiteURL != fmt.Sprintf("http://site-%d.localhost/", i) {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
	_, raw := c.Members[1].CallRaw("GET", "/v1/status", nil)
	if s := string(raw); len(s) == 0 || strings.Contains(s, c.Secret) || strings.Contains(s, c.Token) {
		t.Fatal("status leaks the secret or the token")
	}
}

// TestCluster_SiteBinding is issue 9's first account takeover: site A
// registers bob@…, whose mailbox site B proved, and logs him in with no
// proof of its own. The session stays on A (site_not_bound, with how to
// bind), and Bob's login and display name are unchanged everywhere. A
// binds itself by proving the mailbox; then its logins travel.
func TestCluster_SiteBinding(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	a, b := c.Members[0], c.Members[1]
	const bob = "bob@example.com"
	if code := b.Call("PUT", "/v1/users/"+bob, map[string]any{"login": "bob", "display_name": "Bob", "verified_via": "registration"}, nil); code != http.StatusOK {
		t.Fatalf("register on B: %d", code)
	}
	c.WaitFor(5*time.Second, "bob verified on every node", func() bool {
		for _, m := range c.Members {
			if u, err := m.Store().User(bob); err != nil || !u.Verified.V.OK {
				return false
			}
		}
		return true
	})

	// Someone registers bob@ on site A, which proves nothing.
	var u struct {
		Login       string `json:"login"`
		DisplayName string `json:"display_name"`
		Bound       *bool  `json:"bound"`
	}
	if code := a.Call("PUT", "/v1/users/"+bob, map[string]any{"login": "mallory", "display_name": "Mallory"}, &u); code != http.StatusOK ||
		u.Login != "bob" || u.DisplayName != "Bob" || u.Bound == nil || *u.Bound {
		t.Fatalf("PUT on A: %d %+v", code, u)
	}
	var l struct {
		loginAnswer
		Bind *struct {
			How, Send, Verify string
		} `json:"bind"`
	}
	if code := a.Call("POST", "/v1/sessions", map[string]any{"email": bob, "login": "mallory", "display_name": "Mallory"}, &l); code != http.StatusCreated {
		t.Fatalf("login on A: %d", code)
	}
	if l.Synced || l.Reason != "site_not_bound" || l.Bind == nil || l.Bind.How != "code" || l.Bind.Send != "POST /v1/users/"+bob+"/verification" {
		t.Fatalf("a login on A: %+v bind %+v", l.loginAnswer, l.Bind)
	}
	c.WaitConverged(5 * time.Second)
	for _, m := range c.Members {
		if got, err := m.Store().User(bob); err != nil || got.Login.V != "bob" || got.DisplayName.V != "Bob" {
			t.Errorf("%s: bob is %q %q (%v)", m.Name(), got.Login.V, got.DisplayName.V, err)
		}
		if m != a {
			if code, _ := checkOn(t, m, l.Session.ID); code != http.StatusNotFound {
				t.Errorf("A's session reached %s: %d", m.Name(), code)
			}
		}
	}
	// B, which proved the mailbox, logs Bob in everywhere.
	if l := login(t, b, bob); !l.Synced {
		t.Fatalf("a login on B: %+v", l)
	} else {
		waitAll(t, c, l.Session.ID, http.StatusOK, "")
	}
	// A proves the mailbox itself (its registration confirmed it): its
	// next login travels, and it may write the profile.
	if code := a.Call("PUT", "/v1/users/"+bob, map[string]any{"verified_via": "registration", "display_name": "Bob B."}, &u); code != http.StatusOK || u.Bound == nil || !*u.Bound || u.DisplayName != "Bob B." {
		t.Fatalf("A proves the address: %d %+v", code, u)
	}
	if l := login(t, a, bob); !l.Synced {
		t.Fatalf("a login on A once bound: %+v", l)
	} else {
		waitAll(t, c, l.Session.ID, http.StatusOK, "")
	}
	// An administrator's unverify voids every binding: no login travels
	// until a site proves the address again.
	if code := c.Members[2].Call("PUT", "/v1/users/"+bob, map[string]any{"verified": false}, nil); code != http.StatusOK {
		t.Fatalf("unverify: %d", code)
	}
	c.WaitConverged(5 * time.Second)
	if code := c.Members[2].Call("PUT", "/v1/users/"+bob, map[string]any{"verified_via": "admin"}, nil); code != http.StatusOK {
		t.Fatalf("verify on n2: %d", code)
	}
	c.WaitConverged(5 * time.Second)
	for _, m := range []*nodetest.Member{a, b} {
		if l := login(t, m, bob); l.Synced || l.Reason != "site_not_bound" {
			t.Errorf("a login on %s after the unverify: %+v", m.Name(), l)
		}
	}
}

// TestCluster_Limits: session.max_ttl and cluster.max_clock_offset reach
// the API and the store. A login may not ask for more than max_ttl, and a
// session a member writes to live longer (which only a holder of the
// cluster secret can) is refused by every other node, as is a record
// stamped further ahead than the max offset.
func TestCluster_Limits(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) {
		cfg.Session.TTL = node.Duration(30 * time.Minute)
		cfg.Session.MaxTTL = node.Duration(time.Hour)
		cfg.Cluster.MaxClockOffset = node.Duration(time.Second)
	}
	c.Start(2)
	registerEverywhere(t, c, 0, "ann@example.com")
	n0, n1 := c.Members[0], c.Members[1]
	var a answer
	if code, raw := n0.CallRaw("POST", "/v1/sessions", map[string]any{"email": "ann@example.com", "ttl": "2h"}); code != http.StatusBadRequest || !strings.Contains(string(raw), "session.max_ttl") {
		t.Fatalf("a login for 2h: %d %s", code, raw)
	}
	a = callWant(t, n0, "POST", "/v1/sessions", map[string]any{"email": "ann@example.com", "ttl": "1h"}, http.StatusCreated)
	waitAll(t, c, a.Session.ID, http.StatusOK, "")

	at := n0.Store().Clock().Now()
	for _, bad := range []session.Session{
		{ID: fmt.Sprintf("%064x", 1), Email: "ann@example.com", Site: "n0", Created: at, ExpiresAt: at.Time().Add(3 * time.Hour).UnixMilli()},
		{ID: fmt.Sprintf("%064x", 2), Email: "ann@example.com", Site: "n0", Created: session.MakeHLC(at.WallMs()+60_000, 0), ExpiresAt: at.Time().Add(time.Hour).UnixMilli()},
	} {
		n0.Gossip().Publish([]session.Record{{Session: &bad}})
	}
	c.WaitFor(5*time.Second, "n1 to refuse both", func() bool {
		r := n1.Store().Refused()
		return r[session.RefusedLifetime] >= 1 && r[session.RefusedClockAhead] >= 1
	})
	for i := 1; i <= 2; i++ {
		if code, _ := checkOn(t, n1, fmt.Sprintf("%064x", i)); code != http.StatusNotFound {
			t.Errorf("n1 took a session out of bounds: %d", code)
		}
	}
}
