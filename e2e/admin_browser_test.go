package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/node/nodetest"
)

// TestAdmin_Browser drives the admin page (node/admin.go) in a real headless
// Chromium, as an administrator would: log in with the API token, verify an
// unverified user, destroy a session; and shows that a form posted without
// its CSRF token, from the page itself or from a page of another origin, is
// refused and changes nothing. Set USSYNC_ADMIN_SCREENSHOTS to a directory
// to keep screenshots of the pages.
func TestAdmin_Browser(t *testing.T) {
	exe := browserRequire(t)
	c := nodetest.NewCluster(t, 2)
	n0, n1 := c.Members[0], c.Members[1]
	base := "http://" + n0.APIAddr()

	const (
		unverified = "ula@example.com"
		verified   = "vic@example.com"
	)
	adminPut(t, n0, unverified, map[string]any{"login": "ula", "display_name": "Ula Unverified"})
	adminPut(t, n0, verified, map[string]any{"login": "vic", "display_name": "Vic", "verified_via": "registration"})
	c.WaitFor(10*time.Second, "the users on every node", func() bool {
		for _, m := range c.Members {
			if u, err := m.Store().User(verified); err != nil || !u.Verified.V.OK {
				return false
			}
		}
		return true
	})
	// n1's administrator vouches for the address too: n1 is bound, and its
	// logins travel (docs/security.md).
	adminPut(t, n1, verified, map[string]any{"verified_via": "admin"})
	// Sessions on n1 for the verified user (they travel to n0), and a
	// hostile user agent that must render as text.
	ids := []string{
		adminSession(t, n1, verified, "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"),
		adminSession(t, n1, verified, `<script>document.title="pwned"</script>`),
		adminSession(t, n1, verified, "curl/8.11"),
	}
	c.WaitFor(10*time.Second, "the sessions on n0", func() bool {
		for _, id := range ids {
			if _, err := n0.Store().Session(id); err != nil {
				return false
			}
		}
		return true
	})

	tab := browserLaunch(t, exe, "the administrator's browser", false)
	shots := os.Getenv("USSYNC_ADMIN_SCREENSHOTS")

	loggedIn := t.Run("login", func(t *testing.T) {
		x := tab.in(t)
		x.open(base + "/admin/sessions")
		adminWaitText(x, "#login-form", "API token")
		adminScreenshot(x, shots, "login")
		adminSetValue(x, "#secret", c.Token)
		x.submit("login")
		adminWaitText(x, "#sessions", verified)
		if p, _ := x.page(); !strings.HasPrefix(p.Href, base+"/admin/sessions") {
			t.Fatalf("after the login the browser is at %s", p.Href)
		}
		if title := adminEval[string](x, `document.title`); strings.Contains(title, "pwned") {
			t.Fatal("a user agent's script ran in the admin page")
		}
		adminScreenshot(x, shots, "sessions")
	})
	if !loggedIn {
		return // every step below needs the admin session
	}

	t.Run("verify_an_unverified_user", func(t *testing.T) {
		x := tab.in(t)
		x.open(base + "/admin/users")
		row := fmt.Sprintf(`tr[id="u-%s"]`, unverified)
		adminWaitText(x, row+" td.verified", "unverified")
		adminScreenshot(x, shots, "users")
		adminClick(x, row+` form[action$="/verify"] button`)
		adminWaitText(x, "#flash", "now verified")
		adminWaitText(x, row+" td.verified", "verified")
		if got := adminEval[string](x, fmt.Sprintf(`document.querySelector(%q).innerText`, row+" td.verified")); !strings.HasPrefix(got, "verified") || !strings.Contains(got, "admin") {
			t.Fatalf("the user's row says %q, want verified by admin", got)
		}
		c.WaitFor(10*time.Second, "the verification on n1", func() bool {
			u, err := n1.Store().User(unverified)
			return err == nil && u.Verified.V.OK && u.Verified.V.Method == "admin"
		})
	})

	t.Run("destroy_a_session", func(t *testing.T) {
		x := tab.in(t)
		x.open(base + "/admin/users/" + verified)
		adminWaitText(x, "#history", "curl/8.11")
		if got := adminEval[string](x, fmt.Sprintf(`document.querySelector("tr#s-%s td.ua").innerText`, ids[1])); got != `<script>document.title="pwned"</script>` {
			t.Fatalf("the hostile user agent shows as %q, want its text", got)
		}
		adminScreenshot(x, shots, "user")
		x.submit("destroy-" + ids[0])
		adminWaitText(x, "#flash", "destroyed")
		adminWaitText(x, "tr#s-"+ids[0]+" td.state", "ended")
		adminWaitText(x, "tr#s-"+ids[0]+" td.state", "admin")
		if n := adminEval[int](x, fmt.Sprintf(`document.querySelectorAll("#destroy-%s").length`, ids[0])); n != 0 {
			t.Fatal("the ended session still has a destroy button")
		}
		adminWaitStatus(t, c, n1, ids[0], http.StatusGone)
		adminWaitStatus(t, c, n1, ids[1], http.StatusOK)
		adminScreenshot(x, shots, "destroyed")
	})

	t.Run("form_without_csrf_token_is_refused", func(t *testing.T) {
		x := tab.in(t)
		from := base + "/admin/users/" + verified
		x.open(from)
		adminWaitText(x, "#history", "curl/8.11")
		// The page's own destroy form, its csrf field removed, then posted:
		// what a forged same-origin request would send.
		adminSubmitForm(x, ids[1], "remove")
		adminWaitText(x, "#error", "security token")
		adminScreenshot(x, shots, "refused")
		// A wrong token is refused the same way.
		x.open(from)
		adminWaitText(x, "#history", "curl/8.11")
		adminSubmitForm(x, ids[1], "wrong")
		adminWaitText(x, "#error", "security token")
		adminWaitStatus(t, c, n1, ids[1], http.StatusOK)
		if code, _ := adminCheck(t, n0, ids[1]); code != http.StatusOK {
			t.Fatalf("a refused form ended the session: %d", code)
		}
	})

	t.Run("form_from_another_origin_is_refused", func(t *testing.T) {
		x := tab.in(t)
		// A page on another port of 127.0.0.1: another origin, but the same
		// site, so the browser sends the SameSite=Strict admin cookie with
		// its form. The form guesses everything but the CSRF token.
		target := base + "/admin/sessions/" + ids[2] + "/destroy"
		evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><title>cute cats</title>
<form id="f" method="post" action="%s"><input type="hidden" name="csrf" value="guessed"><input type="hidden" name="back" value="/admin/sessions"></form>
<script>document.getElementById("f").submit()</script>`, target)
		}))
		t.Cleanup(evil.Close)
		x.open(evil.URL)
		x.eventually("the forged form to be refused", func() string {
			p, err := x.page()
			if err != nil {
				return err.Error()
			}
			if !strings.HasPrefix(p.Href, target) || !strings.Contains(p.Text, "security token") {
				return "the page is " + p.String()
			}
			return ""
		})
		if code, _ := adminCheck(t, n0, ids[2]); code != http.StatusOK {
			t.Fatalf("a forged form from another origin ended the session: %d", code)
		}
		// The administrator is still logged in, and the session still has
		// its destroy button.
		x.open(base + "/admin/sessions?email=" + url.QueryEscape(verified))
		adminWaitText(x, "tr#s-"+ids[2]+" td.state", "active")
		if n := adminEval[int](x, fmt.Sprintf(`document.querySelectorAll("#destroy-%s").length`, ids[2])); n != 1 {
			t.Fatal("the session has lost its destroy button")
		}
	})
}

// adminPut creates or updates a user through the private API.
func adminPut(t *testing.T, m *nodetest.Member, email string, body map[string]any) {
	t.Helper()
	if code := m.Call("PUT", "/v1/users/"+url.PathEscape(email), body, nil); code != http.StatusOK {
		t.Fatalf("PUT user %s: %d", email, code)
	}
}

// adminSession logs email in on m and returns the session id.
func adminSession(t *testing.T, m *nodetest.Member, email, ua string) string {
	t.Helper()
	var a struct {
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
		Synced bool `json:"synced"`
	}
	if code := m.Call("POST", "/v1/sessions", map[string]any{"email": email, "ip": "198.51.100.4", "user_agent": ua}, &a); code != http.StatusCreated || !a.Synced {
		t.Fatalf("log %s in on %s: %d, synced %v", email, m.Name(), code, a.Synced)
	}
	return a.Session.ID
}

// adminCheck is the session check of the private API.
func adminCheck(t *testing.T, m *nodetest.Member, id string) (int, string) {
	t.Helper()
	var a struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	code := m.Call("GET", "/v1/sessions/"+id, nil, &a)
	return code, a.Error.Code
}

// adminWaitStatus waits until m answers the check of session id with want.
func adminWaitStatus(t *testing.T, c *nodetest.Cluster, m *nodetest.Member, id string, want int) {
	t.Helper()
	eventually.DoneEvery(t, browserWaitTimeout, browserPollEvery, fmt.Sprintf("%s to answer %d for session %s", m.Name(), want, id[:12]), func() string {
		if code, _ := adminCheck(t, m, id); code != want {
			return fmt.Sprintf("it answers %d", code)
		}
		return ""
	})
}

// adminEval evaluates js in the tab.
func adminEval[T any](b *browserTab, js string) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.T.Fatalf("%s: evaluate %s: %v", b.Name, js, err)
	}
	return v
}

// adminWaitText waits until the element sel exists and its text holds want.
func adminWaitText(b *browserTab, sel, want string) {
	b.T.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return e ? e.innerText : "(no element " + %q + " in " + location.href + ": " + (document.body ? document.body.innerText.slice(0, 300) : "") + ")"; })()`, sel, sel)
	b.eventually(fmt.Sprintf("%s to show %q", sel, want), func() string {
		ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
		defer cancel()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			return err.Error()
		}
		if !strings.Contains(got, want) {
			return fmt.Sprintf("it shows %q", got)
		}
		return ""
	})
}

