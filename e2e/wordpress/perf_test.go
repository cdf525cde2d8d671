//go:build unix

package wordpress

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
//   - the cost of the session check on a logged-in page view: ab against
//     PHP's server, one connection, in turns with the plugin off, on with
//     its node's private API on loopback TCP, and on with it on a Unix
//     socket (setAPI).
//
// Each table says the load averages (/proc/loadavg) when it began and
// ended.
// The machine is shared and busy: the figures are indicative.
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
	if ab := lookPaths("ab"); ab != "" {
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
		target := fmt.Sprintf("http://127.0.0.1:%d/", a.port)
		if !strings.Contains(getWith(t, target, a, strings.Join(cookies, "; ")), `data-user="`+email+`"`) {
			t.Fatal("the measured page is not the logged-in page")
		}
		load0 := loadavg()
		t.Cleanup(func() { tb.setAPI(t, a, false) })
		modes := []string{"plugin off", "plugin on, TCP", "plugin on, socket"}
		rounds := make([][]float64, len(modes))
		for i := range 3 * len(modes) {
			m := i % len(modes)
			tb.setAPI(t, a, m == 2)
			if m == 0 {
				tb.mustPHP(t, a, `deactivate_plugins('ussync/ussync.php'); return 1;`)
			} else {
				tb.mustPHP(t, a, `activate_plugin('ussync/ussync.php'); return 1;`)
				if !strings.Contains(getWith(t, target, a, strings.Join(cookies, "; ")), `data-user="`+email+`"`) {
					t.Fatalf("%s: the measured page is not the logged-in page", modes[m])
				}
			}
			rounds[m] = append(rounds[m], abP50(t, ab, target, a, strings.Join(cookies, "; ")))
		}
		tb.setAPI(t, a, false)
		tb.mustPHP(t, a, `activate_plugin('ussync/ussync.php'); return 1;`)
		fmt.Fprintf(&out, "\nlogged-in page view on A (ab, 1 connection, 200 requests, 3 rounds each in turns, median of the rounds' means; load %s at the start, %s at the end)\n", load0, loadavg())
		for _, r := range rounds {
			slices.Sort(r)
		}
		for m, r := range rounds {
			fmt.Fprintf(&out, "%-18s %.2f ms (rounds %v)", modes[m], r[1], r)
			if m > 0 {
				fmt.Fprintf(&out, "  %+.2f ms", r[1]-rounds[0][1])
			}
			fmt.Fprintln(&out)
		}
	}
	t.Log(out.String())
}

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

// getWith fetches a site's page with cookies.
func getWith(t *testing.T, target string, s *site, cookie string) string {
	req, _ := http.NewRequest("GET", target, nil)
	req.Host = strings.TrimSuffix(strings.TrimPrefix(s.url, "http://"), "/")
	req.Header.Set("Cookie", cookie)
	resp, err := httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

var (
	reAbP50  = regexp.MustCompile(`(?m)^\s+50%\s+(\d+)`)
	reAbMean = regexp.MustCompile(`Time per request:\s+([0-9.]+) \[ms\] \(mean\)`)
)

// abP50 runs ab against a site's page with cookies and returns its mean
// time per request (ms, to the hundredth; ab's percentiles are whole ms).
func abP50(t *testing.T, ab, target string, s *site, cookie string) float64 {
	t.Helper()
	host := strings.TrimSuffix(strings.TrimPrefix(s.url, "http://"), "/")
	// Warm up: PHP's opcache, WordPress's caches.
	for range 5 {
		req, _ := http.NewRequest("GET", target, nil)
		req.Host = host
		req.Header.Set("Cookie", cookie)
		if resp, err := httpClient().Do(req); err == nil {
			resp.Body.Close()
		}
	}
	out, err := exec.Command(ab, "-q", "-n", "200", "-c", "1", "-H", "Host: "+host, "-H", "Cookie: "+cookie, target).CombinedOutput()
	if err != nil {
		t.Fatalf("ab: %v: %s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx responses") {
		t.Fatalf("ab saw answers other than the page: %s", out)
	}
	m := reAbMean.FindStringSubmatch(string(out))
	if m == nil || reAbP50.FindStringSubmatch(string(out)) == nil {
		t.Fatalf("ab printed no p50 or mean: %s", out)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func pct(ds []time.Duration, p int) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))].Round(time.Millisecond).String()
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
