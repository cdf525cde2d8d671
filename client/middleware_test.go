package client_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
)

// site is a Go site protected by client.Middleware against a real node:
// /private needs a session, /page takes one if there is one.
type site struct {
	srv  *httptest.Server
	runs atomic.Int32 // how many times a protected handler ran
}

func newSite(t *testing.T, cl *client.Client, opts client.MiddlewareOptions) *site {
	t.Helper()
	s := &site{}
	show := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.runs.Add(1)
		if v, ok := client.VisitorFrom(r.Context()); ok {
			fmt.Fprintf(w, "hello %s (new user: %v)", v.Session.Email, v.NewUser)
			return
		}
		fmt.Fprint(w, "hello stranger")
	})
	protect := client.Middleware(cl, opts)
	mux := http.NewServeMux()
	mux.Handle("/private", protect(show))
	optional := opts
	optional.Optional = true
	mux.Handle("/page", client.Middleware(cl, optional)(show))
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// get requests path with the session cookie token ("" for none), without
// following redirects.
func (s *site) get(t *testing.T, method, path, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: client.DefaultCookie, Value: token})
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// deleted reports whether the answer deletes the session cookie.
func deleted(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if c.Name == client.DefaultCookie && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

func TestMiddleware(t *testing.T) {
	c, cls := clientCluster(t)
	ctx := context.Background()
	s := newSite(t, cls[0], client.MiddlewareOptions{})

	t.Run("an active session reaches the handler, with its visitor", func(t *testing.T) {
		ans := loginVerified(t, cls[0], "ada@example.com")
		resp, body := s.get(t, "GET", "/private", ans.Token)
		if resp.StatusCode != http.StatusOK || body != "hello ada@example.com (new user: false)" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})

	t.Run("no cookie is 401, and the handler does not run", func(t *testing.T) {
		before := s.runs.Load()
		resp, _ := s.get(t, "GET", "/private", "")
		if resp.StatusCode != http.StatusUnauthorized || s.runs.Load() != before || deleted(resp) {
			t.Fatalf("%d, handler ran %d times, cookie deleted %v", resp.StatusCode, s.runs.Load()-before, deleted(resp))
		}
	})

	t.Run("a token the node does not know is 401 and its cookie goes", func(t *testing.T) {
		// One of a token's form, which the node is asked about, and values
		// that cannot be tokens, which it is not.
		for _, tok := range []string{randomToken(t), "never-issued", strings.Repeat("x", 500)} {
			before := s.runs.Load()
			resp, _ := s.get(t, "GET", "/private", tok)
			if resp.StatusCode != http.StatusUnauthorized || s.runs.Load() != before || !deleted(resp) {
				t.Errorf("%.12s…: %d, handler ran %v, cookie deleted %v", tok, resp.StatusCode, s.runs.Load() != before, deleted(resp))
			}
		}
	})

	t.Run("a logout on another site ends it here at the next request", func(t *testing.T) {
		ans := loginVerified(t, cls[0], "grace@example.com")
		if resp, _ := s.get(t, "GET", "/private", ans.Token); resp.StatusCode != http.StatusOK {
			t.Fatalf("before the logout: %d", resp.StatusCode)
		}
		// Logged out through the other node: gossip brings it here.
		c.WaitFor(10*time.Second, "the session on n1", func() bool {
			_, err := cls[1].Session(ctx, ans.Session.ID)
			return err == nil
		})
		if _, err := cls[1].EndSession(ctx, ans.Session.ID); err != nil {
			t.Fatal(err)
		}
		c.WaitFor(10*time.Second, "the site to refuse the session", func() bool {
			resp, _ := s.get(t, "GET", "/private", ans.Token)
			return resp.StatusCode == http.StatusUnauthorized && deleted(resp)
		})
	})

	t.Run("logged out everywhere", func(t *testing.T) {
		ans := loginVerified(t, cls[0], "alan@example.com")
		if _, err := cls[0].LogoutEverywhere(ctx, "alan@example.com"); err != nil {
			t.Fatal(err)
		}
		if resp, _ := s.get(t, "GET", "/private", ans.Token); resp.StatusCode != http.StatusUnauthorized || !deleted(resp) {
			t.Fatalf("%d, deleted %v", resp.StatusCode, deleted(resp))
		}
	})

	t.Run("the __Host- cookie of an https site at its root", func(t *testing.T) {
		ans := loginVerified(t, cls[0], "hal@example.com")
		get := func(cookies ...*http.Cookie) *http.Response {
			req, _ := http.NewRequest("GET", s.srv.URL+"/private", nil)
			for _, c := range cookies {
				req.AddCookie(c)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		if resp := get(&http.Cookie{Name: client.HostCookie, Value: ans.Token}); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", client.HostCookie, resp.StatusCode)
		}
		// An unknown one beside no live one: it goes, under its own name,
		// as a __Host- cookie must be deleted (Path=/, Secure).
		resp := get(&http.Cookie{Name: client.HostCookie, Value: "never-issued"})
		var gone *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == client.HostCookie {
				gone = c
			}
		}
		if resp.StatusCode != http.StatusUnauthorized || gone == nil || gone.MaxAge >= 0 || gone.Path != "/" || !gone.Secure {
			t.Fatalf("%d, deleted %+v", resp.StatusCode, gone)
		}
		for site, want := range map[string]string{
			"https://example.com/": client.HostCookie, "https://example.com": client.HostCookie,
			"https://example.com/blog/": client.DefaultCookie, "http://example.com/": client.DefaultCookie,
		} {
			if got := client.CookieName(site); got != want {
				t.Errorf("CookieName(%q) = %q, want %q", site, got, want)
			}
		}
	})

	t.Run("optional pages take anyone", func(t *testing.T) {
		ans := loginVerified(t, cls[0], "ann@example.com")
		if resp, body := s.get(t, "GET", "/page", ""); resp.StatusCode != http.StatusOK || body != "hello stranger" {
			t.Fatalf("anonymous: %d %q", resp.StatusCode, body)
		}
		if resp, body := s.get(t, "GET", "/page", ans.Token); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "hello ann@example.com") {
			t.Fatalf("logged in: %d %q", resp.StatusCode, body)
		}
	})
}

