package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// answer is what the user and session calls answer, as a client reads it.
type answer struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Session  *client.SessionInfo  `json:"session"`
	Sessions []client.SessionInfo `json:"sessions"`
	User     *client.UserInfo     `json:"user"`
	Users    []client.UserInfo    `json:"users"`
	Next     *string              `json:"next"`
	NewUser  *bool                `json:"new_user"`
	Token    string               `json:"token"`
	Ended    int                  `json:"ended"`
	// A bare user (GET/PUT /v1/users/{email}).
	Email   string `json:"email"`
	MovedTo string `json:"moved_to"`
}

// callWant sends a call to m and checks its status; it returns the answer.
func callWant(t *testing.T, m *nodetest.Member, method, path string, body any, want int) answer {
	t.Helper()
	code, raw := m.CallRaw(method, path, body)
	var a answer
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &a); err != nil {
			t.Fatalf("%s %s on %s: decode %q: %v", method, path, m.Name(), raw, err)
		}
	}
	if code != want {
		t.Fatalf("%s %s on %s: %d %s, want %d", method, path, m.Name(), code, raw, want)
	}
	return a
}

// wantCode checks an error answer's status and code.
func wantCode(t *testing.T, m *nodetest.Member, method, path string, body any, status int, code string) answer {
	t.Helper()
	a := callWant(t, m, method, path, body, status)
	if a.Error.Code != code || a.Error.Message == "" {
		t.Fatalf("%s %s on %s: error %q (%q), want %q", method, path, m.Name(), a.Error.Code, a.Error.Message, code)
	}
	return a
}

