//go:build unix

package wordpress

import (
	"encoding/json"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/ussync/ussync/internal/eventually"
)

var reResetLink = regexp.MustCompile(`https?://[^\s<>"]+wp-login\.php\?action=rp&key=[^\s<>"]+`)

// waitMail waits for a message to addr holding re and returns the match.
func (tb *testbed) waitMail(t *testing.T, addr string, re *regexp.Regexp, n int) string {
	t.Helper()
	var got string
	err := eventually.Err(waitTimeout, pollEvery, "mail to "+addr, func() error {
		msgs := tb.sink.to(addr)
		if len(msgs) < n {
			return fmt.Errorf("%d messages", len(msgs))
		}
		body := strings.ReplaceAll(msgs[n-1].Data, "=\r\n", "")
		m := re.FindStringSubmatch(body)
		if m == nil {
			return fmt.Errorf("message %d holds no %v: %s", n, re, truncate(body, 300))
		}
		got = m[len(m)-1]
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// activeSessions counts a user's active sessions on a node.
func (tb *testbed) activeSessions(t *testing.T, s *site, email string) int {
	t.Helper()
	var r struct{ Sessions []struct{ ID string } }
	if err := tb.nodeGet(s, "/v1/users/"+url.PathEscape(email)+"/sessions?state=active", &r); err != nil {
		if strings.Contains(err.Error(), "404") {
			return 0
		}
		t.Fatal(err)
	}
	return len(r.Sessions)
}

// TestWordPress_Verification: a registration on A is not verified, so its
// login stays on A; the code the node mails (through the SMTP sink) typed
// on the user's page verifies it, and the next login is carried. An
// administrator verifies another user from the Users list. The e-mail
// cannot be changed from the profile or REST.
func TestWordPress_Verification(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.defaults(t)
	const email = "rita@example.com"
	rita := launch(t, "rita's browser")

	// Registration through wp-login.php: WordPress mails a link to set the
	// password.
	rita.open(a.url + "wp-login.php?action=register")
	rita.run("fill the registration form", chromedpSet("user_login", "rita"), chromedpSet("user_email", email))
	rita.submit("#wp-submit")
	link := html.UnescapeString(tb.waitMail(t, email, reResetLink, 1))
	t.Logf("password link: %s", link)
	rita.open(link)
	rita.run("the new password form", chromedp_waitID("pass1"))
	pass := "Rita-pass-Strong-7!"
	// The page's script fills in a generated password once it runs: set
	// ours until it stays.
	setPass := fmt.Sprintf(`(() => { const p = document.getElementById("pass1");
		if (p.value !== %q) { p.value = %q; p.dispatchEvent(new Event("input", {bubbles:true})); }
		const p2 = document.getElementById("pass2"); if (p2) { p2.value = %q; }
		const w = document.querySelector(".pw-checkbox"); if (w) { w.checked = true; }
		return true; })()`, pass, pass, pass)
	stable := 0
	rita.eventually("our password to stay in the form", func() string {
		rita.eval(setPass)
		if rita.eval(fmt.Sprintf(`document.getElementById("pass1").value === %q`, pass)) {
			stable++
		} else {
			stable = 0
		}
		if stable < 10 {
			return "not stable yet"
		}
		return ""
	})
	rita.submit("#wp-submit")
	rita.eventually("the password saved", func() string {
		if !strings.Contains(rita.text(), "reset") {
			return rita.text()
		}
		return ""
	})

	rita.wpLogin(a, "rita", pass, false)
	rita.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	if !strings.Contains(rita.text(), "not verified") {
		t.Fatalf("A's page does not tell Rita why her login stays here: %q", rita.text())
	}
	rita.visit(b.url, "")

	// The code, by mail, typed on her page.
	rita.open(a.url + "wp-admin/profile.php?page=ussync-me")
	rita.submit("#ussync-send")
	code := tb.waitMail(t, email, reCode, 2)
	rita.run("type the code", chromedpSet("ussync-code", code))
	rita.submit("#ussync-verify")
	rita.eventually("the code accepted", func() string {
		if !rita.eval(`!!document.querySelector('[data-done="code_ok"]')`) {
			return rita.text()
		}
		return ""
	})
	rita.open(a.url + "?e2e=logout")
	rita.wpLogin(a, "rita", pass, false)
	rita.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	rita.visit(b.url, email)

	t.Run("administrator_verifies_from_the_users_list", func(t *testing.T) {
		const ben = "ben@example.com"
		benPass := tb.user(t, a, "ben", ben, "subscriber")
		admin := launch(t, "the administrator's browser")
		admin.T = t
		admin.wpLogin(a, "admin", adminPass, false)
		admin.open(a.url + "wp-admin/users.php")
		var benID int
		json.Unmarshal(tb.mustPHP(t, a, `return get_user_by('email', 'ben@example.com')->ID;`), &benID)
		// The row action (shown on hover), clicked as a script would.
		admin.run("the users list", chromedp_waitID(fmt.Sprintf("user-%d", benID)))
		admin.eval(fmt.Sprintf(`(() => { document.querySelector("#user-%d a.ussync-verify").click(); return true; })()`, benID))
		admin.eventually("the list says verified", func() string {
			if !admin.eval(`!!document.body && document.body.innerText.includes("verified (admin)")`) {
				return "not yet"
			}
			return ""
		})
		bb := launch(t, "ben's browser")
		bb.wpLogin(a, "ben", benPass, false)
		bb.shows("A logged in", func(p page) bool { return p.User == ben })
		bb.visit(b.url, ben)
	})

	t.Run("email_change_is_refused", func(t *testing.T) {
		rita.T = t
		rita.open(a.url + "wp-admin/profile.php")
		rita.eval(`(() => { const e = document.getElementById("email"); e.readOnly = false; e.value = "evil@example.com"; return true; })()`)
		rita.submit("#submit")
		if !rita.eval(`document.body.innerText.includes("cannot be changed")`) {
			t.Fatalf("the profile accepted a new address: %q", rita.text())
		}
		// REST users/me with a nonce of her session.
		status := evalString(rita, `(async () => {
			const n = await fetch("/wp-admin/admin-ajax.php?action=rest-nonce", {credentials: "same-origin"}).then(r => r.text());
			const r = await fetch("/wp-json/wp/v2/users/me", {method: "POST", credentials: "same-origin",
				headers: {"Content-Type": "application/json", "X-WP-Nonce": n},
				body: JSON.stringify({email: "evil@example.com"})});
			return r.status + " " + (await r.text());
		})()`)
		if !strings.HasPrefix(status, "400 ") || !strings.Contains(status, "ussync_email_locked") {
			t.Fatalf("REST users/me answered %s, want 400 ussync_email_locked", status)
		}
		if login, _ := tb.userOn(t, a, email); login != "rita" {
			t.Fatalf("Rita's account moved: %q", login)
		}
		if login, _ := tb.userOn(t, a, "evil@example.com"); login != "" {
			t.Fatalf("an account now has the new address: %q", login)
		}
	})
}

// TestWordPress_Lazy: in lazy mode a login sends the browser nowhere; the
// next site asks the others once when the browser arrives.
func TestWordPress_Lazy(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.settings(t, map[string]any{"mode": "lazy"})
	t.Cleanup(func() { tb.defaults(t) })
	const email = "lou@example.com"
	pass := tb.user(t, a, "lou", email, "subscriber")
	tb.verify(t, a, email)
	lou := launch(t, "lou's browser")
	lou.visit(a.url, "") // a first visit asks the others once: nobody
	lou.visited()
	lou.wpLogin(a, "lou", pass, false)
	lou.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	for _, u := range lou.visited() {
		if strings.HasPrefix(u, b.url) || strings.HasPrefix(u, c.url) {
			t.Fatalf("a lazy login visited another site: %s", u)
		}
	}
	lou.visit(b.url, email)
	lou.visit(c.url, email)
	lou.open(c.url + "?e2e=logout")
	lou.visit(a.url, "")
	lou.visit(b.url, "")
}

// TestWordPress_Replay: a hand-off URL captured from a login, opened in a
// fresh browser profile, logs nobody in.
func TestWordPress_Replay(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.defaults(t)
	const email = "rex@example.com"
	pass := tb.user(t, a, "rex", email, "subscriber")
	tb.verify(t, a, email)
	rex := launch(t, "rex's browser")
	rex.visited()
	rex.wpLogin(a, "rex", pass, false)
	rex.shows("A logged in", func(p page) bool { return p.User == email })
	var captured string
	for _, u := range rex.visited() {
		if strings.HasPrefix(u, b.url+"ussync/v1/sync?") {
			captured = u
		}
	}
	if captured == "" {
		t.Fatal("no hand-off URL of B was seen")
	}
	thief := launch(t, "a fresh profile")
	thief.open(captured)
	thief.visit(b.url, "")
	thief.visit(c.url, "")
	thief.visit(a.url, "")
	rex.visit(b.url, email)
}

// TestWordPress_Policies: an unknown user on a site that rejects them gets
// a readable refusal; privileged roles do not travel; a user with a second
// factor gets no session before it, and is not logged in by a login from a
// site without one.
func TestWordPress_Policies(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.defaults(t)

	t.Run("reject_unknown_user", func(t *testing.T) {
		tb.mustPHP(t, c, `$s = get_option('ussync_settings'); $s['unknown_user'] = 'reject'; update_option('ussync_settings', $s); return 1;`)
		t.Cleanup(func() { tb.defaults(t) })
		const email = "una@example.com"
		pass := tb.user(t, a, "una", email, "subscriber")
		tb.verify(t, a, email)
		x := launch(t, "una's browser")
		x.wpLogin(a, "una", pass, false)
		x.shows("A logged in", func(p page) bool { return p.User == email })
		x.visit(b.url, email)
		p := x.visit(c.url, "")
		if !strings.Contains(p.Text, "only accepts users who registered here") {
			t.Fatalf("C's page does not say why: %q", p.Text)
		}
		if login, _ := tb.userOn(t, c, email); login != "" {
			t.Fatal("C added a user it should have rejected")
		}
	})

	t.Run("editors_do_not_travel", func(t *testing.T) {
		const email = "eddie@example.com"
		pass := tb.user(t, a, "eddie", email, "editor")
		tb.verify(t, a, email)
		x := launch(t, "eddie's browser")
		x.visited()
		x.wpLogin(a, "eddie", pass, false)
		x.shows("A logged in", func(p page) bool { return p.User == email })
		for _, u := range x.visited() {
			if strings.Contains(u, "/ussync/v1/sync") {
				t.Fatalf("an editor's login was handed off: %s", u)
			}
		}
		x.visit(b.url, "")
	})

	t.Run("second_factor", func(t *testing.T) {
		const email = "tess@example.com"
		pass := tb.user(t, a, "tess", email, "subscriber")
		tb.mustPHP(t, a, fmt.Sprintf(`update_user_meta(get_user_by('email', %q)->ID, 'e2e_2fa', '424242'); return 1;`, email))
		tb.verify(t, a, email)
		x := launch(t, "tess's browser")
		x.open(a.url + "wp-login.php?redirect_to=" + a.url)
		x.run("fill the login form", chromedpSet("user_login", "tess"), chromedpSet("user_pass", pass))
		x.submit("#wp-submit")
		x.run("the second step", chromedp_waitID("e2e-2fa-code"))
		if n := tb.activeSessions(t, a, email); n != 0 {
			t.Fatalf("%d sessions exist before the second factor", n)
		}
		x.visit(b.url, "")
		x.open(a.url + "wp-login.php?redirect_to=" + a.url)
		x.run("fill the login form", chromedpSet("user_login", "tess"), chromedpSet("user_pass", pass))
		x.submit("#wp-submit")
		x.run("type the second factor", chromedpSet("e2e-2fa-code", "424242"))
		x.submit("#e2e-2fa-submit")
		x.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
		x.visit(b.url, email)

		// On C, Tess has a second factor: a login from A does not log her in there.
		tb.user(t, c, "tess", email, "subscriber")
		tb.mustPHP(t, c, fmt.Sprintf(`update_user_meta(get_user_by('email', %q)->ID, 'e2e_2fa', '111111'); return 1;`, email))
		// (x was logged in on C by the chain before C's account had one.)
		y := launch(t, "tess's second browser")
		y.wpLogin(a, "tess", pass, false)
		y.run("type the second factor", chromedpSet("e2e-2fa-code", "424242"))
		y.submit("#e2e-2fa-submit")
		y.shows("A logged in", func(p page) bool { return p.User == email })
		if p := y.visit(c.url, ""); !strings.Contains(p.Text, "second factor") {
			t.Fatalf("C does not say why: %q", p.Text)
		}
	})
}

// TestWordPress_NodeDown: with its node stopped, a site keeps serving its
// logged-in users (fail open), logs in and out locally, and logs the
// outage once; once the node is back, the session check resumes.
func TestWordPress_NodeDown(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.defaults(t)
	const email = "nora@example.com"
	pass := tb.user(t, b, "nora", email, "subscriber")
	tb.verify(t, b, email)
	x := launch(t, "nora's browser")
	x.wpLogin(b, "nora", pass, false)
	x.shows("B logged in", func(p page) bool { return p.User == email })

	const outage = `network "main" did not answer`
	loggedBefore := strings.Count(siteLogs(b), outage)
	b.node.stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			tb.startNode(b)
		}
	})
	for range 3 {
		x.visit(b.url, email) // fail open: still logged in
	}
	x.open(b.url + "?e2e=logout")
	x.visit(b.url, "")
	x.wpLogin(b, "nora", pass, false)
	x.shows("B logged in without its node", func(p page) bool { return strings.HasPrefix(p.Href, b.url) && p.User == email })
	logged := strings.Count(siteLogs(b), outage) - loggedBefore
	if logged != 1 {
		t.Fatalf("the outage was logged %d times, want once", logged)
	}

	if err := tb.startNode(b); err != nil {
		t.Fatal(err)
	}
	restarted = true
	tb.mustPHP(t, b, `delete_option('ussync_down'); return 1;`)
	// Back: a session ended on A ends on B at its next page view again.
	tb.user(t, a, "nora", email, "subscriber")
	y := launch(t, "nora's second browser")
	y.wpLogin(b, "nora", pass, false)
	y.shows("B logged in", func(p page) bool { return p.User == email })
	y.visit(a.url, email)
	y.open(a.url + "?e2e=logout")
	y.visit(b.url, "")
}