func TestMiddleware_LoginURL(t *testing.T) {
	_, cls := clientCluster(t)
	s := newSite(t, cls[0], client.MiddlewareOptions{LoginURL: "/login?site=shop"})

	resp, _ := s.get(t, "GET", "/private?tab=orders", "")
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Path != "/login" ||
		loc.Query().Get("site") != "shop" || loc.Query().Get("next") != "/private?tab=orders" {
		t.Fatalf("%d to %q, want 303 to the login page with next", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := s.get(t, "POST", "/private", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a POST is answered %d, want 401 (a redirect would lose its body)", resp.StatusCode)
	}

	t.Run("next goes before a fragment", func(t *testing.T) {
		for login, want := range map[string]string{
			"https://sso.example/login#form": "https://sso.example/login?next=%2Fprivate#form",
			"/login?site=shop#top":           "/login?site=shop&next=%2Fprivate#top",
			"/login#":                        "/login?next=%2Fprivate#",
		} {
			s := newSite(t, cls[0], client.MiddlewareOptions{LoginURL: login})
			if resp, _ := s.get(t, "GET", "/private", ""); resp.Header.Get("Location") != want {
				t.Errorf("LoginURL %q: sent to %q, want %q", login, resp.Header.Get("Location"), want)
			}
		}
	})

	t.Run("next is a page of this site", func(t *testing.T) {
		// A request for //evil.example/x is this site's, but a login page
		// that trusted next would send the browser to evil.example.
		h := client.Middleware(cls[0], client.MiddlewareOptions{LoginURL: "/login"})(http.NotFoundHandler())
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET //evil.example/x HTTP/1.1\r\nHost: site\r\n\r\n")))
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if loc := rec.Header().Get("Location"); loc != "/login?next=%2F" {
			t.Errorf("sent to %q, want the login with next=/", loc)
		}
	})
}

func TestMiddleware_Misuse(t *testing.T) {
	t.Run("a nil client panics at once", func(t *testing.T) {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "nil *Client") {
				t.Errorf("recovered %v, want a panic naming the nil client", r)
			}
		}()
		client.Middleware(nil, client.MiddlewareOptions{})
	})

	t.Run("a base URL New cannot use fails closed with a plain reason", func(t *testing.T) {
		var seen error
		h := client.Middleware(client.New("", "tok"), client.MiddlewareOptions{})(http.NotFoundHandler())
		req := httptest.NewRequest("GET", "/private", nil)
		req.AddCookie(&http.Cookie{Name: client.DefaultCookie, Value: randomToken(t)})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable || len(rec.Result().Cookies()) != 0 {
			t.Fatalf("%d, cookies %v", rec.Code, rec.Result().Cookies())
		}
		client.Middleware(client.New("", "tok"), client.MiddlewareOptions{OnNodeError: func(w http.ResponseWriter, r *http.Request, err error) {
			seen = err
		}})(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), req)
		if !errors.Is(seen, client.ErrBadURL) {
			t.Errorf("OnNodeError got %v, want ErrBadURL", seen)
		}
	})
}