func TestUsers_Rename(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	callWant(t, c.Members[0], "PUT", "/v1/users/ann@example.com", map[string]any{"login": "ann", "display_name": "Ann"}, http.StatusOK)
	c.WaitConverged(5 * time.Second)
	var ids []string
	for i := range c.Members {
		ids = append(ids, login(t, c.Members[i], "ann@example.com").Session.ID)
	}
	for _, id := range ids {
		waitAll(t, c, id, http.StatusOK, "")
	}

	t.Run("refusals", func(t *testing.T) {
		m := c.Members[1]
		wantCode(t, m, "POST", "/v1/users/nobody@example.com/rename", map[string]string{"new_email": "x@example.com"}, http.StatusNotFound, "not_found")
		wantCode(t, m, "POST", "/v1/users/ann@example.com/rename", map[string]string{"new_email": "ANN@example.com"}, http.StatusBadRequest, "invalid_field")
		wantCode(t, m, "POST", "/v1/users/ann@example.com/rename", map[string]string{"new_email": "not an address"}, http.StatusBadRequest, "invalid_email")
		wantCode(t, m, "POST", "/v1/users/ann@example.com/rename", map[string]string{}, http.StatusBadRequest, "invalid_field")
		wantCode(t, m, "POST", "/v1/users/ann@example.com/rename", map[string]string{"new_email": "a@b.c", "email": "x"}, http.StatusBadRequest, "unknown_field")
		// PUT never changes an address.
		wantCode(t, m, "PUT", "/v1/users/ann@example.com", map[string]string{"email": "ann.new@example.com"}, http.StatusConflict, "email_immutable")
		callWant(t, m, "PUT", "/v1/users/ann@example.com", map[string]string{"email": " ANN@example.com"}, http.StatusOK)
	})

	var r answer
	t.Run("rename", func(t *testing.T) {
		r = callWant(t, c.Members[1], "POST", "/v1/users/ann@example.com/rename", map[string]string{"new_email": "Ann.New@Example.com"}, http.StatusOK)
		if r.User == nil || r.User.Email != "ann.new@example.com" || r.User.Login != "ann" || r.User.DisplayName != "Ann" ||
			!r.User.Verified || r.User.VerifiedVia != "registration" || r.User.CreatedAt == nil || r.User.MovedTo != "" || r.Ended != 3 {
			t.Fatalf("answer %+v user %+v", r, r.User)
		}
	})

	t.Run("the old address is logged out everywhere", func(t *testing.T) {
		for _, id := range ids {
			waitAll(t, c, id, http.StatusGone, "session_ended")
		}
		for _, m := range c.Members {
			for _, id := range ids {
				a := callWant(t, m, "GET", "/v1/sessions/"+id, nil, http.StatusGone)
				if a.Session == nil || a.Session.EndReason != "admin" {
					t.Errorf("%s: session %+v", m.Name(), a.Session)
				}
			}
		}
	})

	t.Run("every node has the user at the new address and the move", func(t *testing.T) {
		c.WaitFor(5*time.Second, "the move on every node", func() bool {
			for _, m := range c.Members {
				if u, err := m.Store().User("ann@example.com"); err != nil || u.MovedTo.V != "ann.new@example.com" {
					return false
				}
				if u, err := m.Store().User("ann.new@example.com"); err != nil || !u.Verified.V.OK {
					return false
				}
			}
			return true
		})
		for _, m := range c.Members {
			u := callWant(t, m, "GET", "/v1/users/ann.new@example.com", nil, http.StatusOK)
			if u.Email != "ann.new@example.com" {
				t.Errorf("%s: %+v", m.Name(), u)
			}
			if old := callWant(t, m, "GET", "/v1/users/ann@example.com", nil, http.StatusOK); old.MovedTo != "ann.new@example.com" {
				t.Errorf("%s: old user %+v", m.Name(), old)
			}
			// Writes at the old address are refused, naming the new one.
			a := wantCode(t, m, "PUT", "/v1/users/ann@example.com", map[string]string{"display_name": "Ann again"}, http.StatusConflict, "user_moved")
			if !strings.Contains(a.Error.Message, "ann.new@example.com") {
				t.Errorf("%s: message %q", m.Name(), a.Error.Message)
			}
			wantCode(t, m, "POST", "/v1/sessions", map[string]string{"email": "ann@example.com"}, http.StatusConflict, "user_moved")
			wantCode(t, m, "POST", "/v1/users/ann@example.com/rename", map[string]string{"new_email": "z@example.com"}, http.StatusConflict, "user_moved")
		}
	})

	t.Run("the new address logs in and syncs", func(t *testing.T) {
		// The administrator vouched for the new address through n1: n1 is
		// bound to it; the sites bound to the old address are not (they
		// proved another mailbox), until a hand-off or a proof binds them.
		l := loginSync(t, c.Members[1], "ann.new@example.com", "")
		if !l.Synced {
			t.Fatalf("login %+v", l)
		}
		waitAll(t, c, l.Session.ID, http.StatusOK, "")
		var a loginAnswer
		if c.Members[2].Call("POST", "/v1/sessions", map[string]string{"email": "ann.new@example.com"}, &a); a.Synced || a.Reason != "site_not_bound" {
			t.Fatalf("a login on n2: %+v", a)
		}
		for _, m := range c.Members {
			if u, err := m.Store().User("ann@example.com"); err != nil || u.BoundTo("n0") || u.BoundTo("n2") {
				t.Errorf("%s: the old address is still bound (%v)", m.Name(), err)
			}
		}
	})

	t.Run("onto an existing user, and back", func(t *testing.T) {
		callWant(t, c.Members[0], "PUT", "/v1/users/bob@example.com", map[string]any{"login": "bob", "display_name": "Bob"}, http.StatusOK)
		callWant(t, c.Members[0], "PUT", "/v1/users/robert@example.com", map[string]any{"login": "robert"}, http.StatusOK)
		c.WaitConverged(5 * time.Second)
		r := callWant(t, c.Members[2], "POST", "/v1/users/bob@example.com/rename", map[string]string{"new_email": "robert@example.com"}, http.StatusOK)
		if r.User.Login != "bob" || r.User.DisplayName != "Bob" || r.User.Verified || r.Ended != 0 {
			t.Fatalf("merged user %+v", r.User)
		}
		c.WaitConverged(5 * time.Second)
		// Moving back clears the old address's move.
		r = callWant(t, c.Members[0], "POST", "/v1/users/robert@example.com/rename", map[string]string{"new_email": "bob@example.com"}, http.StatusOK)
		if r.User.Email != "bob@example.com" || r.User.MovedTo != "" {
			t.Fatalf("moved back %+v", r.User)
		}
		c.WaitConverged(5 * time.Second)
		for _, m := range c.Members {
			callWant(t, m, "PUT", "/v1/users/bob@example.com", map[string]string{"display_name": "Bob B."}, http.StatusOK)
			wantCode(t, m, "PUT", "/v1/users/robert@example.com", map[string]string{}, http.StatusConflict, "user_moved")
		}
	})
}

