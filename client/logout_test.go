package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ussync/ussync/client"
)

func TestLogout(t *testing.T) {
	c, cls := clientCluster(t)
	ctx := context.Background()
	logout := func(cl *client.Client, opts client.MiddlewareOptions, cookies ...*http.Cookie) (*httptest.ResponseRecorder, error) {
		req := httptest.NewRequest("POST", "/logout", nil)
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		return rec, client.Logout(cl, rec, req, opts)
	}
	ended := func(t *testing.T, ans client.LoginAnswer) bool {
		t.Helper()
		_, err := cls[0].Session(ctx, ans.Session.ID)
		return client.ErrorCode(err) == client.CodeSessionEnded
	}

	t.Run("ends the session of each cookie and deletes both names", func(t *testing.T) {
		a, b := loginVerified(t, cls[0], "ada@example.com"), loginVerified(t, cls[0], "ada@example.com")
		rec, err := logout(cls[0], client.MiddlewareOptions{},
			&http.Cookie{Name: client.HostCookie, Value: a.Token}, &http.Cookie{Name: client.DefaultCookie, Value: b.Token})
		if err != nil || !ended(t, a) || !ended(t, b) {
			t.Fatalf("err %v, ended %v %v", err, ended(t, a), ended(t, b))
		}
		gone := map[string]*http.Cookie{}
		for _, ck := range rec.Result().Cookies() {
			if ck.MaxAge < 0 {
				gone[ck.Name] = ck
			}
		}
		if h := gone[client.HostCookie]; h == nil || !h.Secure || h.Path != "/" || gone[client.DefaultCookie] == nil {
			t.Fatalf("deleted %v, want both names, the __Host- one Secure on /", rec.Result().Cookies())
		}
	})

	t.Run("a site's own cookie name and path", func(t *testing.T) {
		a := loginVerified(t, cls[0], "grace@example.com")
		rec, err := logout(cls[0], client.MiddlewareOptions{CookieName: "shop_session", CookiePath: "/shop/"},
			&http.Cookie{Name: client.DefaultCookie, Value: "junk"}, &http.Cookie{Name: "shop_session", Value: a.Token})
		cs := rec.Result().Cookies()
		if err != nil || !ended(t, a) || len(cs) != 1 || cs[0].Name != "shop_session" || cs[0].Path != "/shop/" || cs[0].MaxAge >= 0 {
			t.Fatalf("err %v, ended %v, cookies %v", err, ended(t, a), cs)
		}
	})

	t.Run("nothing to end is done", func(t *testing.T) {
		// Already over, unknown to the node, not a token: the cookie goes.
		a := loginVerified(t, cls[0], "alan@example.com")
		if _, err := cls[0].EndSession(ctx, a.Session.ID); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{a.Token, randomToken(t), "junk"} {
			rec, err := logout(cls[0], client.MiddlewareOptions{}, &http.Cookie{Name: client.DefaultCookie, Value: v})
			if cs := rec.Result().Cookies(); err != nil || len(cs) != 1 || cs[0].MaxAge >= 0 {
				t.Errorf("%.10s…: err %v, cookies %v; want it deleted", v, err, cs)
			}
		}
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	for name, cl := range map[string]*client.Client{
		"an unreachable node":      client.New(down, c.Token),
		"a wrong path on the node": client.New("http://"+c.Members[0].APIAddr()+"/api", c.Token),
		"a refused API token":      client.New(c.Members[0].APIAddr(), "a-wrong-token-of-some-length"),
	} {
		t.Run(name+" is an error, and the cookie stays", func(t *testing.T) {
			a := loginVerified(t, cls[0], "ann@example.com")
			rec, err := logout(cl, client.MiddlewareOptions{}, &http.Cookie{Name: client.DefaultCookie, Value: a.Token})
			if err == nil || len(rec.Result().Cookies()) != 0 || ended(t, a) {
				t.Fatalf("err %v, cookies %v, ended %v", err, rec.Result().Cookies(), ended(t, a))
			}
			if name == "an unreachable node" && !errors.Is(err, client.ErrUnreachable) {
				t.Errorf("err %v, want ErrUnreachable", err)
			}
		})
	}

	t.Run("more token-like cookies than it checks: an error, nothing deleted", func(t *testing.T) {
		var cookies []*http.Cookie
		for range 9 {
			cookies = append(cookies, &http.Cookie{Name: client.DefaultCookie, Value: randomToken(t)})
		}
		rec, err := logout(cls[0], client.MiddlewareOptions{}, cookies...)
		if err == nil || len(rec.Result().Cookies()) != 0 {
			t.Fatalf("err %v, cookies %v", err, rec.Result().Cookies())
		}
	})
}
