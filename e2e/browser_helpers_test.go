package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ussync/ussync/demo"
	"github.com/ussync/ussync/internal/browsertest"
	"github.com/ussync/ussync/internal/testenv"
)

// Deadlines of the browser tests: generous, for a loaded 2-core CI machine
// running the race detector; a healthy run meets them in a fraction.
const (
	browserStepTimeout = 20 * time.Second // one navigation, one form submission
	browserWaitTimeout = 15 * time.Second // a page to show what it should
	browserPollEvery   = 50 * time.Millisecond
)

// browserRequire returns the Chromium binary ($USSYNC_CHROMIUM first), or
// skips the test — loudly, since a skipped browser test proves nothing — or
// fails it under USSYNC_E2E_REQUIRE=1 (CI sets it; see internal/testenv).
func browserRequire(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser end-to-end test: starts Chromium and a demo of three nodes")
	}
	return testenv.Require(t, testenv.Chromium, "the browser hand-off (chain, lazy, iframe, replay, logout) and the admin page")
}

// browserLogWriter writes the demo's logs into the test log until the test
// is over (memberlist goroutines may log a moment after a node closed).
type browserLogWriter struct {
	mu  sync.RWMutex
	off bool
	t   *testing.T
}

func (w *browserLogWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.off {
		w.t.Logf("%s", bytes.TrimSpace(p))
	}
	return len(p), nil
}

// browserDemo starts the demo (three nodes, three sites on free ports) in a
// hand-off mode, closed at cleanup, and returns the sites' URLs.
func browserDemo(t *testing.T, mode string) []string {
	t.Helper()
	return browserDemoRun(t, mode).Sites()
}

// browserDemoRun is browserDemo's demo itself.
func browserDemoRun(t *testing.T, mode string) *demo.Demo {
	t.Helper()
	return browserDemoWith(t, demo.Options{Mode: mode})
}

// browserDemoWith is browserDemoRun with more options (its version and
// logger are the test's).
func browserDemoWith(t *testing.T, opts demo.Options) *demo.Demo {
	t.Helper()
	lw := &browserLogWriter{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts.Version = "e2e"
	opts.Logger = slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := demo.Run(ctx, opts)
	if err != nil {
		t.Fatalf("start the demo: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close the demo: %v", err)
		}
		lw.mu.Lock()
		lw.off = true
		lw.mu.Unlock()
	})
	return d
}

// browserTab is one tab of a headless Chromium with its own profile
// (internal/browsertest).
type browserTab struct{ *browsertest.Tab }

// browserLaunch starts a headless Chromium on a fresh profile, stopped at
// cleanup, and returns its first tab. thirdPartyCookies turns Chromium's
// default (third-party cookies blocked) off for this profile
// (browsertest.Options.ThirdPartyCookies); extra options are added to the
// launch (e.g. chromedp.Env for a HOME whose NSS database trusts a test CA).
func browserLaunch(t *testing.T, exe, name string, thirdPartyCookies bool, extra ...chromedp.ExecAllocatorOption) *browserTab {
	t.Helper()
	return &browserTab{browsertest.Launch(t, exe, name, browsertest.Options{
		ThirdPartyCookies: thirdPartyCookies, Extra: extra,
		StepTimeout: browserStepTimeout, WaitTimeout: browserWaitTimeout, PollEvery: browserPollEvery,
	})}
}

// newTab opens another tab of the same browser (same cookies).
func (b *browserTab) newTab() *browserTab {
	b.T.Helper()
	return &browserTab{b.NewTab(b.Name + " (tab 2)")}
}

// newProbeTab opens another tab of the same browser in which a script
// may fetch the site's pages: the demo sites' CSP (connect-src 'none')
// is bypassed in it, for browserHandoff's polling only.
func (b *browserTab) newProbeTab() *browserTab {
	b.T.Helper()
	p := &browserTab{b.NewTab(b.Name + " (probe tab)")}
	ctx, cancel := context.WithTimeout(p.Ctx, browserStepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true}); err != nil {
		b.T.Fatalf("%s: bypass CSP: %v", b.Name, err)
	}
	return p
}

