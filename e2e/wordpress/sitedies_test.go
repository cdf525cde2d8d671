//go:build unix

package wordpress

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// TestWordPress_SiteDiesMidHandoff: C's web server stops after a login on
// A planned its chain, before the browser gets there (C's node checks its
// site every few seconds and needs two failures: it has not noticed). B's
// node probes C itself before its step sends the browser there, finds it
// dead and answers the step page, relayed by the plugin as it is, whose
// own probe of C fails too and skips it: the browser is back on A logged
// in, B logged in, and no navigation went to C (issue 13, item 1).
func TestWordPress_SiteDiesMidHandoff(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.defaults(t)
	const email = "dora@example.com"
	pass := tb.user(t, a, "dora", email, "subscriber")
	tb.verify(t, a, email)
	t.Cleanup(func() {
		if err := tb.serve(c); err != nil {
			t.Errorf("start C's web server again: %v", err)
		}
	})

	x := launch(t, "dora's browser")
	// The first step after the login's answer (A's bind, the chain planned
	// with C in it) is held until C's web server is stopped.
	var once sync.Once
	var stopped atomic.Bool
	err := chromedp.Listen(x.Ctx, func(ev any) {
		e, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		go func() {
			once.Do(func() {
				c.php.stop()
				stopped.Store(true)
			})
			chromedp.Call(x.Ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(x.Ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: a.url + "ussync/v1/bind?*"}}}); err != nil {
		t.Fatalf("intercept: %v", err)
	}
	x.visited()
	x.wpLogin(a, "dora", pass, false)
	x.shows("A's home page, logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	went := strings.Join(x.visited(), "\n")
	if !stopped.Load() {
		t.Fatalf("the login went through no chain:\n%s", went)
	}
	if strings.Contains(went, c.url) {
		t.Fatalf("the browser was sent to the stopped site C:\n%s", went)
	}
	if !strings.Contains(went, b.url+"ussync/v1/sync?") {
		t.Fatalf("the login did not go through B's sync endpoint:\n%s", went)
	}
	x.visit(b.url, email)
}
