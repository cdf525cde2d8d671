package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node/nodetest"
)

func TestClient_Status(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/ok/v1/status":
			w.Write([]byte(`{"node":"n1","members":[{"name":"n1","state":"alive"}],"future_field":1}`))
		case "/forbidden/v1/status":
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"wrong token"}}`))
		case "/proxy/v1/status":
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`<html>bad gateway</html>`))
		default:
			w.Write([]byte(`not json`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	t.Run("ok", func(t *testing.T) {
		st, err := client.New(srv.URL+"/ok/", "tok").Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Node != "n1" || len(st.Members) != 1 || gotAuth != "Bearer tok" {
			t.Errorf("got %+v, auth %q", st, gotAuth)
		}
	})

	t.Run("scheme optional", func(t *testing.T) {
		if _, err := client.New(strings.TrimPrefix(srv.URL, "http://")+"/ok", "tok").Status(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("api error", func(t *testing.T) {
		_, err := client.New(srv.URL+"/forbidden", "tok").Status(ctx)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "unauthorized" || ae.Message != "wrong token" {
			t.Fatalf("err = %#v", err)
		}
		if !strings.Contains(err.Error(), "wrong token") {
			t.Errorf("err = %q", err)
		}
	})

	t.Run("non-JSON error body", func(t *testing.T) {
		_, err := client.New(srv.URL+"/proxy", "tok").Status(ctx)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Message != "Bad Gateway" {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("not a node", func(t *testing.T) {
		_, err := client.New(srv.URL+"/other", "tok").Status(ctx)
		if err == nil || !strings.Contains(err.Error(), "not the expected JSON") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = client.New("http://"+addr, "secret-token").Status(ctx)
		if !errors.Is(err, client.ErrUnreachable) {
			t.Fatalf("err = %v, want ErrUnreachable", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "cannot be reached at http://"+addr) || !strings.Contains(msg, "connection refused") || strings.Contains(msg, "secret-token") {
			t.Errorf("err = %q", msg)
		}
	})
}

func TestNew_BadURL(t *testing.T) {
	for url, why := range map[string]string{
		"":                           "empty",
		"unix:":                      "no socket path",
		"unix://":                    "no socket path",
		"http://":                    "no host",
		"ftp://127.0.0.1:7947":       "scheme",
		"http://127.0.0.1:7947?x=1":  "query",
		"http://127.0.0.1:7947/#top": "fragment",
		"http://[::1":                "not a URL",
	} {
		_, err := client.New(url, "secret-token").Status(context.Background())
		if !errors.Is(err, client.ErrBadURL) || errors.Is(err, client.ErrUnreachable) ||
			!strings.Contains(err.Error(), why) || strings.Contains(err.Error(), "secret-token") {
			t.Errorf("New(%q): %v, want ErrBadURL saying %q", url, err, why)
		}
		if _, err := client.New(url, "tok").Backup(context.Background(), io.Discard); !errors.Is(err, client.ErrBadURL) {
			t.Errorf("New(%q).Backup: %v, want ErrBadURL", url, err)
		}
	}
}

// clientCluster starts a two-node cluster and returns a client of each
// node's private API.
func clientCluster(t *testing.T) (*nodetest.Cluster, []*client.Client) {
	t.Helper()
	c := nodetest.NewCluster(t, 2)
	var cls []*client.Client
	for _, m := range c.Members {
		cls = append(cls, client.New(m.APIAddr(), c.Token))
	}
	return c, cls
}

// wantAPIError fails t unless err is an *APIError of the status and code,
// and returns it.
func wantAPIError(t *testing.T, err error, status int, code string) *client.APIError {
	t.Helper()
	ae, ok := errors.AsType[*client.APIError](err)
	if !ok || ae.StatusCode != status || ae.Code != code {
		t.Fatalf("err = %v, want HTTP %d %s", err, status, code)
	}
	return ae
}

// loginVerified registers email as a verified user and logs it in.
func loginVerified(t *testing.T, cl *client.Client, email string) client.LoginAnswer {
	t.Helper()
	ctx := context.Background()
	via := "registration"
	if _, err := cl.PutUser(ctx, email, client.UserUpdate{VerifiedVia: &via}); err != nil {
		t.Fatalf("put user: %v", err)
	}
	ans, err := cl.Login(ctx, client.LoginRequest{Email: email})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return ans
}

func TestClient_Login(t *testing.T) {
	_, cl := clientCluster(t)
	ctx := context.Background()

	t.Run("verified user gets hand-off links", func(t *testing.T) {
		via := "registration"
		if _, err := cl[0].PutUser(ctx, "ada@example.com", client.UserUpdate{VerifiedVia: &via}); err != nil {
			t.Fatal(err)
		}
		before := time.Now()
		ans, err := cl[0].Login(ctx, client.LoginRequest{
			Email:     "Ada@Example.com",
			IP:        "192.0.2.7",
			UserAgent: "test-agent",
			TTL:       3 * time.Hour,
			ReturnTo:  "http://site-0.localhost/account",
		})
		if err != nil {
			t.Fatal(err)
		}
		s := ans.Session
		if ans.Token == "" || s.ID != client.SessionID(ans.Token) {
			t.Errorf("session id %q is not the hash of the token", s.ID)
		}
		if s.Email != "ada@example.com" || s.Site != "n0" || s.IP != "192.0.2.7" || s.UserAgent != "test-agent" || !s.Active || !s.Synced {
			t.Errorf("session = %+v", s)
		}
		if ttl := s.ExpiresAt.Sub(before); ttl < 3*time.Hour-time.Minute || ttl > 3*time.Hour+time.Minute {
			t.Errorf("session lives %s, want the 3h asked for", ttl)
		}
		if !ans.Synced || ans.Reason != "" {
			t.Errorf("synced %v, reason %q", ans.Synced, ans.Reason)
		}
		// An iframe's link for n1 starts on this site (docs/handoff.md).
		if len(ans.Sync.URLs) != 1 || ans.Sync.URLs[0].Site != "n1" || !strings.HasPrefix(ans.Sync.URLs[0].URL, "http://site-0.localhost/ussync/v1/bind?h=") {
			t.Errorf("sync URLs = %+v, want one for n1", ans.Sync.URLs)
		}
		// The chain starts with its first pass (bind), on this site:
		// return_to is sealed in its state.
		chain, err := url.Parse(ans.Sync.Chain)
		if err != nil || chain.Host != "site-0.localhost" || chain.Path != "/ussync/v1/bind" || chain.Query().Get("h") == "" {
			t.Errorf("chain = %q, want the first pass, starting on this site", ans.Sync.Chain)
		}
	})

	t.Run("unverified user stays on its site", func(t *testing.T) {
		login, name := "grace", "Grace Hopper"
		ans, err := cl[0].Login(ctx, client.LoginRequest{Email: "grace@example.com", Login: &login, DisplayName: &name})
		if err != nil {
			t.Fatal(err)
		}
		if ans.Synced || ans.Session.Synced || ans.Reason != client.ReasonNotVerified || len(ans.Sync.URLs) != 0 || ans.Sync.Chain != "" {
			t.Errorf("answer = %+v, want a local session without links", ans)
		}
		if b := ans.Bind; b == nil || b.How != client.BindByCode || b.Send != "POST /v1/users/grace@example.com/verification" {
			t.Errorf("bind = %+v, want how to send a code", ans.Bind)
		}
		u, err := cl[0].User(ctx, "grace@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if u.Login != login || u.DisplayName != name || u.Verified {
			t.Errorf("user = %+v", u)
		}
	})

	t.Run("refusals are APIErrors", func(t *testing.T) {
		_, err := cl[0].Login(ctx, client.LoginRequest{Email: "not an address"})
		wantAPIError(t, err, http.StatusBadRequest, "invalid_email")
		_, err = cl[0].Login(ctx, client.LoginRequest{Email: "ada@example.com", TTL: 2 * 8760 * time.Hour})
		wantAPIError(t, err, http.StatusBadRequest, "invalid_field")
		_, err = cl[0].Login(ctx, client.LoginRequest{Email: "ada@example.com", ReturnTo: "https://evil.example/"})
		wantAPIError(t, err, http.StatusBadRequest, "bad_redirect")
	})
}

func TestClient_Session(t *testing.T) {
	c, cl := clientCluster(t)
	ctx := context.Background()
	ans := loginVerified(t, cl[0], "ada@example.com")

	t.Run("active on every site", func(t *testing.T) {
		s, err := cl[0].Session(ctx, ans.Session.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != ans.Session.ID || s.Email != "ada@example.com" || !s.Active {
			t.Errorf("session = %+v", s)
		}
		c.WaitFor(10*time.Second, "the session to reach n1", func() bool {
			s, err := cl[1].Session(ctx, ans.Session.ID)
			return err == nil && s.Active
		})
	})

	t.Run("unknown", func(t *testing.T) {
		_, err := cl[0].Session(ctx, client.SessionID("no such token"))
		if ae := wantAPIError(t, err, http.StatusNotFound, "not_found"); ae.NodeState != client.NodeStateOK || !client.SessionOver(err) {
			t.Errorf("node state %q, over %v: the node's own answer that it knows no such session", ae.NodeState, client.SessionOver(err))
		}
		// The same 404 from the node's router (a base URL with a wrong path)
		// says nothing of the session.
		_, err = client.New("http://"+c.Members[0].APIAddr()+"/api", c.Token).Session(ctx, client.SessionID("no such token"))
		if ae := wantAPIError(t, err, http.StatusNotFound, "not_found"); ae.NodeState != "" || client.SessionOver(err) {
			t.Errorf("a wrong path: node state %q, over %v", ae.NodeState, client.SessionOver(err))
		}
	})

	t.Run("id is one path segment", func(t *testing.T) {
		_, err := cl[0].Session(ctx, "a/b") // unescaped, no route would match
		wantAPIError(t, err, http.StatusBadRequest, "invalid_id")
		if client.SessionOver(err) {
			t.Error("a malformed id is the caller's mistake, not a verdict on a session")
		}
	})

	t.Run("ended is gone", func(t *testing.T) {
		a := loginVerified(t, cl[0], "grace@example.com")
		if _, err := cl[0].EndSession(ctx, a.Session.ID); err != nil {
			t.Fatal(err)
		}
		_, err := cl[0].Session(ctx, a.Session.ID)
		wantAPIError(t, err, http.StatusGone, "session_ended")
		if !client.SessionOver(err) {
			t.Error("SessionOver is false for an ended session")
		}
	})

	t.Run("logged out everywhere is gone", func(t *testing.T) {
		a := loginVerified(t, cl[0], "alan@example.com")
		if _, err := cl[0].LogoutEverywhere(ctx, "alan@example.com"); err != nil {
			t.Fatal(err)
		}
		_, err := cl[0].Session(ctx, a.Session.ID)
		// Ended by the call itself; session_revoked is for a session that
		// reaches a node after its user's revocation.
		ae := wantAPIError(t, err, http.StatusGone, "session_ended")
		if !strings.Contains(ae.Message, "logout_everywhere") {
			t.Errorf("message %q does not say how the session ended", ae.Message)
		}
	})
}

func TestClient_EndSession(t *testing.T) {
	c, cl := clientCluster(t)
	ctx := context.Background()
	ans := loginVerified(t, cl[0], "ada@example.com")

	s, err := cl[0].EndSession(ctx, ans.Session.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s.ID != ans.Session.ID || s.Active || s.EndReason != "logout" || s.EndedAt == nil {
		t.Fatalf("session = %+v, want ended by logout", s)
	}

	t.Run("again keeps the first end", func(t *testing.T) {
		again, err := cl[0].EndSession(ctx, ans.Session.ID)
		if err != nil {
			t.Fatal(err)
		}
		if again.EndReason != "logout" || again.EndedAt == nil || !again.EndedAt.Equal(*s.EndedAt) {
			t.Errorf("session = %+v, want it as first ended (%v)", again, s.EndedAt)
		}
	})

	t.Run("gone on every site", func(t *testing.T) {
		c.WaitFor(10*time.Second, "n1 to see the logout", func() bool {
			_, err := cl[1].Session(ctx, ans.Session.ID)
			ae, ok := errors.AsType[*client.APIError](err)
			return ok && ae.Code == "session_ended"
		})
	})

	t.Run("unknown", func(t *testing.T) {
		_, err := cl[0].EndSession(ctx, client.SessionID("no such token"))
		wantAPIError(t, err, http.StatusNotFound, "not_found")
	})
}

// TestClient_Pool checks that a client keeps its connections to the node
// for the next calls, as many as a busy site's backend has open at once:
// with Go's default of 2 idle connections per host, every burst of checks
// opened new ones and left thousands in TIME_WAIT under load.
func TestClient_Pool(t *testing.T) {
	const concurrent = 16
	var conns atomic.Int32
	arrived := make(chan struct{}, concurrent)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release // every call of a burst is in flight at once, each on its own connection
		w.Write([]byte(`{"node":"n1"}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	cl := client.New(srv.URL, "tok")
	for burst := range 2 {
		errs := make(chan error, concurrent)
		for range concurrent {
			go func() {
				_, err := cl.Status(context.Background())
				errs <- err
			}()
		}
		for range concurrent {
			<-arrived
		}
		for range concurrent {
			release <- struct{}{}
		}
		for range concurrent {
			if err := <-errs; err != nil {
				t.Fatalf("burst %d: %v", burst, err)
			}
		}
	}
	if n := conns.Load(); n != concurrent {
		t.Errorf("two bursts of %d calls opened %d connections, want %d: the second reuses the first's", concurrent, n, concurrent)
	}
}

func TestClient_WithTimeout(t *testing.T) {
	hung := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a node that never answers, until the test ends
		case <-r.Context().Done():
		case <-hung:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hung) })
	_, err := client.New(srv.URL, "tok").WithTimeout(50 * time.Millisecond).Status(context.Background())
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), "no answer in time") {
		t.Fatalf("err = %v, want no answer in time", err)
	}
}
