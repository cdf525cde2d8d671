//go:build unix

package wordpress

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

const (
	stepTimeout = 30 * time.Second // one navigation or form submission
	waitTimeout = 20 * time.Second // a page to show what it should
)

// chromium returns the Chromium binary, or skips (fails under
// USSYNC_E2E_REQUIRE=1).
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("USSYNC_CHROMIUM"); p != "" {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	p := lookPaths("chromium", "chromium-browser", "google-chrome", "headless_shell")
	if p == "" {
		require(t, "no Chromium found (apt-get install chromium)")
	}
	return p
}

// tab is one tab of a headless Chromium with its own profile.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context
	mu   sync.Mutex
	urls []string
}

// launch starts a headless Chromium on a fresh profile (third-party cookies
// blocked: Chromium's default), stopped at cleanup.
func launch(t *testing.T, name string) *tab {
	t.Helper()
	return launchWith(t, name, false)
}

// launchWith is launch, with third-party cookies allowed when thirdParty
// is set: found with Chromium 156 (e2e/browser_helpers_test.go), only the
// profile preference profile.cookie_controls_mode = 0, written before the
// browser starts, lets a cross-site frame set its cookies.
func launchWith(t *testing.T, name string, thirdParty bool, extra ...chromedp.ExecAllocatorOption) *tab {
	t.Helper()
	exe := chromium(t)
	dir, err := os.MkdirTemp("", "ussync-wp-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	if thirdParty {
		os.MkdirAll(filepath.Join(dir, "Default"), 0o700)
		if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(`{"profile":{"cookie_controls_mode":0}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 1000),
	)
	opts = append(opts, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel()
		os.RemoveAll(dir)
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	b := &tab{t: t, name: name, ctx: ctx}
	err = chromedp.Listen(ctx, func(ev any) {
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

// open navigates to u and waits for the load (every redirect included).
func (b *tab) open(u string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		b.t.Fatalf("%s: open %s: %v", b.name, u, err)
	}
}

// page is what a page shows.
type page struct {
	Href  string `json:"href"`
	Site  string `json:"site"`
	User  string `json:"user"`
	Login string `json:"login"`
	Roles string `json:"roles"`
	Ready string `json:"ready"`
	Text  string `json:"text"`
	// Onward: the page is a hand-off's step page, whose script sends the
	// browser on by itself (docs/handoff.md, "A site that dies
	// mid-hand-off").
	Onward bool `json:"onward"`
}

func (p page) String() string {
	return fmt.Sprintf("%s site=%q user=%q text=%q", p.Href, p.Site, p.User, p.Text)
}

const pageJS = `(() => {
	const b = document.body;
	const d = (b && b.dataset) || {};
	return {href: location.href, site: d.site || "", user: d.user || "", login: d.login || "", roles: d.roles || "",
		ready: document.readyState, text: b ? b.innerText.replace(/\s+/g, " ").slice(0, 400) : "",
		onward: !!document.getElementById("onward")};
})()`

func (b *tab) page() (page, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[page](pageJS))
}

// eventually polls cond until it returns "" or the deadline passes.
func (b *tab) eventually(what string, cond func() string) {
	b.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: timed out waiting for %s: %s", b.name, what, why)
		}
		time.Sleep(pollEvery)
	}
}

// visit opens u (again at each try, as a person pressing F5 would) until
// its page shows user ("" = nobody) and returns the page.
func (b *tab) visit(u, user string) page {
	b.t.Helper()
	var p page
	b.eventually(fmt.Sprintf("%s to show %q", u, user), func() string {
		if cur, err := b.page(); err == nil && cur.Onward {
			return "on a step page, which goes on by itself: " + cur.Href // a reload now would abort it
		}
		b.open(u)
		var err error
		if p, err = b.page(); err != nil {
			return err.Error()
		}
		if !strings.HasPrefix(p.Href, u) || p.Site == "" || p.User != user {
			return "the page is " + p.String()
		}
		return ""
	})
	return p
}

// shows waits until the current page (without reloading) satisfies ok.
func (b *tab) shows(what string, ok func(page) bool) page {
	b.t.Helper()
	var p page
	b.eventually(what, func() string {
		var err error
		if p, err = b.page(); err != nil {
			return err.Error()
		}
		if p.Ready != "complete" || !ok(p) {
			return "the page is " + p.String()
		}
		return ""
	})
	return p
}

// run runs chromedp actions with the step deadline.
func (b *tab) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// submit clicks sel and waits for the navigation it causes to load.
func (b *tab) submit(sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		b.t.Fatalf("%s: click %s: %v", b.name, sel, err)
	}
}

// wpLogin logs in through site s's wp-login.php (redirect_to: the home
// page, so the test sees where the browser lands) and waits until the
// browser is back on s logged in.
func (b *tab) wpLogin(s *site, login, pass string, remember bool) {
	b.t.Helper()
	b.open(s.url + "wp-login.php?redirect_to=" + s.url)
	// wp-login.php moves the focus back to #user_login ~200 ms after load:
	// values are set, not typed.
	b.run("fill the login form", chromedp.WaitVisible(chromedp.ID("user_login")),
		chromedp.SetValue(chromedp.ID("user_login"), login),
		chromedp.SetValue(chromedp.ID("user_pass"), pass))
	if remember {
		b.run("tick remember me", chromedp.Click(chromedp.ID("rememberme")))
	}
	b.submit("#wp-submit")
}

// cookies returns the cookies the browser holds for u.
func (b *tab) cookies(u string) map[string]*network.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		b.t.Fatalf("%s: cookies of %s: %v", b.name, u, err)
	}
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// text returns the visible text of the current page.
func (b *tab) text() string {
	p, err := b.page()
	if err != nil {
		b.t.Fatalf("%s: read the page: %v", b.name, err)
	}
	return p.Text
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
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: script: %v", b.name, err)
	}
	return v
}

// setPassword fills the profile page's new password (the page must be
// wp-admin/profile.php).
func (b *tab) setPassword(pw string) {
	b.t.Helper()
	b.run("open the new password field", chromedp.Click(chromedp.CSS("button.wp-generate-pw"), chromedp.NodeVisible))
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
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: script: %v", b.name, err)
	}
	return v
}

// readFile returns a file's text, or "".
func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