// browserPage is what a demo page shows, read from the DOM.
type browserPage = browsertest.Page

// The suite's short names for browsertest.Tab's steps.

func (b *browserTab) open(u string) *network.Response  { b.T.Helper(); return b.Open(u) }
func (b *browserTab) page() (browserPage, error)       { return b.Page() }
func (b *browserTab) visit(u, user string) browserPage { b.T.Helper(); return b.Visit(u, user) }
func (b *browserTab) eventually(what string, cond func() string) {
	b.T.Helper()
	b.Eventually(what, cond)
}

// shows waits until the current page, without reloading it, is site's page
// (u) loaded and showing user ("" = anonymous).
func (b *browserTab) shows(u, user string) browserPage {
	b.T.Helper()
	return b.Shows(fmt.Sprintf("%s to show user %q", u, user), func(p browserPage) bool {
		return strings.HasPrefix(p.Href, u) && p.Site != "" && p.User == user
	})
}

// submit clicks the button with id and waits until the navigation it causes
// has loaded (through every redirect), returning the final document's
// response.
func (b *browserTab) submit(id string) *network.Response {
	b.T.Helper()
	return b.Submit("click #"+id, chromedp.Click(chromedp.ID(id), chromedp.NodeVisible))
}

// fillLogin types email into site u's login form (the page must be u's,
// anonymous).
func (b *browserTab) fillLogin(u, email string) {
	b.T.Helper()
	b.shows(u, "")
	ctx, cancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.ID("email"), email, chromedp.NodeVisible)); err != nil {
		b.T.Fatalf("%s: fill the login form of %s: %v", b.Name, u, err)
	}
}

// login logs in on site u with email (opening u first) and waits until the
// browser is back on u, logged in.
func (b *browserTab) login(u, email string) browserPage {
	b.T.Helper()
	b.open(u)
	b.fillLogin(u, email)
	b.submit("login")
	return b.shows(u, email)
}

// cookie returns the named cookie this browser holds for u, or nil.
func (b *browserTab) cookie(u, name string) *network.Cookie {
	b.T.Helper()
	return b.Cookies(u)[name]
}

// browserRecorder records the URLs a tab requests (every redirect included;
// not the requests of cross-site iframes, which run in their own target).
type browserRecorder struct {
	mu   sync.Mutex
	urls []string
}

// record starts recording the tab's requests.
func (b *browserTab) record() *browserRecorder {
	b.T.Helper()
	rec := &browserRecorder{}
	err := chromedp.Listen(b.Ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request != nil {
			rec.mu.Lock()
			rec.urls = append(rec.urls, e.Request.URL)
			rec.mu.Unlock()
		}
	})
	if err != nil {
		b.T.Fatalf("%s: listen to network events: %v", b.Name, err)
	}
	return rec
}

// matching returns the recorded URLs under prefix (a site URL and a path).
func (r *browserRecorder) matching(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, u := range r.urls {
		if strings.HasPrefix(u, prefix) {
			out = append(out, u)
		}
	}
	return out
}

func (r *browserRecorder) reset() {
	r.mu.Lock()
	r.urls = nil
	r.mu.Unlock()
}

// browserBareTicket turns a recorded sync URL (which may carry the rest of a
// chain and a next=) into its ticket alone: a replay of it must be refused
// with a 4xx, with no redirect to hide the answer.
func browserBareTicket(t *testing.T, syncURL string) string {
	t.Helper()
	u, err := url.Parse(syncURL)
	if err != nil {
		t.Fatalf("recorded sync URL %q: %v", syncURL, err)
	}
	tk := u.Query().Get("t")
	if tk == "" {
		t.Fatalf("recorded sync URL %q has no ticket", syncURL)
	}
	u.RawQuery = url.Values{"t": {tk}}.Encode()
	return u.String()
}

// body returns the text of the current document (a JSON error answer
// is shown as text).
func (b *browserTab) body() string {
	b.T.Helper()
	return b.Text()
}

