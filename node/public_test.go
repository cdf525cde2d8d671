package node_test

import (
	"bytes"
	"compress/flate"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// syncLogin is the answer of POST /v1/sessions with its hand-off links.
type syncLogin struct {
	Session sessionJSON `json:"session"`
	Token   string      `json:"token"`
	Synced  bool        `json:"synced"`
	Sync    struct {
		URLs []struct {
			Site string `json:"site"`
			URL  string `json:"url"`
		} `json:"urls"`
		Chain string `json:"chain"`
	} `json:"sync"`
}

// loginSync logs email in on m (ip 192.0.2.1) and returns the answer.
func loginSync(t *testing.T, m *nodetest.Member, email, returnTo string) syncLogin {
	t.Helper()
	body := map[string]any{"email": email, "ip": "192.0.2.1", "user_agent": "test"}
	if returnTo != "" {
		body["return_to"] = returnTo
	}
	var a syncLogin
	if code, raw := m.CallRaw("POST", "/v1/sessions", body); code != http.StatusCreated || json.Unmarshal(raw, &a) != nil {
		t.Fatalf("login %s on %s: %d %s", email, m.Name(), code, raw)
	}
	return a
}

// browser sends requests meant for a member's site URL to that member's
// public listener (site hosts are never resolved), without following
// redirects: the test follows each Location itself (follow). It keeps the
// cookies each site sets, by host and path, as a browser does (Secure and
// SameSite are not enforced: the tests check those attributes themselves).
type browser struct {
	t      *testing.T
	c      *nodetest.Cluster
	client *http.Client
	jar    map[string]map[string]*http.Cookie // host -> path + " " + name -> cookie
	// noCookies makes a browser that keeps no cookie at all.
	noCookies bool
	// lax skips the check of each answer's security headers: their frame
	// ancestors follow the live members, which change while a test kills
	// or wipes nodes (and flap on a loaded machine).
	lax bool
}

func newBrowser(t *testing.T, c *nodetest.Cluster, roots *x509.CertPool) *browser {
	return &browser{t: t, c: c, jar: map[string]map[string]*http.Cookie{}, client: &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// member is the member whose site URL holds raw (the longest match: sites
// may share a host in sub-folders).
func (b *browser) member(raw string) *nodetest.Member {
	b.t.Helper()
	var best *nodetest.Member
	for _, m := range b.c.Members {
		if strings.HasPrefix(raw, m.SiteURL()) && (best == nil || len(m.SiteURL()) > len(best.SiteURL())) {
			best = m
		}
	}
	if best == nil {
		b.t.Fatalf("%.80s is under no member's site URL", raw)
	}
	return best
}

// keep stores the cookies an answer from u set.
func (b *browser) keep(u *url.URL, cs []*http.Cookie) {
	if b.noCookies {
		return
	}
	for _, c := range cs {
		path := c.Path
		if path == "" {
			path = "/"
		}
		byHost := b.jar[u.Hostname()]
		if byHost == nil {
			byHost = map[string]*http.Cookie{}
			b.jar[u.Hostname()] = byHost
		}
		if c.MaxAge < 0 || c.Value == "" {
			delete(byHost, path+" "+c.Name)
			continue
		}
		kept := *c
		kept.Path = path
		byHost[path+" "+c.Name] = &kept
	}
}

// cookies are the cookies the browser sends to u (longest path first).
func (b *browser) cookies(u *url.URL) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range b.jar[u.Hostname()] {
		if strings.HasPrefix(u.Path, c.Path) || u.Path+"/" == c.Path {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(x, y *http.Cookie) int { return len(y.Path) - len(x.Path) })
	return out
}

// cookie is the cookie name the browser holds for the site at siteURL (its
// path or a longer one), or nil.
func (b *browser) cookie(siteURL, name string) *http.Cookie {
	u, _ := url.Parse(siteURL)
	for _, c := range b.jar[u.Hostname()] {
		if c.Name == name && strings.HasPrefix(c.Path, u.Path) {
			return c
		}
	}
	return nil
}

// setSession sets the site's session cookie, as its backend does at login
// (from the login answer's token).
func (b *browser) setSession(siteURL, token string) {
	u, _ := url.Parse(siteURL)
	b.keep(u, []*http.Cookie{{Name: client.CookieName(siteURL), Value: token, Path: u.Path}})
}

type response struct {
	URL    string
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) cookie(name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (r *response) errorCode() string {
	var e struct{ Error struct{ Code string } }
	json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// do sends method raw (a URL under a member site) to that member's public
// listener, with the cookies the browser holds for it; hdr is name, value
// pairs.
func (b *browser) do(method, raw string, hdr ...string) *response {
	b.t.Helper()
	m := b.member(raw)
	u, err := url.Parse(raw)
	if err != nil {
		b.t.Fatalf("parse %.80s: %v", raw, err)
	}
	to := *u
	to.Host = m.PublicAddr()
	req, err := http.NewRequest(method, to.String(), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	for _, c := range b.cookies(u) {
		req.AddCookie(c)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %.80s on %s: %v", method, raw, m.Name(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := &response{URL: raw, Status: resp.StatusCode, Header: resp.Header, Body: body}
	b.keep(u, resp.Cookies())
	if !b.lax {
		b.checkHeaders(m, r)
	}
	return r
}

func (b *browser) get(raw string, hdr ...string) *response { return b.do("GET", raw, hdr...) }

// step names a hand-off step of the browser's way: "n1 bind".
func (b *browser) step(r *response) string {
	u, _ := url.Parse(r.URL)
	m := b.member(r.URL)
	mu, _ := url.Parse(m.SiteURL())
	return m.Name() + " " + strings.TrimPrefix(u.Path, mu.Path+"ussync/v1/")
}

// follow goes from loc as a browser does through the hand-off's redirects
// (every Location under a member's <site>ussync/v1/), each request with
// hdr, and returns where it ends (the first Location that is no step; ""
// when an answer is no redirect) and every answer on the way.
func (b *browser) follow(loc string, hdr ...string) (string, []*response) {
	b.t.Helper()
	var way []*response
	for i := 0; i < 20; i++ {
		r := b.get(loc, hdr...)
		way = append(way, r)
		if r.Status != http.StatusSeeOther {
			return "", way
		}
		loc = r.Header.Get("Location")
		if !strings.Contains(loc, "/ussync/v1/") {
			return loc, way
		}
	}
	b.t.Fatalf("the hand-off from %.80s does not end", loc)
	return "", nil
}

// steps names the steps of a way: "n1 bind, n2 bind, n0 chain, …".
func (b *browser) steps(way []*response) string {
	var names []string
	for _, r := range way {
		names = append(names, b.step(r))
	}
	return strings.Join(names, ", ")
}

// refusals are the refusal codes met on a way (X-Ussync-Refused, or an
// error answer's code), in order.
func refusals(way []*response) []string {
	var out []string
	for _, r := range way {
		if c := r.Header.Get("X-Ussync-Refused"); c != "" {
			out = append(out, c)
		} else if r.Status >= 400 {
			out = append(out, r.errorCode())
		}
	}
	return out
}

// sessionOn is the session id a cookie token stands for on m (its session
// check), "" when it stands for no active session there.
func sessionOn(t *testing.T, m *nodetest.Member, token string) string {
	t.Helper()
	var a checkAnswer
	if code := m.Call("GET", "/v1/sessions/"+client.SessionID(token), nil, &a); code != http.StatusOK {
		return ""
	}
	return a.Session.ID
}

// handoffTicket runs the first pass of login l's hand-off to the site of
// member target in a fresh browser holding l's session on its origin
// (origin), and returns the ticket the origin made and the nonce the
// browser holds on the target: what a site that redeems tickets itself
// (POST /v1/tickets/redeem) is given by the browser.
func handoffTicket(t *testing.T, c *nodetest.Cluster, origin int, l syncLogin, target string) (ticket, nonce string) {
	t.Helper()
	b := newBrowser(t, c, nil)
	b.lax = true // a helper: the tests of the steps check the headers
	b.setSession(c.Members[origin].SiteURL(), l.Token)
	for _, u := range l.Sync.URLs {
		if u.Site != target {
			continue
		}
		loc := u.URL
		for i := 0; i < 5; i++ {
			r := b.get(loc)
			loc = r.Header.Get("Location")
			if r.Status != http.StatusSeeOther {
				t.Fatalf("the hand-off to %s stopped at %s: %d %s", target, b.step(r), r.Status, r.Body)
			}
			if strings.Contains(loc, "/ussync/v1/sync?") {
				q, _ := url.Parse(loc)
				var tm *nodetest.Member
				for _, m := range c.Members {
					if m.Name() == target {
						tm = m
					}
				}
				ck := b.cookie(tm.SiteURL(), "ussync_nonce")
				if ck == nil {
					t.Fatalf("%s set no nonce", target)
				}
				return q.Query().Get("t"), ck.Value
			}
		}
	}
	t.Fatalf("no hand-off to %s in %+v", target, l.Sync.URLs)
	return "", ""
}

// checkHeaders checks the security headers of every public answer; the
// frame ancestors are exactly the member sites' origins.
func (b *browser) checkHeaders(m *nodetest.Member, r *response) {
	b.t.Helper()
	var origins []string
	for _, o := range b.c.Members {
		u, _ := url.Parse(o.SiteURL())
		if o := u.Scheme + "://" + u.Host; !strings.Contains(strings.Join(origins, " "), o) {
			origins = append(origins, o)
		}
	}
	slices.Sort(origins)
	const csp = "default-src 'none'; frame-ancestors "
	got, ok := strings.CutPrefix(r.Header.Get("Content-Security-Policy"), csp)
	ancestors := strings.Fields(got)
	slices.Sort(ancestors)
	// The frame ancestors are the members the node sees live when it
	// answers: every cluster member when all are up. A member a loaded
	// machine's probes mark suspect for a moment may be missing (the
	// answer is then stricter, never looser); a site that is not a member
	// is never there, and the answering site always is.
	// TestPublic_FrameAncestorsAreTheMembers checks the whole list.
	self, _ := url.Parse(m.SiteURL())
	if !ok || !slices.Contains(ancestors, self.Scheme+"://"+self.Host) || slices.ContainsFunc(ancestors, func(a string) bool { return !slices.Contains(origins, a) }) {
		b.t.Errorf("%s answered Content-Security-Policy %q, want frame-ancestors %v", m.Name(), r.Header.Get("Content-Security-Policy"), origins)
	}
	want := map[string]string{
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"Cache-Control":          "no-store",
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			b.t.Errorf("%s answered %s %q, want %q", m.Name(), k, got, v)
		}
	}
}

// TestPublic_FrameAncestorsAreTheMembers: once every member sees every
// other, a public answer's frame ancestors are exactly the member sites'
// origins.
func TestPublic_FrameAncestorsAreTheMembers(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	c.WaitMembers(10 * time.Second)
	var want []string
	for _, m := range c.Members {
		u, _ := url.Parse(m.SiteURL())
		want = append(want, u.Scheme+"://"+u.Host)
	}
	slices.Sort(want)
	b := newBrowser(t, c, nil)
	for _, m := range c.Members {
		eventually.Done(t, 10*time.Second, m.Name()+"'s frame ancestors", func() string {
			r := b.get(m.SiteURL() + "ussync/v1/whoami")
			got, _ := strings.CutPrefix(r.Header.Get("Content-Security-Policy"), "default-src 'none'; frame-ancestors ")
			ancestors := strings.Fields(got)
			slices.Sort(ancestors)
			if !slices.Equal(ancestors, want) {
				return fmt.Sprintf("frame-ancestors %v, want %v", ancestors, want)
			}
			return ""
		})
	}
}

func cookieHeader(token string) []string { return []string{"Cookie", "ussync_session=" + token} }

func TestPublic_ChainAcrossCluster(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	register(t, c, 0, "ann@example.com") // only n0 is bound to ann's address
	b := newBrowser(t, c, nil)
	ret := "http://site-0.localhost/account?tab=1"
	l := loginSync(t, c.Members[0], "ann@example.com", ret)
	if len(l.Sync.URLs) != 2 || l.Sync.URLs[0].Site != "n1" || l.Sync.URLs[1].Site != "n2" || l.Sync.Chain == "" {
		t.Fatalf("sync %+v", l.Sync)
	}
	b.setSession("http://site-0.localhost/", l.Token) // as n0's site does at login
	var way []*response

	if !t.Run("two passes through each other site, then back", func(t *testing.T) {
		var end string
		end, way = b.follow(l.Sync.Chain)
		// The chain starts on the origin (its step page can skip a site
		// that died since the login: step_onward.go).
		if got := b.steps(way); got != "n0 bind, n1 bind, n2 bind, n0 chain, n1 sync, n2 sync" || end != ret {
			t.Fatalf("the chain went %s and ended at %q", got, end)
		}
		if r := refusals(way); len(r) != 0 {
			t.Fatalf("refused on the way: %v", r)
		}
		for _, r := range way[:3] { // first pass: a nonce, no session
			ck := r.cookie("ussync_nonce")
			if ck == nil || !ck.HttpOnly || ck.Path != "/ussync/v1/" || ck.SameSite != http.SameSiteLaxMode || ck.Secure ||
				ck.MaxAge < 60 || ck.MaxAge > 300 || r.cookie("ussync_session") != nil {
				t.Errorf("%s set %q", b.step(r), r.Header.Values("Set-Cookie"))
			}
		}
		tokens := map[string]bool{l.Token: true}
		for i, r := range way[4:] {
			m := c.Members[i+1]
			ck := r.cookie("ussync_session")
			if ck == nil || !ck.HttpOnly || ck.Path != "/" || ck.SameSite != http.SameSiteLaxMode || ck.Secure ||
				ck.MaxAge < int((13*24*time.Hour).Seconds()) {
				t.Fatalf("%s cookie %q", m.Name(), r.Header.Values("Set-Cookie"))
			}
			// Each site's own token: it stands for the session there, and
			// nowhere else.
			if tokens[ck.Value] {
				t.Errorf("%s set a token another site uses", m.Name())
			}
			tokens[ck.Value] = true
			for _, o := range c.Members {
				want := ""
				if o == m {
					want = l.Session.ID
				}
				if got := sessionOn(t, o, ck.Value); got != want {
					t.Errorf("%s's token on %s stands for %q, want %q", m.Name(), o.Name(), got, want)
				}
			}
		}
		// The browser completed the hand-off: n1 and n2 are bound now, on
		// every node (the binding travels in the user's record).
		c.WaitFor(5*time.Second, "ann bound to n1 and n2 on every node", func() bool {
			for _, m := range c.Members {
				if u, err := m.Store().User("ann@example.com"); err != nil || !u.BoundTo("n1") || !u.BoundTo("n2") {
					return false
				}
			}
			return true
		})
	}) {
		// Every part below follows the way this one took, and reads the
		// cookies it set (it panicked on a nil cookie instead of saying so).
		t.FailNow()
	}
	onN1 := b.cookie("http://site-1.localhost/", "ussync_session").Value

	// Every member of the route opens the chain ticket (and any member can:
	// it holds the cluster secret). It learns the session's id, which every
	// member holds anyway, and no value that works as a cookie anywhere
	// (issue 9, item 8).
	t.Run("the chain ticket carries no cookie value", func(t *testing.T) {
		next, err := url.Parse(way[3].Header.Get("Location"))
		if err != nil || next.Query().Get("t") == "" {
			t.Fatalf("the chain step sent the browser to %q", way[3].Header.Get("Location"))
		}
		kr, err := crypto.ParseKeyring(c.Secret + "\n")
		if err != nil {
			t.Fatal(err)
		}
		tk, err := kr.OpenTicket(next.Query().Get("t"), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		payload := tk.Payload
		if len(payload) > 0 && payload[0] == 0x01 { // compressed (node/tickets.go)
			if payload, err = io.ReadAll(flate.NewReader(bytes.NewReader(payload[1:]))); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(tk.Route, []string{"n1", "n2"}) || tk.SessionID != l.Session.ID || tk.Token != "" {
			t.Fatalf("chain ticket %v, token %t", tk, tk.Token != "")
		}
		for _, v := range []string{l.Token, onN1, b.cookie("http://site-2.localhost/", "ussync_session").Value} {
			if bytes.Contains(payload, []byte(v)) {
				t.Fatalf("the chain ticket's payload holds a cookie value: %s", payload)
			}
		}
	})

	t.Run("whoami with CORS", func(t *testing.T) {
		r := b.get("http://site-1.localhost/ussync/v1/whoami", "Origin", "http://site-2.localhost")
		var who struct {
			Email   string
			Session sessionJSON
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &who) != nil || who.Email != "ann@example.com" || who.Session.ID != l.Session.ID {
			t.Fatalf("whoami: %d %s", r.Status, r.Body)
		}
		if r.Header.Get("Access-Control-Allow-Origin") != "http://site-2.localhost" || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("member origin: %v", r.Header)
		}
		r = b.get("http://site-1.localhost/ussync/v1/whoami", "Origin", "https://evil.example")
		if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("foreign origin: %d %v", r.Status, r.Header)
		}
		r = b.do("OPTIONS", "http://site-1.localhost/ussync/v1/whoami", "Origin", "http://site-0.localhost", "Access-Control-Request-Method", "GET")
		if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != "http://site-0.localhost" {
			t.Errorf("member preflight: %d %v", r.Status, r.Header)
		}
		r = b.do("OPTIONS", "http://site-1.localhost/ussync/v1/whoami", "Origin", "https://evil.example", "Access-Control-Request-Method", "GET")
		if r.Status != http.StatusForbidden || r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("foreign preflight: %d %v", r.Status, r.Header)
		}
		// n1's token is no cookie on n2.
		if r := newBrowser(t, c, nil).get("http://site-2.localhost/ussync/v1/whoami", cookieHeader(onN1)...); r.Status != http.StatusUnauthorized {
			t.Errorf("n1's token on n2: %d", r.Status)
		}
	})

	t.Run("forward auth", func(t *testing.T) {
		r := b.get("http://site-2.localhost/ussync/v1/auth")
		if r.Status != http.StatusOK || r.Header.Get("X-Ussync-Email") != "ann@example.com" || r.Header.Get("X-Ussync-Session") != l.Session.ID {
			t.Errorf("auth: %d %v", r.Status, r.Header)
		}
		if r := newBrowser(t, c, nil).get("http://site-2.localhost/ussync/v1/auth"); r.Status != http.StatusUnauthorized || r.Header.Get("X-Ussync-Email") != "" {
			t.Errorf("auth without a cookie: %d", r.Status)
		}
	})

	t.Run("a replayed chain sets nothing but still comes back", func(t *testing.T) {
		end, again := b.follow(way[4].URL) // n1's sync, the rest of the chain
		if got := refusals(again); !slices.Equal(got, []string{"ticket_replayed", "ticket_replayed"}) || end != ret {
			t.Fatalf("replay: refusals %v, ended at %q", got, end)
		}
		for _, r := range again {
			if len(r.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("%s set %q", b.step(r), r.Header.Values("Set-Cookie"))
			}
		}
		if b.cookie("http://site-1.localhost/", "ussync_session").Value != onN1 {
			t.Error("a replay changed n1's cookie")
		}
	})

	t.Run("an iframe's link", func(t *testing.T) {
		// It starts on the origin, same-site with the page that frames it
		// (its session cookie is sent there), which sets a nonce of its
		// own for the chain step after the cross-site hop.
		end, way := b.follow(l.Sync.URLs[1].URL + "&m=iframe")
		if got := b.steps(way); got != "n0 bind, n2 bind, n0 chain, n2 sync" || end != "" {
			t.Fatalf("went %s, ended at %q", got, end)
		}
		last := way[len(way)-1]
		ck := last.cookie("ussync_session")
		if last.Status != http.StatusNoContent || ck == nil || ck.SameSite != http.SameSiteNoneMode || !ck.Secure {
			t.Errorf("the iframe's sync: %d %q", last.Status, last.Header.Values("Set-Cookie"))
		}
		for _, r := range way[:2] {
			if n := r.cookie("ussync_nonce"); n == nil || n.SameSite != http.SameSiteNoneMode || !n.Secure {
				t.Errorf("%s's nonce: %q", b.step(r), r.Header.Values("Set-Cookie"))
			}
		}
		// Without the session on the origin, it goes nowhere.
		if r := newBrowser(t, c, nil).get(l.Sync.URLs[0].URL + "&m=iframe"); r.Status != http.StatusForbidden || r.errorCode() != "other_browser" {
			t.Errorf("an iframe's link in another browser: %d %s", r.Status, r.Body)
		}
	})

	t.Run("refusals set no cookie", func(t *testing.T) {
		l := loginSync(t, c.Members[0], "ann@example.com", ret) // fresh links
		forN1, forN2 := l.Sync.URLs[0].URL, l.Sync.URLs[1].URL
		// n1's first pass presented to n2.
		wrong := strings.Replace(forN1, "site-0.localhost", "site-2.localhost", 1)
		if r := b.get(wrong); r.Status != http.StatusForbidden || r.errorCode() != "ticket_wrong_target" || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("wrong target: %d %s", r.Status, r.Body)
		}
		if r := b.get(strings.Replace(forN2, "h=", "h=x", 1)); r.Status != http.StatusBadRequest || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("a damaged bind state: %d %s", r.Status, r.Body)
		}
		// A bind state is no ticket, and a ticket is no bind state.
		st, _ := url.Parse(forN2)
		if r := b.get("http://site-2.localhost/ussync/v1/sync?t=" + st.Query().Get("h")); r.Status != http.StatusBadRequest || r.errorCode() != "ticket_malformed" {
			t.Errorf("a bind state redeemed: %d %s", r.Status, r.Body)
		}
		tk := strings.TrimPrefix(way[3].URL, "http://site-1.localhost/ussync/v1/sync?")
		q, _ := url.ParseQuery(tk)
		if r := b.get("http://site-1.localhost/ussync/v1/bind?h=" + url.QueryEscape(q.Get("t"))); r.Status != http.StatusBadRequest || r.errorCode() != "ticket_malformed" {
			t.Errorf("a ticket as a bind state: %d %s", r.Status, r.Body)
		}
	})
}

// TestPublic_HandoffBoundToBrowser is the login CSRF of issue 9 over HTTP:
// a hand-off URL its own user captured (a chain's first pass, its second,
// a lazy hop's ticket) does nothing in another browser, and a hand-off
// never replaces another user's active session. (The same in two real
// Chromium profiles: e2e TestBrowser_LoginCSRF.)
func TestPublic_HandoffBoundToBrowser(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "mallory@example.com")
	registerEverywhere(t, c, 0, "ann@example.com")
	ret := "http://site-0.localhost/"

	// The attacker logs in on n0 and stops his own browser at each pass.
	attacker := newBrowser(t, c, nil)
	l := loginSync(t, c.Members[0], "mallory@example.com", ret)
	attacker.setSession(ret, l.Token)
	firstPass := l.Sync.Chain
	var secondPass string
	for loc := firstPass; secondPass == ""; {
		r := attacker.get(loc)
		if loc = r.Header.Get("Location"); strings.Contains(loc, "/ussync/v1/sync?") {
			secondPass = loc
		}
	}

	// The victim is logged in as ann on n1.
	victim := newBrowser(t, c, nil)
	va := loginSync(t, c.Members[1], "ann@example.com", "")
	victim.setSession("http://site-1.localhost/", va.Token)
	intact := func(t *testing.T) {
		t.Helper()
		r := victim.get("http://site-1.localhost/ussync/v1/whoami")
		if !strings.Contains(string(r.Body), `"email":"ann@example.com"`) {
			t.Errorf("the victim on n1 is now %d %s", r.Status, r.Body)
		}
		for _, s := range []string{"http://site-0.localhost/", "http://site-2.localhost/"} {
			if ck := victim.cookie(s, "ussync_session"); ck != nil {
				t.Errorf("the victim got a session cookie on %s", s)
			}
		}
	}

	t.Run("the first pass, in another browser", func(t *testing.T) {
		// The login's link starts on the origin, which checks the session
		// at once.
		_, way := victim.follow(firstPass)
		last := way[len(way)-1]
		if victim.steps(way) != "n0 bind" || last.Status != http.StatusForbidden || last.errorCode() != "other_browser" {
			t.Fatalf("went %s, ended with %d %s", victim.steps(way), last.Status, last.Body)
		}
		intact(t)
	})
	t.Run("the first pass after its origin, in another browser", func(t *testing.T) {
		// Captured after the origin's check, the state names the origin's
		// nonce in the attacker's browser, which the victim's lacks.
		r := attacker.get(firstPass)
		if r.Status != http.StatusSeeOther {
			t.Fatalf("the origin's bind: %d %s", r.Status, r.Body)
		}
		_, way := victim.follow(r.Header.Get("Location"))
		last := way[len(way)-1]
		if victim.step(last) != "n0 chain" || last.Status != http.StatusForbidden || last.errorCode() != "other_browser" {
			t.Fatalf("went %s, ended with %d %s", victim.steps(way), last.Status, last.Body)
		}
		intact(t)
	})
	t.Run("the second pass, in another browser", func(t *testing.T) {
		end, way := victim.follow(secondPass)
		if got := refusals(way); !slices.Equal(got, []string{"other_browser", "other_browser"}) || end != ret {
			t.Fatalf("refusals %v, ended at %q", got, end)
		}
		intact(t)
		// Refused in the wrong browser, the ticket is not used up: it still
		// works in the one that logged in.
		end, way = attacker.follow(secondPass)
		if r := refusals(way); len(r) != 0 || end != ret {
			t.Fatalf("the attacker's own browser: refusals %v, ended at %q", r, end)
		}
	})
	t.Run("an iframe's link after its origin, in another browser", func(t *testing.T) {
		// The attacker's browser passes the origin's check of an iframe's
		// link; the URL it is sent on with names his origin nonce.
		l := loginSync(t, c.Members[0], "mallory@example.com", "")
		attacker.setSession(ret, l.Token)
		r := attacker.get(l.Sync.URLs[0].URL + "&m=iframe")
		next := r.Header.Get("Location")
		if r.Status != http.StatusSeeOther || !strings.Contains(next, "/ussync/v1/bind?") {
			t.Fatalf("the origin's bind: %d %s", r.Status, r.Body)
		}
		_, way := victim.follow(next)
		last := way[len(way)-1]
		if victim.step(last) != "n0 chain" || last.Status != http.StatusForbidden || last.errorCode() != "other_browser" {
			t.Fatalf("went %s, ended with %d %s", victim.steps(way), last.Status, last.Body)
		}
		intact(t)
	})
	t.Run("a lazy hop's ticket, in another browser", func(t *testing.T) {
		// The attacker has a session on n2 now; n1 asks for it.
		other := newBrowser(t, c, nil)
		other.keep(&url.URL{Host: "site-2.localhost"}, []*http.Cookie{attacker.cookie("http://site-2.localhost/", "ussync_session")})
		var ticketURL string
		for loc := "http://site-1.localhost/ussync/v1/hop?return=" + url.QueryEscape("http://site-1.localhost/"); ticketURL == ""; {
			r := other.get(loc)
			if r.Status != http.StatusSeeOther {
				t.Fatalf("%s: %d %s", other.step(r), r.Status, r.Body)
			}
			if loc = r.Header.Get("Location"); strings.Contains(loc, "/ussync/v1/sync?") {
				ticketURL = loc
			}
		}
		end, way := victim.follow(ticketURL)
		if got := refusals(way); !slices.Equal(got, []string{"other_browser"}) || end != "http://site-1.localhost/?ussync_hop=1" {
			t.Fatalf("refusals %v, ended at %q", got, end)
		}
		intact(t)
	})
	t.Run("a hand-off never replaces another user's session", func(t *testing.T) {
		// Someone else logs in as mallory on n0 in the victim's browser (a
		// shared computer): the chain goes on, but n1 keeps ann.
		m := loginSync(t, c.Members[0], "mallory@example.com", ret)
		victim.setSession(ret, m.Token)
		end, way := victim.follow(m.Sync.Chain)
		if got := refusals(way); !slices.Equal(got, []string{"session_conflict"}) || end != ret {
			t.Fatalf("went %s: refusals %v, ended at %q", victim.steps(way), got, end)
		}
		if got := sessionOn(t, c.Members[2], victim.cookie("http://site-2.localhost/", "ussync_session").Value); got != m.Session.ID {
			t.Errorf("n2, where nobody was logged in, got %q", got)
		}
		r := victim.get("http://site-1.localhost/ussync/v1/whoami")
		if !strings.Contains(string(r.Body), `"email":"ann@example.com"`) {
			t.Errorf("n1 is now %s", r.Body)
		}
	})
}

func TestPublic_LogoutAcrossCluster(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)
	l := loginSync(t, c.Members[0], "ann@example.com", "")
	b.setSession("http://site-0.localhost/", l.Token)
	if _, way := b.follow(l.Sync.URLs[0].URL); way[len(way)-1].Status != http.StatusNoContent {
		t.Fatalf("hand-off to n1: %s", way[len(way)-1].Body)
	}
	logout := "http://site-1.localhost/ussync/v1/logout"

	for _, hdr := range [][]string{{"Origin", "https://evil.example"}, {"Referer", "https://evil.example/"}, nil} {
		if r := b.do("POST", logout, hdr...); r.Status != http.StatusForbidden || r.errorCode() != "csrf" {
			t.Errorf("logout with %q: %d %s", hdr, r.Status, r.Body)
		}
	}
	waitAll(t, c, l.Session.ID, http.StatusOK, "")

	// n1's cookie is its own token: the logout ends the session it stands
	// for, on every site.
	r := b.do("POST", logout, "Origin", "http://site-2.localhost")
	if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":1}` || r.cookie("ussync_session") == nil || r.cookie("ussync_session").MaxAge >= 0 {
		t.Fatalf("logout: %d %s %v", r.Status, r.Body, r.Header)
	}
	waitAll(t, c, l.Session.ID, http.StatusGone, "session_ended")
	if r := b.get("http://site-0.localhost/ussync/v1/whoami"); r.Status != http.StatusUnauthorized {
		t.Errorf("whoami on n0 after logout: %d", r.Status)
	}

	t.Run("every session the browser presents", func(t *testing.T) {
		// Two cookies of one name (a site in a sub-folder of another, or a
		// cookie from before an https move): both sessions end.
		one := loginSync(t, c.Members[1], "ann@example.com", "")
		two := loginSync(t, c.Members[1], "ann@example.com", "")
		r := newBrowser(t, c, nil).do("POST", logout, "Origin", "http://site-1.localhost",
			"Cookie", "ussync_session="+one.Token+"; ussync_session=stale; ussync_session="+two.Token)
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":2}` {
			t.Fatalf("logout: %d %s", r.Status, r.Body)
		}
		waitAll(t, c, one.Session.ID, http.StatusGone, "session_ended")
		waitAll(t, c, two.Session.ID, http.StatusGone, "session_ended")
	})

	t.Run("everywhere", func(t *testing.T) {
		one := loginSync(t, c.Members[0], "ann@example.com", "")
		two := loginSync(t, c.Members[1], "ann@example.com", "")
		b.setSession("http://site-0.localhost/", one.Token)
		if _, way := b.follow(one.Sync.URLs[1].URL); way[len(way)-1].Status != http.StatusNoContent { // n2
			t.Fatalf("hand-off to n2: %s", way[len(way)-1].Body)
		}
		waitAll(t, c, two.Session.ID, http.StatusOK, "") // n2 counts what it knows
		r := b.do("POST", "http://site-2.localhost/ussync/v1/logout?everywhere=1", "Origin", "http://site-0.localhost")
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":2}` {
			t.Fatalf("logout everywhere: %d %s", r.Status, r.Body)
		}
		waitAll(t, c, one.Session.ID, http.StatusGone, "session_ended")
		waitAll(t, c, two.Session.ID, http.StatusGone, "session_ended")
	})
}

