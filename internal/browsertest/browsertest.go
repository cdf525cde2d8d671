// Package browsertest drives a headless Chromium for ussync's end-to-end
// tests (e2e/ with the demo's sites, e2e/wordpress/ with the WordPress
// plugin's): a fresh profile per browser, a tab that opens pages, clicks,
// reads what the page shows, and waits for it to show something, with
// deadlines that bound each step. Every failure names the browser ("alice's
// browser") and what it was doing. It is the one copy of what both suites
// did each on their own; what is particular to a suite (the demo's login
// form, wp-login.php) stays in the suite.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ussync/ussync/internal/eventually"
)

// Options are how a browser is launched and how long its tab waits. Zero
// durations take the defaults: generous, for a loaded 2-core CI machine
// running the race detector; a healthy run meets them in a fraction.
type Options struct {
	// ThirdPartyCookies turns Chromium's default (third-party cookies
	// blocked) off for this profile.
	//
	// Found empirically with Chromium 156: only the profile preference
	// profile.cookie_controls_mode = 0 (written into Default/Preferences
	// before launch) lets a cross-site iframe read and set its cookies; the
	// DevTools call Network.setCookieControls{enableThirdPartyCookieRestriction:
	// false} alone does not (it can only add the restriction).
	ThirdPartyCookies bool
	// Extra options are added to the launch (e.g. chromedp.Env for a HOME
	// whose NSS database trusts a test CA, a proxy server).
	Extra []chromedp.ExecAllocatorOption
	// StepTimeout bounds one navigation or form submission (20 s).
	StepTimeout time.Duration
	// WaitTimeout bounds a wait for a page to show what it should (15 s).
	WaitTimeout time.Duration
	// PollEvery is how often a wait reads the page again (50 ms).
	PollEvery time.Duration
}

func (o *Options) defaults() {
	if o.StepTimeout == 0 {
		o.StepTimeout = 20 * time.Second
	}
	if o.WaitTimeout == 0 {
		o.WaitTimeout = 15 * time.Second
	}
	if o.PollEvery == 0 {
		o.PollEvery = 50 * time.Millisecond
	}
}

// Tab is one tab of a headless Chromium. Its methods fail T (Fatalf) on
// an error, but Page, which a wait calls while a navigation may be
// replacing the document.
type Tab struct {
	T    testing.TB
	Name string          // for messages: "alice's browser"
	Ctx  context.Context // chromedp's context of the tab
	Opts Options
}

// Launch starts a headless Chromium (exe) on a fresh profile, stopped and
// removed at t's cleanup, and returns its first tab.
func Launch(t testing.TB, exe, name string, o Options) *Tab {
	t.Helper()
	o.defaults()
	dir, err := os.MkdirTemp("", "ussync-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	if o.ThirdPartyCookies {
		prefs := []byte(`{"profile":{"cookie_controls_mode":0}}`)
		if err := os.MkdirAll(filepath.Join(dir, "Default"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), prefs, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 1000),
	)
	opts = append(opts, o.Extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		acancel() // waits for the browser to exit
		os.RemoveAll(dir)
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return &Tab{T: t, Name: name, Ctx: ctx, Opts: o}
}

// NewTab opens another tab of the same browser (same cookies), named name.
func (b *Tab) NewTab(name string) *Tab {
	b.T.Helper()
	ctx, cancel := chromedp.NewContext(b.Ctx)
	b.T.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.T.Fatalf("%s: open a tab: %v", b.Name, err)
	}
	return &Tab{T: b.T, Name: name, Ctx: ctx, Opts: b.Opts}
}

// Open navigates to u and waits for the page to load (every redirect
// included), returning the document's response.
func (b *Tab) Open(u string) *network.Response {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Opts.StepTimeout)
	defer cancel()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		b.T.Fatalf("%s: open %s: %v", b.Name, u, err)
	}
	return resp
}

// Run runs chromedp actions within one step's deadline; what names them in
// a failure ("fill the login form").
func (b *Tab) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Opts.StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.T.Fatalf("%s: %s: %v", b.Name, what, err)
	}
}

// Submit runs click (a chromedp.Click) and waits until the navigation it
// causes has loaded, through every redirect, returning the final
// document's response; what names the click in a failure.
func (b *Tab) Submit(what string, click chromedp.Action[chromedp.Void]) *network.Response {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Opts.StepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, click)
	if err != nil {
		b.T.Fatalf("%s: %s: %v", b.Name, what, err)
	}
	return resp
}

