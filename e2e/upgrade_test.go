//go:build unix

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/internal/testenv"
)

// previousCommit is the previous version the upgrade test starts from:
// main just before the security work of issue 9 was merged (the first
// parent of "Merge sec1"), the last version whose hand-off tickets carry
// no browser binding, and whose nodes answer no gossip queries. Move it to
// the previous release's commit (its tag, once there are tags) when a
// release changes a format (docs/compatibility.md).
const (
	previousCommit  = "5aed7a7e1000bc4142d2898dc0ced32b8fc84ad0"
	previousVersion = "0.1.0-previous"
)

// previous is the binary of previousCommit, built once.
var previous struct {
	once sync.Once
	path string
	err  error
}

// previousBinary returns a ussync binary of the previous version:
// $USSYNC_PREVIOUS_BINARY if set, else one built from previousCommit (or
// the revision $USSYNC_UPGRADE_FROM names) out of this clone's git history
// (git archive: the work tree is not touched), stamped previousVersion.
// A clone without that history cannot test the upgrade: the test is
// skipped with a banner, or fails under USSYNC_E2E_REQUIRE=1 (CI).
func previousBinary(t *testing.T) string {
	t.Helper()
	ussyncBinary(t) // skips under -short; makes bin.dir
	if p := os.Getenv("USSYNC_PREVIOUS_BINARY"); p != "" {
		return p
	}
	root := moduleRoot(t)
	rev := previousCommit
	if r := os.Getenv("USSYNC_UPGRADE_FROM"); r != "" {
		rev = r
	}
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "no git (the previous version is built from the history)", "the rolling upgrade from the previous version", "apt-get install -y git")
	}
	if out, err := exec.Command("git", "-C", root, "cat-file", "-e", rev+"^{commit}").CombinedOutput(); err != nil {
		// The history is the clone's, not a program the machine lacks: a
		// clone without it skips, loudly, even under USSYNC_E2E_REQUIRE.
		t.Skipf("\n*** NOT TESTED: the rolling upgrade from the previous version: commit %s is not in this clone's history (%v %s); "+
			"clone with the whole history (git fetch --unshallow), or set USSYNC_PREVIOUS_BINARY to a build of that commit ***",
			rev, err, strings.TrimSpace(string(out)))
	}
	previous.once.Do(func() {
		src := filepath.Join(bin.dir, "previous-src")
		if previous.err = os.MkdirAll(src, 0o755); previous.err != nil {
			return
		}
		archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, rev, src)
		if out, err := archive.CombinedOutput(); err != nil {
			previous.err = fmt.Errorf("git archive %s: %v\n%s", rev, err, out)
			return
		}
		previous.path = filepath.Join(bin.dir, "ussync-previous")
		// No -race: the previous version's races are not this test's
		// subject, and the build is twice as fast without it.
		build := exec.Command("go", "build", "-buildvcs=false", "-ldflags",
			"-X main.version="+previousVersion+" -X main.commit="+rev, "-o", previous.path, ".")
		build.Dir = src
		if out, err := build.CombinedOutput(); err != nil {
			previous.err = fmt.Errorf("go build of %s: %v\n%s", rev, err, out)
		}
	})
	if previous.err != nil {
		t.Fatalf("build the previous version: %v", previous.err)
	}
	return previous.path
}