// TestPublic_HandoffBindingSurvivesWipe: a site bound by a hand-off the
// user completed (not by a proof of its own) stays bound when its node
// loses its data dir and starts again on an empty one: the binding travels
// in the user's record, and the node gets it back from its peers (issue 9,
// item 1). A site the user never reached stays unbound throughout.
func TestPublic_HandoffBindingSurvivesWipe(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	register(t, c, 0, "ann@example.com") // n0 proved the address
	n1, n2 := c.Members[1], c.Members[2]
	travels := func(t *testing.T, m *nodetest.Member) (bool, string) {
		t.Helper()
		var a loginAnswer
		if code := m.Call("POST", "/v1/sessions", map[string]any{"email": "ann@example.com"}, &a); code != http.StatusCreated {
			t.Fatalf("login on %s: %d", m.Name(), code)
		}
		return a.Synced, a.Reason
	}
	if ok, why := travels(t, n1); ok || why != "site_not_bound" {
		t.Fatalf("a login on n1 before any hand-off: synced %v (%s)", ok, why)
	}
	l := loginSync(t, c.Members[0], "ann@example.com", "")
	b := newBrowser(t, c, nil)
	b.setSession("http://site-0.localhost/", l.Token)
	if l.Sync.URLs[0].Site != "n1" {
		t.Fatalf("sync %+v", l.Sync)
	}
	if _, way := b.follow(l.Sync.URLs[0].URL); way[len(way)-1].Status != http.StatusNoContent {
		t.Fatalf("hand-off to n1: %d %s", way[len(way)-1].Status, way[len(way)-1].Body)
	}
	c.WaitFor(10*time.Second, "n1 bound to ann on every node", func() bool {
		for _, m := range c.Members {
			if u, err := m.Store().User("ann@example.com"); err != nil || !u.BoundTo("n1") {
				return false
			}
		}
		return true
	})
	if ok, why := travels(t, n1); !ok {
		t.Fatalf("a login on n1 after the hand-off stays there (%s)", why)
	}

	c.Kill(1)
	if err := os.RemoveAll(n1.Dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(n1.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.Restart(1)
	c.WaitMembers(10 * time.Second)
	c.WaitConverged(20 * time.Second)
	if ok, why := travels(t, n1); !ok {
		t.Fatalf("a login on n1 after its data dir was lost stays there (%s)", why)
	}
	if ok, why := travels(t, n2); ok || why != "site_not_bound" {
		t.Fatalf("a login on n2, which the user never reached: synced %v (%s)", ok, why)
	}
}

func TestPublic_BindIP(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		cfg.Sync.BindIP = true
		if i < 2 {
			cfg.Public.TrustedProxies = []string{"127.0.0.0/8"}
		}
	}
	c.Start(3)
	registerEverywhere(t, c, 0, "ann@example.com")
	for _, tc := range []struct {
		name string
		to   int
		xff  string
		ok   bool
	}{
		{"trusted proxies forward the bound address", 1, "192.0.2.1", true},
		{"trusted proxy hops are skipped", 1, "192.0.2.1, 127.0.0.9", true},
		{"trusted proxies forward another address", 1, "198.51.100.7", false},
		{"the rightmost untrusted entry counts", 1, "192.0.2.1, 10.0.0.1", false},
		{"no proxy trusted: the header is ignored", 2, "192.0.2.1", false},
		{"no proxy trusted, no header: the socket address", 2, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t, c, nil)
			l := loginSync(t, c.Members[0], "ann@example.com", "") // bound to 192.0.2.1
			b.setSession("http://site-0.localhost/", l.Token)
			var hdr []string
			if tc.xff != "" {
				hdr = []string{"X-Forwarded-For", tc.xff}
			}
			_, way := b.follow(l.Sync.URLs[tc.to-1].URL, hdr...)
			last := way[len(way)-1]
			switch {
			case tc.ok && last.Status != http.StatusNoContent:
				t.Errorf("went %s: %d %s", b.steps(way), last.Status, last.Body)
			case !tc.ok && (last.Status != http.StatusForbidden || last.errorCode() != "ticket_ip_mismatch" || len(last.Header.Values("Set-Cookie")) != 0):
				t.Errorf("went %s: %d %s", b.steps(way), last.Status, last.Body)
			}
		})
	}
	t.Run("bound to the socket address", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		var l syncLogin
		c.Members[0].Call("POST", "/v1/sessions", map[string]any{"email": "ann@example.com", "ip": "127.0.0.1"}, &l)
		b.setSession("http://site-0.localhost/", l.Token)
		if _, way := b.follow(l.Sync.URLs[1].URL); way[len(way)-1].Status != http.StatusNoContent {
			t.Errorf("went %s: %s", b.steps(way), way[len(way)-1].Body)
		}
	})
}

