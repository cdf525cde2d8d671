package demo

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testDemo runs a demo on free ports for the test.
func testDemo(t *testing.T, mode string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := Run(ctx, Options{Mode: mode})
	if err != nil {
		t.Fatalf("run the demo: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return d.Sites()
}

// testBrowser is an HTTP client that behaves as a browser would towards the
// demo: *.localhost on the loopback, a cookie jar, and redirects not
// followed (the tests look at them).
func testBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && strings.HasSuffix(host, ".localhost") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dialer.DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func testGet(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func testPost(t *testing.T, c *http.Client, u string, form url.Values, origin string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

var (
	reCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	reUser = regexp.MustCompile(`data-user="([^"]*)"`)
)

func pageUser(t *testing.T, body string) string {
	t.Helper()
	m := reUser.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("not a demo page: %.200s", body)
	}
	return m[1]
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == "ussync_session" && c.Value != "" {
			return c
		}
	}
	return nil
}

func TestSite_FormsRefuseCrossSiteRequests(t *testing.T) {
	sites := testDemo(t, "chain")
	a, b, cc := sites[0], sites[1], sites[2]
	origin := strings.TrimSuffix(a, "/")
	c := testBrowser(t)
	_, body := testGet(t, c, a)
	m := reCSRF.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the login form has no CSRF field: %.300s", body)
	}
	token := m[1]

	for _, tc := range []struct {
		name   string
		form   url.Values
		origin string
	}{
		{"no token", url.Values{"email": {"ada@example.com"}}, origin},
		{"wrong token", url.Values{"email": {"ada@example.com"}, "csrf": {strings.Repeat("x", len(token))}}, origin},
		{"another site's origin", url.Values{"email": {"ada@example.com"}, "csrf": {token}}, strings.TrimSuffix(b, "/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := testPost(t, c, a+"login", tc.form, tc.origin)
			if resp.StatusCode != http.StatusForbidden || sessionCookieOf(resp) != nil {
				t.Fatalf("answered %d (session cookie %v), want 403 and no cookie", resp.StatusCode, sessionCookieOf(resp) != nil)
			}
		})
	}

	t.Run("own form", func(t *testing.T) {
		resp := testPost(t, c, a+"login", url.Values{"email": {"ada@example.com"}, "csrf": {token}}, origin)
		ck := sessionCookieOf(resp)
		if resp.StatusCode != http.StatusSeeOther || ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" {
			t.Fatalf("answered %d with session cookie %+v, want 303 and an HttpOnly, SameSite=Lax cookie on /", resp.StatusCode, ck)
		}
		// Chain mode: the browser is sent on the chain's first pass, which
		// starts on this site's own bind step (docs/handoff.md).
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, a+"ussync/v1/bind?") {
			t.Fatalf("login redirects to %q, want A's ussync/v1/bind", loc)
		}
		// Both passes, as a browser follows them: bind on A, B and C,
		// chain back on A, sync on B and C, home on A.
		var path []string
		for i := 0; loc != "" && i < 10; i++ {
			u, _ := url.Parse(loc)
			path = append(path, u.Host+u.Path)
			r, _ := testGet(t, c, loc)
			if r.Header.Get("X-Ussync-Refused") != "" {
				t.Fatalf("%s refused the hand-off: %s", loc, r.Header.Get("X-Ussync-Refused"))
			}
			loc = r.Header.Get("Location")
		}
		if len(path) != 7 {
			t.Errorf("the chain went %q, want bind, bind, bind, chain, sync, sync, home", path)
		}
		for _, s := range []string{a, b, cc} {
			if _, body := testGet(t, c, s); pageUser(t, body) != "ada@example.com" {
				t.Fatalf("after the chain %s shows %q", s, pageUser(t, body))
			}
		}
	})
}

