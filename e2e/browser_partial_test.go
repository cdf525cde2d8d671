package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/ussync/ussync/demo"
)

// TestBrowser_SiteDown: one site's web server is stopped (its node runs
// on). A login on A must not send the browser there: the chain skips the
// site whose own node reports it down, the browser comes back to A logged
// in, and B, which answers, is logged in too (issue 13, item 1).
func TestBrowser_SiteDown(t *testing.T) {
	exe := browserRequire(t)
	d := browserDemoRun(t, "chain")
	sites := d.Sites()
	a, b, c := sites[0], sites[1], sites[2]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.StopSite(ctx, 2); err != nil {
		t.Fatalf("stop site C: %v", err)
	}
	ada := browserLaunch(t, exe, "ada's browser", false)
	// A's node learns from C's node that C's site does not answer.
	ada.eventually("A's node to leave C out of its hand-offs", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := d.Status(ctx, 0)
		if err != nil {
			return err.Error()
		}
		for _, m := range st.Members {
			if m.SiteURL == c {
				if m.Handoff || m.SiteState != "down" {
					return fmt.Sprintf("A sees C %+v", m)
				}
				return ""
			}
		}
		return "A does not list C"
	})

	rec := ada.record()
	x := ada.in(t)
	// login waits until the browser is back on A, logged in: a chain sent
	// to C would end on the browser's error page there.
	x.login(a, browserAda)
	if got := rec.matching(c); len(got) != 0 {
		t.Fatalf("the login chain went to the stopped site C: %q", got)
	}
	if got := rec.matching(b + "ussync/v1/sync?"); len(got) != 1 {
		t.Fatalf("the login chain visited B's sync step %d times, want once: %q", len(got), rec.matching(""))
	}
	x.visit(b, browserAda)
}

// TestBrowser_SiteDiesMidHandoff: C's web server stops after the login's
// chain was planned, before the browser gets there and before C's node
// notices (its check runs every five minutes here). Each step probes the
// next site from its node first, and answers a step page only when that
// fails; the page probes again from the browser before it sends the
// browser on: the chain skips C, the browser is back on A logged in, and
// B, which answers, is logged in (issue 13, item 1).
func TestBrowser_SiteDiesMidHandoff(t *testing.T) {
	exe := browserRequire(t)
	d := browserDemoWith(t, demo.Options{Mode: "chain", SiteHealthInterval: 5 * time.Minute})
	sites := d.Sites()
	a, b, c := sites[0], sites[1], sites[2]
	ada := browserLaunch(t, exe, "ada's browser", false)

	// The first request after the login's answer (the chain, planned with
	// C in it) is held until C's web server is stopped.
	ctx, cancel := context.WithCancel(ada.Ctx)
	defer cancel()
	stopped := make(chan error, 1)
	var once sync.Once
	err := chromedp.Listen(ctx, func(ev any) {
		e, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		go func() {
			once.Do(func() {
				sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer scancel()
				stopped <- d.StopSite(sctx, 2)
			})
			chromedp.Call(ada.Ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
		}()
	})
	if err != nil {
		t.Fatalf("listen to network events: %v", err)
	}
	sctx, scancel := context.WithTimeout(ada.Ctx, browserStepTimeout)
	defer scancel()
	if _, err := chromedp.Call(sctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: a + "ussync/v1/bind?*"}}}); err != nil {
		t.Fatalf("intercept: %v", err)
	}

	rec := ada.record()
	x := ada.in(t)
	// login waits until the browser is back on A, logged in: a step that
	// sent it to C would leave it on the browser's error page there.
	x.login(a, browserAda)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("stop site C: %v", err)
		}
	default:
		t.Fatal("the login went through no chain: C was never stopped")
	}
	if _, err := chromedp.Call(sctx, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatalf("stop intercepting: %v", err)
	}
	if got := rec.matching(c + "ussync/v1/healthz"); len(got) == 0 {
		t.Errorf("no step page probed C: %q", rec.matching(""))
	}
	if got := slices.DeleteFunc(rec.matching(c), func(u string) bool { return strings.HasPrefix(u, c+"ussync/v1/healthz") }); len(got) != 0 {
		t.Fatalf("the browser was sent to the stopped site C: %q", got)
	}
	if got := rec.matching(b + "ussync/v1/sync?"); len(got) != 1 {
		t.Fatalf("the chain visited B's sync step %d times, want once: %q", len(got), rec.matching(""))
	}
	// The nodes' site checks had not noticed: the step pages did the
	// skipping.
	st, err := d.Status(sctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.SiteURL == c && !m.Handoff {
			t.Errorf("A's node already knew C was down (%+v): the test proves nothing", m)
		}
	}
	x.visit(b, browserAda)
}