func TestPublic_LazyHop(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	ret := "http://site-0.localhost/page?x=1"
	hop := "http://site-0.localhost/ussync/v1/hop?return=" + url.QueryEscape(ret)

	t.Run("no site has a session", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		end, way := b.follow(hop)
		if got := b.steps(way); got != "n0 hop, n1 hop/ask, n2 hop/ask, n0 hop/done" || end != ret+"&ussync_hop=1" {
			t.Fatalf("went %s, ended at %q", got, end)
		}
		if n := way[0].cookie("ussync_nonce"); n == nil || n.Path != "/ussync/v1/" || !n.HttpOnly {
			t.Errorf("hop set %q", way[0].Header.Values("Set-Cookie"))
		}
		ck := way[3].cookie("ussync_checked")
		if ck == nil || ck.Value != "1" || ck.MaxAge != 600 || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
			t.Errorf("hop/done set %q", way[3].Header.Values("Set-Cookie"))
		}
	})

	t.Run("the last site asked has one", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		l := loginSync(t, c.Members[2], "ann@example.com", "")
		b.setSession("http://site-2.localhost/", l.Token)
		end, way := b.follow(hop)
		if got := b.steps(way); got != "n0 hop, n1 hop/ask, n2 hop/ask, n0 sync" || end != ret+"&ussync_hop=1" {
			t.Fatalf("went %s, ended at %q", got, end)
		}
		ck := way[3].cookie("ussync_session")
		if ck == nil || ck.Value == l.Token || sessionOn(t, c.Members[0], ck.Value) != l.Session.ID {
			t.Fatalf("n0's cookie %q", way[3].Header.Values("Set-Cookie"))
		}
		for _, r := range way {
			if r.cookie("ussync_checked") != nil {
				t.Errorf("%s set ussync_checked though a session was found", b.step(r))
			}
		}
		if r := b.get("http://site-0.localhost/ussync/v1/whoami"); r.Status != http.StatusOK {
			t.Errorf("whoami on n0: %d", r.Status)
		}
		t.Run("a site with the cookie goes straight back", func(t *testing.T) {
			r := b.get(hop)
			if r.Status != http.StatusSeeOther || r.Header.Get("Location") != ret {
				t.Errorf("%d %v", r.Status, r.Header)
			}
		})
	})

	// Issue 13, item 6: a browser that keeps no cookie comes back from a
	// round without a session and without ussync_checked; a site sending
	// it to the hop again must not start another round, and another.
	t.Run("a browser that keeps no cookie goes round once", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		b.noCookies = true
		end, way := b.follow(hop)
		if got := b.steps(way); got != "n0 hop, n1 hop/ask, n2 hop/ask, n0 hop/done" || end != ret+"&ussync_hop=1" {
			t.Fatalf("went %s, ended at %q", got, end)
		}
		again := "http://site-0.localhost/ussync/v1/hop?return=" + url.QueryEscape(end)
		end, way = b.follow(again)
		if got := b.steps(way); got != "n0 hop" || end != ret+"&ussync_hop=1" {
			t.Fatalf("sent to the hop again: went %s, ended at %q; want straight back", got, end)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		b := newBrowser(t, c, nil)
		for _, bad := range []string{"https://evil.example/", "http://site-1.localhost/", ""} {
			r := b.get("http://site-0.localhost/ussync/v1/hop?return=" + url.QueryEscape(bad))
			if r.Status != http.StatusBadRequest || r.errorCode() != "bad_redirect" {
				t.Errorf("return=%q: %d %s", bad, r.Status, r.Body)
			}
		}
		// A hop request is not a session ticket, and is for the asking site.
		r := b.get(hop)
		hq, _ := url.Parse(r.Header.Get("Location"))
		if r := b.get("http://site-1.localhost/ussync/v1/sync?t=" + hq.Query().Get("h")); r.Status != http.StatusBadRequest || r.errorCode() != "ticket_malformed" {
			t.Errorf("hop request redeemed: %d %s", r.Status, r.Body)
		}
		if r := b.get("http://site-1.localhost/ussync/v1/hop/done?h=" + hq.Query().Get("h")); r.Status != http.StatusForbidden || r.errorCode() != "ticket_wrong_target" {
			t.Errorf("hop done on another site: %d %s", r.Status, r.Body)
		}
		if r := b.get("http://site-0.localhost/ussync/v1/hop/ask?h=" + hq.Query().Get("h")); r.Status != http.StatusForbidden || r.errorCode() != "ticket_wrong_target" {
			t.Errorf("hop asked of its own site: %d %s", r.Status, r.Body)
		}
	})
}

