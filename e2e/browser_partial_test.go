package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
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