// Cookies returns the cookies the browser holds for u, by name.
func (b *Tab) Cookies(u string) map[string]*network.Cookie {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
	if err != nil {
		b.T.Fatalf("%s: read cookies of %s: %v", b.Name, u, err)
	}
	out := make(map[string]*network.Cookie, len(res.Cookies))
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// Page is what a test site's page shows, read from the DOM: the demo's
// sites and the WordPress plugin's test theme both mark <body> with
// data-site and data-user (data-login and data-roles too on WordPress).
type Page struct {
	Href   string `json:"href"`
	Site   string `json:"site"`  // data-site: "" when not a test site's page
	User   string `json:"user"`  // data-user: "" when anonymous
	Login  string `json:"login"` // data-login
	Roles  string `json:"roles"` // data-roles
	Frames int    `json:"frames"`
	Ready  string `json:"ready"` // document.readyState
	Text   string `json:"text"`  // the visible text, white space folded, cut at 400 characters
	// Onward: the page is a hand-off's step page, whose script sends the
	// browser on by itself (docs/handoff.md, "A site that dies
	// mid-hand-off").
	Onward bool `json:"onward"`
}

func (p Page) String() string {
	return fmt.Sprintf("%s site=%q user=%q ready=%s text=%q", p.Href, p.Site, p.User, p.Ready, p.Text)
}

const pageJS = `(() => {
	const b = document.body;
	const d = (b && b.dataset) || {};
	return {
		href: location.href,
		site: d.site || "", user: d.user || "", login: d.login || "", roles: d.roles || "",
		frames: document.querySelectorAll("iframe.sync").length,
		ready: document.readyState,
		text: b ? b.innerText.replace(/\s+/g, " ").slice(0, 400) : "",
		onward: !!document.getElementById("onward"),
	};
})()`

// Page reads the current page. An error (a navigation replacing the
// document) is returned, not fatal.
func (b *Tab) Page() (Page, error) {
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[Page](pageJS))
}

// Text returns the visible text of the current page.
func (b *Tab) Text() string {
	b.T.Helper()
	p, err := b.Page()
	if err != nil {
		b.T.Fatalf("%s: read the page: %v", b.Name, err)
	}
	return p.Text
}

// Eventually polls cond until it returns "" or WaitTimeout passes, then
// fails with cond's last explanation (eventually.DoneEvery).
func (b *Tab) Eventually(what string, cond func() string) {
	b.T.Helper()
	eventually.DoneEvery(b.T, b.Opts.WaitTimeout, b.Opts.PollEvery, b.Name+": "+what, cond)
}

// Shows waits until the current page, without reloading it, has loaded and
// satisfies ok, and returns it.
func (b *Tab) Shows(what string, ok func(Page) bool) Page {
	b.T.Helper()
	var p Page
	b.Eventually(what, func() string {
		var err error
		if p, err = b.Page(); err != nil {
			return err.Error()
		}
		if p.Ready != "complete" || !ok(p) {
			return "the page is " + p.String()
		}
		return ""
	})
	return p
}

// Visit opens site u (again at each try) until it shows user ("" =
// anonymous): what a person does who looks at another tab and presses F5.
// Like that person, it leaves a page alone while it is still on its way:
// a hand-off's step page (which goes on by itself), a document still
// loading (a step page before its list is parsed looks like any page), or
// one being replaced; a reload then would abort the hand-off.
func (b *Tab) Visit(u, user string) Page {
	b.T.Helper()
	var p Page
	b.Eventually(fmt.Sprintf("%s to show user %q", u, user), func() string {
		switch cur, err := b.Page(); {
		case err != nil:
			return "the page is being replaced: " + err.Error()
		case cur.Onward:
			return "on a step page, which goes on by itself: " + cur.Href
		case cur.Ready != "complete":
			return "the page is still loading: " + cur.String()
		}
		b.Open(u)
		var err error
		if p, err = b.Page(); err != nil {
			return err.Error()
		}
		if !strings.HasPrefix(p.Href, u) || p.Site == "" || p.User != user {
			return "the page is " + p.String()
		}
		return ""
	})
	return p
}

// Eval runs a script in the page (awaiting a promise it returns) and
// returns its result as a T.
func Eval[T any](b *Tab, js string) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, b.Opts.StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.T.Fatalf("%s: script: %v", b.Name, err)
	}
	return v
}
