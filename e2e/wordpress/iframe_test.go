//go:build unix

package wordpress

import (
	"fmt"
	"strings"
	"testing"
)

// TestWordPress_Iframe: iframe mode and the cross-domain helper. Where the
// browser allows third-party cookies, the page after a login on A frames
// the other sites, which keep the session in a SameSite=None cookie; B
// logs the browser in on its first page view from that cookie (the path a
// site whose web server proxies /ussync/ to its node takes too), and
// ussyncWhoami on A's page names the user B knows. With third-party cookies
// blocked (Chromium's default), nothing is carried and whoami is null.
func TestWordPress_Iframe(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.settings(t, map[string]any{"mode": "iframe"})
	t.Cleanup(func() { tb.defaults(t) })
	const email = "iris@example.com"
	pass := tb.user(t, a, "iris", email, "subscriber")
	tb.verify(t, a, email)
	whoami := fmt.Sprintf(`ussyncWhoami(%q).then(me => me ? me.email : "")`, b.url)

	x := launchWith(t, "iris's browser (third-party cookies allowed)", true)
	x.wpLogin(a, "iris", pass, false)
	x.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	x.eventually("B's frame to set its cookie", func() string {
		if x.cookies(b.url)["ussync_session"] == nil {
			return "no ussync_session cookie on B yet"
		}
		return ""
	})
	if got := evalString(x, whoami); got != email {
		t.Fatalf("ussyncWhoami(B) on A's page: %q, want %q", got, email)
	}
	x.visit(b.url, email)

	y := launch(t, "iris's other browser (Chromium's default)")
	y.wpLogin(a, "iris", pass, false)
	y.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	if got := evalString(y, whoami); got != "" {
		t.Fatalf("ussyncWhoami(B) with third-party cookies blocked: %q, want null", got)
	}
	y.visit(b.url, "")
}