func TestUsers_Unverify(t *testing.T) {
	c := nodetest.NewCluster(t, 2)
	register(t, c, 0, "ann@example.com")
	wantCode(t, c.Members[0], "PUT", "/v1/users/ann@example.com", map[string]any{"verified": true}, http.StatusBadRequest, "invalid_field")
	wantCode(t, c.Members[0], "PUT", "/v1/users/ann@example.com", map[string]any{"verified": false, "verified_via": "admin"}, http.StatusBadRequest, "invalid_field")
	var u client.UserInfo
	if code := c.Members[0].Call("PUT", "/v1/users/ann@example.com", map[string]any{"verified": false}, &u); code != http.StatusOK || u.Verified || u.VerifiedVia != "" {
		t.Fatalf("unverify: %d %+v", code, u)
	}
	c.WaitFor(5*time.Second, "the unverification on every node", func() bool {
		u, err := c.Members[1].Store().User("ann@example.com")
		return err == nil && !u.Verified.V.OK
	})
	if l := login(t, c.Members[1], "ann@example.com"); l.Synced || l.Reason != "email_not_verified" {
		t.Fatalf("a login after unverify travels: %+v", l)
	}
	if code := c.Members[1].Call("PUT", "/v1/users/ann@example.com", map[string]any{"verified_via": "admin", "verified": true}, &u); code != http.StatusOK || !u.Verified || u.VerifiedVia != "admin" {
		t.Fatalf("verify again: %d %+v", code, u)
	}
}