func TestPublic_SubFolderSites(t *testing.T) {
	c := nodetest.New(t)
	sites := []string{"http://example.test/blog/", "http://example.test/shop/"}
	c.Configure = func(i int, cfg *node.Config) { cfg.Site.URL = sites[i] }
	c.Start(2)
	registerEverywhere(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)

	fromBlog := loginSync(t, c.Members[0], "ann@example.com", "http://example.test/blog/after")
	if len(fromBlog.Sync.URLs) != 1 || !strings.HasPrefix(fromBlog.Sync.URLs[0].URL, "http://example.test/blog/ussync/v1/bind?") {
		t.Fatalf("links from the blog: %+v", fromBlog.Sync)
	}
	b.setSession(sites[0], fromBlog.Token)
	end, way := b.follow(fromBlog.Sync.Chain)
	if got := b.steps(way); got != "n0 bind, n1 bind, n0 chain, n1 sync" || end != "http://example.test/blog/after" {
		t.Fatalf("went %s, ended at %q", got, end)
	}
	if ck := way[1].cookie("ussync_nonce"); ck == nil || ck.Path != "/shop/ussync/v1/" {
		t.Errorf("shop's nonce %q", way[1].Header.Values("Set-Cookie"))
	}
	onShop := way[3].cookie("ussync_session")
	if onShop == nil || onShop.Path != "/shop/" {
		t.Fatalf("shop's cookie %q", way[3].Header.Values("Set-Cookie"))
	}

	for _, tc := range []struct {
		on, path string
		token    string
		want     int
	}{
		{"shop", "/shop/ussync/v1/whoami", onShop.Value, http.StatusOK},
		{"blog", "/blog/ussync/v1/whoami", fromBlog.Token, http.StatusOK},
		{"blog", "/blog/ussync/v1/whoami", onShop.Value, http.StatusUnauthorized}, // the shop's own token
		{"blog", "/shop/ussync/v1/whoami", fromBlog.Token, http.StatusNotFound},
		{"shop", "/blog/ussync/v1/whoami", onShop.Value, http.StatusNotFound},
		{"blog", "/ussync/v1/whoami", fromBlog.Token, http.StatusNotFound},
	} {
		m := c.Members[0]
		if tc.on == "shop" {
			m = c.Members[1]
		}
		req, _ := http.NewRequest("GET", "http://"+m.PublicAddr()+tc.path, nil)
		req.Header.Set("Cookie", "ussync_session="+tc.token)
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.on, tc.path, resp.StatusCode, tc.want)
		}
	}
	// Redirects stay within member folders.
	l := loginSync(t, c.Members[0], "ann@example.com", "")
	tk, nonce := handoffTicket(t, c, 0, l, "n1")
	for _, tc := range []struct {
		next string
		want int
	}{
		{"http://example.test/other/", http.StatusBadRequest},
		{"http://example.test/blog/x", http.StatusSeeOther},
	} {
		req, _ := http.NewRequest("GET", "http://"+c.Members[1].PublicAddr()+"/shop/ussync/v1/sync?"+url.Values{"t": {tk}, "next": {tc.next}}.Encode(), nil)
		req.Header.Set("Cookie", "ussync_nonce="+nonce)
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("next=%s: %d, want %d", tc.next, resp.StatusCode, tc.want)
		}
	}
}

