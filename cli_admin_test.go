package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node/nodetest"
)

// adminNode is one real node with a verified user, ann, logged in three
// times (the oldest session logged out), and a user bob without sessions.
func adminNode(t *testing.T) (m *nodetest.Member, flags []string, ids []string) {
	t.Helper()
	c := nodetest.NewCluster(t, 1)
	m = c.Members[0]
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		if code := m.Call("PUT", "/v1/users/"+email, map[string]string{"login": strings.Split(email, "@")[0], "verified_via": "registration"}, nil); code != http.StatusOK {
			t.Fatalf("put %s: %d", email, code)
		}
	}
	for range 3 {
		var l struct{ Session struct{ ID string } }
		if code := m.Call("POST", "/v1/sessions", map[string]string{"email": "ann@example.com", "ip": "192.0.2.1", "user_agent": "Firefox"}, &l); code != http.StatusCreated {
			t.Fatalf("login: %d", code)
		}
		ids = append([]string{l.Session.ID}, ids...) // newest first
	}
	if code := m.Call("DELETE", "/v1/sessions/"+ids[2], nil, nil); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	return m, []string{"--api", "http://" + m.APIAddr(), "--token", c.Token}, ids
}

// runCmd runs "ussync <cmd...> <flags...> <args...>".
func runCmd(t *testing.T, cmd []string, flags []string, args ...string) (int, string, string) {
	t.Helper()
	return runCLI(t, append(append(cmd, flags...), args...)...)
}

