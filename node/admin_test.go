package node_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// adminBrowser is a cookie-keeping client of one node's admin page that
// does not follow redirects, so tests see them.
type adminBrowser struct {
	t    *testing.T
	base string // http://api-addr
	c    *http.Client
	// Origin and FetchSite, when set, are sent with every POST as a
	// browser would (Origin, Sec-Fetch-Site).
	Origin, FetchSite string
}

// adminAnswer is one answer of the admin page.
type adminAnswer struct {
	Status   int
	Body     string
	Location string
	Header   http.Header
}

func adminOpen(t *testing.T, m *nodetest.Member) *adminBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &adminBrowser{t: t, base: "http://" + m.APIAddr(), c: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (b *adminBrowser) do(req *http.Request) adminAnswer {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("read %s: %v", req.URL, err)
	}
	return adminAnswer{resp.StatusCode, string(body), resp.Header.Get("Location"), resp.Header}
}

func (b *adminBrowser) get(path string) adminAnswer {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *adminBrowser) post(path string, form url.Values) adminAnswer {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.Origin != "" {
		req.Header.Set("Origin", b.Origin)
	}
	if b.FetchSite != "" {
		req.Header.Set("Sec-Fetch-Site", b.FetchSite)
	}
	return b.do(req)
}

var (
	adminCSRFRe   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	adminRowRe    = regexp.MustCompile(`<tr id="s-([0-9a-f]{64})"`)
	adminUserRe   = regexp.MustCompile(`<tr id="u-([^"]+)"`)
	adminNextRe   = regexp.MustCompile(`<a href="([^"]*)" id="next-page"`)
	adminFirstRe  = regexp.MustCompile(`<a href="([^"]*)" id="first-page"`)
	adminFlashRe  = regexp.MustCompile(`id="flash">([^<]*)<`)
	adminActionRe = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
)

// csrf is the CSRF token of the forms of a page.
func (b *adminBrowser) csrf(page adminAnswer) string {
	b.t.Helper()
	m := adminCSRFRe.FindStringSubmatch(page.Body)
	if m == nil {
		b.t.Fatalf("no CSRF token in the page (%d):\n%s", page.Status, page.Body)
	}
	return m[1]
}

// login logs in with secret and checks it worked.
func (b *adminBrowser) login(secret string) {
	b.t.Helper()
	form := b.get("/admin/login")
	ans := b.post("/admin/login", url.Values{"secret": {secret}, "csrf": {b.csrf(form)}})
	if ans.Status != http.StatusSeeOther || ans.Location != "/admin/sessions" {
		b.t.Fatalf("log in: %d to %q, want 303 to /admin/sessions:\n%s", ans.Status, ans.Location, ans.Body)
	}
}

// page gets path, which must answer 200, and returns it.
func (b *adminBrowser) page(path string) adminAnswer {
	b.t.Helper()
	ans := b.get(path)
	if ans.Status != http.StatusOK {
		b.t.Fatalf("GET %s: %d (to %q), want 200:\n%s", path, ans.Status, ans.Location, ans.Body)
	}
	return ans
}

// action posts the form action from page with its CSRF token and back
// set to page's path; it must redirect back there. It returns the flash
// shown on the page it lands on.
func (b *adminBrowser) action(from, action string) string {
	b.t.Helper()
	return b.actionWith(from, action, nil)
}

// actionWith is action with more form fields (a ticked "sure" box).
func (b *adminBrowser) actionWith(from, action string, extra url.Values) string {
	b.t.Helper()
	page := b.page(from)
	found := false
	for _, m := range adminActionRe.FindAllStringSubmatch(page.Body, -1) {
		found = found || html.UnescapeString(m[1]) == action
	}
	if !found {
		b.t.Fatalf("the page %s has no form posting to %s:\n%s", from, action, page.Body)
	}
	form := url.Values{"csrf": {b.csrf(page)}, "back": {from}}
	for k, v := range extra {
		form[k] = v
	}
	ans := b.post(action, form)
	if ans.Status != http.StatusSeeOther || ans.Location != from {
		b.t.Fatalf("POST %s: %d to %q, want 303 to %s:\n%s", action, ans.Status, ans.Location, from, ans.Body)
	}
	m := adminFlashRe.FindStringSubmatch(b.page(from).Body)
	if m == nil {
		b.t.Fatalf("POST %s: no message on the page it returned to", action)
	}
	return html.UnescapeString(m[1])
}

// adminFlip returns tok with its first character changed.
func adminFlip(tok string) string {
	if tok[0] == 'A' {
		return "B" + tok[1:]
	}
	return "A" + tok[1:]
}