// TestPublic_TLS: a site served over https at the root of its host gets
// __Host- cookies (Secure, Path=/), which no other host of the domain can
// set or overwrite.
func TestPublic_TLS(t *testing.T) {
	tc := node.NewTestCert(t)
	certFile, keyFile, roots := tc.CertFile, tc.KeyFile, tc.Roots
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		if i == 1 {
			cfg.Site.URL = "https://site-1.localhost/"
			cfg.Public.TLSCert, cfg.Public.TLSKey = certFile, keyFile
		}
	}
	c.Start(2)
	registerEverywhere(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, roots)

	l := loginSync(t, c.Members[0], "ann@example.com", "")
	if len(l.Sync.URLs) != 1 || !strings.HasPrefix(l.Sync.Chain, "http://site-0.localhost/ussync/v1/bind?h=") {
		t.Fatalf("links %+v", l.Sync)
	}
	b.setSession("http://site-0.localhost/", l.Token)
	_, way := b.follow(l.Sync.URLs[0].URL)
	if got := b.steps(way); got != "n0 bind, n1 bind, n0 chain, n1 sync" {
		t.Fatalf("went %s", got)
	}
	way = way[1:] // n1's steps: bind, then sync
	way = append(way[:1], way[2])
	for name, r := range map[string]*response{"__Host-ussync_nonce": way[0], "__Host-ussync_session": way[1]} {
		ck := r.cookie(name)
		if ck == nil || !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" {
			t.Errorf("%s: %q", name, r.Header.Values("Set-Cookie"))
		}
		if r.cookie(strings.TrimPrefix(name, "__Host-")) != nil {
			t.Errorf("%s set without its prefix too", name)
		}
	}
	if way[1].Status != http.StatusNoContent {
		t.Fatalf("redeem over TLS: %d %s", way[1].Status, way[1].Body)
	}
	if r := b.get("https://site-1.localhost/ussync/v1/whoami"); r.Status != http.StatusOK {
		t.Errorf("whoami over TLS: %d", r.Status)
	}
	// The unprefixed name is still read (a cookie set before the site
	// moved to https), and a logout ends it and clears the prefixed one.
	two := loginSync(t, c.Members[1], "ann@example.com", "")
	r := b.do("POST", "https://site-1.localhost/ussync/v1/logout", "Origin", "https://site-1.localhost", "Cookie", "ussync_session="+two.Token)
	if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":2}` || r.cookie("__Host-ussync_session") == nil || r.cookie("__Host-ussync_session").MaxAge >= 0 {
		t.Errorf("logout: %d %s %q", r.Status, r.Body, r.Header.Values("Set-Cookie"))
	}
	// Plain http to the TLS listener is refused by the server itself.
	resp, err := http.Get("http://" + c.Members[1].PublicAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain http to the TLS listener: %d", resp.StatusCode)
	}
	// The other sites frame-allow and redirect to the https origin.
	r = b.get("http://site-0.localhost/ussync/v1/whoami", "Origin", "https://site-1.localhost")
	if r.Header.Get("Access-Control-Allow-Origin") != "https://site-1.localhost" {
		t.Errorf("CORS for the https site: %v", r.Header)
	}
}