// TestUsers_UnknownUser runs both policies of site.on_unknown_user: n1
// creates unknown users, n2 rejects them; n0 is where they log in. What a
// site knows travels in the user's record: it survives a wiped data dir.
func TestUsers_UnknownUser(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		if i == 2 {
			cfg.Site.OnUnknownUser = node.UnknownUserReject
		}
	}
	c.Start(3)
	register(t, c, 0, "ann@example.com")
	// redeem has member m redeem the ticket its browser brought (POST
	// /v1/tickets/redeem, as a site that keeps its own cookies does).
	redeem := func(m *nodetest.Member, tk, nonce string, want int) answer {
		t.Helper()
		return callWant(t, m, "POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "ip": "192.0.2.1", "nonce": nonce}, want)
	}
	handoff := func(m *nodetest.Member) answer {
		t.Helper()
		l := loginSync(t, c.Members[0], "ann@example.com", "")
		tk, nonce := handoffTicket(t, c, 0, l, m.Name())
		return redeem(m, tk, nonce, http.StatusOK)
	}
	newUser := func(a answer) bool { return a.NewUser != nil && *a.NewUser }

	t.Run("create", func(t *testing.T) {
		n1 := c.Members[1]
		a := handoff(n1)
		if !newUser(a) || a.Token == "" || a.User == nil || a.User.Email != "ann@example.com" {
			t.Fatalf("redeem answer %+v", a)
		}
		id := a.Session.ID
		// The site's session check says so too (by its own token, or the
		// session's id), until its backend PUTs the user; other sites
		// never say it.
		if a := callWant(t, n1, "GET", "/v1/sessions/"+client.SessionID(a.Token), nil, http.StatusOK); !newUser(a) || a.Session.ID != id {
			t.Fatalf("check on n1: %+v", a)
		}
		if a := callWant(t, c.Members[0], "GET", "/v1/sessions/"+id, nil, http.StatusOK); a.NewUser != nil {
			t.Fatalf("check on n0: %+v", a)
		}
		// A second session before the backend acknowledged: still new.
		a2 := handoff(n1)
		if !newUser(a2) {
			t.Fatalf("second redeem %+v", a2)
		}
		// It survives a restart.
		c.Kill(1)
		c.Restart(1)
		// The logins below hand the session to n1 only once n0 lists it
		// alive again (it came back on a new gossip port).
		c.WaitMembers(10 * time.Second)
		n1 = c.Members[1]
		if a := callWant(t, n1, "GET", "/v1/sessions/"+client.SessionID(a2.Token), nil, http.StatusOK); !newUser(a) {
			t.Fatalf("check after a restart: %+v", a)
		}
		// An administrator's verify does not acknowledge: the site's
		// backend has not added the user.
		callWant(t, n1, "PUT", "/v1/users/ann@example.com", map[string]string{"verified_via": "admin"}, http.StatusOK)
		if a := callWant(t, n1, "GET", "/v1/sessions/"+id, nil, http.StatusOK); !newUser(a) {
			t.Fatalf("check after an admin verify: %+v", a)
		}
		callWant(t, n1, "PUT", "/v1/users/ann@example.com", map[string]string{"login": "ann", "display_name": "Ann"}, http.StatusOK)
		for _, id := range []string{id, a2.Session.ID} {
			if a := callWant(t, n1, "GET", "/v1/sessions/"+id, nil, http.StatusOK); a.NewUser != nil {
				t.Fatalf("check after the PUT: %+v", a)
			}
		}
		if a := handoff(n1); newUser(a) {
			t.Fatalf("redeem of a known user %+v", a)
		}
	})

	t.Run("reject", func(t *testing.T) {
		n2 := c.Members[2]
		l := loginSync(t, c.Members[0], "ann@example.com", "")
		tk, nonce := handoffTicket(t, c, 0, l, "n2")
		wantCode(t, n2, "POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "ip": "192.0.2.1", "nonce": nonce}, http.StatusForbidden, "unknown_user")
		// The browser's own visit: refused, no cookie.
		req, _ := http.NewRequest("GET", "http://"+n2.PublicAddr()+"/ussync/v1/sync?t="+url.QueryEscape(tk), nil)
		req.Header.Set("Cookie", "ussync_nonce="+nonce)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"unknown_user"`) || len(resp.Cookies()) != 0 {
			t.Fatalf("sync: %d %s cookies %v", resp.StatusCode, body, resp.Cookies())
		}
		// Once the site has the user, the same ticket opens: it was not
		// used up.
		callWant(t, n2, "PUT", "/v1/users/ann@example.com", map[string]string{"login": "ann"}, http.StatusOK)
		if a := redeem(n2, tk, nonce, http.StatusOK); newUser(a) || a.Session.ID != l.Session.ID {
			t.Fatalf("redeem after the PUT: %+v", a)
		}
	})

	t.Run("reject knows who logged in there", func(t *testing.T) {
		n2 := c.Members[2]
		registerEverywhere(t, c, 0, "bob@example.com")
		login(t, n2, "bob@example.com")
		l := loginSync(t, c.Members[0], "bob@example.com", "")
		tk, nonce := handoffTicket(t, c, 0, l, "n2")
		if a := redeem(n2, tk, nonce, http.StatusOK); newUser(a) {
			t.Fatalf("redeem %+v", a)
		}
	})

	t.Run("a wiped data dir forgets nothing a site knows", func(t *testing.T) {
		// n2 knows ann and bob (its backend PUT ann, bob logged in there).
		// Its disk is lost; it starts again on an empty data dir and gets
		// the users back from its peers, with what n2 knows of them.
		c.Kill(2)
		if err := os.RemoveAll(c.Members[2].Dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(c.Members[2].Dir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.Restart(2)
		c.WaitMembers(10 * time.Second)
		c.WaitConverged(20 * time.Second)
		n2 := c.Members[2]
		for _, email := range []string{"ann@example.com", "bob@example.com"} {
			l := loginSync(t, c.Members[0], email, "")
			tk, nonce := handoffTicket(t, c, 0, l, "n2")
			if a := redeem(n2, tk, nonce, http.StatusOK); newUser(a) {
				t.Fatalf("%s after the wipe: %+v", email, a)
			}
		}
		// A user n2 never knew is still refused.
		registerEverywhere(t, c, 0, "cy@example.com")
		l := loginSync(t, c.Members[0], "cy@example.com", "")
		tk, nonce := handoffTicket(t, c, 0, l, "n2")
		wantCode(t, n2, "POST", "/v1/tickets/redeem", map[string]string{"ticket": tk, "ip": "192.0.2.1", "nonce": nonce}, http.StatusForbidden, "unknown_user")
	})
}

// listAll pages through GET path (a query without after) on m.
func listAll(t *testing.T, m *nodetest.Member, path string) []client.SessionInfo {
	t.Helper()
	var out []client.SessionInfo
	after := ""
	for range 1000 {
		p := path
		if after != "" {
			p += "&after=" + url.QueryEscape(after)
		}
		a := callWant(t, m, "GET", p, nil, http.StatusOK)
		if a.Sessions == nil || a.Next == nil {
			t.Fatalf("GET %s: no sessions array or next", p)
		}
		out = append(out, a.Sessions...)
		if *a.Next == "" {
			return out
		}
		after = *a.Next
	}
	t.Fatal("paging does not end")
	return nil
}

type historyRow struct{ ID, Email, Site, Reason string }

func history(ss []client.SessionInfo) []historyRow {
	var out []historyRow
	for _, s := range ss {
		out = append(out, historyRow{s.ID[:8], s.Email, s.Site, s.EndReason})
	}
	return out
}

// TestUsers_History: every node of a 3-node cluster lists the same
// sessions, with the same ends, whichever node ended them.
func TestUsers_History(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	registerEverywhere(t, c, 1, "bob@example.com")
	m0, m1, m2 := c.Members[0], c.Members[1], c.Members[2]
	loggedOut := login(t, m0, "ann@example.com").Session.ID
	revoked := login(t, m1, "ann@example.com").Session.ID
	alive := login(t, m2, "bob@example.com").Session.ID
	everywhere := login(t, m2, "ann@example.com").Session.ID
	for _, id := range []string{loggedOut, revoked, alive, everywhere} {
		waitAll(t, c, id, http.StatusOK, "")
	}
	callWant(t, m1, "DELETE", "/v1/sessions/"+loggedOut, nil, http.StatusOK)
	if a := callWant(t, m2, "POST", "/v1/sessions/"+revoked+"/revoke", nil, http.StatusOK); a.Session.EndReason != "admin" {
		t.Fatalf("revoke answer %+v", a.Session)
	}
	// Revoking again keeps the first end.
	if a := callWant(t, m0, "POST", "/v1/sessions/"+revoked+"/revoke", nil, http.StatusOK); a.Session.EndReason != "admin" || a.Session.Active {
		t.Fatalf("second revoke %+v", a.Session)
	}
	waitAll(t, c, revoked, http.StatusGone, "session_ended")
	waitAll(t, c, loggedOut, http.StatusGone, "session_ended")
	if a := callWant(t, m0, "POST", "/v1/users/ann@example.com/logout-everywhere", nil, http.StatusOK); a.Ended != 1 {
		t.Fatalf("logout-everywhere ended %d", a.Ended)
	}
	waitAll(t, c, everywhere, http.StatusGone, "session_ended")
	c.WaitConverged(5 * time.Second)

	want := []historyRow{ // newest first
		{everywhere[:8], "ann@example.com", "n2", "logout_everywhere"},
		{alive[:8], "bob@example.com", "n2", ""},
		{revoked[:8], "ann@example.com", "n1", "admin"},
		{loggedOut[:8], "ann@example.com", "n0", "logout"},
	}
	for _, m := range c.Members {
		t.Run(m.Name(), func(t *testing.T) {
			if got := history(listAll(t, m, "/v1/sessions?state=all&limit=3")); !reflect.DeepEqual(got, want) {
				t.Errorf("all sessions\n got %v\nwant %v", got, want)
			}
			if got := history(listAll(t, m, "/v1/sessions?state=all&order=oldest&limit=1")); !reflect.DeepEqual(got, reversed(want)) {
				t.Errorf("oldest first %v", got)
			}
			if got := history(listAll(t, m, "/v1/sessions?state=active")); !reflect.DeepEqual(got, want[1:2]) {
				t.Errorf("active %v", got)
			}
			if got := history(listAll(t, m, "/v1/sessions?state=all&email=ANN@example.com")); !reflect.DeepEqual(got, []historyRow{want[0], want[2], want[3]}) {
				t.Errorf("ann's %v", got)
			}
			if got := history(listAll(t, m, "/v1/sessions?state=all&site=n2")); !reflect.DeepEqual(got, want[:2]) {
				t.Errorf("at n2 %v", got)
			}
			a := callWant(t, m, "GET", "/v1/users/ann@example.com/sessions?state=all", nil, http.StatusOK)
			if got := history(a.Sessions); !reflect.DeepEqual(got, []historyRow{want[0], want[2], want[3]}) {
				t.Errorf("user history %v", got)
			}
			for _, s := range a.Sessions {
				if s.IP != "192.0.2.1" || s.UserAgent != "test" || s.CreatedAt.IsZero() || s.EndedAt == nil || s.EndedAt.Before(s.CreatedAt) {
					t.Errorf("history row %+v", s)
				}
			}
		})
	}
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, x := range s {
		out[len(s)-1-i] = x
	}
	return out
}

func TestUsers_ListCalls(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	m := c.Members[0]
	for i := range 7 {
		callWant(t, m, "PUT", fmt.Sprintf("/v1/users/u%d@example.com", (i*3)%7), map[string]string{"login": fmt.Sprint(i)}, http.StatusOK)
	}
	login(t, m, "u1@example.com")

	t.Run("users, paged", func(t *testing.T) {
		var got []string
		after := ""
		for range 10 {
			a := callWant(t, m, "GET", "/v1/users?limit=3&after="+url.QueryEscape(after), nil, http.StatusOK)
			for _, u := range a.Users {
				got = append(got, u.Email)
			}
			if *a.Next == "" {
				break
			}
			after = *a.Next
		}
		want := []string{"u0@example.com", "u1@example.com", "u2@example.com", "u3@example.com", "u4@example.com", "u5@example.com", "u6@example.com"}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("users %v", got)
		}
	})
	t.Run("empty lists are arrays", func(t *testing.T) {
		for _, p := range []string{"/v1/sessions?email=nobody@example.com", "/v1/users?after=zzz"} {
			code, raw := m.CallRaw("GET", p, nil)
			if code != http.StatusOK || (!strings.Contains(string(raw), `"sessions":[]`) && !strings.Contains(string(raw), `"users":[]`)) ||
				!strings.Contains(string(raw), `"next":""`) {
				t.Errorf("GET %s: %d %s", p, code, raw)
			}
		}
	})
	t.Run("bad queries", func(t *testing.T) {
		for _, p := range []string{
			"/v1/sessions?limit=0", "/v1/sessions?limit=501", "/v1/sessions?limit=x", "/v1/sessions?state=ended",
			"/v1/sessions?order=up", "/v1/sessions?after=!!", "/v1/sessions?emali=a@b.c", "/v1/sessions?site=a&site=b",
			"/v1/users?limit=0", "/v1/users?from=a",
		} {
			wantCode(t, m, "GET", p, nil, http.StatusBadRequest, "invalid_field")
		}
		wantCode(t, m, "GET", "/v1/sessions?email=nope", nil, http.StatusBadRequest, "invalid_email")
		wantCode(t, m, "POST", "/v1/sessions/"+strings.Repeat("0", 64)+"/revoke", nil, http.StatusNotFound, "not_found")
		wantCode(t, m, "POST", "/v1/sessions/xyz/revoke", nil, http.StatusBadRequest, "invalid_id")
	})
	t.Run("token required", func(t *testing.T) {
		for _, p := range []string{"/v1/sessions", "/v1/users"} {
			resp, err := http.Get("http://" + m.APIAddr() + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %d", p, resp.StatusCode)
			}
		}
	})
}
