package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
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
// redirects: the test follows each Location itself.
type browser struct {
	t      *testing.T
	c      *nodetest.Cluster
	client *http.Client
}

func newBrowser(t *testing.T, c *nodetest.Cluster, roots *x509.CertPool) *browser {
	return &browser{t: t, c: c, client: &http.Client{
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

type response struct {
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
// listener; hdr is name, value pairs.
func (b *browser) do(method, raw string, hdr ...string) *response {
	b.t.Helper()
	m := b.member(raw)
	u, err := url.Parse(raw)
	if err != nil {
		b.t.Fatalf("parse %.80s: %v", raw, err)
	}
	u.Host = m.PublicAddr()
	req, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %.80s on %s: %v", method, raw, m.Name(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := &response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	b.checkHeaders(m, r)
	return r
}

func (b *browser) get(raw string, hdr ...string) *response { return b.do("GET", raw, hdr...) }

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
	if !ok || !slices.Equal(ancestors, origins) {
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

func cookieHeader(token string) []string { return []string{"Cookie", "ussync_session=" + token} }

func TestPublic_ChainAcrossCluster(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	register(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)
	ret := "http://site-0.localhost/account?tab=1"
	l := loginSync(t, c.Members[0], "ann@example.com", ret)
	if len(l.Sync.URLs) != 2 || l.Sync.URLs[0].Site != "n1" || l.Sync.URLs[1].Site != "n2" || l.Sync.Chain == "" {
		t.Fatalf("sync %+v", l.Sync)
	}

	t.Run("the chain visits each other site and comes back", func(t *testing.T) {
		loc := l.Sync.Chain
		for _, want := range []string{"n1", "n2"} {
			if m := b.member(loc); m.Name() != want {
				t.Fatalf("the chain went to %s, want %s", m.Name(), want)
			}
			r := b.get(loc)
			ck := r.cookie("ussync_session")
			if r.Status != http.StatusSeeOther || ck == nil {
				t.Fatalf("%s: %d %s", want, r.Status, r.Body)
			}
			if ck.Value != l.Token || !ck.HttpOnly || ck.Path != "/" || ck.SameSite != http.SameSiteLaxMode || ck.Secure ||
				ck.MaxAge < int((13*24*time.Hour).Seconds()) {
				t.Errorf("%s cookie %q", want, r.Header.Get("Set-Cookie"))
			}
			loc = r.Header.Get("Location")
		}
		if loc != ret {
			t.Fatalf("the chain ended at %q, want %q", loc, ret)
		}
	})

	t.Run("whoami with CORS", func(t *testing.T) {
		r := b.get("http://site-1.localhost/ussync/v1/whoami", append(cookieHeader(l.Token), "Origin", "http://site-2.localhost")...)
		var who struct{ Email string }
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &who) != nil || who.Email != "ann@example.com" {
			t.Fatalf("whoami: %d %s", r.Status, r.Body)
		}
		if r.Header.Get("Access-Control-Allow-Origin") != "http://site-2.localhost" || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("member origin: %v", r.Header)
		}
		r = b.get("http://site-1.localhost/ussync/v1/whoami", append(cookieHeader(l.Token), "Origin", "https://evil.example")...)
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
	})

	t.Run("forward auth", func(t *testing.T) {
		r := b.get("http://site-2.localhost/ussync/v1/auth", cookieHeader(l.Token)...)
		if r.Status != http.StatusOK || r.Header.Get("X-Ussync-Email") != "ann@example.com" || r.Header.Get("X-Ussync-Session") != l.Session.ID {
			t.Errorf("auth: %d %v", r.Status, r.Header)
		}
		if r := b.get("http://site-2.localhost/ussync/v1/auth"); r.Status != http.StatusUnauthorized || r.Header.Get("X-Ussync-Email") != "" {
			t.Errorf("auth without a cookie: %d", r.Status)
		}
	})

	t.Run("a replayed chain sets nothing but still comes back", func(t *testing.T) {
		loc := l.Sync.Chain
		for range 2 {
			r := b.get(loc)
			if r.Status != http.StatusSeeOther || r.Header.Get("X-Ussync-Refused") != "ticket_replayed" || len(r.Header.Values("Set-Cookie")) != 0 {
				t.Fatalf("replay: %d %v %s", r.Status, r.Header, r.Body)
			}
			loc = r.Header.Get("Location")
		}
		if loc != ret {
			t.Errorf("ended at %q", loc)
		}
	})

	t.Run("a sync URL holds its own ticket, good once", func(t *testing.T) {
		// The chain above used the chain ticket on n2, not n2's own one.
		r := b.get(l.Sync.URLs[1].URL + "&m=iframe")
		if ck := r.cookie("ussync_session"); r.Status != http.StatusNoContent || ck == nil || ck.SameSite != http.SameSiteNoneMode {
			t.Errorf("sync URL after the chain: %d %q", r.Status, r.Header.Values("Set-Cookie"))
		}
		if r := b.get(l.Sync.URLs[1].URL + "&m=iframe"); r.Status != http.StatusConflict || r.errorCode() != "ticket_replayed" || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("sync URL again: %d %s", r.Status, r.Body)
		}
	})

	t.Run("refusals set no cookie", func(t *testing.T) {
		l := loginSync(t, c.Members[0], "ann@example.com", ret) // fresh tickets
		forN1, forN2 := l.Sync.URLs[0].URL, l.Sync.URLs[1].URL
		// n1's ticket presented to n2.
		wrong := strings.Replace(forN1, "site-1.localhost", "site-2.localhost", 1)
		if r := b.get(wrong); r.Status != http.StatusForbidden || r.errorCode() != "ticket_wrong_target" || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("wrong target: %d %s", r.Status, r.Body)
		}
		if r := b.get(forN2 + "&next=" + url.QueryEscape("https://evil.example/")); r.Status != http.StatusBadRequest || r.errorCode() != "bad_redirect" ||
			len(r.Header.Values("Set-Cookie")) != 0 || r.Header.Get("Location") != "" {
			t.Errorf("open redirect: %d %v %s", r.Status, r.Header, r.Body)
		}
		if r := b.get(forN2 + "&m=iframe"); r.Status != http.StatusNoContent || r.cookie("ussync_session") == nil ||
			r.cookie("ussync_session").SameSite != http.SameSiteNoneMode || !r.cookie("ussync_session").Secure {
			t.Errorf("iframe redeem after the refused redirect: %d %v", r.Status, r.Header)
		}
		if r := b.get(forN2); r.Status != http.StatusConflict || r.errorCode() != "ticket_replayed" || len(r.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("replay: %d %s", r.Status, r.Body)
		}
	})
}

func TestPublic_LogoutAcrossCluster(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	register(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)
	l := loginSync(t, c.Members[0], "ann@example.com", "")
	if r := b.get(l.Sync.URLs[0].URL); r.Status != http.StatusNoContent {
		t.Fatalf("redeem on n1: %d %s", r.Status, r.Body)
	}
	logout := "http://site-1.localhost/ussync/v1/logout"

	for _, hdr := range [][]string{{"Origin", "https://evil.example"}, {"Referer", "https://evil.example/"}, nil} {
		if r := b.do("POST", logout, append(cookieHeader(l.Token), hdr...)...); r.Status != http.StatusForbidden || r.errorCode() != "csrf" {
			t.Errorf("logout with %q: %d %s", hdr, r.Status, r.Body)
		}
	}
	waitAll(t, c, l.Session.ID, http.StatusOK, "")

	r := b.do("POST", logout, append(cookieHeader(l.Token), "Origin", "http://site-2.localhost")...)
	if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":1}` || r.cookie("ussync_session") == nil || r.cookie("ussync_session").MaxAge >= 0 {
		t.Fatalf("logout: %d %s %v", r.Status, r.Body, r.Header)
	}
	waitAll(t, c, l.Session.ID, http.StatusGone, "session_ended")
	if r := b.get("http://site-2.localhost/ussync/v1/whoami", cookieHeader(l.Token)...); r.Status != http.StatusUnauthorized {
		t.Errorf("whoami on n2 after logout: %d", r.Status)
	}

	t.Run("everywhere", func(t *testing.T) {
		one := loginSync(t, c.Members[0], "ann@example.com", "")
		two := loginSync(t, c.Members[1], "ann@example.com", "")
		if r := b.get(one.Sync.URLs[1].URL); r.Status != http.StatusNoContent { // n2
			t.Fatalf("redeem on n2: %d %s", r.Status, r.Body)
		}
		waitAll(t, c, two.Session.ID, http.StatusOK, "") // n2 counts what it knows
		r := b.do("POST", "http://site-2.localhost/ussync/v1/logout?everywhere=1", append(cookieHeader(one.Token), "Origin", "http://site-0.localhost")...)
		if r.Status != http.StatusOK || strings.TrimSpace(string(r.Body)) != `{"ended":2}` {
			t.Fatalf("logout everywhere: %d %s", r.Status, r.Body)
		}
		waitAll(t, c, one.Session.ID, http.StatusGone, "session_ended")
		waitAll(t, c, two.Session.ID, http.StatusGone, "session_ended")
	})
}