// versions returns the version a lists for each member, by name.
func (c *cluster) versions(a *agent) map[string]string {
	c.t.Helper()
	var st struct {
		Members []struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"members"`
	}
	c.must(a, "GET", "/v1/status", nil, &st, http.StatusOK)
	out := map[string]string{}
	for _, m := range st.Members {
		out[m.Name] = m.Version
	}
	return out
}

// TestAgents_UpgradeFromPrevious is a rolling upgrade, one agent at a
// time, from the previous version (previousCommit) to this one, on the
// same data dirs: the mixed cluster replicates logins and logouts both
// ways, and where the versions differ they refuse each other out loud,
// never silently: a hand-off ticket of the previous version is refused by
// a new node with a log line, and `ussync keys` names the members too old
// to be asked and exits 3. Once all run this version, everything is as it
// must be and the keyring answers from every member.
func TestAgents_UpgradeFromPrevious(t *testing.T) {
	prev := previousBinary(t)
	c := newClusterWith(t, 3, func(a *agent) { a.bin = prev })
	n0, n1, n2 := c.agents[0], c.agents[1], c.agents[2]
	const ann = "ann@example.com"
	c.register(n0, ann)
	prevV := c.versions(n0)["n0"]
	for name, v := range c.versions(n0) {
		if v != prevV {
			t.Fatalf("%s runs %q, n0 %q: one previous version is wanted", name, v, prevV)
		}
	}
	var wants []sessionWant
	annOld := c.login(n1, ann)
	annOut := c.login(n0, ann)
	wants = append(wants, sessionWant{"a login before the upgrade", annOld, "200"})

	// n2 is upgraded: it leaves (SIGTERM), the new binary starts on its
	// data dir and rejoins.
	upgrade := func(a *agent) {
		t.Helper()
		p := a.cur()
		c.signal(a, syscall.SIGTERM)
		<-p.done
		a.bin = ""
		c.restart(a)
		c.waitMembers(c.agents, c.agents...)
		// A site of this version lets a login travel only once it is
		// bound to the address; the previous version recorded no
		// bindings, so its administrator vouches for the user again
		// (docs/security.md, "Upgrading").
		c.must(a, "PUT", "/v1/users/"+ann, map[string]string{"verified_via": "admin"}, nil, http.StatusOK)
	}
	upgrade(n2)
	current := c.versions(n0)["n2"]
	if current == prevV || c.versions(n2)["n0"] != prevV {
		t.Fatalf("n0 lists n2 at %q, n2 lists n0 at %q", current, c.versions(n2)["n0"])
	}
	t.Logf("mixed cluster: n0 and n1 at %s, n2 at %s", prevV, current)

	// The mixed cluster replicates both ways: a login on a previous node
	// reaches the new one and back; a logout on the new node ends a
	// session a previous node made.
	wants = append(wants,
		sessionWant{"a login on a previous node, mixed cluster", c.login(n0, ann), "200"},
		sessionWant{"a login on the new node, mixed cluster", c.login(n2, ann), "200"})
	c.waitSessions([]sessionWant{{"a login on n0 before the logout", annOut, "200"}}, n2)
	c.must(n2, "DELETE", "/v1/sessions/"+annOut, nil, nil, http.StatusOK)
	wants = append(wants, sessionWant{"logged out on the new node, made on a previous one", annOut, "410 session_ended logout"})
	c.waitSessions(wants, c.agents...)

	// A previous node's hand-off ticket to the new node: refused, with
	// the reason in the new node's log and the refusal's code.
	var login struct {
		Sync struct {
			Chain string `json:"chain"`
		} `json:"sync"`
	}
	c.must(n0, "POST", "/v1/sessions", map[string]string{"email": ann, "ip": "127.0.0.1", "user_agent": "ussync-e2e"}, &login, http.StatusCreated)
	// The chain's ticket names every other site (n1, then n2): the browser
	// is taken to n2 with it, as n1 would forward it.
	link := login.Sync.Chain
	if link == "" {
		t.Fatalf("the previous node's login has no chain: %+v", login)
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://"+n2.public+u.RequestURI(), nil)
	site, err := url.Parse(n2.siteURL)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = site.Host
	noRedirect := &http.Client{Transport: c.http.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("GET the previous node's sync link on n2: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The browser goes on to the chain's end, told why.
	if got := resp.Header.Get("X-Ussync-Refused"); resp.StatusCode != http.StatusSeeOther || got != "other_browser" {
		t.Errorf("the previous node's ticket on n2: %s, X-Ussync-Refused %q, %s", resp.Status, got, body)
	}
	c.eventually(convergeTimeout, "n2 to log the refused ticket", func() string {
		for _, l := range strings.Split(n2.cur().out.String(), "\n") {
			if strings.Contains(l, `msg="ticket refused"`) && strings.Contains(l, "code=other_browser") &&
				strings.Contains(l, "a node of an earlier version sealed it") {
				return ""
			}
		}
		return "no such line yet"
	})

	// The keyring calls: the previous nodes are not asked, and said so.
	code, out, errOut := c.cli("keys", "list", "--api", "http://"+n2.api)
	if code != exitPartialCode || !strings.Contains(out, "n0      NOT ASKED: version "+prevV+" has no keyring calls") ||
		!strings.Contains(errOut, "too old to ask: n0,n1") {
		t.Errorf("keys list in the mixed cluster: exit %d\n%s%s", code, out, errOut)
	}

	// The rest of the upgrade. With n1 and n2 new and n0 previous, a
	// chain from n2 goes through n1 and never to n0, whose site has no
	// bind step (it would answer 404): n0 advertises no hand-off version.
	upgrade(n1)
	c.chainAvoidsPrevious(n2, n1, n0)
	upgrade(n0)
	for name, v := range c.versions(n1) {
		if v != current {
			t.Errorf("after the upgrade, %s runs %q", name, v)
		}
	}
	wants = append(wants, sessionWant{"a login after the upgrade", c.login(n1, ann), "200"})
	c.waitSessions(wants, c.agents...)
	if code, out, errOut := c.cli("keys", "list", "--api", "http://"+n0.api); code != 0 || !strings.HasPrefix(out, "keys held by 3 members: 3 answered") {
		t.Errorf("keys list after the upgrade: exit %d\n%s%s", code, out, errOut)
	}
}

// chainAvoidsPrevious logs ann in on from (this version) and follows the
// login's chain as a browser that takes no step page would (303s, with
// cookies): it must go through via's sync step, never to any URL on
// prev's site (a node of the previous version, which has no bind step),
// and end back on from's site; the login answer names prev in
// sync.skipped, and from's status says why (older_version).
func (c *cluster) chainAvoidsPrevious(from, via, prev *agent) {
	c.t.Helper()
	type member struct {
		Name           string `json:"name"`
		Handoff        bool   `json:"handoff"`
		HandoffSkipped string `json:"handoff_skipped"`
	}
	c.eventually(convergeTimeout, from.name+" to hand off to "+via.name+" and not to "+prev.name, func() string {
		var st struct {
			Members []member `json:"members"`
		}
		c.must(from, "GET", "/v1/status", nil, &st, http.StatusOK)
		got := map[string]member{}
		for _, m := range st.Members {
			got[m.Name] = m
		}
		if !got[via.name].Handoff || got[prev.name].Handoff || got[prev.name].HandoffSkipped != "older_version" {
			return fmt.Sprintf("members %+v", st.Members)
		}
		return ""
	})
	var login struct {
		Token string `json:"token"`
		Sync  struct {
			Chain   string   `json:"chain"`
			Skipped []string `json:"skipped"`
		} `json:"sync"`
	}
	c.must(from, "POST", "/v1/sessions", map[string]string{"email": "ann@example.com", "ip": "127.0.0.1", "user_agent": "ussync-e2e"}, &login, http.StatusCreated)
	if login.Sync.Chain == "" || !slices.Equal(login.Sync.Skipped, []string{prev.name}) {
		c.t.Fatalf("the login on %s: chain %q, skipped %v; want a chain, %s skipped", from.name, login.Sync.Chain, login.Sync.Skipped, prev.name)
	}
	jar, _ := cookiejar.New(nil)
	fromURL, _ := url.Parse(from.siteURL)
	jar.SetCookies(fromURL, []*http.Cookie{{Name: client.CookieName(from.siteURL), Value: login.Token, Path: fromURL.Path}})
	var visited []string
	browser := followClient(jar, &visited)
	defer browser.CloseIdleConnections()
	visited = append(visited, login.Sync.Chain)
	resp, err := browser.Get(login.Sync.Chain)
	if err != nil {
		c.t.Fatalf("follow %s's chain: %v (way %q)", from.name, err, visited)
	}
	resp.Body.Close()
	way := strings.Join(visited, "\n  ")
	for _, u := range visited {
		if strings.HasPrefix(u, prev.siteURL) {
			c.t.Fatalf("%s's chain visits %s, a site of the previous version:\n  %s", from.name, prev.name, way)
		}
	}
	if !slices.ContainsFunc(visited, func(u string) bool { return strings.HasPrefix(u, via.siteURL+"ussync/v1/sync?") }) ||
		!strings.HasPrefix(resp.Request.URL.String(), from.siteURL) {
		c.t.Fatalf("%s's chain does not go through %s's sync and back: ends %s on %s\n  %s", from.name, via.name, resp.Status, resp.Request.URL, way)
	}
	viaURL, _ := url.Parse(via.siteURL)
	held := false
	for _, ck := range jar.Cookies(viaURL) {
		held = held || ck.Name == client.CookieName(via.siteURL)
	}
	if !held {
		c.t.Errorf("%s's chain set no session cookie on %s:\n  %s", from.name, via.name, way)
	}
}

// exitPartialCode is `ussync keys`'s exit status when not every member
// carried the operation out (main's exitPartial).
const exitPartialCode = 3
