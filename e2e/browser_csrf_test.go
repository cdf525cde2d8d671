package e2e

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/ussync/ussync/client"
)

const browserAlan = "alan@example.com"

// TestBrowser_LoginCSRF is the login CSRF of issue 9 in real Chromium
// profiles (one allocator and one user-data dir each): Alan, the attacker,
// logs in and captures the hand-off's URLs (his browser stopped before it
// redeems anything); Grace, the victim, logged in in her own browser,
// opens them within the tickets' minute. Nothing happens to her: every
// site still shows Grace, and no site sets her a session of Alan's. A
// third browser, logged in nowhere, opens them too and is logged in
// nowhere. The tickets were not used up by these refused visits: Alan's
// own browser redeems them afterwards. The same for lazy mode's ticket.
func TestBrowser_LoginCSRF(t *testing.T) {
	exe := browserRequire(t)

	t.Run("chain", func(t *testing.T) {
		sites := browserDemo(t, "chain")
		a, b, c := sites[0], sites[1], sites[2]
		victim := browserLaunch(t, exe, "grace's browser", false)
		victim.login(b, browserGrace)
		victim.visit(a, browserGrace)
		victim.visit(c, browserGrace)
		refused := victim.refusals()
		stranger := browserLaunch(t, exe, "a stranger's browser", false)
		strangerRefused := stranger.refusals()

		attacker := browserLaunch(t, exe, "alan's browser", false)
		attacker.open(a)
		chainURL, ticketURL := attacker.captureHandoff(t, a, func() {
			attacker.fillLogin(a, browserAlan)
			attacker.click("login")
		})

		intact := func(t *testing.T) {
			t.Helper()
			for _, s := range []string{b, c, a} {
				victim.in(t).visit(s, browserGrace)
			}
		}
		t.Run("the login's chain URL", func(t *testing.T) {
			refused.reset()
			resp := victim.in(t).open(chainURL)
			if resp.Status != http.StatusForbidden || browserErrorCode(victim.in(t).body()) != "other_browser" {
				t.Fatalf("the chain URL in the victim's browser answered %d %q, want 403 other_browser", resp.Status, victim.in(t).body())
			}
			intact(t)
		})
		t.Run("the chain's ticket", func(t *testing.T) {
			refused.reset()
			victim.in(t).open(ticketURL)
			refused.await(victim.in(t), "other_browser other_browser") // on B and C
			victim.in(t).shows(a, browserGrace)                        // the way's end: A's page
			intact(t)
		})
		t.Run("a browser logged in nowhere", func(t *testing.T) {
			x := stranger.in(t)
			if resp := x.open(chainURL); resp.Status != http.StatusForbidden || browserErrorCode(x.body()) != "other_browser" {
				t.Fatalf("the chain URL in a stranger's browser answered %d %q, want 403 other_browser", resp.Status, x.body())
			}
			x.open(ticketURL)
			strangerRefused.await(x, "other_browser other_browser") // on B and C
			x.shows(a, "")
			for _, s := range []string{a, b, c} {
				x.visit(s, "")
				if ck := x.cookie(s, client.CookieName(s)); ck != nil {
					t.Errorf("%s set a session cookie in a stranger's browser", s)
				}
			}
		})
		t.Run("the ticket still works where it was made", func(t *testing.T) {
			x := attacker.in(t)
			x.open(ticketURL)
			x.shows(a, browserAlan) // the way's end, after the step pages
			x.visit(b, browserAlan)
			x.visit(c, browserAlan)
		})
	})

	t.Run("lazy", func(t *testing.T) {
		sites := browserDemo(t, "lazy")
		a, b := sites[0], sites[1]
		victim := browserLaunch(t, exe, "grace's browser", false)
		victim.login(b, browserGrace)
		refused := victim.refusals()
		stranger := browserLaunch(t, exe, "a stranger's browser", false)
		strangerRefused := stranger.refusals()

		attacker := browserLaunch(t, exe, "alan's browser", false)
		attacker.login(b, browserAlan)
		// A has no cookie: it asks B, which hands Alan's session back in a
		// ticket for A, bound to the nonce A set in Alan's browser.
		_, ticketURL := attacker.captureHandoff(t, "", func() { attacker.navigate(a) })
		victim.open(a) // Grace's session reaches A the lazy way first
		victim.shows(a, browserGrace)
		refused.reset()
		victim.open(ticketURL)
		if got := refused.codes(); strings.Join(got, " ") != "other_browser" {
			t.Fatalf("the ticket in the victim's browser: refusals %q, want other_browser", got)
		}
		victim.visit(a, browserGrace)
		stranger.open(ticketURL)
		if got := strangerRefused.codes(); strings.Join(got, " ") != "other_browser" {
			t.Fatalf("the ticket in a stranger's browser: refusals %q, want other_browser", got)
		}
		stranger.visit(a, "")
		if ck := stranger.cookie(a, client.CookieName(a)); ck != nil {
			t.Errorf("%s set a session cookie in a stranger's browser", a)
		}
		attacker.open(ticketURL)
		attacker.visit(a, browserAlan)
	})
}

