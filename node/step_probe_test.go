package node_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// frontServer is a member site's web server on 127.0.0.1: what the other
// nodes reach at the site's URL. It records every request it gets.
type frontServer struct {
	srv  *httptest.Server
	port int
	// proxy, once set, is the node's public listener it forwards to
	// (ussync's reverse-proxy setup).
	proxy atomic.Pointer[httputil.ReverseProxy]
	// answer, when the proxy is unset: a status, or 0 to hang until the
	// client gives up.
	answer int

	mu  sync.Mutex
	got []*http.Request
}

func newFrontServer(t *testing.T, answer int) *frontServer {
	f := &frontServer{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.got = append(f.got, r.Clone(r.Context()))
		f.mu.Unlock()
		if p := f.proxy.Load(); p != nil {
			p.ServeHTTP(w, r)
			return
		}
		if f.answer == 0 {
			<-r.Context().Done() // the client went away
			return
		}
		w.WriteHeader(f.answer)
	}))
	t.Cleanup(f.srv.Close)
	f.port = f.srv.Listener.Addr().(*net.TCPAddr).Port
	return f
}

func (f *frontServer) requests() []*http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*http.Request(nil), f.got...)
}

// probeCount is member m's ussync_handoff_probes_total{result}.
func probeCount(t *testing.T, m *nodetest.Member, result string) float64 {
	t.Helper()
	return scrapeMetrics(t, m).values[`ussync_handoff_probes_total{result="`+result+`"}`]
}

// TestPublic_StepProbesNextSite (issue 12): before a step sends a
// browser's navigation to another site, the node itself requests that
// site's health URL; a site that answers gets the plain 303, and only one
// that does not (a 502 from its proxy, a refused connection, no answer
// within the probe's timeout) gets the step page, where the browser
// probes for itself. The node requests nothing but the member sites'
// <site url>ussync/v1/healthz, without cookies or redirects.
//
// Five sites, each behind its own web server on 127.0.0.1: n0's and n1's
// forward to their nodes, n2's answers 502 (its node is gone), n3's
// never answers (a machine that drops packets), n4's is stopped (the
// port refuses). Each site's answer is the same all along, so the
// probes' answers, kept for a second, are too.
func TestPublic_StepProbesNextSite(t *testing.T) {
	fronts := []*frontServer{
		newFrontServer(t, 0), newFrontServer(t, 0), // proxies, below
		newFrontServer(t, http.StatusBadGateway),
		newFrontServer(t, 0),
		newFrontServer(t, 0),
	}
	fronts[4].srv.Close() // stopped: its port refuses
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		cfg.Site.URL = fmt.Sprintf("http://site-%d.localhost:%d/", i, fronts[i].port)
	}
	c.Start(len(fronts))
	for _, i := range []int{0, 1} {
		fronts[i].proxy.Store(httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: c.Members[i].PublicAddr()}))
	}
	register(t, c, 0, "ann@example.com")
	site := func(i int) string { return c.Members[i].SiteURL() }
	members := map[string]string{}
	for _, m := range c.Members {
		members[strings.TrimSuffix(m.SiteURL(), "/")] = m.Name()
	}
	ret := site(0) + "account"
	l := loginSync(t, c.Members[0], "ann@example.com", ret)
	b := newBrowser(t, c, nil)
	b.lax = true // the step pages' CSP is checked by checkStepPage
	b.setSession(site(0), l.Token)

	// step opens loc as a browser's navigation and returns the step page,
	// failing unless the answer is one; the page's links must start with
	// the sites of want, in order.
	page := func(loc string, want ...int) stepPage {
		t.Helper()
		r := b.get(loc, navigate...)
		p := readStepPage(t, r)
		checkStepPage(t, p, members)
		for j, i := range want {
			if j >= len(p.links) || !strings.HasPrefix(p.links[j], site(i)) {
				t.Fatalf("%s: the page goes to %q, want the sites %v first", b.step(r), p.links, want)
			}
		}
		return p
	}
	// redirect opens loc as a browser's navigation and returns its 303's
	// Location, failing unless the answer is one.
	redirect := func(loc string) string {
		t.Helper()
		r := b.get(loc, navigate...)
		if r.Status != http.StatusSeeOther {
			t.Fatalf("%s: %d %v, want a 303\n%s", b.step(r), r.Status, r.Header, r.Body)
		}
		return r.Header.Get("Location")
	}

	// n0 (the origin's bind) probes n1, which answers: a 303 to n1.
	loc := redirect(l.Sync.Chain)
	if !strings.HasPrefix(loc, site(1)+"ussync/v1/bind?") {
		t.Fatalf("n0 sent the browser to %q, want n1's bind", loc)
	}
	if n := probeCount(t, c.Members[0], "up"); n < 1 {
		t.Errorf("n0 counted %v probes up", n)
	}
	// n1 probes n2, whose proxy answers 502: the page, from n2 on.
	p := page(loc, 2, 3, 4, 0)
	if n := probeCount(t, c.Members[1], "down"); n < 1 {
		t.Errorf("n1 counted %v probes down", n)
	}
	// n2 itself (its node runs) probes n3, which never answers: the step
	// is answered all the same, once the probe gives up (the front keeps
	// the request until the client goes away, so a node that waited for
	// it would never answer: the browser's client fails after 10 s).
	p = page(p.links[0], 3, 4, 0)
	if n := probeCount(t, c.Members[2], "timeout"); n < 1 {
		t.Errorf("n2 counted %v probes timed out", n)
	}
	// n3 probes n4, stopped: the page, n4 then home.
	p = page(p.links[0], 4, 0)
	if n := probeCount(t, c.Members[3], "unreachable"); n < 1 {
		t.Errorf("n3 counted %v probes unreachable", n)
	}
	// The browser's own probe of n4 fails: it goes home, to n0's chain,
	// which seals the ticket for n1, n2 and n3 and probes n1 again.
	loc = redirect(p.links[1])
	if !strings.HasPrefix(loc, site(1)+"ussync/v1/sync?") {
		t.Fatalf("n0's chain sent the browser to %q, want n1's sync", loc)
	}
	p = page(loc, 2, 3, 0)
	p = page(p.links[0], 3, 0)
	// n3's sync has one place left to go (home): a 303, never probed.
	if loc = redirect(p.links[0]); loc != ret {
		t.Fatalf("the chain ended at %q, want %q", loc, ret)
	}
	for i, m := range c.Members[1:4] {
		if ck := b.cookie(site(i+1), "ussync_session"); ck == nil || sessionOn(t, m, ck.Value) != l.Session.ID {
			t.Errorf("%s did not get the session", m.Name())
		}
	}

	// Every request a site's web server got from the nodes (the test's
	// browser goes to the nodes' listeners directly) is a probe: a GET of
	// the health URL under the member's site URL, no query, no cookie.
	probed := 0
	for i, f := range fronts {
		for _, r := range f.requests() {
			probed++
			if r.Method != http.MethodGet || r.URL.Path != "/ussync/v1/healthz" || r.URL.RawQuery != "" ||
				r.Header.Get("Cookie") != "" || r.Header.Get("User-Agent") != "ussync-step-probe" {
				t.Errorf("n%d's site got %s %s %v", i, r.Method, r.URL, r.Header)
			}
		}
	}
	if probed == 0 {
		t.Error("no site's web server was probed")
	}
}
