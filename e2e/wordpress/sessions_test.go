//go:build unix

package wordpress

import (
	"strings"
	"testing"
)

// TestWordPress_Sessions: "Log out everywhere" in the admin bar ends every
// browser's session on every site; an administrator revokes one session
// from Users → Sessions; a user revokes one of their own from My sessions.
func TestWordPress_Sessions(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.defaults(t)
	user := func(t *testing.T, login string) (string, string) {
		email := login + "@example.com"
		pass := tb.user(t, a, login, email, "subscriber")
		tb.verify(t, a, email)
		return email, pass
	}

	t.Run("admin_bar_log_out_everywhere", func(t *testing.T) {
		email, pass := user(t, "otto")
		one := launch(t, "otto's laptop")
		two := launch(t, "otto's phone")
		one.wpLogin(a, "otto", pass, false)
		one.shows("A logged in", func(p page) bool { return p.User == email })
		two.wpLogin(a, "otto", pass, false)
		two.shows("A logged in", func(p page) bool { return p.User == email })
		two.visit(b.url, email)
		one.visit(c.url, email)
		// The admin bar's user menu opens on hover; its button, clicked as a script would.
		one.eval(`(() => { document.getElementById("ussync-bar-logout-everywhere").click(); return true; })()`)
		one.shows("the logged-out login page", func(p page) bool { return strings.Contains(p.Href, "loggedout=true") })
		one.visit(c.url, "")
		one.visit(a.url, "")
		two.visit(b.url, "")
		two.visit(a.url, "")
	})

	t.Run("administrator_revokes_a_session", func(t *testing.T) {
		email, pass := user(t, "olga")
		x := launch(t, "olga's laptop")
		x.wpLogin(a, "olga", pass, false)
		x.shows("A logged in", func(p page) bool { return p.User == email })
		x.visit(b.url, email)
		admin := launch(t, "the administrator's browser")
		admin.wpLogin(c, "admin", adminPass, false)
		admin.open(c.url + "wp-admin/users.php?page=ussync-sessions&state=active&email=" + email)
		admin.run("the sessions list", chromedp_waitID("wpbody-content"))
		if !admin.eval(`document.querySelectorAll("table.ussync-sessions tbody tr[data-session]").length === 1`) {
			t.Fatalf("Users → Sessions does not list Otto's one active session: %s", admin.text())
		}
		admin.submit("table.ussync-sessions button.ussync-revoke")
		admin.eventually("the revocation", func() string {
			if !admin.eval(`!!document.querySelector('[data-done="revoked"]')`) {
				return "not yet"
			}
			return ""
		})
		x.visit(b.url, "")
		x.visit(a.url, "")
	})

	t.Run("user_revokes_their_other_session", func(t *testing.T) {
		email, pass := user(t, "oona")
		one := launch(t, "oona's laptop")
		two := launch(t, "oona's phone")
		one.wpLogin(a, "oona", pass, false)
		one.shows("A logged in", func(p page) bool { return p.User == email })
		two.wpLogin(a, "oona", pass, false)
		two.shows("A logged in", func(p page) bool { return p.User == email })
		one.open(a.url + "wp-admin/profile.php?page=ussync-me")
		one.run("my sessions", chromedp_waitID("ussync-logout-everywhere"))
		// Revoke the session that is not this browser's.
		if !one.eval(`(() => {
			const rows = [...document.querySelectorAll("table.ussync-sessions tbody tr[data-session]")]
				.filter(r => r.querySelector("button.ussync-revoke") && !r.innerText.includes("this browser"));
			if (rows.length !== 1) { return false; }
			rows[0].querySelector("button.ussync-revoke").click();
			return true;
		})()`) {
			t.Fatalf("My sessions does not list exactly one other active session: %s", one.text())
		}
		one.eventually("the revocation", func() string {
			if !one.eval(`!!document.querySelector('[data-done="revoked"]')`) {
				return "not yet"
			}
			return ""
		})
		two.visit(a.url, "")
		one.visit(a.url, email)
	})
}
