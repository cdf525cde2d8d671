package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// publicGet sends GET path?query to m's public listener as a browser of
// origin would (origin "" sends none) and returns the status, the error
// code and the headers.
func publicGet(t *testing.T, m *nodetest.Member, path string, q url.Values, origin string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+m.PublicAddr()+path+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct{ Error struct{ Code string } }
	json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Error.Code, resp.Header
}

// errorCodeOf is the code of an error answer.
func errorCodeOf(raw []byte) string {
	var e struct{ Error struct{ Code string } }
	json.Unmarshal(raw, &e)
	return e.Error.Code
}

// TestSites_Revoke: an administrator revokes site n3 from n0. On every one
// of the five nodes its sessions stop being active (old and new), its
// tickets are refused, its URL is no redirect target, no CORS origin and no
// frame ancestor, and no login hands anything to it; the revoked node
// itself changes nothing (not even its own revocation). Un-revoked from
// another node, its new logins are active everywhere again, and what it
// minted before stays revoked.
func TestSites_Revoke(t *testing.T) {
	c := nodetest.NewCluster(t, 5)
	n0, n1, n3 := c.Members[0], c.Members[1], c.Members[3]
	registerEverywhere(t, c, 0, "ann@example.com")

	before := loginSync(t, n3, "ann@example.com", "")
	other := login(t, n1, "ann@example.com")
	waitAll(t, c, before.Session.ID, http.StatusOK, "")
	waitAll(t, c, other.Session.ID, http.StatusOK, "")
	// A ticket of n3's session for n1, handed to n1's backend before the
	// revocation (the browser completed the first pass).
	ticketForN1, nonceForN1 := handoffTicket(t, c, 3, before, "n1")
	const n3Origin = "http://site-3.localhost"
	// Before: n3's URL is a redirect target and a CORS origin.
	if code, ec, _ := publicGet(t, n0, "/ussync/v1/sync", url.Values{"t": {"x"}, "next": {n3Origin + "/page"}}, ""); ec == client.CodeBadRedirect {
		t.Fatalf("before the revocation, n3's URL is refused as next: %d %s", code, ec)
	}

	t.Run("unknown names are refused unless forced", func(t *testing.T) {
		var e struct {
			Error struct{ Code, Message string }
		}
		if code := n0.Call("POST", "/v1/sites/n9/revoke", nil, &e); code != http.StatusNotFound || !strings.Contains(e.Error.Message, "n3") {
			t.Fatalf("revoke an unknown site: %d %+v, want 404 naming the known sites", code, e)
		}
		if code := n0.Call("POST", "/v1/sites/bad%20name/revoke", nil, nil); code != http.StatusBadRequest {
			t.Fatalf("revoke a bad name: %d, want 400", code)
		}
	})

	var revoked client.SiteInfo
	if code := n0.Call("POST", "/v1/sites/n3/revoke", nil, &revoked); code != http.StatusOK || !revoked.Revoked || revoked.By != "n0" {
		t.Fatalf("revoke n3: %d %+v", code, revoked)
	}

	t.Run("its sessions end on every node", func(t *testing.T) {
		// (The revoked node itself answers no check: see below.)
		eventually.Done(t, 5*time.Second, "n3's session revoked on every other node", func() string {
			for _, m := range c.Members {
				if m == n3 {
					continue
				}
				if code, ec := checkOn(t, m, before.Session.ID); code != http.StatusGone || ec != client.CodeSessionRevoked {
					return fmt.Sprintf("%s answers %d %s", m.Name(), code, ec)
				}
			}
			return ""
		})
		var a checkAnswer
		n2 := c.Members[2]
		n2.Call("GET", "/v1/sessions/"+before.Session.ID, nil, &a)
		if a.Session.EndReason != session.EndSiteRevoked || a.Session.EndedAt == nil {
			t.Errorf("a session of a revoked site: end %q at %v, want %q", a.Session.EndReason, a.Session.EndedAt, session.EndSiteRevoked)
		}
		// Another site's session of the same user is untouched.
		for _, m := range c.Members {
			if code, ec := checkOn(t, m, other.Session.ID); m != n3 && code != http.StatusOK {
				t.Errorf("n1's session on %s: %d %s, want 200", m.Name(), code, ec)
			}
		}
	})

	t.Run("every node lists it revoked", func(t *testing.T) {
		c.WaitFor(10*time.Second, "n3 revoked in every node's site list", func() bool {
			for _, m := range c.Members {
				var l client.SiteList
				if m.Call("GET", "/v1/sites", nil, &l) != http.StatusOK {
					return false
				}
				found := false
				for _, s := range l.Sites {
					found = found || (s.Name == "n3" && s.Revoked && s.By == "n0" && s.Since != nil)
				}
				if !found || len(l.Sites) != 5 {
					return false
				}
			}
			return true
		})
	})

	t.Run("its tickets are refused", func(t *testing.T) {
		code, raw := n1.CallRaw("POST", "/v1/tickets/redeem", map[string]string{"ticket": ticketForN1, "nonce": nonceForN1})
		if code != http.StatusForbidden || errorCodeOf(raw) != client.CodeSiteRevoked {
			t.Fatalf("redeem a ticket of n3's session on n1: %d %s, want 403 %s", code, raw, client.CodeSiteRevoked)
		}
	})

	t.Run("its URL is no redirect target, CORS origin or frame ancestor", func(t *testing.T) {
		for _, m := range c.Members {
			if m == n3 {
				continue
			}
			eventually.Done(t, 10*time.Second, "n3's URL refused by "+m.Name(), func() string {
				if _, ec, _ := publicGet(t, m, "/ussync/v1/sync", url.Values{"t": {"x"}, "next": {n3Origin + "/page"}}, ""); ec != client.CodeBadRedirect {
					return "next=n3's URL answered " + ec
				}
				code, _, h := publicGet(t, m, "/ussync/v1/whoami", nil, n3Origin)
				if h.Get("Access-Control-Allow-Origin") != "" {
					return "whoami from n3's origin answered CORS " + h.Get("Access-Control-Allow-Origin") + " " + http.StatusText(code)
				}
				if strings.Contains(h.Get("Content-Security-Policy"), "site-3.localhost") {
					return "n3 is still a frame ancestor: " + h.Get("Content-Security-Policy")
				}
				return ""
			})
		}
		// A login elsewhere hands nothing to n3.
		a := loginSync(t, n0, "ann@example.com", "")
		for _, u := range a.Sync.URLs {
			if u.Site == "n3" {
				t.Errorf("a login on n0 has a sync URL for the revoked n3")
			}
		}
		if strings.Contains(a.Sync.Chain, "site-3") {
			t.Errorf("a login on n0 chains through the revoked n3: %s", a.Sync.Chain)
		}
	})

	t.Run("the revoked node changes nothing and tells nothing", func(t *testing.T) {
		c.WaitFor(10*time.Second, "n3 hearing of its revocation", func() bool { return n3.Store().Site("n3").IsRevoked() })
		for _, call := range []struct{ method, path string }{
			{"POST", "/v1/sites/n3/unrevoke"},
			{"POST", "/v1/sites/n0/revoke"},
			{"POST", "/v1/users/ann@example.com/logout-everywhere"},
			{"DELETE", "/v1/sessions/" + other.Session.ID},
			{"GET", "/v1/users"},
			{"GET", "/v1/sessions?state=all"},
			{"GET", "/v1/sessions/" + other.Session.ID},
		} {
			code, raw := n3.CallRaw(call.method, call.path, nil)
			if code != http.StatusForbidden || errorCodeOf(raw) != client.CodeSiteRevoked {
				t.Errorf("%s %s on the revoked n3: %d %s, want 403 %s", call.method, call.path, code, raw, client.CodeSiteRevoked)
			}
		}
		code, raw := n3.CallRaw("POST", "/v1/sessions", map[string]any{"email": "ann@example.com"})
		if code != http.StatusForbidden || errorCodeOf(raw) != client.CodeSiteRevoked {
			t.Errorf("a login on the revoked n3: %d %s, want 403 %s", code, raw, client.CodeSiteRevoked)
		}
		if code, _ := checkOn(t, n0, other.Session.ID); code != http.StatusOK {
			t.Errorf("the session n3 tried to end: %d, want 200", code)
		}
		// What it still answers says it is revoked.
		var st client.Status
		if code := n3.Call("GET", "/v1/status", nil, &st); code != http.StatusOK || len(st.Warnings) == 0 || !strings.Contains(strings.Join(st.Warnings, " "), "this node's site is revoked") {
			t.Errorf("the revoked n3's status: %d %q", code, st.Warnings)
		}
		var l client.SiteList
		if code := n3.Call("GET", "/v1/sites", nil, &l); code != http.StatusOK || len(l.Sites) == 0 {
			t.Errorf("the revoked n3's sites: %d", code)
		}
	})

	t.Run("un-revoked from another node, its new logins are active again", func(t *testing.T) {
		var un client.SiteInfo
		if code := n1.Call("POST", "/v1/sites/n3/unrevoke", nil, &un); code != http.StatusOK || un.Revoked || un.By != "n1" {
			t.Fatalf("unrevoke n3 on n1: %d %+v", code, un)
		}
		c.WaitFor(10*time.Second, "n3 hearing it is un-revoked", func() bool { return !n3.Store().Site("n3").IsRevoked() })
		after := login(t, n3, "ann@example.com")
		waitAll(t, c, after.Session.ID, http.StatusOK, "")
		for _, m := range c.Members {
			if code, ec := checkOn(t, m, before.Session.ID); code != http.StatusGone || ec != client.CodeSessionRevoked {
				t.Errorf("n3's session from before the revocation, on %s: %d %s, want 410 %s", m.Name(), code, ec, client.CodeSessionRevoked)
			}
		}
	})
}