func TestSite_UnverifiedSessionStaysLocal(t *testing.T) {
	sites := testDemo(t, "chain")
	a, b := sites[0], sites[1]
	c := testBrowser(t)
	_, body := testGet(t, c, b)
	token := reCSRF.FindStringSubmatch(body)[1]
	resp := testPost(t, c, b+"register", url.Values{"email": {"new@example.org"}, "name": {"New"}, "csrf": {token}}, "")
	ck := sessionCookieOf(resp)
	if resp.StatusCode != http.StatusSeeOther || ck == nil || resp.Header.Get("Location") != "/" {
		t.Fatalf("register answered %d → %q (cookie %v), want 303 to / with a cookie: no hand-off", resp.StatusCode, resp.Header.Get("Location"), ck != nil)
	}
	_, body = testGet(t, c, b)
	if got := pageUser(t, body); got != "new@example.org" || !strings.Contains(body, "unverified") {
		t.Fatalf("after registering, B shows %q (unverified badge: %v)", got, strings.Contains(body, "unverified"))
	}
	// Even with the token in hand, another site does not know the session.
	_, body = testGet(t, testBrowser(t), a, "Cookie", "ussync_session="+ck.Value)
	if got := pageUser(t, body); got != "" {
		t.Fatalf("an unverified session reached A: it shows %q", got)
	}
}

func TestSite_ProxiesTheNodesPublicEndpoints(t *testing.T) {
	sites := testDemo(t, "lazy")
	c := testBrowser(t)
	// An anonymous first visit in lazy mode goes to the site's own hop.
	resp, _ := testGet(t, c, sites[2])
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, sites[2]+"ussync/v1/hop?return=") {
		t.Fatalf("an anonymous first visit answered %d → %q, want 302 to /ussync/v1/hop", resp.StatusCode, loc)
	}
	// whoami is the node's, through the site's reverse proxy.
	resp, body := testGet(t, c, sites[2]+"ussync/v1/whoami")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("whoami through the proxy answered %d %q, want the node's 401", resp.StatusCode, body)
	}
}

// TestSite_OtherHostNames: a demo site opened under another name for its
// port (http://localhost:8081/ rather than the printed
// http://site-a.localhost:8081/) sends the browser to its own URL, where
// its forms work: a login there succeeds instead of saying, forever, that
// the form has expired.
func TestSite_OtherHostNames(t *testing.T) {
	sites := testDemo(t, "chain")
	a, _ := url.Parse(sites[0])
	for _, host := range []string{"localhost", "127.0.0.1"} {
		t.Run(host, func(t *testing.T) {
			c := testBrowser(t)
			c.CheckRedirect = nil // follow, as a browser does
			other := "http://" + net.JoinHostPort(host, a.Port()) + "/"
			resp, body := testGet(t, c, other+"?from=bookmark")
			if resp.Request.URL.Host != a.Host || resp.Request.URL.RawQuery != "from=bookmark" || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s ended at %s (%d), want the site's own URL %s with the query", other, resp.Request.URL, resp.StatusCode, sites[0])
			}
			m := reCSRF.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("no login form: %.300s", body)
			}
			resp = testPost(t, c, sites[0]+"login", url.Values{"email": {"ada@example.com"}, "csrf": {m[1]}}, strings.TrimSuffix(sites[0], "/"))
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Host != a.Host {
				t.Fatalf("login: %d at %s, want the chain to end on the site with 200", resp.StatusCode, resp.Request.URL)
			}
			// Opened again under the other name: the same browser is logged in.
			if _, body := testGet(t, c, other); pageUser(t, body) != "ada@example.com" {
				t.Fatalf("back at %s, the page shows %q", other, pageUser(t, body))
			}
		})
	}
	t.Run("a form posted to another name keeps its method", func(t *testing.T) {
		c := testBrowser(t)
		resp := testPost(t, c, "http://"+net.JoinHostPort("localhost", a.Port())+"/login", url.Values{"email": {"ada@example.com"}}, "")
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != sites[0]+"login" {
			t.Fatalf("POST under another name: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}
