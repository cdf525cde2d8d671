package node_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ussync/ussync/node/nodetest"
)

// navigate are the headers of a browser's top-level navigation.
var navigate = []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}

// stepPage is a step page as a browser would read it: where it may go, in
// order, each with the URL it probes first ("" for none), and the CSP.
type stepPage struct {
	links, probes []string
	csp           string
	script        string
}

var (
	onwardLink   = regexp.MustCompile(`<li><a href="([^"]*)"(?: data-probe="([^"]*)")?>`)
	onwardScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
)

// readStepPage reads r as a step page, failing t when it is not one.
func readStepPage(t *testing.T, r *response) stepPage {
	t.Helper()
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || r.Header.Get("Location") != "" {
		t.Fatalf("%s: %d %v, want a step page", r.URL, r.Status, r.Header)
	}
	body := string(r.Body)
	p := stepPage{csp: r.Header.Get("Content-Security-Policy")}
	for _, m := range onwardLink.FindAllStringSubmatch(body, -1) {
		p.links = append(p.links, html.UnescapeString(m[1]))
		p.probes = append(p.probes, html.UnescapeString(m[2]))
	}
	if m := onwardScript.FindStringSubmatch(body); m != nil {
		p.script = m[1]
	}
	if len(p.links) < 2 || p.script == "" {
		t.Fatalf("%s: a step page without its links or script:\n%s", r.URL, body)
	}
	return p
}

// TestPublic_StepPageSkipsSitesThatDied (issue 13, item 1): a site that
// dies after a login's chain was planned, before its own node's check
// noticed, does not strand the browser. A browser's navigation to a step
// that sends it to another site gets a small page that probes the site
// first and lists where to go when it does not answer: the rest of the
// route, then home. Only member sites are listed and probed; the page
// runs only its own script (CSP hash), fetches only the health URLs it
// probes, and is served to browsers only (an API client and an iframe
// keep the 303).
func TestPublic_StepPageSkipsSitesThatDied(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	register(t, c, 0, "ann@example.com")
	ret := "http://site-0.localhost/account"
	members := map[string]string{}
	for _, m := range c.Members {
		members[strings.TrimSuffix(m.SiteURL(), "/")] = m.Name()
	}

	t.Run("the chain skips a site its page finds dead", func(t *testing.T) {
		l := loginSync(t, c.Members[0], "ann@example.com", ret)
		b := newBrowser(t, c, nil)
		b.lax = true // the step pages' CSP is checked below
		b.setSession("http://site-0.localhost/", l.Token)
		// n1's web server "stops" now: the page's probe of it fails, so
		// the browser takes the next link each time n1 is first.
		var way []string
		pages := 0
		for loc, i := l.Sync.Chain, 0; strings.Contains(loc, "/ussync/v1/"); i++ {
			if i > 12 {
				t.Fatalf("the hand-off does not end: %v", way)
			}
			r := b.get(loc, navigate...)
			way = append(way, b.step(r))
			switch r.Status {
			case http.StatusSeeOther:
				loc = r.Header.Get("Location")
				continue
			case http.StatusOK:
			default:
				t.Fatalf("%s: %d %s", b.step(r), r.Status, r.Body)
			}
			pages++
			p := readStepPage(t, r)
			checkStepPage(t, p, members)
			loc = ""
			for j, link := range p.links {
				if !strings.HasPrefix(link, "http://site-1.localhost/") {
					loc = link
					break
				}
				if p.probes[j] != "http://site-1.localhost/ussync/v1/healthz" {
					t.Errorf("%s probes n1 at %q", b.step(r), p.probes[j])
				}
			}
		}
		if got := strings.Join(way, ", "); got != "n0 bind, n2 bind, n0 chain, n2 sync" {
			t.Errorf("the chain went %s", got)
		}
		if pages < 2 {
			t.Errorf("%d step pages on the way %v", pages, way)
		}
		if ck := b.cookie("http://site-2.localhost/", "ussync_session"); ck == nil || sessionOn(t, c.Members[2], ck.Value) != l.Session.ID {
			t.Error("n2 did not get the session")
		}
		if ck := b.cookie("http://site-1.localhost/", "ussync_session"); ck != nil {
			t.Error("n1 got a cookie it was never visited for")
		}
	})

	t.Run("lazy mode's round skips a site that died", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		b.lax = true
		r := b.get("http://site-1.localhost/ussync/v1/hop?return="+url.QueryEscape("http://site-1.localhost/"), navigate...)
		p := readStepPage(t, r)
		checkStepPage(t, p, members)
		// The other sites to ask, then home: hop/done on this site, which
		// is answering now (no probe).
		if len(p.links) != 3 || !strings.HasPrefix(p.links[0], "http://site-0.localhost/ussync/v1/hop/ask?") ||
			!strings.HasPrefix(p.links[1], "http://site-2.localhost/ussync/v1/hop/ask?") ||
			!strings.HasPrefix(p.links[2], "http://site-1.localhost/ussync/v1/hop/done?") || p.probes[2] != "" {
			t.Fatalf("the hop's page: %q %q", p.links, p.probes)
		}
		if r.cookie("ussync_nonce") == nil {
			t.Error("the hop's page sets no nonce")
		}
	})

	t.Run("API clients and iframes keep the 303", func(t *testing.T) {
		l := loginSync(t, c.Members[0], "ann@example.com", ret)
		b := newBrowser(t, c, nil)
		b.setSession("http://site-0.localhost/", l.Token)
		if r := b.get(l.Sync.Chain); r.Status != http.StatusSeeOther {
			t.Errorf("an API client: %d", r.Status)
		}
		if r := b.get(l.Sync.URLs[0].URL+"&m=iframe", navigate...); r.Status != http.StatusSeeOther {
			t.Errorf("an iframe: %d", r.Status)
		}
	})

	t.Run("a hostile next is refused or escaped, never followed elsewhere", func(t *testing.T) {
		l := loginSync(t, c.Members[0], "ann@example.com", ret)
		b := newBrowser(t, c, nil)
		b.lax = true
		b.setSession("http://site-0.localhost/", l.Token)
		var sync string
		for loc := l.Sync.Chain; sync == ""; {
			r := b.get(loc) // an API client: 303s
			if loc = r.Header.Get("Location"); strings.Contains(loc, "/ussync/v1/sync?") {
				sync = loc
			} else if r.Status != http.StatusSeeOther {
				t.Fatalf("%s: %d", b.step(r), r.Status)
			}
		}
		u, _ := url.Parse(sync)
		for _, next := range []string{"https://evil.example/", "http://site-0.localhost.evil.example/", "javascript:alert(1)", "//evil.example/"} {
			q := u.Query()
			q.Set("next", next)
			v := *u
			v.RawQuery = q.Encode()
			if r := b.get(v.String(), navigate...); r.Status != http.StatusBadRequest || r.Header.Get("X-Ussync-Refused") != "bad_redirect" {
				t.Errorf("next %q: %d %v", next, r.Status, r.Header)
			}
		}
		// Markup in a member URL is escaped in the page, never markup.
		q := u.Query()
		q.Set("next", `http://site-0.localhost/x"><img/src=x/onerror=alert(1)>`)
		v := *u
		v.RawQuery = q.Encode()
		r := b.get(v.String(), navigate...)
		if strings.Contains(string(r.Body), "<img") {
			t.Fatalf("the page holds the markup of next: %s", r.Body)
		}
		p := readStepPage(t, r)
		checkStepPage(t, p, members)
		if last := p.links[len(p.links)-1]; !strings.HasPrefix(last, "http://site-0.localhost/x%22%3E%3Cimg") {
			t.Errorf("the page ends on %q", last)
		}
	})

	t.Run("the health URL answers the member sites' pages only", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		r := b.get("http://site-1.localhost/ussync/v1/healthz", "Origin", "http://site-0.localhost")
		if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "http://site-0.localhost" ||
			r.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("from a member: %d %v", r.Status, r.Header)
		}
		r = b.get("http://site-1.localhost/ussync/v1/healthz", "Origin", "https://evil.example")
		if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("from another origin: %d %v", r.Status, r.Header)
		}
		// A browser whose requests carry extra headers (an extension, a
		// test's) preflights the probe.
		pre := []string{"Origin", "http://site-0.localhost", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "x-ussync-user,x-extra"}
		r = b.do("OPTIONS", "http://site-1.localhost/ussync/v1/healthz", pre...)
		if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "http://site-0.localhost" ||
			r.Header.Get("Access-Control-Allow-Headers") != "x-ussync-user,x-extra" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("a member's preflight: %d %v", r.Status, r.Header)
		}
		pre[1] = "https://evil.example"
		if r = b.do("OPTIONS", "http://site-1.localhost/ussync/v1/healthz", pre...); r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("another origin's preflight: %d %v", r.Status, r.Header)
		}
		pre[1], pre[5] = "http://site-0.localhost", "x-a;b=<c>"
		if r = b.do("OPTIONS", "http://site-1.localhost/ussync/v1/healthz", pre...); r.Header.Get("Access-Control-Allow-Headers") != "" {
			t.Errorf("a preflight asking for no header list: %v", r.Header)
		}
	})
}