// browserErrorCode is the "code" of a JSON error answer shown as the page.
func browserErrorCode(text string) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(strings.TrimSpace(text)), &e) == nil {
		return e.Error.Code
	}
	// A browser's navigation gets the node's refusal page, which shows
	// the code (node/step_page.go).
	if _, rest, ok := strings.Cut(text, "Error code: "); ok {
		if f := strings.Fields(rest); len(f) > 0 {
			return f[0]
		}
	}
	return ""
}

// browserHandoff logs email in on site a (tab a, anonymous on a) and
// measures the time from the login answer on a (the 303 of POST /login, seen
// by the browser) until site b's page, fetched by the same browser from tab
// pb (a probe tab open on b), shows the user. It returns once both tabs are done.
func browserHandoff(t *testing.T, a, pb *browserTab, siteA, siteB, email string) time.Duration {
	t.Helper()
	toB, _ := browserHandoffBoth(t, a, pb, siteA, siteB, email)
	return toB
}

// browserHandoffBoth is browserHandoff that also returns the time from the
// login answer until the browser asks for the page the hand-off returns to
// on A (the whole hand-off; zero in iframe mode, which returns nowhere).
func browserHandoffBoth(t *testing.T, a, pb *browserTab, siteA, siteB, email string) (toB, back time.Duration) {
	t.Helper()
	pb.shows(siteB, "")
	a.fillLogin(siteA, email)

	var mu sync.Mutex
	var answered, returned time.Time
	lctx, lcancel := context.WithCancel(a.Ctx)
	defer lcancel()
	err := chromedp.Listen(lctx, func(ev any) {
		e, ok := ev.(*network.EventRequestWillBeSent)
		if !ok || e.RedirectResponse == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch {
		case e.RedirectResponse.URL == siteA+"login" && answered.IsZero():
			answered = time.Now()
		case e.Request.URL == siteA && strings.Contains(e.RedirectResponse.URL, "/ussync/v1/") && returned.IsZero():
			returned = time.Now()
		}
	})
	if err != nil {
		t.Fatalf("listen to network events: %v", err)
	}

	// Site b's page, fetched again and again by the browser as a reload
	// would, until it shows the user: started before the login, so no
	// moment is missed.
	type result struct {
		at  time.Time
		err error
	}
	found := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(pb.Ctx, browserWaitTimeout)
		defer cancel()
		js := fmt.Sprintf(`(async () => {
			const want = 'data-user="' + %q + '"';
			for (;;) {
				const r = await fetch("/", {credentials: "same-origin", cache: "no-store"});
				const html = await r.text();
				if (html.includes(want)) { window.handoffPage = html; return true; }
				await new Promise(ok => setTimeout(ok, 5));
			}
		})()`, email)
		_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js, chromedp.EvalAwaitPromise))
		found <- result{time.Now(), err}
	}()

	a.submit("login")
	r := <-found
	if r.err != nil {
		t.Fatalf("%s never showed %s after the login on %s: %v", siteB, email, siteA, r.err)
	}
	a.shows(siteA, email)
	mu.Lock()
	defer mu.Unlock()
	if answered.IsZero() {
		t.Fatalf("the browser saw no answer to POST %slogin", siteA)
	}
	if !returned.IsZero() {
		back = max(0, returned.Sub(answered))
	}
	return max(0, r.at.Sub(answered)), back
}

// browserPercentile returns the p-th percentile (0..100) of ds.
func browserPercentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// in returns the tab for use by test t (a subtest must fail through its own
// T).
func (b *browserTab) in(t *testing.T) *browserTab {
	c := *b.Tab
	c.T = t
	return &browserTab{&c}
}

// handoffPage is the HTML of the first page of site b that showed the user
// during browserHandoff (in the probe tab pb).
func (b *browserTab) handoffPage() string {
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.handoffPage || ""`))
	if err != nil {
		b.T.Fatalf("read the hand-off page: %v", err)
	}
	return html
}