func TestMiddleware_NodeErrors(t *testing.T) {
	c, cls := clientCluster(t)
	ans := loginVerified(t, cls[0], "ada@example.com")

	t.Run("a refused API token fails closed, not logged out", func(t *testing.T) {
		s := newSite(t, client.New(c.Members[0].APIAddr(), "a-wrong-token-of-some-length"), client.MiddlewareOptions{})
		resp, _ := s.get(t, "GET", "/private", ans.Token)
		if resp.StatusCode != http.StatusServiceUnavailable || s.runs.Load() != 0 || deleted(resp) {
			t.Fatalf("%d, handler ran %d times, cookie deleted %v", resp.StatusCode, s.runs.Load(), deleted(resp))
		}
	})

	t.Run("a wrong API URL fails closed, not logged out", func(t *testing.T) {
		// A 404 that is not the session check's: the node's router answering
		// a wrong path, another server on the port. Only the node's own
		// verdict on the session (its answer carries Ussync-Node-State)
		// deletes the cookie.
		other := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(other.Close)
		for name, cl := range map[string]*client.Client{
			"a wrong path on the node": client.New("http://"+c.Members[0].APIAddr()+"/api", c.Token),
			"another server":           client.New(other.URL, c.Token),
		} {
			s := newSite(t, cl, client.MiddlewareOptions{LoginURL: "/login"})
			resp, _ := s.get(t, "GET", "/private", ans.Token)
			if resp.StatusCode != http.StatusServiceUnavailable || s.runs.Load() != 0 || deleted(resp) {
				t.Errorf("%s: %d, handler ran %d times, cookie deleted %v", name, resp.StatusCode, s.runs.Load(), deleted(resp))
			}
		}
		if _, err := cls[0].Session(context.Background(), ans.Session.ID); err != nil {
			t.Fatalf("the session after all that: %v", err)
		}
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens here now
	unreachable := client.New(down, c.Token)

	t.Run("an unreachable node fails closed", func(t *testing.T) {
		s := newSite(t, unreachable, client.MiddlewareOptions{LoginURL: "/login"})
		resp, _ := s.get(t, "GET", "/private", ans.Token)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || s.runs.Load() != 0 {
			t.Fatalf("%d, Retry-After %q, handler ran %d times", resp.StatusCode, resp.Header.Get("Retry-After"), s.runs.Load())
		}
		if resp, _ := s.get(t, "GET", "/private", ""); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("without a cookie the node is not asked: %d, want the login redirect", resp.StatusCode)
		}
	})

	t.Run("a hung node fails closed at the client's timeout", func(t *testing.T) {
		hung := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-hung:
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(hung) })
		s := newSite(t, client.New(srv.URL, c.Token).WithTimeout(50*time.Millisecond), client.MiddlewareOptions{})
		resp, _ := s.get(t, "GET", "/private", ans.Token)
		if resp.StatusCode != http.StatusServiceUnavailable || s.runs.Load() != 0 || deleted(resp) {
			t.Fatalf("%d, handler ran %d times, cookie deleted %v", resp.StatusCode, s.runs.Load(), deleted(resp))
		}
	})

	t.Run("OnNodeError may fail open", func(t *testing.T) {
		var seen error
		open := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, ok := client.VisitorFrom(r.Context())
			fmt.Fprintf(w, "served, visitor %v", ok)
		})
		h := client.Middleware(unreachable, client.MiddlewareOptions{OnNodeError: func(w http.ResponseWriter, r *http.Request, err error) {
			seen = err
			open.ServeHTTP(w, r)
		}})(open)
		req := httptest.NewRequest("GET", "/private", nil)
		req.AddCookie(&http.Cookie{Name: client.DefaultCookie, Value: ans.Token})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || rec.Body.String() != "served, visitor false" || !errors.Is(seen, client.ErrUnreachable) {
			t.Fatalf("%d %q, error %v", rec.Code, rec.Body, seen)
		}
	})
}

func TestMiddleware_CookieName(t *testing.T) {
	_, cls := clientCluster(t)
	ans := loginVerified(t, cls[0], "ada@example.com")
	h := client.Middleware(cls[0], client.MiddlewareOptions{CookieName: "shop_session", CookiePath: "/shop/"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))

	req := httptest.NewRequest("GET", "/shop/cart", nil)
	req.AddCookie(&http.Cookie{Name: client.DefaultCookie, Value: ans.Token}) // not this site's cookie
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("another cookie's session let in: %d", rec.Code)
	}

	req = httptest.NewRequest("GET", "/shop/cart", nil)
	req.AddCookie(&http.Cookie{Name: "shop_session", Value: "stale"})
	req.AddCookie(&http.Cookie{Name: "shop_session", Value: ans.Token})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("%d, cookies %v: the active one of two cookies should let in and delete nothing", rec.Code, rec.Result().Cookies())
	}

	if _, err := cls[0].EndSession(context.Background(), ans.Session.ID); err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	cs := rec.Result().Cookies()
	if rec.Code != http.StatusUnauthorized || len(cs) != 1 || cs[0].Name != "shop_session" || cs[0].Path != "/shop/" || cs[0].MaxAge >= 0 {
		t.Fatalf("%d, cookies %v: want the site's cookie deleted on its path", rec.Code, cs)
	}
}

