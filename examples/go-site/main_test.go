package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node/nodetest"
)

// browser is a client with a cookie jar that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, b *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if form != nil {
		resp, err = b.PostForm(u, form)
	} else {
		req, _ := http.NewRequest(method, u, nil)
		resp, err = b.Do(req)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// visit walks the example as a person would: the account page sends to the
// login, the login comes back to it, and a "log out everywhere" sent
// through other ends it. other is a client of the same node: the call is
// the one another site of the family would make, but which site sends it
// is not what is tested here (the node's own tests cover a logout
// travelling between nodes).
func visit(t *testing.T, base string, other *client.Client) {
	t.Helper()
	b := browser(t)
	resp, _ := do(t, b, "GET", base+"/account", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Faccount" {
		t.Fatalf("anonymous /account: %d to %q, want 303 to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = do(t, b, "POST", base+"/login", url.Values{"email": {"Ada@Example.com"}, "next": {"/account"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do(t, b, "GET", base+"/account", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Logged in as <b>ada@example.com</b>") {
		t.Fatalf("logged-in /account: %d\n%s", resp.StatusCode, body)
	}
	// Every session of the user ends, as a "log out everywhere" on another
	// site of the family would do.
	if _, err := other.LogoutEverywhere(context.Background(), "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if resp, _ = do(t, b, "GET", base+"/account", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the logout elsewhere: %d, want the login redirect", resp.StatusCode)
	}
}

// roundTrip sends one request and returns the answer as it came: unlike
// an http.Client, it reads no Location header, so a Location a browser
// would misread is seen as the site sent it.
func roundTrip(t *testing.T, method, u string, form url.Values) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestGoSite(t *testing.T) {
	c := nodetest.NewCluster(t, 1)
	api := client.New(c.Members[0].APIAddr(), c.Token)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = newSite(api, "http://"+srv.Listener.Addr().String()+"/")
	srv.Start()
	t.Cleanup(srv.Close)
	visit(t, srv.URL, api)

	t.Run("an https site at its root sets the __Host- cookie", func(t *testing.T) {
		https := httptest.NewServer(newSite(api, "https://shop.example/"))
		t.Cleanup(https.Close)
		resp := roundTrip(t, "POST", https.URL+"/login", url.Values{"email": {"ada@example.com"}})
		var set *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == client.HostCookie {
				set = c
			}
		}
		if set == nil || !set.Secure || set.Path != "/" || set.Domain != "" || !set.HttpOnly || set.SameSite != http.SameSiteLaxMode {
			t.Fatalf("login set %v, want %s Secure, HttpOnly, SameSite=Lax on / with no Domain", resp.Cookies(), client.HostCookie)
		}
		req, _ := http.NewRequest("GET", https.URL+"/account", nil)
		req.AddCookie(&http.Cookie{Name: set.Name, Value: set.Value})
		if resp, err := http.DefaultTransport.RoundTrip(req); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("/account with it: %v, %v", resp, err)
		} else {
			resp.Body.Close()
		}
	})

	t.Run("logout", func(t *testing.T) {
		b := browser(t)
		do(t, b, "POST", srv.URL+"/login", url.Values{"email": {"grace@example.com"}})
		if resp, _ := do(t, b, "POST", srv.URL+"/logout", url.Values{}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if resp, _ := do(t, b, "GET", srv.URL+"/account", nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("/account after the logout: %d", resp.StatusCode)
		}
		page, err := api.Sessions(context.Background(), client.SessionQuery{Email: "grace@example.com", All: true})
		if err != nil || len(page.Sessions) != 1 || page.Sessions[0].EndReason != client.EndLogout {
			t.Fatalf("the session on the node: %+v, %v", page.Sessions, err)
		}
	})

	t.Run("logout ends and clears both cookie names", func(t *testing.T) {
		// An https site at the root of its host holds __Host-ussync_session
		// (set by the node's hand-off), and may hold ussync_session too (set
		// by its own login): the logout ends both sessions and deletes both.
		var tokens []string
		emails := []string{"hal@example.com", "hal2@example.com"}
		for _, email := range emails {
			ans, err := api.Login(context.Background(), client.LoginRequest{Email: email})
			if err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, ans.Token)
		}
		req, _ := http.NewRequest("POST", srv.URL+"/logout", nil)
		req.AddCookie(&http.Cookie{Name: client.HostCookie, Value: tokens[0]})
		req.AddCookie(&http.Cookie{Name: client.DefaultCookie, Value: tokens[1]})
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		gone := map[string]*http.Cookie{}
		for _, c := range resp.Cookies() {
			if c.MaxAge < 0 {
				gone[c.Name] = c
			}
		}
		if h := gone[client.HostCookie]; resp.StatusCode != http.StatusSeeOther || h == nil || !h.Secure || h.Path != "/" || gone[client.DefaultCookie] == nil {
			t.Fatalf("logout: %d, deleted %v: want both cookies deleted, the __Host- one Secure with Path=/", resp.StatusCode, resp.Cookies())
		}
		for _, email := range emails {
			page, err := api.Sessions(context.Background(), client.SessionQuery{Email: email, All: true})
			if err != nil || len(page.Sessions) != 1 || page.Sessions[0].EndReason != client.EndLogout {
				t.Errorf("%s's session on the node: %+v, %v; want it ended by the logout", email, page.Sessions, err)
			}
		}
	})

	t.Run("only this site's pages after the login", func(t *testing.T) {
		for _, next := range []string{
			"//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
			"/\t/evil.example", "/\r\n/evil.example", "/\n/evil.example", "javascript:alert(1)",
			"/%2F%2Fevil.example", "/%5Cevil.example", "/%09/evil.example", "/" + strings.Repeat("a", 4096),
		} {
			resp := roundTrip(t, "POST", srv.URL+"/login", url.Values{"email": {"ada@example.com"}, "next": {next}})
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
				t.Errorf("next %.60q: %d to %.60q, want the home page", next, resp.StatusCode, loc)
			}
		}
		resp, _ := do(t, browser(t), "POST", srv.URL+"/login", url.Values{"email": {"ada@example.com"}, "next": {"/account?tab=orders"}})
		if loc := resp.Header.Get("Location"); loc != "/account?tab=orders" {
			t.Errorf("a page of the site: sent to %q", loc)
		}
	})
}

// TestGoSite_Runs builds the example as its README says and runs it
// against a real node.
func TestGoSite_Runs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the example")
	}
	c := nodetest.NewCluster(t, 1)
	bin := filepath.Join(t.TempDir(), "go-site")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append(os.Environ(), "USSYNC_API_URL=http://"+c.Members[0].APIAddr(), "USSYNC_API_TOKEN="+c.Token, "ADDR=127.0.0.1:0")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // kills the process, which serves until killed
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, out)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second): // a bound on the start, not a measure
		t.Fatal("the example printed no address")
	}
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "go-site: listening on ")
	if !ok {
		t.Fatalf("the example printed %q", line)
	}
	visit(t, strings.TrimSuffix(base, "/"), client.New(c.Members[0].APIAddr(), c.Token))
}