// checkStepPage checks a step page's security: every link under a member
// site, every probe its site's health URL, a CSP that allows the page's
// own script by hash, fetches to the probed origins only, and nothing
// unsafe.
func checkStepPage(t *testing.T, p stepPage, members map[string]string) {
	t.Helper()
	var origins []string
	for i, link := range p.links {
		u, err := url.Parse(link)
		if err != nil || members[u.Scheme+"://"+u.Host] == "" {
			t.Errorf("a step page links to %q, no member site", link)
			continue
		}
		if p.probes[i] == "" {
			continue
		}
		if p.probes[i] != u.Scheme+"://"+u.Host+"/ussync/v1/healthz" {
			t.Errorf("the link %q is probed at %q", link, p.probes[i])
		}
		if o := u.Scheme + "://" + u.Host; !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
	}
	sum := sha256.Sum256([]byte(p.script))
	hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	var connect []string
	for _, d := range strings.Split(p.csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 && f[0] == "connect-src" {
			connect = f[1:]
		}
	}
	slices.Sort(connect)
	slices.Sort(origins)
	if !strings.HasPrefix(p.csp, "default-src 'none'; script-src "+hash+"; style-src 'sha256-") || strings.Contains(p.csp, "unsafe") ||
		!strings.Contains(p.csp, "base-uri 'none'") || !strings.Contains(p.csp, "form-action 'none'") || !strings.Contains(p.csp, "frame-ancestors ") ||
		!slices.Equal(connect, origins) {
		t.Errorf("a step page's CSP %q (script %s, probed origins %v)", p.csp, hash, origins)
	}
}