// TestUsers_ResetPoisoned: a user record stamped at the end of time
// (revoked_before 2^64-1, as an earlier version merged it) sits on one
// node's disk. On that node, its user is logged out for good and the
// answers that show it fail (a logged 500, not an empty 200: the time does
// not encode); the other nodes refuse it (counted,
// so the cluster never converges). An administrator resets the user from
// another node: the reset's new generation replaces the damaged record
// everywhere, the cluster converges, and the user logs in again.
func TestUsers_ResetPoisoned(t *testing.T) {
	c := nodetest.NewCluster(t, 5)
	n0, n2 := c.Members[0], c.Members[2]
	registerEverywhere(t, c, 0, "bob@example.com")
	c.WaitConverged(10 * time.Second)

	// n2 stops; its store gets the damaged record, written as a store
	// whose wall clock reads the year 10889 would accept it.
	c.Kill(2)
	end := time.UnixMilli(int64(session.MaxHLC.WallMs()))
	st, err := session.Open(session.Options{Dir: n2.Dir, Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.User("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	u.RevokedBefore = session.MaxHLC
	u.Login = session.Set("mallory", session.MaxHLC-1, "n2")
	if _, err := st.Apply(session.Record{User: &u}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	c.Restart(2)
	c.WaitMembers(10 * time.Second)

	t.Run("the damaged node fails loudly", func(t *testing.T) {
		code, raw := n2.CallRaw("GET", "/v1/users/bob@example.com", nil)
		if code != http.StatusInternalServerError || errorCodeOf(raw) != client.CodeInternal {
			t.Fatalf("GET the damaged user on n2: %d %q, want 500 %s", code, raw, client.CodeInternal)
		}
		// A login's answer shows the session, ended at the end of time.
		code, raw = n2.CallRaw("POST", "/v1/sessions", map[string]any{"email": "bob@example.com"})
		if code != http.StatusInternalServerError || errorCodeOf(raw) != client.CodeInternal {
			t.Fatalf("a login on n2 under the damaged record: %d %q, want 500 %s", code, raw, client.CodeInternal)
		}
	})

	t.Run("the others refuse it and count it", func(t *testing.T) {
		c.WaitFor(20*time.Second, "a clock_ahead refusal on another node", func() bool {
			for _, m := range c.Members {
				if m != n2 && metricValue(t, scrapeText(t, m), `ussync_records_refused_total{reason="clock_ahead"}`) > 0 {
					return true
				}
			}
			return false
		})
		for _, m := range c.Members {
			if m == n2 {
				continue
			}
			if u, err := m.Store().User("bob@example.com"); err != nil || u.RevokedBefore == session.MaxHLC || u.Login.V == "mallory" {
				t.Errorf("%s took the damaged record: %+v %v", m.Name(), u, err)
			}
		}
		if c.Converged() {
			t.Error("the cluster converged with the damaged record on n2")
		}
	})

	t.Run("a reset from another node repairs it everywhere", func(t *testing.T) {
		var r client.Reset
		if code := n0.Call("POST", "/v1/users/bob@example.com/reset", nil, &r); code != http.StatusOK || r.User.Verified || r.User.Email != "bob@example.com" {
			t.Fatalf("reset bob on n0: %d %+v", code, r)
		}
		c.WaitConverged(20 * time.Second)
		var got client.UserInfo
		if code := n2.Call("GET", "/v1/users/bob@example.com", nil, &got); code != http.StatusOK || got.Login != "u" {
			t.Fatalf("bob on n2 after the reset: %d %+v", code, got)
		}
		// Verified again by n2's administrator (which binds n2), bob logs in on n2 and the
		// login is active everywhere.
		if code := n2.Call("PUT", "/v1/users/bob@example.com", map[string]any{"verified_via": "admin"}, nil); code != http.StatusOK {
			t.Fatalf("verify bob: %d", code)
		}
		c.WaitFor(10*time.Second, "bob verified on n2", func() bool {
			u, err := n2.Store().User("bob@example.com")
			return err == nil && u.Verified.V.OK
		})
		a := login(t, n2, "bob@example.com")
		waitAll(t, c, a.Session.ID, http.StatusOK, "")
	})

	t.Run("an unknown user is 404", func(t *testing.T) {
		if code := n0.Call("POST", "/v1/users/nobody@example.com/reset", nil, nil); code != http.StatusNotFound {
			t.Fatalf("reset an unknown user: %d, want 404", code)
		}
	})
}

// TestSites_UnrevokeSelf: a compromised site's token revokes every other
// site before an administrator reacts; the revoked nodes change nothing,
// not even each other's revocation. An administrator with a shell on one of
// them restarts it with --unrevoke-self (the API token cannot reach that),
// and from it revokes the compromised site and takes the others back.
func TestSites_UnrevokeSelf(t *testing.T) {
	c := nodetest.New(t)
	unrevoke := false
	c.Configure = func(i int, cfg *node.Config) { cfg.UnrevokeSelf = unrevoke && i == 1 }
	c.Start(3)
	n0, n1 := c.Members[0], c.Members[1]
	for _, name := range []string{"n1", "n2"} {
		if code := n0.Call("POST", "/v1/sites/"+name+"/revoke", nil, nil); code != http.StatusOK {
			t.Fatalf("revoke %s from n0: %d", name, code)
		}
	}
	c.WaitFor(10*time.Second, "n1 and n2 revoked on every node", func() bool {
		for _, m := range c.Members {
			if !m.Store().Site("n1").IsRevoked() || !m.Store().Site("n2").IsRevoked() {
				return false
			}
		}
		return true
	})
	if code, raw := n1.CallRaw("POST", "/v1/sites/n2/unrevoke", nil); code != http.StatusForbidden {
		t.Fatalf("the revoked n1 un-revokes n2: %d %s", code, raw)
	}

	c.Kill(1)
	unrevoke = true
	c.Restart(1)
	unrevoke = false
	if n1.Store().Site("n1").IsRevoked() {
		t.Fatal("n1 restarted with --unrevoke-self is still revoked")
	}
	for _, call := range []string{"/v1/sites/n0/revoke", "/v1/sites/n2/unrevoke"} {
		if code, raw := n1.CallRaw("POST", call, nil); code != http.StatusOK {
			t.Fatalf("POST %s on n1: %d %s", call, code, raw)
		}
	}
	c.WaitFor(20*time.Second, "n0 revoked, n1 and n2 trusted, on every node", func() bool {
		for _, m := range c.Members {
			s := m.Store()
			if !s.Site("n0").IsRevoked() || s.Site("n1").IsRevoked() || s.Site("n2").IsRevoked() {
				return false
			}
		}
		return true
	})
}
