package node_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ussync/ussync/node/nodetest"
)

// TestAdmin_Sites: the admin page lists the sites, revokes one (with the
// "sure" box ticked) and takes the revocation back, and resets a user;
// every action is the service's, gossiped to every node.
func TestAdmin_Sites(t *testing.T) {
	c := nodetest.NewCluster(t, 2)
	n0, n1 := c.Members[0], c.Members[1]
	adminUser(t, c, 0, "ann@example.com", "ann", true)
	id := adminLogin(t, n1, "ann@example.com", "Firefox")
	adminWaitCheck(t, c, id, http.StatusOK)
	b := adminOpen(t, n0)
	b.login(c.Token)

	page := b.page("/admin/sites")
	for _, want := range []string{`id="site-n0" data-revoked="false"`, `id="site-n1" data-revoked="false"`, `action="/admin/sites/n1/revoke"`, "http://site-1.localhost/"} {
		if !strings.Contains(page.Body, want) {
			t.Fatalf("the sites page lacks %q:\n%s", want, page.Body)
		}
	}
	if strings.Contains(page.Body, `action="/admin/sites/n0/revoke"`) {
		t.Error("the page offers to revoke its own node")
	}

	t.Run("revoke needs the box ticked", func(t *testing.T) {
		ans := b.post("/admin/sites/n1/revoke", url.Values{"csrf": {b.csrf(page)}, "back": {"/admin/sites"}})
		if ans.Status != http.StatusBadRequest || !strings.Contains(ans.Body, "Tick the box") {
			t.Fatalf("revoke without the box: %d\n%s", ans.Status, ans.Body)
		}
		if n0.Store().Site("n1").IsRevoked() {
			t.Fatal("revoked without the box")
		}
	})
	t.Run("revoke", func(t *testing.T) {
		flash := b.actionWith("/admin/sites", "/admin/sites/n1/revoke", url.Values{"confirm": {"yes"}})
		if !strings.Contains(flash, "Site n1 is revoked") {
			t.Fatalf("flash %q", flash)
		}
		adminWait(t, "n1's session revoked on n0", func() bool { code, _ := checkOn(t, n0, id); return code == http.StatusGone })
		if page := b.page("/admin/sites"); !strings.Contains(page.Body, `id="site-n1" data-revoked="true"`) || !strings.Contains(page.Body, `action="/admin/sites/n1/unrevoke"`) {
			t.Fatalf("the sites page after the revocation:\n%s", page.Body)
		}
	})
	t.Run("the revoked node's page says so", func(t *testing.T) {
		adminWait(t, "n1 hearing of its revocation", func() bool { return n1.Store().Site("n1").IsRevoked() })
		x := adminOpen(t, n1)
		x.login(c.Token)
		if page := x.page("/admin/sites"); !strings.Contains(page.Body, `id="self-revoked"`) {
			t.Fatalf("n1's sites page does not say it is revoked:\n%s", page.Body)
		}
		if ans := x.get("/admin/users"); ans.Status != http.StatusForbidden || !strings.Contains(ans.Body, "was revoked by an administrator") {
			t.Fatalf("the revoked n1's users page: %d\n%s", ans.Status, ans.Body)
		}
	})
	t.Run("take back", func(t *testing.T) {
		if flash := b.action("/admin/sites", "/admin/sites/n1/unrevoke"); !strings.Contains(flash, "trusted again") {
			t.Fatalf("flash %q", flash)
		}
		adminWait(t, "n1 trusted on every node", func() bool {
			return !n0.Store().Site("n1").IsRevoked() && !n1.Store().Site("n1").IsRevoked()
		})
		adminWaitCheck(t, c, adminLogin(t, n1, "ann@example.com", "Firefox"), http.StatusOK)
	})
	t.Run("reset a user", func(t *testing.T) {
		from := "/admin/users/ann@example.com"
		flash := b.actionWith(from, from+"/reset", url.Values{"confirm": {"yes"}})
		if !strings.Contains(flash, "ann@example.com is reset on every site: 1 active session ended") {
			t.Fatalf("flash %q", flash)
		}
		adminWait(t, "ann reset on n1", func() bool {
			u, err := n1.Store().User("ann@example.com")
			return err == nil && u.Reset != 0 && !u.Verified.V.OK
		})
	})
}
