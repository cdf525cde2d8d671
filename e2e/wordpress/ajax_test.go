//go:build unix

package wordpress

import (
	"fmt"
	"strings"
	"testing"
)

// TestWordPress_AjaxLogin: a theme's AJAX login (wp_signon from a fetch)
// answers JSON, not a redirect; the browser's next page view on the site
// goes through the chain, and lands back on that page.
func TestWordPress_AjaxLogin(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.defaults(t)
	const email = "ajax@example.com"
	pass := tb.user(t, a, "ajax", email, "subscriber")
	tb.verify(t, a, email)
	x := launch(t, "ajax's browser")
	x.visit(a.url, "")
	got := evalString(x, fmt.Sprintf(`(async () => {
		const r = await fetch("/?e2e=ajaxlogin", {method: "POST", credentials: "same-origin",
			headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "log=ajax&pwd=" + encodeURIComponent(%q)});
		return r.status + " " + r.headers.get("content-type") + " " + (await r.text());
	})()`, pass))
	if !strings.HasPrefix(got, "200 application/json") || !strings.Contains(got, `"ok":true`) {
		t.Fatalf("the AJAX login answered %q", got)
	}
	x.visited()
	x.visit(a.url, email)
	went := strings.Join(x.visited(), "\n")
	if !strings.Contains(went, b.url+"ussync/v1/sync?") {
		t.Fatalf("the page view after the AJAX login did not go through B:\n%s", went)
	}
	x.visit(b.url, email)
}