// click clicks the button with id, without waiting for what follows.
func (b *browserTab) click(id string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID(id), chromedp.NodeVisible)); err != nil {
		b.T.Fatalf("%s: click #%s: %v", b.Name, id, err)
	}
}

// navigate starts loading u, without waiting for it to load.
func (b *browserTab) navigate(u string) {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.Navigate, page.NavigateParams{URL: u}); err != nil {
		b.T.Fatalf("%s: navigate to %s: %v", b.Name, u, err)
	}
}

// captureHandoff runs act (a login, a visit) and captures what a person
// could copy out of this browser: the first URL the login on site sent the
// browser to (its Location; not when site is ""), and the first request
// for a ticket's sync step, which is blocked so that this browser redeems
// nothing.
func (b *browserTab) captureHandoff(t *testing.T, site string, act func()) (first, ticket string) {
	t.Helper()
	ctx, cancel := context.WithCancel(b.Ctx)
	defer cancel()
	var mu sync.Mutex
	got := make(chan string, 1)
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if site != "" && e.RedirectResponse != nil && e.RedirectResponse.URL == site+"login" {
				mu.Lock()
				first = e.Request.URL
				mu.Unlock()
			}
		case *fetch.EventRequestPaused:
			go func() {
				select {
				case got <- e.Request.URL:
				default:
				}
				chromedp.Call(b.Ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: e.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
			}()
		}
	})
	if err != nil {
		t.Fatalf("%s: listen to network events: %v", b.Name, err)
	}
	sctx, scancel := context.WithTimeout(b.Ctx, browserStepTimeout)
	defer scancel()
	if _, err := chromedp.Call(sctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/ussync/v1/sync?*"}}}); err != nil {
		t.Fatalf("%s: intercept: %v", b.Name, err)
	}
	act()
	select {
	case ticket = <-got:
	case <-sctx.Done():
		t.Fatalf("%s: no ticket was handed to this browser", b.Name)
	}
	if _, err := chromedp.Call(sctx, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatalf("%s: stop intercepting: %v", b.Name, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if site != "" && first == "" {
		t.Fatalf("%s: the login on %s redirected nowhere", b.Name, site)
	}
	return first, ticket
}

// browserRefusals records the X-Ussync-Refused of every redirect a tab
// follows: the refusals of tickets whose browser was sent on.
type browserRefusals struct {
	mu  sync.Mutex
	got []string
}

func (b *browserTab) refusals() *browserRefusals {
	b.T.Helper()
	r := &browserRefusals{}
	// A refused step sends the browser on with a redirect, or with a step
	// page (a document) when it goes to another site.
	record := func(h network.Headers) {
		for k, v := range h {
			if strings.EqualFold(k, "X-Ussync-Refused") {
				r.mu.Lock()
				r.got = append(r.got, v.(string))
				r.mu.Unlock()
			}
		}
	}
	err := chromedp.Listen(b.Ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			if e.RedirectResponse != nil {
				record(e.RedirectResponse.Headers)
			}
		case *network.EventResponseReceived:
			if e.Type == network.ResourceTypeDocument && e.Response != nil && e.Response.Status < 300 {
				record(e.Response.Headers)
			}
		}
	})
	if err != nil {
		b.T.Fatalf("%s: listen to network events: %v", b.Name, err)
	}
	return r
}

func (r *browserRefusals) codes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// await waits until the refusals recorded are want (codes joined by a
// space): a step page sends the browser on after its page has loaded.
func (r *browserRefusals) await(b *browserTab, want string) {
	b.T.Helper()
	b.eventually("refusals "+want, func() string {
		if got := strings.Join(r.codes(), " "); got != want {
			return "refusals " + got
		}
		return ""
	})
}

func (r *browserRefusals) reset() {
	r.mu.Lock()
	r.got = nil
	r.mu.Unlock()
}