// tableRows returns the lines of a table after its header.
func tableRows(t *testing.T, out, header string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || strings.Join(strings.Fields(lines[0]), " ") != header {
		t.Fatalf("header of %q, want %q", out, header)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestCLI_SessionsList(t *testing.T) {
	_, flags, ids := adminNode(t)
	list := []string{"sessions", "list"}

	t.Run("table, history included", func(t *testing.T) {
		code, out, errOut := runCmd(t, list, flags)
		if code != 0 || errOut != "" {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		rows := tableRows(t, out, "ID EMAIL SITE IP CREATED ENDED REASON")
		if len(rows) != 3 {
			t.Fatalf("rows %q", rows)
		}
		for i, r := range rows {
			// id, email, site, ip, created (date time), ended (date time or -), reason
			if r[0] != ids[i][:16] || r[1] != "ann@example.com" || r[2] != "n0" || r[3] != "192.0.2.1" || len(r[4]) != 10 {
				t.Errorf("row %d: %q", i, r)
			}
		}
		if last := rows[0]; len(last) != 8 || last[6] != "-" || last[7] != "active" {
			t.Errorf("active row %q", last)
		}
		if ended := rows[2]; len(ended) != 9 || ended[8] != "logout" {
			t.Errorf("ended row %q", ended)
		}
	})
	t.Run("active", func(t *testing.T) {
		_, out, _ := runCmd(t, list, append(flags, "--active"))
		if rows := tableRows(t, out, "ID EMAIL SITE IP CREATED ENDED REASON"); len(rows) != 2 {
			t.Fatalf("rows %q", rows)
		}
	})
	t.Run("json, wide ids", func(t *testing.T) {
		code, out, _ := runCmd(t, list, append(flags, "--json", "--oldest"))
		var p client.SessionPage
		if err := json.Unmarshal([]byte(out), &p); err != nil || code != 0 {
			t.Fatalf("exit %d, %v: %s", code, err, out)
		}
		if len(p.Sessions) != 3 || p.Sessions[0].ID != ids[2] || p.Sessions[0].EndReason != "logout" || p.Next != "" {
			t.Fatalf("json %+v", p)
		}
		_, out, _ = runCmd(t, list, append(flags, "--wide"))
		if rows := tableRows(t, out, "ID EMAIL SITE IP CREATED ENDED REASON USER AGENT"); rows[0][0] != ids[0] || rows[0][8] != "Firefox" {
			t.Fatalf("wide rows %q", rows)
		}
	})
	t.Run("limit and filters", func(t *testing.T) {
		_, out, _ := runCmd(t, list, append(flags, "--limit", "1"))
		if !strings.Contains(out, ids[0][:16]) || strings.Contains(out, ids[1][:16]) || !strings.Contains(out, "(more") {
			t.Fatalf("limit 1: %s", out)
		}
		if _, out, _ = runCmd(t, list, append(flags, "--email", "BOB@example.com")); out != "no sessions\n" {
			t.Fatalf("bob's: %q", out)
		}
		if _, out, _ = runCmd(t, list, append(flags, "--site", "n0", "--email", "ann@example.com", "--limit", "0")); strings.Count(out, "ann@example.com") != 3 {
			t.Fatalf("ann's at n0: %q", out)
		}
	})
	t.Run("errors", func(t *testing.T) {
		code, _, errOut := runCmd(t, list, append(flags, "--email", "nope"))
		if code != 1 {
			t.Errorf("bad email: exit %d", code)
		}
		oneErrorLine(t, errOut, "invalid_email")
		code, _, errOut = runCmd(t, list, append(flags, "extra"))
		if code != 2 {
			t.Errorf("extra argument: exit %d", code)
		}
		oneErrorLine(t, errOut, "sessions list --help")
		code, _, errOut = runCmd(t, list, []string{"--api", "http://" + closedAddr(t), "--token", "x"})
		if code != 1 {
			t.Errorf("unreachable: exit %d", code)
		}
		oneErrorLine(t, errOut, "cannot be reached")
		code, _, errOut = runCmd(t, list, []string{"--api", flags[1], "--token", "wrong"})
		if code != 1 {
			t.Errorf("wrong token: exit %d", code)
		}
		oneErrorLine(t, errOut, "unauthorized")
		code, _, errOut = runCmd(t, list, nil)
		if code != 2 {
			t.Errorf("no token: exit %d", code)
		}
		oneErrorLine(t, errOut, "USSYNC_API_TOKEN")
	})
}

func TestCLI_Environment(t *testing.T) {
	_, flags, _ := adminNode(t)
	t.Setenv("USSYNC_API_URL", flags[1])
	t.Setenv("USSYNC_API_TOKEN", flags[3])
	var out, errOut bytes.Buffer
	if code := run([]string{"ussync", "sessions", "list", "--active"}, &out, &errOut); code != 0 || strings.Count(out.String(), "ann@example.com") != 2 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
}

func TestCLI_SessionsRevoke(t *testing.T) {
	m, flags, ids := adminNode(t)
	revoke := []string{"sessions", "revoke"}
	code, out, errOut := runCmd(t, revoke, flags, ids[0])
	if code != 0 || out != "revoked session "+ids[0]+" of ann@example.com\n" {
		t.Fatalf("exit %d, %q %q", code, out, errOut)
	}
	var a struct{ Session client.SessionInfo }
	if code := m.Call("GET", "/v1/sessions/"+ids[0], nil, &a); code != http.StatusGone || a.Session.EndReason != "admin" {
		t.Fatalf("check: %d %+v", code, a.Session)
	}
	if _, out, _ = runCmd(t, revoke, flags, ids[2]); out != "session "+ids[2]+" of ann@example.com had already ended (logout)\n" {
		t.Fatalf("revoke an ended session: %q", out)
	}
	code, _, errOut = runCmd(t, revoke, flags, ids[0][:16])
	if code != 1 {
		t.Errorf("short id: exit %d", code)
	}
	oneErrorLine(t, errOut, "invalid_id")
	code, _, errOut = runCmd(t, revoke, flags)
	if code != 2 {
		t.Errorf("no id: exit %d", code)
	}
	oneErrorLine(t, errOut, "ID")
	code, _, errOut = runCmd(t, revoke, nil, ids[1], "--token", "x")
	if code != 2 {
		t.Errorf("flag after the id: exit %d", code)
	}
	oneErrorLine(t, errOut, "flags go first")
}

func TestCLI_Users(t *testing.T) {
	m, flags, _ := adminNode(t)
	user := func(email string) client.UserInfo {
		t.Helper()
		var u client.UserInfo
		if code := m.Call("GET", "/v1/users/"+email, nil, &u); code != http.StatusOK {
			t.Fatalf("get %s: %d", email, code)
		}
		return u
	}

	t.Run("list", func(t *testing.T) {
		_, out, _ := runCmd(t, []string{"users", "list"}, flags)
		rows := tableRows(t, out, "EMAIL LOGIN NAME VERIFIED CREATED MOVED TO")
		if len(rows) != 2 || rows[0][0] != "ann@example.com" || rows[0][1] != "ann" || rows[0][3] != "registration" || rows[1][0] != "bob@example.com" {
			t.Fatalf("rows %q", rows)
		}
	})
	t.Run("unverify and verify", func(t *testing.T) {
		if code, out, _ := runCmd(t, []string{"users", "unverify"}, flags, "bob@example.com"); code != 0 || out != "bob@example.com is not verified\n" {
			t.Fatalf("unverify: %d %q", code, out)
		}
		if user("bob@example.com").Verified {
			t.Fatal("still verified")
		}
		if code, out, _ := runCmd(t, []string{"users", "verify"}, flags, "Bob@Example.com"); code != 0 || out != "bob@example.com is verified (admin)\n" {
			t.Fatalf("verify: %d %q", code, out)
		}
		if u := user("bob@example.com"); !u.Verified || u.VerifiedVia != "admin" {
			t.Fatalf("user %+v", u)
		}
		code, _, errOut := runCmd(t, []string{"users", "verify"}, flags, "nobody@example.com")
		if code != 1 {
			t.Errorf("unknown user: exit %d", code)
		}
		oneErrorLine(t, errOut, "not_found")
		var probe struct{ Error struct{ Code string } }
		if code := m.Call("GET", "/v1/users/nobody@example.com", nil, &probe); code != http.StatusNotFound {
			t.Errorf("verify created the unknown user: %d", code)
		}
	})
	t.Run("logout everywhere", func(t *testing.T) {
		code, out, _ := runCmd(t, []string{"users", "logout-everywhere"}, flags, "ann@example.com")
		if code != 0 || out != "logged ann@example.com out everywhere: 2 active session(s) ended\n" {
			t.Fatalf("exit %d %q", code, out)
		}
		if _, out, _ = runCmd(t, []string{"sessions", "list"}, append(flags, "--active")); out != "no sessions\n" {
			t.Fatalf("active after: %q", out)
		}
	})
	t.Run("rename", func(t *testing.T) {
		code, out, errOut := runCmd(t, []string{"users", "rename"}, flags, "bob@example.com", "robert@example.com")
		if code != 0 || out != "moved bob@example.com to robert@example.com: 0 active session(s) of the old address ended\n" {
			t.Fatalf("exit %d %q %q", code, out, errOut)
		}
		if u := user("bob@example.com"); u.MovedTo != "robert@example.com" {
			t.Fatalf("old user %+v", u)
		}
		if u := user("robert@example.com"); u.Login != "bob" || !u.Verified {
			t.Fatalf("new user %+v", u)
		}
		code, _, errOut = runCmd(t, []string{"users", "rename"}, flags, "bob@example.com", "rob@example.com")
		if code != 1 {
			t.Errorf("rename a moved user: exit %d", code)
		}
		oneErrorLine(t, errOut, "user_moved", "robert@example.com")
		code, _, errOut = runCmd(t, []string{"users", "rename"}, flags, "bob@example.com")
		if code != 2 {
			t.Errorf("one argument: exit %d", code)
		}
		oneErrorLine(t, errOut, "OLD NEW")
		_, out, _ = runCmd(t, []string{"users", "list"}, flags)
		if !strings.Contains(out, "robert@example.com") || !lineWith(out, "bob@example.com", "robert@example.com") {
			t.Fatalf("list after the rename: %s", out)
		}
	})
}

// lineWith reports whether a line of out starts with first and ends with
// last.
func lineWith(out, first, last string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == first && f[len(f)-1] == last {
			return true
		}
	}
	return false
}

func TestCLI_Sites(t *testing.T) {
	c := nodetest.NewCluster(t, 2)
	flags := []string{"--api", "http://" + c.Members[0].APIAddr(), "--token", c.Token}

	t.Run("list", func(t *testing.T) {
		code, out, errOut := runCmd(t, []string{"sites", "list"}, flags)
		if code != 0 {
			t.Fatalf("exit %d %q", code, errOut)
		}
		rows := tableRows(t, out, "NAME STATE SITE REVOKED SINCE BY")
		if len(rows) != 2 || rows[1][0] != "n1" || rows[1][1] != "alive" || rows[1][2] != "http://site-1.localhost/" || rows[1][3] != "no" {
			t.Fatalf("rows %q", rows)
		}
	})
	t.Run("revoke and unrevoke", func(t *testing.T) {
		code, out, errOut := runCmd(t, []string{"sites", "revoke"}, flags, "n1")
		if code != 0 || !strings.HasPrefix(out, "revoked site n1 on every node") {
			t.Fatalf("revoke: exit %d %q %q", code, out, errOut)
		}
		_, out, _ = runCmd(t, []string{"sites", "list"}, append(flags, "--json"))
		var l client.SiteList
		if err := json.Unmarshal([]byte(out), &l); err != nil || len(l.Sites) != 2 || !l.Sites[1].Revoked || l.Sites[1].By != "n0" {
			t.Fatalf("list --json after the revocation: %v %s", err, out)
		}
		code, _, errOut = runCmd(t, []string{"sites", "revoke"}, flags, "typo")
		if code != 1 {
			t.Errorf("revoke an unknown name: exit %d", code)
		}
		oneErrorLine(t, errOut, "not_found", "n0, n1")
		if code, _, errOut = runCmd(t, []string{"sites", "revoke"}, append(flags, "--force"), "gone-long-ago"); code != 0 {
			t.Errorf("revoke --force an unknown name: exit %d %q", code, errOut)
		}
		code, out, errOut = runCmd(t, []string{"sites", "unrevoke"}, flags, "n1")
		if code != 0 || !strings.HasPrefix(out, "site n1 is not revoked") {
			t.Fatalf("unrevoke: exit %d %q %q", code, out, errOut)
		}
	})
	t.Run("users reset", func(t *testing.T) {
		m := c.Members[0]
		if code := m.Call("PUT", "/v1/users/ann@example.com", map[string]string{"verified_via": "registration"}, nil); code != http.StatusOK {
			t.Fatalf("put: %d", code)
		}
		code, out, errOut := runCmd(t, []string{"users", "reset"}, flags, "ann@example.com")
		if code != 0 || !strings.HasPrefix(out, "reset ann@example.com on every site") {
			t.Fatalf("reset: exit %d %q %q", code, out, errOut)
		}
		var u client.UserInfo
		if m.Call("GET", "/v1/users/ann@example.com", nil, &u); u.Verified {
			t.Fatalf("still verified after the reset: %+v", u)
		}
	})
}

// closedAddr is a loopback address nothing listens on: a port the kernel
// just gave and took back (a fixed one, even port 1, may be another
// program's on a shared machine).
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
