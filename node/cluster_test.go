package node_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

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
	register(t, c, 0, "ann@example.com")

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
	// Verification travels; the user's next login does too.
	if code := c.Members[1].Call("PUT", "/v1/users/eve@example.com", map[string]any{"verified_via": "admin"}, nil); code != http.StatusOK {
		t.Fatalf("verify: %d", code)
	}
	c.WaitConverged(5 * time.Second)
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
	register(t, c, 0, "ann@example.com")
	register(t, c, 0, "bob@example.com")
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
	register(t, c, 0, "ann@example.com")
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