func TestPublic_BindIP(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		cfg.Sync.BindIP = true
		if i == 1 {
			cfg.Public.TrustedProxies = []string{"127.0.0.0/8"}
		}
	}
	c.Start(3)
	register(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)
	ticketFor := func(i int) string {
		l := loginSync(t, c.Members[0], "ann@example.com", "") // bound to 192.0.2.1
		return l.Sync.URLs[i-1].URL
	}
	for _, tc := range []struct {
		name string
		to   int
		xff  string
		want int
	}{
		{"trusted proxy forwards the bound address", 1, "192.0.2.1", http.StatusNoContent},
		{"trusted proxy hops are skipped", 1, "192.0.2.1, 127.0.0.9", http.StatusNoContent},
		{"trusted proxy forwards another address", 1, "198.51.100.7", http.StatusForbidden},
		{"the rightmost untrusted entry counts", 1, "192.0.2.1, 10.0.0.1", http.StatusForbidden},
		{"no proxy trusted: the header is ignored", 2, "192.0.2.1", http.StatusForbidden},
		{"no proxy trusted, no header: the socket address", 2, "", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.xff != "" {
				hdr = []string{"X-Forwarded-For", tc.xff}
			}
			r := b.get(ticketFor(tc.to), hdr...)
			if r.Status != tc.want || (tc.want == http.StatusForbidden && (r.errorCode() != "ticket_ip_mismatch" || len(r.Header.Values("Set-Cookie")) != 0)) {
				t.Errorf("%d %s", r.Status, r.Body)
			}
		})
	}
	t.Run("bound to the socket address", func(t *testing.T) {
		var l syncLogin
		c.Members[0].Call("POST", "/v1/sessions", map[string]any{"email": "ann@example.com", "ip": "127.0.0.1"}, &l)
		if r := b.get(l.Sync.URLs[1].URL); r.Status != http.StatusNoContent {
			t.Errorf("%d %s", r.Status, r.Body)
		}
	})
}