// TestPublic_LoginMintsTicketsForItsModes: a login answer carries only what
// the site's modes can use.
func TestPublic_LoginMintsTicketsForItsModes(t *testing.T) {
	for _, tc := range []struct {
		modes       []string
		urls, chain bool
	}{
		{[]string{client.ModeChain}, false, true},
		{[]string{client.ModeIframe}, true, false},
		{[]string{client.ModeLazy}, false, false},
		{[]string{client.ModeChain, client.ModeIframe}, true, true},
	} {
		t.Run(strings.Join(tc.modes, "+"), func(t *testing.T) {
			c := nodetest.New(t)
			c.Configure = func(_ int, cfg *node.Config) { cfg.Sync.Modes = tc.modes }
			c.Start(3)
			register(t, c, 0, "ann@example.com")
			l := loginSync(t, c.Members[0], "ann@example.com", "")
			if got := len(l.Sync.URLs) == 2; got != tc.urls || (!tc.urls && len(l.Sync.URLs) != 0) {
				t.Errorf("sync urls %+v, want them: %v", l.Sync.URLs, tc.urls)
			}
			if got := l.Sync.Chain != ""; got != tc.chain {
				t.Errorf("chain %q, want one: %v", l.Sync.Chain, tc.chain)
			}
		})
	}
}

