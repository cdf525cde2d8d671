package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/ussync/ussync/node/nodetest"
)

// client calls a node's private API. It is safe for concurrent use and
// never calls the harness (load goroutines use it).
//
// It is fasthttp's client, not net/http's: the load generator shares the
// CPUs with the nodes it measures. Against the same net/http server with a
// trivial handler, 50 clients in one process got 41,000 req/s on this
// machine with net/http's client and 70,000-74,000 with fasthttp's: the
// difference is CPU the server lost to the client. redis-benchmark and wrk
// are lean C clients for the same reason.
type client struct {
	fc    *fasthttp.Client
	auth  string
	conns int
	h     *harness
	// unix holds one client per Unix socket path (api.listen unix:PATH).
	unixMu sync.Mutex
	unix   map[string]*fasthttp.HostClient
}

// requestTimeout bounds one call; a node that does not answer in it is an
// error in the figures, not a hung bench.
const requestTimeout = 10 * time.Second

// newClient returns a client keeping up to conns connections per node; the
// harness closes them at the end.
func newClient(h *harness, c *nodetest.Cluster, conns int) *client {
	fc := &fasthttp.Client{
		MaxConnsPerHost: conns,
		// More callers than connections wait for one, as net/http's do.
		MaxConnWaitTimeout: requestTimeout,
		// Short, so that fasthttp's cleaner goroutines end soon after the
		// harness closes the connections (the bench leaves none behind).
		MaxIdleConnDuration:      time.Second,
		ReadTimeout:              requestTimeout,
		WriteTimeout:             requestTimeout,
		NoDefaultUserAgentHeader: true,
		// Nodes are addresses: nothing to resolve. (fasthttp's default
		// dialer would start a process-wide DNS cache goroutine.)
		Dial: func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, requestTimeout) },
	}
	h.Cleanup(fc.CloseIdleConnections)
	return &client{fc: fc, auth: "Bearer " + c.Token, conns: conns, h: h, unix: map[string]*fasthttp.HostClient{}}
}

// unixClient returns the client of the API on the socket at path.
func (cl *client) unixClient(path string) *fasthttp.HostClient {
	cl.unixMu.Lock()
	defer cl.unixMu.Unlock()
	hc := cl.unix[path]
	if hc == nil {
		hc = &fasthttp.HostClient{
			Addr:                     "localhost",
			MaxConns:                 cl.conns,
			MaxConnWaitTimeout:       requestTimeout,
			MaxIdleConnDuration:      time.Second,
			ReadTimeout:              requestTimeout,
			WriteTimeout:             requestTimeout,
			NoDefaultUserAgentHeader: true,
			Dial:                     func(string) (net.Conn, error) { return net.DialTimeout("unix", path, requestTimeout) },
		}
		cl.unix[path] = hc
		cl.h.Cleanup(hc.CloseIdleConnections)
	}
	return hc
}

// call sends one request and reads the whole answer.
func (cl *client) call(ctx context.Context, m *nodetest.Member, method, path string, body []byte) (int, []byte, error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	addr := m.APIAddr()
	do := cl.fc.DoTimeout
	if sock, ok := strings.CutPrefix(addr, "unix:"); ok {
		addr, do = "localhost", cl.unixClient(sock).DoTimeout
	}
	req.SetRequestURI("http://" + addr + path)
	req.Header.Set("Authorization", cl.auth)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := do(req, resp, requestTimeout); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// expect is call that wants one status code.
func (cl *client) expect(ctx context.Context, m *nodetest.Member, want int, method, path string, body []byte) ([]byte, error) {
	code, raw, err := cl.call(ctx, m, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s on %s: %w", method, path, m.Name(), err)
	}
	if code != want {
		return raw, fmt.Errorf("%s %s on %s: %d %s", method, path, m.Name(), code, bytes.TrimSpace(raw))
	}
	return raw, nil
}

func loginBody(email string) []byte {
	b, _ := json.Marshal(map[string]string{"email": email, "ip": "192.0.2.1", "user_agent": "ussync-bench"})
	return b
}

// login logs email in on m and returns the new session's id.
func (cl *client) login(ctx context.Context, m *nodetest.Member, email string) (string, error) {
	raw, err := cl.expect(ctx, m, http.StatusCreated, "POST", "/v1/sessions", loginBody(email))
	if err != nil {
		return "", err
	}
	var a struct {
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
		Synced bool   `json:"synced"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return "", fmt.Errorf("login answer %q: %w", raw, err)
	}
	if !a.Synced {
		return "", fmt.Errorf("login on %s not synced (%s)", m.Name(), a.Reason)
	}
	return a.Session.ID, nil
}

func userEmail(i int) string { return fmt.Sprintf("user%06d@bench.example", i) }

// registerUsers creates n verified users, registered on every member (each
// site proved the address: its logins travel, docs/security.md), and waits
// until every member knows them verified.
func registerUsers(ctx context.Context, c *nodetest.Cluster, cl *client, n int) ([]string, error) {
	body := []byte(`{"login":"bench","display_name":"Bench","verified_via":"registration"}`)
	emails := make([]string, n)
	for i := range emails {
		emails[i] = userEmail(i)
		for _, m := range c.Members {
			if _, err := cl.expect(ctx, m, http.StatusOK, "PUT", "/v1/users/"+emails[i], body); err != nil {
				return nil, err
			}
		}
	}
	// Every node holds every user in the same state before anything is
	// measured.
	if err := settleGossip(ctx, c); err != nil {
		return nil, fmt.Errorf("register %d users: %w", n, err)
	}
	return emails, nil
}