func adminRows(page adminAnswer) []string {
	var ids []string
	for _, m := range adminRowRe.FindAllStringSubmatch(page.Body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func adminLink(re *regexp.Regexp, page adminAnswer) string {
	m := re.FindStringSubmatch(page.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// adminUser creates a user on member on of c and waits until every node
// has it; verified: registered as such (a login elsewhere before every node
// knows it stays local, rightly), and vouched for by every node's
// administrator, so that a login on any site travels (docs/security.md).
func adminUser(t *testing.T, c *nodetest.Cluster, on int, email, login string, verified bool) {
	t.Helper()
	body := map[string]any{"login": login, "display_name": strings.ToUpper(login)}
	if verified {
		body["verified_via"] = "registration"
	}
	if code := c.Members[on].Call("PUT", "/v1/users/"+url.PathEscape(email), body, nil); code != http.StatusOK {
		t.Fatalf("create user %s: %d", email, code)
	}
	adminWait(t, "the user on every node", func() bool {
		for _, m := range c.Members {
			if u, err := m.Store().User(email); err != nil || u.Verified.V.OK != verified {
				return false
			}
		}
		return true
	})
	for _, m := range c.Members {
		if verified && m.Call("PUT", "/v1/users/"+url.PathEscape(email), map[string]any{"verified_via": "admin"}, nil) != http.StatusOK {
			t.Fatalf("vouch for %s on %s", email, m.Name())
		}
	}
}

// adminWait polls cond until it holds, or fails t after 5 s.
func adminWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventually.True(t, 5*time.Second, what, cond)
}

// adminWaitCheck waits until every node answers the session check with want.
func adminWaitCheck(t *testing.T, c *nodetest.Cluster, id string, want int) {
	t.Helper()
	adminWait(t, fmt.Sprintf("session check %d on every node", want), func() bool {
		for _, m := range c.Members {
			if code, _ := checkOn(t, m, id); code != want {
				return false
			}
		}
		return true
	})
}

// adminLogin logs email in on m with a user agent and returns the session id.
func adminLogin(t *testing.T, m *nodetest.Member, email, ua string) string {
	t.Helper()
	var a loginAnswer
	if code := m.Call("POST", "/v1/sessions", map[string]any{"email": email, "ip": "192.0.2.7", "user_agent": ua}, &a); code != http.StatusCreated {
		t.Fatalf("login %s on %s: %d", email, m.Name(), code)
	}
	return a.Session.ID
}

type adminUserJSON struct {
	Verified    bool   `json:"verified"`
	VerifiedVia string `json:"verified_via"`
}

func TestAdmin_Page(t *testing.T) {
	c := nodetest.NewCluster(t, 2)
	n0, n1 := c.Members[0], c.Members[1]

	t.Run("login_required", func(t *testing.T) {
		b := adminOpen(t, n0)
		for _, p := range []string{"/admin/sessions", "/admin/users", "/admin/users/ann@example.com", "/admin/sessions?email=a@b.c&limit=3"} {
			ans := b.get(p)
			if ans.Status != http.StatusSeeOther || ans.Location != "/admin/login?next="+url.QueryEscape(p) {
				t.Fatalf("GET %s logged out: %d to %q, want 303 to the login form", p, ans.Status, ans.Location)
			}
		}
		if ans := b.get("/admin/"); ans.Status != http.StatusSeeOther {
			t.Fatalf("GET /admin/: %d", ans.Status)
		}
		form := b.page("/admin/login")
		if got := form.Header.Get("Content-Security-Policy"); got != "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" {
			t.Fatalf("CSP %q", got)
		}
		for _, h := range []string{"X-Frame-Options", "X-Content-Type-Options", "Cache-Control"} {
			if form.Header.Get(h) == "" {
				t.Fatalf("the login page has no %s", h)
			}
		}
		if strings.Contains(form.Body, "<script") || strings.Contains(form.Body, "style=") {
			t.Fatal("the page has a script or an inline style (the CSP forbids both)")
		}
		// A POST action logged out goes to the login form and changes nothing.
		email := "nologin@example.com"
		adminUser(t, c, 0, email, "nologin", false)
		if ans := b.post("/admin/users/"+email+"/verify", url.Values{"csrf": {"x"}}); ans.Status != http.StatusSeeOther || !strings.HasPrefix(ans.Location, "/admin/login") {
			t.Fatalf("POST verify logged out: %d to %q", ans.Status, ans.Location)
		}
		var u adminUserJSON
		n0.Call("GET", "/v1/users/"+email, nil, &u)
		if u.Verified {
			t.Fatal("a logged-out POST verified the user")
		}

		// The stylesheet is served to everyone (the login form uses it).
		css := regexp.MustCompile(`href="(/admin/static/admin.css\?v=[0-9a-f]+)"`).FindStringSubmatch(form.Body)
		if css == nil {
			t.Fatal("no stylesheet link")
		}
		if ans := b.get(html.UnescapeString(css[1])); ans.Status != http.StatusOK || !strings.HasPrefix(ans.Header.Get("Content-Type"), "text/css") {
			t.Fatalf("stylesheet: %d %s", ans.Status, ans.Header.Get("Content-Type"))
		}
	})

	t.Run("wrong_token_refused", func(t *testing.T) {
		b := adminOpen(t, n0)
		form := b.page("/admin/login")
		for _, secret := range []string{"", "wrong-token-wrong-token", c.Token + "x", strings.ToUpper(c.Token)} {
			ans := b.post("/admin/login", url.Values{"secret": {secret}, "csrf": {b.csrf(form)}})
			if ans.Status != http.StatusUnauthorized || !strings.Contains(ans.Body, "Wrong API token") {
				t.Fatalf("log in with %q: %d, want 401 Wrong API token", secret, ans.Status)
			}
			if ans.Header.Get("Set-Cookie") != "" && strings.Contains(ans.Header.Get("Set-Cookie"), "ussync_admin_n0=") {
				t.Fatalf("a refused login set the admin cookie: %s", ans.Header.Get("Set-Cookie"))
			}
			form = ans
		}
		if ans := b.get("/admin/sessions"); ans.Status != http.StatusSeeOther {
			t.Fatalf("after refused logins, GET /admin/sessions: %d, want 303 to login", ans.Status)
		}
		// The login form has its own CSRF token.
		if ans := b.post("/admin/login", url.Values{"secret": {c.Token}}); ans.Status != http.StatusForbidden {
			t.Fatalf("log in without the form's token: %d, want 403", ans.Status)
		}
		// The right token: a session cookie scoped to the admin page.
		ans := b.post("/admin/login", url.Values{"secret": {c.Token}, "csrf": {b.csrf(form)}, "next": {"/admin/users"}})
		if ans.Status != http.StatusSeeOther || ans.Location != "/admin/users" {
			t.Fatalf("log in: %d to %q", ans.Status, ans.Location)
		}
		var cookie *http.Cookie
		for _, ck := range (&http.Response{Header: ans.Header}).Cookies() {
			if ck.Name == "ussync_admin_n0" && ck.Value != "" {
				cookie = ck
			}
		}
		if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/admin/" || len(cookie.Value) < 43 {
			t.Fatalf("admin cookie %+v: want HttpOnly, SameSite=Strict, Path=/admin/, 32 random bytes", cookie)
		}
		page := b.page("/admin/users")
		// Log out: the cookie is worth nothing afterwards, even replayed.
		if ans := b.post("/admin/logout", url.Values{"csrf": {b.csrf(page)}}); ans.Status != http.StatusSeeOther || ans.Location != "/admin/login?bye=1" {
			t.Fatalf("log out: %d to %q", ans.Status, ans.Location)
		}
		replay := adminOpen(t, n0)
		u, _ := url.Parse(replay.base + "/admin/")
		replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: cookie.Name, Value: cookie.Value, Path: "/admin/"}})
		if ans := replay.get("/admin/sessions"); ans.Status != http.StatusSeeOther {
			t.Fatalf("the cookie of a logged-out admin still opens the page: %d", ans.Status)
		}
		// Another node does not take this node's admin sessions.
		other := adminOpen(t, n1)
		u, _ = url.Parse(other.base + "/admin/")
		other.c.Jar.SetCookies(u, []*http.Cookie{{Name: "ussync_admin_n1", Value: cookie.Value, Path: "/admin/"}})
		if ans := other.get("/admin/sessions"); ans.Status != http.StatusSeeOther {
			t.Fatalf("n0's admin cookie opens n1's page: %d", ans.Status)
		}
	})

	t.Run("csrf_missing_or_wrong_is_403_and_changes_nothing", func(t *testing.T) {
		email := "csrf@example.com"
		adminUser(t, c, 0, email, "csrf", false)
		id := adminLogin(t, n0, email, "Firefox")
		b := adminOpen(t, n0)
		b.login(c.Token)
		good := b.csrf(b.page("/admin/users/" + email))
		posts := []struct {
			name, path string
			form       url.Values
			origin     string
			fetchSite  string
		}{
			{"verify without token", "/admin/users/" + email + "/verify", url.Values{}, "", ""},
			{"verify with a wrong token", "/admin/users/" + email + "/verify", url.Values{"csrf": {adminFlip(good)}}, "", ""},
			{"verify with an empty token", "/admin/users/" + email + "/verify", url.Values{"csrf": {""}}, "", ""},
			{"destroy without token", "/admin/sessions/" + id + "/destroy", url.Values{}, "", ""},
			{"destroy with a wrong token", "/admin/sessions/" + id + "/destroy", url.Values{"csrf": {"AAAA"}}, "", ""},
			{"logout everywhere without token", "/admin/users/" + email + "/logout-everywhere", url.Values{}, "", ""},
			{"destroy from another origin", "/admin/sessions/" + id + "/destroy", url.Values{"csrf": {good}}, "http://evil.example", ""},
			{"destroy from another site", "/admin/sessions/" + id + "/destroy", url.Values{"csrf": {good}}, "", "cross-site"},
			{"logout without token", "/admin/logout", url.Values{}, "", ""},
		}
		for _, p := range posts {
			b.Origin, b.FetchSite = p.origin, p.fetchSite
			ans := b.post(p.path, p.form)
			if ans.Status != http.StatusForbidden || !strings.Contains(ans.Body, "security token") {
				t.Fatalf("%s: %d, want 403:\n%s", p.name, ans.Status, ans.Body)
			}
		}
		b.Origin, b.FetchSite = "", ""
		var u adminUserJSON
		n0.Call("GET", "/v1/users/"+email, nil, &u)
		if u.Verified {
			t.Fatal("a refused form verified the user")
		}
		if code, _ := checkOn(t, n0, id); code != http.StatusOK {
			t.Fatalf("a refused form ended the session: check %d", code)
		}
		b.page("/admin/sessions") // still logged in
		// The same origin with the token works.
		b.Origin = "http://" + n0.APIAddr()
		b.FetchSite = "same-origin"
		if msg := b.action("/admin/users/"+email, "/admin/users/"+email+"/verify"); !strings.Contains(msg, "verified") {
			t.Fatalf("verify from the page: %q", msg)
		}
	})

	t.Run("verify_and_unverify_reach_the_other_node", func(t *testing.T) {
		email := "vera@example.com"
		adminUser(t, c, 1, email, "vera", false)
		adminWait(t, "the user on n0", func() bool { _, err := n0.Store().User(email); return err == nil })
		b := adminOpen(t, n0)
		b.login(c.Token)
		users := b.page("/admin/users")
		if !strings.Contains(users.Body, `<tr id="u-`+email+`" data-verified="false"`) {
			t.Fatalf("the users page does not list %s unverified:\n%s", email, users.Body)
		}
		if msg := b.action("/admin/users", "/admin/users/"+email+"/verify"); !strings.Contains(msg, "now verified") {
			t.Fatalf("verify: %q", msg)
		}
		if !strings.Contains(b.page("/admin/users").Body, `<tr id="u-`+email+`" data-verified="true"`) {
			t.Fatal("the users page does not show the user verified")
		}
		adminWait(t, "verified by admin on n1", func() bool {
			var u adminUserJSON
			n1.Call("GET", "/v1/users/"+email, nil, &u)
			return u.Verified && u.VerifiedVia == "admin"
		})
		// Now a login of theirs on n0, whose administrator vouched for the
		// address, travels; on n1, which proved nothing, it stays.
		var a loginAnswer
		n0.Call("POST", "/v1/sessions", map[string]any{"email": email}, &a)
		if !a.Synced {
			t.Fatalf("a login after the admin verified the user is not synced: %+v", a)
		}
		n1.Call("POST", "/v1/sessions", map[string]any{"email": email}, &a)
		if a.Synced || a.Reason != "site_not_bound" {
			t.Fatalf("a login on a site that proved nothing: %+v", a)
		}
		if msg := b.action("/admin/users/"+email, "/admin/users/"+email+"/unverify"); !strings.Contains(msg, "unverified") {
			t.Fatalf("unverify: %q", msg)
		}
		adminWait(t, "unverified on n1", func() bool {
			var u adminUserJSON
			n1.Call("GET", "/v1/users/"+email, nil, &u)
			return !u.Verified
		})
		// An unknown user is not created by a click.
		page := b.page("/admin/users")
		ans := b.post("/admin/users/ghost@example.com/verify", url.Values{"csrf": {b.csrf(page)}, "back": {"/admin/users"}})
		if ans.Status != http.StatusSeeOther {
			t.Fatalf("verify an unknown user: %d", ans.Status)
		}
		if code := n0.Call("GET", "/v1/users/ghost@example.com", nil, nil); code != http.StatusNotFound {
			t.Fatalf("verifying an unknown user created it: %d", code)
		}
	})

	t.Run("destroy_reaches_the_other_node", func(t *testing.T) {
		email := "dora@example.com"
		adminUser(t, c, 1, email, "dora", true)
		keep := adminLogin(t, n1, email, "Safari")
		id := adminLogin(t, n1, email, "Chrome")
		adminWaitCheck(t, c, id, http.StatusOK)
		adminWaitCheck(t, c, keep, http.StatusOK)
		b := adminOpen(t, n0)
		b.login(c.Token)
		from := "/admin/sessions?email=" + url.QueryEscape(email)
		page := b.page(from)
		if rows := adminRows(page); !slices.Contains(rows, id) || !slices.Contains(rows, keep) {
			t.Fatalf("the sessions page does not list both sessions: %v", rows)
		}
		if msg := b.action(from, "/admin/sessions/"+id+"/destroy"); !strings.Contains(msg, "destroyed") {
			t.Fatalf("destroy: %q", msg)
		}
		var a checkAnswer
		adminWait(t, "the session ended on n1", func() bool {
			return n1.Call("GET", "/v1/sessions/"+id, nil, &a) == http.StatusGone
		})
		if a.Session.EndReason != "admin" {
			t.Fatalf("end reason %q, want admin", a.Session.EndReason)
		}
		if code, _ := checkOn(t, n1, keep); code != http.StatusOK {
			t.Fatalf("destroying one session ended another: %d", code)
		}
		after := b.page(from)
		if !regexp.MustCompile(`<tr id="s-` + id + `" data-state="ended"`).MatchString(after.Body) {
			t.Fatal("the page does not show the session ended")
		}
		if strings.Contains(after.Body, `id="destroy-`+id+`"`) {
			t.Fatal("an ended session still has a destroy button")
		}
		// Destroying it again says so and changes nothing.
		ans := b.post("/admin/sessions/"+id+"/destroy", url.Values{"csrf": {b.csrf(after)}, "back": {from}})
		if ans.Status != http.StatusSeeOther {
			t.Fatalf("destroy again: %d", ans.Status)
		}
		if flash := adminFlashRe.FindStringSubmatch(b.page(from).Body); flash == nil || !strings.Contains(flash[1], "already over") {
			t.Fatalf("destroy again: flash %q", flash)
		}
	})

	t.Run("logout_everywhere_reaches_the_other_node", func(t *testing.T) {
		email := "evan@example.com"
		adminUser(t, c, 1, email, "evan", true)
		ids := []string{adminLogin(t, n1, email, "A"), adminLogin(t, n1, email, "B"), adminLogin(t, n0, email, "C")}
		for _, id := range ids {
			adminWaitCheck(t, c, id, http.StatusOK)
		}
		b := adminOpen(t, n0)
		b.login(c.Token)
		from := "/admin/users/" + email
		if rows := adminRows(b.page(from)); len(rows) != 3 {
			t.Fatalf("the history shows %d sessions, want 3", len(rows))
		}
		if msg := b.action(from, from+"/logout-everywhere"); !strings.Contains(msg, "3 active sessions ended") {
			t.Fatalf("logout everywhere: %q", msg)
		}
		for _, id := range ids {
			adminWaitCheck(t, c, id, http.StatusGone)
		}
		var a checkAnswer
		n1.Call("GET", "/v1/sessions/"+ids[0], nil, &a)
		if a.Session.EndReason != "logout_everywhere" {
			t.Fatalf("end reason %q", a.Session.EndReason)
		}
	})

	t.Run("hostile_values_render_inert", func(t *testing.T) {
		email := "o'brien+{x}&y=1/z?#@example.com"
		login := `<script>alert("login")</script>`
		ua := `<script>alert('ua')</script><img src=x onerror=alert(1)>`
		if code := n0.Call("PUT", "/v1/users/"+url.PathEscape(email), map[string]any{"login": login, "display_name": `"><svg onload=alert(2)>`}, nil); code != http.StatusOK {
			t.Fatalf("create the hostile user: %d", code)
		}
		id := adminLogin(t, n0, email, ua)
		b := adminOpen(t, n0)
		b.login(c.Token)
		users := b.page("/admin/users?limit=500")
		sessions := b.page("/admin/sessions?limit=500")
		// The user's page, reached by its link in the users list.
		var link []string
		for _, m := range regexp.MustCompile(`<a href="([^"]*)" class="email">([^<]*)</a>`).FindAllStringSubmatch(users.Body, -1) {
			if html.UnescapeString(m[2]) == email {
				link = m
			}
		}
		if link == nil {
			t.Fatalf("no link to the hostile user in the users list")
		}
		user := b.page(html.UnescapeString(link[1]))
		if m := regexp.MustCompile(`id="user-email">([^<]*)<`).FindStringSubmatch(user.Body); m == nil || html.UnescapeString(m[1]) != email {
			t.Fatalf("the user's page does not show the address: %q", m)
		}
		for name, p := range map[string]adminAnswer{"users": users, "sessions": sessions, "user": user} {
			for _, raw := range []string{"<script", "<img", "<svg"} {
				if strings.Contains(p.Body, raw) {
					t.Fatalf("the %s page holds %q unescaped", name, raw)
				}
			}
		}
		if !strings.Contains(users.Body, "&#34;&gt;&lt;svg onload=alert(2)&gt;") {
			t.Fatal("the users page does not show the display name, escaped")
		}
		if !strings.Contains(sessions.Body, "&lt;script&gt;alert(&#34;login&#34;)&lt;/script&gt;") {
			t.Fatal("the sessions page does not show the login name, escaped")
		}
		if !strings.Contains(user.Body, "&lt;script&gt;alert(&#39;ua&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") {
			t.Fatal("the history does not show the user agent, escaped")
		}
		// Its actions work: the path-escaped address reaches the right user.
		if msg := b.action(html.UnescapeString(link[1]), "/admin/sessions/"+id+"/destroy"); !strings.Contains(msg, "destroyed") {
			t.Fatalf("destroy the hostile session: %q", msg)
		}
		if msg := b.action(html.UnescapeString(link[1]), html.UnescapeString(link[1])+"/verify"); !strings.Contains(msg, "now verified") {
			t.Fatalf("verify the hostile user: %q", msg)
		}
		// A back field pointing elsewhere is not followed.
		ans := b.post("/admin/users/"+url.PathEscape(email)+"/unverify", url.Values{"csrf": {b.csrf(user)}, "back": {"//evil.example/admin/"}})
		if ans.Status != http.StatusSeeOther || ans.Location != "/admin/sessions" {
			t.Fatalf("back=//evil.example: %d to %q", ans.Status, ans.Location)
		}
		// Hostile filter values are shown escaped too.
		f := b.page("/admin/sessions?email=" + url.QueryEscape(`"><script>x</script>`) + "&after=" + url.QueryEscape("<script>"))
		if strings.Contains(f.Body, "<script") || !strings.Contains(f.Body, `id="error"`) {
			t.Fatal("a hostile filter is echoed unescaped, or not refused")
		}
	})

	t.Run("paging_sorting_filtering", func(t *testing.T) {
		email := "page@example.com"
		adminUser(t, c, 0, email, "pager", true)
		var ids []string // oldest first
		for range 7 {
			ids = append(ids, adminLogin(t, n0, email, "UA"))
		}
		other := adminLogin(t, n1, "page@example.com", "on n1") // same user, other site
		b := adminOpen(t, n0)
		b.login(c.Token)
		adminWait(t, "n1's session on n0", func() bool { _, err := n0.Store().Session(other); return err == nil })

		// Newest first, by 3, on site n0 only: 3 + 3 + 1, each page linking
		// to the next with the filter kept.
		path := "/admin/sessions?email=" + url.QueryEscape(email) + "&site=n0&limit=3"
		var seen []string
		for i := 0; path != ""; i++ {
			p := b.page(path)
			rows := adminRows(p)
			if want := []int{3, 3, 1}[i]; len(rows) != want {
				t.Fatalf("page %d: %d rows, want %d", i+1, len(rows), want)
			}
			seen = append(seen, rows...)
			if first := adminLink(adminFirstRe, p); (i > 0) != (first != "") {
				t.Fatalf("page %d: first-page link %q", i+1, first)
			}
			path = adminLink(adminNextRe, p)
			if path != "" {
				q, _ := url.ParseQuery(strings.SplitN(path, "?", 2)[1])
				if q.Get("email") != email || q.Get("site") != "n0" || q.Get("limit") != "3" || q.Get("after") == "" {
					t.Fatalf("next-page link %q loses the filter", path)
				}
			}
		}
		want := slices.Clone(ids)
		slices.Reverse(want)
		if !slices.Equal(seen, want) {
			t.Fatalf("pages show %v, want newest first %v", seen, want)
		}
		// Oldest first.
		p := b.page("/admin/sessions?email=" + url.QueryEscape(email) + "&sort=oldest&limit=2")
		if rows := adminRows(p); !slices.Equal(rows, ids[:2]) {
			t.Fatalf("oldest first: %v, want %v", rows, ids[:2])
		}
		// Every site: n1's session is there too; active only hides ended ones.
		if rows := adminRows(b.page("/admin/sessions?email=" + url.QueryEscape(email) + "&limit=500")); len(rows) != 8 || !slices.Contains(rows, other) {
			t.Fatalf("all sites: %d rows, want 8 with n1's", len(rows))
		}
		b.action("/admin/sessions?email="+url.QueryEscape(email), "/admin/sessions/"+ids[0]+"/destroy")
		if rows := adminRows(b.page("/admin/sessions?email=" + url.QueryEscape(email) + "&active=1&limit=500")); len(rows) != 7 || slices.Contains(rows, ids[0]) {
			t.Fatalf("active only: %d rows, want 7 without the ended one", len(rows))
		}
		// Users page by page.
		for _, e := range []string{"pa@example.com", "pb@example.com", "pc@example.com"} {
			adminUser(t, c, 0, e, "p", false)
		}
		var users []string
		path = "/admin/users?limit=2"
		for path != "" {
			p := b.page(path)
			for _, m := range adminUserRe.FindAllStringSubmatch(p.Body, -1) {
				users = append(users, html.UnescapeString(m[1]))
			}
			path = adminLink(adminNextRe, p)
		}
		if !slices.IsSorted(users) || !slices.Contains(users, "pb@example.com") || len(users) != len(slices.Compact(slices.Clone(users))) {
			t.Fatalf("users by pages of 2: %v", users)
		}
		// The find box opens a user's page.
		if ans := b.get("/admin/users?find=" + url.QueryEscape(" PB@example.com ")); ans.Status != http.StatusSeeOther || ans.Location != "/admin/users/pb@example.com" {
			t.Fatalf("find: %d to %q", ans.Status, ans.Location)
		}
	})
}