// TestWordPress_REST: a REST call of a browser whose session ended on
// another site answers 401 JSON, never a redirect; without its nonce a REST
// call stays anonymous.
func TestWordPress_REST(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.defaults(t)
	const email = "rae@example.com"
	pass := tb.user(t, a, "rae", email, "subscriber")
	tb.verify(t, a, email)
	x := launch(t, "rae's browser")
	x.wpLogin(a, "rae", pass, false)
	x.shows("A logged in", func(p page) bool { return p.User == email })
	x.open(a.url + "wp-admin/profile.php")
	nonce := evalString(x, `fetch("/wp-admin/admin-ajax.php?action=rest-nonce", {credentials: "same-origin"}).then(r => r.text())`)
	call := func(nonce string) string {
		return evalString(x, fmt.Sprintf(`(async () => {
			const h = %q ? {"X-WP-Nonce": %q} : {};
			const r = await fetch("/wp-json/wp/v2/users/me", {credentials: "same-origin", redirect: "manual", headers: h});
			const j = await r.json().catch(() => ({}));
			return r.status + " " + (j.code || j.id);
		})()`, nonce, nonce))
	}
	if got := call(nonce); !strings.HasPrefix(got, "200 ") {
		t.Fatalf("users/me with its nonce: %s", got)
	}
	if got := call(""); got != "401 rest_not_logged_in" {
		t.Fatalf("users/me without its nonce: %s, want 401 rest_not_logged_in", got)
	}
	// Rae logs out on B (the chain logged her in there); A's next request
	// is a REST call, from a static page of A (no PHP runs for it).
	x.visit(b.url, email)
	x.open(b.url + "?e2e=logout")
	x.open(a.url + "wp-content/themes/e2e/style.css")
	if got := call(nonce); got != "401 ussync_session_ended" {
		t.Fatalf("users/me after a logout elsewhere: %s, want 401 ussync_session_ended", got)
	}
	x.visit(a.url, "")
}

// TestWordPress_ForwardFailureNotDown: one visitor's request to
// <site>/ussync/v1/… that the node's public listener does not answer (it
// failed, or timed out) does not mark the node down: the session checks of
// every other visitor still ask it. A failure of the private API still
// does.
func TestWordPress_ForwardFailureNotDown(t *testing.T) {
	tb := theBed(t)
	a := tb.sites[0]
	tb.defaults(t)
	t.Cleanup(func() { tb.mustPHP(t, a, `delete_option('ussync_down'); return 1;`) })
	out := string(tb.mustPHP(t, a, `delete_option('ussync_down');
$n = Ussync_Settings::nodes()[0];
$n->public_url = 'http://127.0.0.1:1';
$r = $n->forward('GET', '/ussync/v1/whoami', array(), '');
$public = array($r['status'], $n->is_down());
$n->api_url = 'http://127.0.0.1:1';
$n->check(str_repeat('a', 64));
return array($public, $n->is_down());`))
	if out != "[[0,false],true]" {
		t.Fatalf("[[forward status, down after it], down after a private API failure] = %s, want [[0,false],true]", out)
	}
}
