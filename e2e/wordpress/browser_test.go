//go:build unix

package wordpress

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/ussync/ussync/internal/browsertest"
	"github.com/ussync/ussync/internal/testenv"
)

const (
	stepTimeout = 30 * time.Second // one navigation or form submission
	waitTimeout = 20 * time.Second // a page to show what it should
)

// chromium returns the Chromium binary, or skips (fails under
// USSYNC_E2E_REQUIRE=1).
func chromium(t *testing.T) string {
	t.Helper()
	return testenv.Require(t, testenv.Chromium, "the WordPress plugin in a browser")
}

// tab is one tab of a headless Chromium with its own profile
// (internal/browsertest), which records the documents it requests.
type tab struct {
	*browsertest.Tab
	mu   sync.Mutex
	urls []string
}

// page is what a page shows (the plugin's test theme marks <body> with
// data-site, data-user, data-login and data-roles).
type page = browsertest.Page

// launch starts a headless Chromium on a fresh profile (third-party cookies
// blocked: Chromium's default), stopped at cleanup.
func launch(t *testing.T, name string) *tab {
	t.Helper()
	return launchWith(t, name, false)
}

// launchWith is launch, with third-party cookies allowed when thirdParty
// is set (browsertest.Options.ThirdPartyCookies).
func launchWith(t *testing.T, name string, thirdParty bool, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	b := &tab{Tab: browsertest.Launch(t, chromium(t), name, browsertest.Options{
		ThirdPartyCookies: thirdParty, Extra: extra,
		StepTimeout: stepTimeout, WaitTimeout: waitTimeout, PollEvery: pollEvery,
	})}
	err := chromedp.Listen(b.Ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Type == network.ResourceTypeDocument && e.Request != nil {
			b.mu.Lock()
			b.urls = append(b.urls, e.Request.URL)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// visited returns the document URLs requested since the last call.
func (b *tab) visited() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := b.urls
	b.urls = nil
	return u
}

// The suite's short names for browsertest.Tab's steps.

func (b *tab) open(u string)                               { b.T.Helper(); b.Open(u) }
func (b *tab) page() (page, error)                         { return b.Page() }
func (b *tab) text() string                                { b.T.Helper(); return b.Text() }
func (b *tab) eventually(what string, cond func() string)  { b.T.Helper(); b.Eventually(what, cond) }
func (b *tab) visit(u, user string) page                   { b.T.Helper(); return b.Visit(u, user) }
func (b *tab) shows(what string, ok func(page) bool) page  { b.T.Helper(); return b.Shows(what, ok) }
func (b *tab) cookies(u string) map[string]*network.Cookie { b.T.Helper(); return b.Cookies(u) }
func (b *tab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	b.Run(what, actions...)
}

// submit clicks sel (CSS) and waits for the navigation it causes to load.
func (b *tab) submit(sel string) {
	b.T.Helper()
	b.Submit("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// wpLogin logs in through site s's wp-login.php (redirect_to: the home
// page, so the test sees where the browser lands) and waits until the
// browser is back on s logged in.
func (b *tab) wpLogin(s *site, login, pass string, remember bool) {
	b.T.Helper()
	b.Open(s.url + "wp-login.php?redirect_to=" + s.url)
	// wp-login.php moves the focus back to #user_login ~200 ms after load:
	// values are set, not typed.
	b.Run("fill the login form", chromedp.WaitVisible(chromedp.ID("user_login")),
		chromedp.SetValue(chromedp.ID("user_login"), login),
		chromedp.SetValue(chromedp.ID("user_pass"), pass))
	if remember {
		b.Run("tick remember me", chromedp.Click(chromedp.ID("rememberme")))
	}
	b.submit("#wp-submit")
}

// keepDir returns a directory kept for the run (a Firefox profile, a
// script's output).
func keepDir(t *testing.T, name string) string {
	d := filepath.Join(t.TempDir(), name)
	os.MkdirAll(d, 0o700)
	return d
}

// eval runs a script in the page and returns its boolean result.
func (b *tab) eval(js string) bool {
	b.T.Helper()
	return browsertest.Eval[bool](b.Tab, js)
}

// setPassword fills the profile page's new password (the page must be
// wp-admin/profile.php).
func (b *tab) setPassword(pw string) {
	b.T.Helper()
	b.Run("open the new password field", chromedp.Click(chromedp.CSS("button.wp-generate-pw"), chromedp.NodeVisible))
	b.eval(fmt.Sprintf(`(() => {
		const p = document.getElementById("pass1");
		p.value = %q; p.dispatchEvent(new Event("input", {bubbles: true}));
		const p2 = document.getElementById("pass2"); if (p2) { p2.value = %q; }
		const w = document.querySelector(".pw-checkbox"); if (w) { w.checked = true; }
		return true;
	})()`, pw, pw))
}

// chromedpSet sets the value of the element with this id.
func chromedpSet(id, value string) chromedp.Action[chromedp.Void] {
	return chromedp.SetValue(chromedp.ID(id), value, chromedp.NodeVisible)
}

// chromedp_click clicks the first element matching a CSS selector.
func chromedp_click(css string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(css), chromedp.NodeVisible)
}

// chromedp_waitID waits for the element with this id to be visible.
func chromedp_waitID(id string) chromedp.Action[chromedp.Void] {
	return chromedp.WaitVisible(chromedp.ID(id))
}

// evalString runs a script and returns its string result.
func evalString(b *tab, js string) string {
	b.T.Helper()
	return browsertest.Eval[string](b.Tab, js)
}

// readFile returns a file's text, or "".
func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