// randomToken is a value of a session token's form (43 characters of
// URL-safe base64) that no node issued.
func randomToken(t *testing.T) string {
	t.Helper()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func TestMiddleware_JunkCookies(t *testing.T) {
	c, cls := clientCluster(t)
	ans := loginVerified(t, cls[0], "ada@example.com")
	h := client.Middleware(cls[0], client.MiddlewareOptions{})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	serve := func(h http.Handler, values ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/private", nil)
		for _, v := range values {
			req.AddCookie(&http.Cookie{Name: client.DefaultCookie, Value: v})
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	junk := []string{"junk", "x", "deleted", strings.Repeat("A", 42), strings.Repeat("A", 44), ans.Token[:42] + "=",
		strings.Repeat("x", 129), strings.Repeat("x", 4000), "a.b", "not+base64/at" + strings.Repeat("a", 30)}

	t.Run("junk before the session's cookie costs nothing and deletes nothing", func(t *testing.T) {
		// Sibling hosts of a domain can set cookies the browser sends before
		// this site's own (cookie tossing), as many as they like.
		rec := serve(h, append(junk, ans.Token)...)
		if rec.Code != http.StatusOK || len(rec.Result().Cookies()) != 0 {
			t.Fatalf("%d, cookies %v: want the session found and nothing deleted", rec.Code, rec.Result().Cookies())
		}
	})

	t.Run("junk is judged without the node", func(t *testing.T) {
		// Through a node that cannot be reached: a value that cannot be a
		// token is no session whatever the node would say, and goes.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		down := ln.Addr().String()
		ln.Close()
		h := client.Middleware(client.New(down, c.Token), client.MiddlewareOptions{})(http.NotFoundHandler())
		rec := serve(h, junk...)
		if cs := rec.Result().Cookies(); rec.Code != http.StatusUnauthorized || len(cs) != 1 || cs[0].MaxAge >= 0 {
			t.Fatalf("%d, cookies %v: want 401 and the cookie deleted, without asking the node", rec.Code, cs)
		}
	})

	t.Run("more token-like cookies than it checks: no verdict, nothing deleted", func(t *testing.T) {
		var values []string
		for range 8 {
			values = append(values, randomToken(t)) // each costs a check: the node knows none
		}
		rec := serve(h, append(values, ans.Token)...)
		if rec.Code != http.StatusUnauthorized || len(rec.Result().Cookies()) != 0 {
			t.Fatalf("%d, cookies %v: want 401 and nothing deleted (the ninth cookie was never checked)", rec.Code, rec.Result().Cookies())
		}
		rec = serve(h, append(slices.Clone(values[:7]), ans.Token)...)
		if rec.Code != http.StatusOK || len(rec.Result().Cookies()) != 0 {
			t.Fatalf("%d, cookies %v: the eighth is checked", rec.Code, rec.Result().Cookies())
		}
		// Every one checked and none active: a verdict, and the cookie goes.
		rec = serve(h, values...)
		if cs := rec.Result().Cookies(); rec.Code != http.StatusUnauthorized || len(cs) != 1 || cs[0].MaxAge >= 0 {
			t.Fatalf("%d, cookies %v: want the cookie deleted", rec.Code, cs)
		}
	})
}

func TestMiddleware_NoStore(t *testing.T) {
	_, cls := clientCluster(t)
	ans := loginVerified(t, cls[0], "ada@example.com")
	mux := http.NewServeMux()
	protect := client.Middleware(cls[0], client.MiddlewareOptions{Optional: true})
	mux.Handle("/private", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "mine") })))
	mux.Handle("/public", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60") // the handler knows best
		io.WriteString(w, "anyone's")
	})))
	for _, tc := range []struct{ path, token, cache string }{
		{"/private", ans.Token, "private, no-store"}, // a page made for one visitor
		{"/private", "", "private, no-store"},        // optional, anonymous: the same URL
		{"/public", ans.Token, "public, max-age=60"},
	} {
		req := httptest.NewRequest("GET", tc.path, nil)
		if tc.token != "" {
			req.AddCookie(&http.Cookie{Name: client.DefaultCookie, Value: tc.token})
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if got := rec.Header().Get("Cache-Control"); rec.Code != http.StatusOK || got != tc.cache || !slices.Contains(rec.Header().Values("Vary"), "Cookie") {
			t.Errorf("%s (cookie %v): %d, Cache-Control %q, Vary %q; want %q and Vary: Cookie",
				tc.path, tc.token != "", rec.Code, got, rec.Header().Values("Vary"), tc.cache)
		}
	}
}