// TestAdmin_Password: with admin.password_file, the password logs in (the
// API token still does), and failed logins are rate-limited.
func TestAdmin_Password(t *testing.T) {
	const password = "hunter2 is not a password"
	file := filepath.Join(t.TempDir(), "admin-password")
	// bcrypt of password at cost 4 (crypto.HashPassword uses 12: slow
	// under the race detector).
	if err := os.WriteFile(file, []byte("admin:$2a$04$kjdng4TRu/Evy5rVzyRK2Oo9z8WJzGwmU/Q4RYxa2Pe1PEuU9JhTW\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) { cfg.Admin.PasswordFile = file }
	clock := session.NewManualClock(time.Now()) // held still: the backoff's wait never passes by itself
	c.Clock = func(int) func() time.Time { return clock.Now }
	c.Start(1)
	m := c.Members[0]

	b := adminOpen(t, m)
	if form := b.page("/admin/login"); !strings.Contains(form.Body, "Password or API token") {
		t.Fatal("the login form does not ask for the password")
	}
	b.login(password)
	b.page("/admin/sessions")
	adminOpen(t, m).login(c.Token)

	t.Run("failed_logins_back_off", func(t *testing.T) {
		x := adminOpen(t, m)
		form := x.page("/admin/login")
		for i := range 5 {
			ans := x.post("/admin/login", url.Values{"secret": {"guess" + string(rune('a'+i))}, "csrf": {x.csrf(form)}})
			if ans.Status != http.StatusUnauthorized {
				t.Fatalf("wrong password %d: %d, want 401", i+1, ans.Status)
			}
			form = ans
		}
		// The sixth waits, even with the right password.
		ans := x.post("/admin/login", url.Values{"secret": {password}, "csrf": {x.csrf(form)}})
		if ans.Status != http.StatusTooManyRequests || !strings.Contains(ans.Body, "Too many failed attempts") || ans.Header.Get("Retry-After") == "" {
			t.Fatalf("the right password after 5 failures: %d (Retry-After %q), want 429", ans.Status, ans.Header.Get("Retry-After"))
		}
		// A session opened before is not affected.
		b.page("/admin/users")
	})

	t.Run("disabled", func(t *testing.T) {
		c := nodetest.New(t)
		c.Configure = func(_ int, cfg *node.Config) { cfg.Admin.Enabled = false }
		c.Start(1)
		if ans := adminOpen(t, c.Members[0]).get("/admin/login"); ans.Status != http.StatusNotFound {
			t.Fatalf("admin.enabled false: GET /admin/login %d, want 404", ans.Status)
		}
	})

	t.Run("bad_password_file_stops_the_start", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "pw")
		os.WriteFile(bad, []byte("plain text password\n"), 0o600)
		cfg := node.DefaultConfig()
		cfg.Node.Name, cfg.Node.DataDir, cfg.Site.URL = "x", t.TempDir(), "http://x.localhost/"
		cfg.Gossip.Bind, cfg.API.Listen, cfg.Public.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.Gossip.Secrets, cfg.API.Token = []string{c.Secret}, c.Token
		cfg.Admin.PasswordFile = bad
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		n, _ := node.New(cfg, nil)
		err := n.Start(t.Context())
		n.Close(t.Context())
		if err == nil || !strings.Contains(err.Error(), "admin.password_file") || strings.Contains(err.Error(), "plain text") {
			t.Fatalf("start with a password file that is no hash: %v", err)
		}
	})
}