// adminSetValue sets the value of the input sel.
func adminSetValue(b *browserTab, sel, value string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(sel), value, chromedp.NodeVisible)); err != nil {
		b.T.Fatalf("%s: fill %s: %v", b.Name, sel, err)
	}
}

// adminClick clicks the element sel and waits for the navigation it causes.
func adminClick(b *browserTab, sel string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		b.T.Fatalf("%s: click %s: %v", b.Name, sel, err)
	}
}

// adminSubmitForm posts the page's destroy form of session id with its
// CSRF field removed ("remove") or replaced by a wrong value ("wrong"),
// by clicking its button, and waits for the answer to load.
func adminSubmitForm(b *browserTab, id, how string) {
	b.T.Helper()
	js := fmt.Sprintf(`(() => {
		const c = document.getElementById("destroy-%s").form.querySelector('input[name="csrf"]');
		if (%q === "remove") c.remove(); else c.value = "wrong" + c.value.slice(5);
		return true;
	})()`, id, how)
	if !adminEval[bool](b, js) {
		b.T.Fatal("the form was not altered")
	}
	adminClick(b, "#destroy-"+id)
}

// adminScreenshot saves a full-page PNG of the tab as dir/admin-name.png (dir
// "": none).
func adminScreenshot(b *browserTab, dir, name string) {
	b.T.Helper()
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.T.Fatalf("%s: screenshot: %v", b.Name, err)
	}
	path := filepath.Join(dir, "admin-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.T.Fatal(err)
	}
	b.T.Logf("screenshot %s", path)
}
