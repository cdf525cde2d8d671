//go:build unix

package wordpress

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/ussync/ussync/internal/eventually"
)

// TestWordPress_Performance prints the figures of the issue, never asserts
// them (USSYNC_WP_PERF=1 runs it; it takes a few minutes):
//
//   - in Chromium, from the click on "Log In" on A until A's landing page
//     shows the user, then until B's page (opened next) shows them: p50 and
//     p90 of 20, in chain and lazy mode and with the plugin off;
//   - the cost of the session check on a logged-in page view: 300 views
//     of A's page from one client, each on a new connection (as ab's), in
//     each of six modes taking turns request by request: the plugin off;
//     on with its node's private API on loopback TCP, and on a Unix socket
//     (socketTwin), the check sent ahead as the plugin loads (the
//     default); and both again with the check made when WordPress asks
//     (USSYNC_CHECK_AHEAD false); and on with its node marked down, so
//     that it makes no call (what the plugin costs besides the check).
//     Turns cancel the drift of a shared machine's load, which rounds of
//     one mode at a time (ab's) did not: the difference of each view with
//     the plugin-off view of its turn is the figure.
//
// Each table says the load averages (/proc/loadavg) when it began and
// ended. The machine is shared and busy: the figures are indicative.
func TestWordPress_Performance(t *testing.T) {
	mode := os.Getenv("USSYNC_WP_PERF")
	if mode != "1" && mode != "page" {
		t.Skip("set USSYNC_WP_PERF=1 to measure (prints figures, asserts nothing); =page for the page-view cost alone")
	}
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	const email = "perf@example.com"
	pass := tb.user(t, a, "perf", email, "subscriber")
	tb.verify(t, a, email)
	const runs = 20
	x := launch(t, "the measuring browser")
	// Every site runs with WP_DEBUG off, as in production: PHP 8.2 logs
	// WordPress 6.1's own deprecations each time its HTTP library loads,
	// which costs more than what is measured.
	for _, s := range tb.sites {
		extra := filepath.Join(s.dir, "e2e-extra.php")
		if err := os.WriteFile(extra, []byte("<?php define('WP_DEBUG', false);\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(extra)
	}

	measure := func(mode string, plugin bool) (login, toB []time.Duration) {
		tb.defaults(t)
		if mode != "" {
			tb.settings(t, map[string]any{"mode": mode})
		}
		for _, s := range tb.sites {
			if plugin {
				tb.mustPHP(t, s, `activate_plugin('ussync/ussync.php'); return 1;`)
			} else {
				tb.mustPHP(t, s, `deactivate_plugins('ussync/ussync.php'); return 1;`)
			}
		}
		if plugin {
			// With the plugin off a site's health URL is WordPress's 404
			// (or a canonical redirect): its node reported it down, and the
			// others leave it out of their chains until its next check
			// passes. Measure once every node hands off to every site again.
			tb.waitHandoffs(t)
		}
		want := email
		for range runs {
			ctx, cancel := context.WithTimeout(x.Ctx, stepTimeout)
			if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
				t.Fatal(err)
			}
			cancel()
			x.open(a.url + "wp-login.php?redirect_to=" + url.QueryEscape(a.url))
			x.run("fill", chromedp.WaitVisible(chromedp.ID("user_login")), chromedpSet("user_login", "perf"), chromedpSet("user_pass", pass))
			t0 := time.Now()
			x.submit("#wp-submit")
			x.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == want })
			t1 := time.Now()
			wantB := want
			if !plugin {
				wantB = ""
			}
			x.visit(b.url, wantB)
			t2 := time.Now()
			login = append(login, t1.Sub(t0))
			toB = append(toB, t2.Sub(t0))
		}
		return login, toB
	}
	type row struct {
		name       string
		login, toB []time.Duration
	}
	var rows []row
	loginLoad := loadavg()
	for _, m := range []struct {
		name, mode string
		plugin     bool
	}{{"plugin off", "", false}, {"chain", "chain", true}, {"lazy", "lazy", true}} {
		if mode == "page" {
			break
		}
		l, bb := measure(m.mode, m.plugin)
		rows = append(rows, row{m.name, l, bb})
	}
	tb.defaults(t)
	for _, s := range tb.sites {
		tb.mustPHP(t, s, `activate_plugin('ussync/ussync.php'); return 1;`)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nlogin on A (Chromium, %d runs each; indicative: shared 2-core machine; load %s at the start, %s at the end)\n", runs, loginLoad, loadavg())
	fmt.Fprintf(&out, "%-11s %-28s %-28s\n", "", "click -> A shows the user", "click -> B's page shows them")
	for _, r := range rows {
		fmt.Fprintf(&out, "%-11s p50 %6s p90 %6s          p50 %6s p90 %6s\n", r.name,
			pct(r.login, 50), pct(r.login, 90), pct(r.toB, 50), pct(r.toB, 90))
	}

	t.Log(out.String())
	out.Reset()

	// The session check's cost on a logged-in page view (lazy mode: the
	// client's login leaves no chain pending for its next page view).
	tb.settings(t, map[string]any{"mode": "lazy"})
	defer tb.defaults(t)
	c := httpClient()
	resp, err := c.PostForm(a.url+"wp-login.php", url.Values{"log": {"perf"}, "pwd": {pass}, "testcookie": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(a.url)
	var cookies []string
	for _, ck := range c.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	cookie := strings.Join(cookies, "; ")
	twin := tb.socketTwin(t, a)
	modes := []struct{ name, header string }{
		{"plugin off", "off"},
		{"plugin on, TCP", "http://" + a.api},
		{"plugin on, socket", twin},
		{"TCP, not ahead", "noahead http://" + a.api},
		{"socket, not ahead", "noahead " + twin},
		{"no call", "nocall"},
	}
	const views = 300
	load0 := loadavg()
	times := make([][]time.Duration, len(modes))
	for i := range views + 10 {
		for j := range modes {
			m := j
			if i%2 == 1 {
				m = len(modes) - 1 - j // each mode as often first as last
			}
			d := pageView(t, a, cookie, modes[m].header, email)
			if i >= 10 { // the first ten turns warm PHP's caches
				times[m] = append(times[m], d)
			}
		}
	}
	fmt.Fprintf(&out, "\nlogged-in page view on A: %d in each mode, the modes in turns request by request, each on a new connection; p50, and p50 of the difference with the plugin off in the same turn (load %s at the start, %s at the end)\n", views, load0, loadavg())
	for m, ts := range times {
		fmt.Fprintf(&out, "%-18s p50 %6.2f ms  p90 %6.2f ms", modes[m].name, ms(pctD(ts, 50)), ms(pctD(ts, 90)))
		if m > 0 {
			diff := make([]time.Duration, len(ts))
			for i := range ts {
				diff[i] = ts[i] - times[0][i]
			}
			fmt.Fprintf(&out, "  %+.2f ms", ms(pctD(diff, 50)))
		}
		fmt.Fprintln(&out)
	}
	t.Log(out.String())
}

// socketTwin starts a second node of the cluster, its private API on a
// Unix socket (api.listen: unix:PATH), and returns the plugin's URL of it
// (unix:PATH). A node has one private listener: site A's own answers the
// page views measured over TCP, its twin, holding the same replicated
// sessions, those measured over a socket, so that both take turns in one
// run. Stopped at cleanup.
func (tb *testbed) socketTwin(t *testing.T, a *site) string {
	t.Helper()
	gp, _ := freePort(true)
	pp, _ := freePort(false)
	sock := filepath.Join(tb.dir, "twin-api.sock")
	n := &site{name: "site-a-twin", api: "unix:" + sock, gossip: fmt.Sprintf("127.0.0.1:%d", gp), public: fmt.Sprintf("127.0.0.1:%d", pp)}
	cfg := fmt.Sprintf("node:\n  name: %s\n  data_dir: %s\n  profile: local\nsite:\n  url: http://site-a-twin.localhost:1/\ngossip:\n  bind: %s\n  join: [%q]\n  secret_file: %s\napi:\n  listen: %s\n  token_file: %s\npublic:\n  listen: %s\nlog:\n  level: warn\n",
		n.name, filepath.Join(tb.dir, "node-"+n.name), n.gossip, a.gossip, filepath.Join(tb.dir, "secret"), n.api, filepath.Join(tb.dir, "api-token"), n.public)
	if err := tb.startNodeConfig(n, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.node.stop)
	return n.api
}

// pageView times one view of site s's home page with cookie, the plugin as
// mode says (X-E2E-Ussync, fixtures/e2e-mu.php), on a new connection (as
// ab does); the page must show the user.
func pageView(t *testing.T, s *site, cookie, mode, email string) time.Duration {
	t.Helper()
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/", s.port), nil)
	req.Host = strings.TrimSuffix(strings.TrimPrefix(s.url, "http://"), "/")
	req.Header.Set("Cookie", cookie)
	req.Header.Set("X-E2E-Ussync", mode)
	t0 := time.Now()
	resp, err := pageClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), `data-user="`+email+`"`) {
		t.Fatalf("mode %s: the measured page is not the logged-in page: %d %v", mode, resp.StatusCode, err)
	}
	return d
}

// pageClient measures page views: a new connection each, as ab's.
var pageClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func pctD(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadavg is the machine's load averages over 1, 5 and 15 minutes.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func pct(ds []time.Duration, p int) string {
	return pctD(ds, p).Round(time.Millisecond).String()
}

// waitHandoffs waits until every node hands browsers to every other site
// (client.MemberStatus.Handoff): their sites' last health checks passed.
func (tb *testbed) waitHandoffs(t *testing.T) {
	t.Helper()
	eventually.Done(t, waitTimeout*3, "every node to hand off to every site", func() string {
		for _, s := range tb.sites {
			var st struct {
				Members []struct {
					Name    string `json:"name"`
					Handoff bool   `json:"handoff"`
				} `json:"members"`
			}
			if err := tb.nodeGet(s, "/v1/status", &st); err != nil {
				return err.Error()
			}
			for _, m := range st.Members {
				if m.Name != s.name && !m.Handoff {
					return fmt.Sprintf("%s does not hand off to %s", s.name, m.Name)
				}
			}
		}
		return ""
	})
}