// TestAdmin_ResendCode: "resend code" mails the user a code (through a real
// SMTP server) that verifies them; without an smtp: section the action is
// not offered.
func TestAdmin_ResendCode(t *testing.T) {
	sink := node.NewSMTPSink(t)
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		if i == 0 {
			cfg.SMTP = sink.SMTPSection()
		}
	}
	c.Start(2)
	email := "rita@example.com"
	adminUser(t, c, 0, email, "rita", false)

	b := adminOpen(t, c.Members[0])
	b.login(c.Token)
	from := "/admin/users/" + email
	if msg := b.action(from, from+"/resend"); !strings.Contains(msg, "on its way") {
		t.Fatalf("resend: %q", msg)
	}
	msgs := sink.Messages()
	if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{email}) {
		t.Fatalf("the sink received %d messages (%v), want 1 to %s", len(msgs), msgs, email)
	}
	code := node.ParseMail(t, msgs[0].Data).Code
	if code == "" {
		t.Fatal("the message holds no code")
	}
	var u adminUserJSON
	if st := c.Members[0].Call("POST", "/v1/users/"+email+"/verify", map[string]any{"code": code}, &u); st != http.StatusOK || !u.Verified || u.VerifiedVia != "code" {
		t.Fatalf("verify with the mailed code: %d %+v", st, u)
	}
	// Resending at once is rate-limited: said on the page, nothing sent.
	adminUser(t, c, 0, "rob@example.com", "rob", false)
	b.action("/admin/users/rob@example.com", "/admin/users/rob@example.com/resend")
	msg := b.action("/admin/users/rob@example.com", "/admin/users/rob@example.com/resend")
	if !strings.Contains(msg, "again") {
		t.Fatalf("an immediate second resend: %q", msg)
	}
	t.Logf("an immediate second resend: %q", msg)
	if n := len(sink.Messages()); n != 2 {
		t.Fatalf("the sink received %d messages, want 2", n)
	}
	// Node n1 has no smtp: section: no resend button.
	other := adminOpen(t, c.Members[1])
	other.login(c.Token)
	if p := other.page("/admin/users/rob@example.com"); strings.Contains(p.Body, "/resend") {
		t.Fatal("a node without mail offers to resend a code")
	}
}

func TestAdmin_Config(t *testing.T) {
	cfg := node.DefaultConfig()
	cfg.Site.URL = "https://a.example/"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !cfg.Admin.Enabled || cfg.Admin.SessionTTL != node.Duration(8*time.Hour) || cfg.Admin.PasswordFile != "" {
		t.Fatalf("admin defaults %+v", cfg.Admin)
	}
	for _, ttl := range []time.Duration{0, -time.Second, 169 * time.Hour} {
		c := cfg
		c.Admin.SessionTTL = node.Duration(ttl)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "admin.session_ttl") {
			t.Fatalf("session_ttl %s: %v", ttl, err)
		}
	}
	c, err := node.ParseConfig([]byte("admin:\n  enabled: false\n  password_file: /etc/pw\n  session_ttl: 1h\n"), cfg)
	if err != nil || c.Admin.Enabled || c.Admin.PasswordFile != "/etc/pw" || c.Admin.SessionTTL != node.Duration(time.Hour) {
		t.Fatalf("parse admin section: %+v, %v", c.Admin, err)
	}
	if _, err := node.ParseConfig([]byte("admin:\n  pasword_file: x\n"), cfg); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Fatalf("a typo in the admin section: %v", err)
	}
}