func TestPublic_LazyHop(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	register(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)
	ret := "http://site-0.localhost/page?x=1"
	hop := "http://site-0.localhost/ussync/v1/hop?return=" + url.QueryEscape(ret)

	t.Run("no site has a session", func(t *testing.T) {
		loc := hop
		var path []string
		for i := 0; i < 10 && loc != ret; i++ {
			r := b.get(loc)
			if r.Status != http.StatusSeeOther {
				t.Fatalf("at %s: %d %s", b.member(loc).Name(), r.Status, r.Body)
			}
			path = append(path, b.member(loc).Name())
			if ck := r.cookie("ussync_checked"); ck != nil {
				if ck.Value != "1" || ck.MaxAge != 600 || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || !strings.Contains(loc, "/hop/done") {
					t.Errorf("checked cookie %q at %s", r.Header.Get("Set-Cookie"), loc)
				}
			}
			loc = r.Header.Get("Location")
		}
		if got := strings.Join(path, " "); got != "n0 n1 n2 n0" || loc != ret {
			t.Errorf("went %s, ended at %q", got, loc)
		}
	})

	t.Run("the last site asked has one", func(t *testing.T) {
		l := loginSync(t, c.Members[2], "ann@example.com", "") // the browser holds n2's cookie
		loc := hop
		var got []string
		for i := 0; i < 10 && loc != ret; i++ {
			m := b.member(loc)
			var hdr []string
			if m.Name() == "n2" {
				hdr = cookieHeader(l.Token)
			}
			r := b.get(loc, hdr...)
			if r.Status != http.StatusSeeOther {
				t.Fatalf("at %s: %d %s", m.Name(), r.Status, r.Body)
			}
			if ck := r.cookie("ussync_session"); ck != nil {
				if m.Name() != "n0" || ck.Value != l.Token {
					t.Errorf("%s set %q", m.Name(), r.Header.Get("Set-Cookie"))
				}
				got = append(got, "cookie@"+m.Name())
			}
			if r.cookie("ussync_checked") != nil {
				t.Errorf("%s set ussync_checked though a session was found", m.Name())
			}
			loc = r.Header.Get("Location")
		}
		if strings.Join(got, " ") != "cookie@n0" || loc != ret {
			t.Errorf("cookies %v, ended at %q", got, loc)
		}
		if r := b.get("http://site-0.localhost/ussync/v1/whoami", cookieHeader(l.Token)...); r.Status != http.StatusOK {
			t.Errorf("whoami on n0: %d", r.Status)
		}
	})

	t.Run("a site with the cookie goes straight back", func(t *testing.T) {
		l := loginSync(t, c.Members[0], "ann@example.com", "")
		r := b.get(hop, cookieHeader(l.Token)...)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != ret {
			t.Errorf("%d %v", r.Status, r.Header)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, bad := range []string{"https://evil.example/", "http://site-1.localhost/", ""} {
			r := b.get("http://site-0.localhost/ussync/v1/hop?return=" + url.QueryEscape(bad))
			if r.Status != http.StatusBadRequest || r.errorCode() != "bad_redirect" {
				t.Errorf("return=%q: %d %s", bad, r.Status, r.Body)
			}
		}
		// A hop request is not a session ticket, and is for the asking site.
		r := b.get(hop)
		h := r.Header.Get("Location")
		hq, _ := url.Parse(h)
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
	register(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, nil)

	fromBlog := loginSync(t, c.Members[0], "ann@example.com", "http://example.test/blog/after")
	fromShop := loginSync(t, c.Members[1], "ann@example.com", "")
	if len(fromBlog.Sync.URLs) != 1 || !strings.HasPrefix(fromBlog.Sync.URLs[0].URL, "http://example.test/shop/ussync/v1/sync?") {
		t.Fatalf("links from the blog: %+v", fromBlog.Sync)
	}
	r := b.get(fromBlog.Sync.Chain)
	if ck := r.cookie("ussync_session"); r.Status != http.StatusSeeOther || ck == nil || ck.Path != "/shop/" || r.Header.Get("Location") != "http://example.test/blog/after" {
		t.Fatalf("shop redeem: %d %v", r.Status, r.Header)
	}
	r = b.get(fromShop.Sync.URLs[0].URL)
	if ck := r.cookie("ussync_session"); r.Status != http.StatusNoContent || ck == nil || ck.Path != "/blog/" {
		t.Fatalf("blog redeem: %d %v", r.Status, r.Header)
	}

	for _, tc := range []struct {
		on, path string
		token    string
		want     int
	}{
		{"blog", "/blog/ussync/v1/whoami", fromShop.Token, http.StatusOK},
		{"shop", "/shop/ussync/v1/whoami", fromBlog.Token, http.StatusOK},
		{"blog", "/shop/ussync/v1/whoami", fromShop.Token, http.StatusNotFound},
		{"shop", "/blog/ussync/v1/whoami", fromBlog.Token, http.StatusNotFound},
		{"blog", "/ussync/v1/whoami", fromShop.Token, http.StatusNotFound},
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
	if r := b.get(l.Sync.URLs[0].URL + "&next=" + url.QueryEscape("http://example.test/other/")); r.Status != http.StatusBadRequest || r.errorCode() != "bad_redirect" {
		t.Errorf("next to a folder of no site: %d %s", r.Status, r.Body)
	}
	if r := b.get(l.Sync.URLs[0].URL + "&next=" + url.QueryEscape("http://example.test/blog/x")); r.Status != http.StatusSeeOther {
		t.Errorf("next to the blog: %d %s", r.Status, r.Body)
	}
}

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
	register(t, c, 0, "ann@example.com")
	b := newBrowser(t, c, roots)

	l := loginSync(t, c.Members[0], "ann@example.com", "")
	if len(l.Sync.URLs) != 1 || !strings.HasPrefix(l.Sync.URLs[0].URL, "https://site-1.localhost/ussync/v1/sync?t=") {
		t.Fatalf("links %+v", l.Sync)
	}
	r := b.get(l.Sync.URLs[0].URL)
	if ck := r.cookie("ussync_session"); r.Status != http.StatusNoContent || ck == nil || !ck.Secure || !ck.HttpOnly {
		t.Fatalf("redeem over TLS: %d %v", r.Status, r.Header)
	}
	if r := b.get("https://site-1.localhost/ussync/v1/whoami", cookieHeader(l.Token)...); r.Status != http.StatusOK {
		t.Errorf("whoami over TLS: %d", r.Status)
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
// the site's modes can use; every ticket minted is a credential in flight.
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