// TestAPI_Handoff drives a whole chain the way a site that answers
// <site>ussync/v1/… itself does (the WordPress plugin): one POST
// /v1/handoff per browser step, the browser's cookies in, the cookies to
// set and where to go out.
func TestAPI_Handoff(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	registerEverywhere(t, c, 0, "ann@example.com")
	ret := "http://site-0.localhost/welcome"
	l := loginSync(t, c.Members[0], "ann@example.com", ret)
	b := newBrowser(t, c, nil) // for member() and step names only
	type answer struct {
		Status   int                `json:"status"`
		Location string             `json:"location"`
		Refused  string             `json:"refused"`
		Cookies  []client.SetCookie `json:"cookies"`
		Error    *client.StepError  `json:"error"`
		Session  *sessionJSON       `json:"session"`
		NewUser  bool               `json:"new_user"`
	}
	// run sends the browser at loc through the steps, the site keeping its
	// cookies in jar (by member name, then cookie name), until a step that
	// is no hand-off's, or one whose URL holds until (when not "").
	run := func(t *testing.T, jar map[string]map[string]string, loc, until string) (string, []answer) {
		t.Helper()
		var way []answer
		for i := 0; i < 10 && strings.Contains(loc, "/ussync/v1/") && (until == "" || !strings.Contains(loc, until)); i++ {
			m := b.member(loc)
			u, _ := url.Parse(loc)
			step := strings.TrimPrefix(u.Path, "/ussync/v1/")
			var a answer
			if code := m.Call("POST", "/v1/handoff", map[string]any{"step": step, "query": u.RawQuery,
				"cookies": jar[m.Name()], "ip": "192.0.2.1"}, &a); code != http.StatusOK {
				t.Fatalf("%s %s: %d", m.Name(), step, code)
			}
			way = append(way, a)
			if jar[m.Name()] == nil {
				jar[m.Name()] = map[string]string{}
			}
			for _, ck := range a.Cookies {
				if ck.MaxAge < 0 {
					delete(jar[m.Name()], ck.Name)
				} else {
					jar[m.Name()][ck.Name] = ck.Value
				}
			}
			if a.Status != http.StatusSeeOther {
				return "", way
			}
			loc = a.Location
		}
		return loc, way
	}

	jar := map[string]map[string]string{"n0": {"ussync_session": l.Token}}
	end, way := run(t, jar, l.Sync.Chain, "")
	if end != ret || len(way) != 6 {
		t.Fatalf("the chain ended at %q after %d steps", end, len(way))
	}
	for i, a := range way {
		if a.Refused != "" || a.Error != nil {
			t.Errorf("step %d refused: %+v", i, a)
		}
	}
	last := way[5]
	if last.Session == nil || last.Session.ID != l.Session.ID || !last.NewUser {
		t.Errorf("the last sync: %+v", last)
	}
	for _, ck := range way[4].Cookies {
		if ck.Name == "ussync_session" && (!ck.HttpOnly || ck.SameSite != "Lax" || ck.Path != "/" || ck.MaxAge <= 0 || ck.Value == l.Token) {
			t.Errorf("the session cookie to set: %+v", ck)
		}
	}
	if got := sessionOn(t, c.Members[1], jar["n1"]["ussync_session"]); got != l.Session.ID {
		t.Errorf("n1's cookie stands for %q", got)
	}

	t.Run("another browser", func(t *testing.T) {
		// The owner's site runs the first pass; the second pass's URL, in
		// a browser without the nonces, is sent on with the refusal; with
		// nowhere to go, it is the refusal itself.
		l2 := loginSync(t, c.Members[0], "ann@example.com", ret)
		owner := map[string]map[string]string{"n0": {"ussync_session": l2.Token}}
		loc, first := run(t, owner, l2.Sync.Chain, "/ussync/v1/sync?")
		if len(first) != 4 || !strings.Contains(loc, "/ussync/v1/sync?") {
			t.Fatalf("the first pass (%d steps) did not end on a ticket: %q", len(first), loc)
		}
		end, way := run(t, map[string]map[string]string{}, loc, "")
		if end != ret || len(way) != 2 || way[0].Refused != "other_browser" || way[1].Refused != "other_browser" || len(way[0].Cookies) != 0 {
			t.Fatalf("ended at %q: %+v", end, way)
		}
		u, _ := url.Parse(loc)
		q := u.Query()
		q.Del("next")
		var a answer
		c.Members[2].Call("POST", "/v1/handoff", map[string]any{"step": "sync", "query": q.Encode()}, &a)
		if a.Status != http.StatusForbidden || a.Error == nil || a.Error.Code != "other_browser" || len(a.Cookies) != 0 {
			t.Fatalf("a bare ticket in another browser: %+v", a)
		}
		// It was not used up: the owner's site redeems it.
		if end, way := run(t, owner, loc, ""); end != ret || way[0].Refused != "" || way[1].Refused != "" {
			t.Fatalf("the owner: ended at %q: %+v", end, way)
		}
	})

	t.Run("refused calls", func(t *testing.T) {
		m := c.Members[0]
		wantCode(t, m, "POST", "/v1/handoff", map[string]any{"step": "whoami"}, http.StatusBadRequest, "invalid_field")
		wantCode(t, m, "POST", "/v1/handoff", map[string]any{"step": "sync", "ip": "x"}, http.StatusBadRequest, "invalid_field")
		wantCode(t, m, "POST", "/v1/handoff", map[string]any{"step": "sync", "next": "y"}, http.StatusBadRequest, "unknown_field")
	})

	t.Run("a navigation gets the step page", func(t *testing.T) {
		// A site that answers the steps itself says the request is the
		// browser's navigation: a step to another site is then the page
		// that probes it first, with its CSP, for the site to send as is.
		l3 := loginSync(t, c.Members[0], "ann@example.com", ret)
		u, _ := url.Parse(l3.Sync.Chain)
		var a struct {
			answer
			Page string `json:"page"`
			CSP  string `json:"csp"`
		}
		req := map[string]any{"step": "bind", "query": u.RawQuery, "cookies": map[string]string{"ussync_session": l3.Token}, "ip": "192.0.2.1", "navigate": true}
		if code := c.Members[0].Call("POST", "/v1/handoff", req, &a); code != http.StatusOK {
			t.Fatalf("POST /v1/handoff: %d", code)
		}
		if a.Status != http.StatusOK || a.Location != "" || !strings.Contains(a.Page, `<ol id="onward"`) ||
			!strings.Contains(a.Page, "http://site-1.localhost/ussync/v1/healthz") ||
			!strings.HasPrefix(a.CSP, "default-src 'none'; script-src 'sha256-") || !strings.Contains(a.CSP, "connect-src http://site-1.localhost") {
			t.Fatalf("the step page: %d %q csp %q\n%s", a.Status, a.Location, a.CSP, a.Page)
		}
		if len(a.Cookies) == 0 {
			t.Error("the page's answer sets no nonce")
		}
		delete(req, "navigate")
		a.Page = ""
		if c.Members[0].Call("POST", "/v1/handoff", req, &a); a.Status != http.StatusSeeOther || a.Page != "" {
			t.Errorf("without navigate: %d page %d bytes", a.Status, len(a.Page))
		}
	})
}
