package node_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// slowBody is a raw TCP client that sends a request's headers, then its
// body one byte at a time, for as long as the server keeps the connection.
type slowBody struct {
	conn net.Conn
	cut  chan struct{} // closed when the server has closed the connection
}

func dialSlowBody(addr, head string) (*slowBody, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, head); err != nil {
		c.Close()
		return nil, err
	}
	s := &slowBody{conn: c, cut: make(chan struct{})}
	go func() {
		// Whatever the server answers (408, 400 or nothing), the connection
		// is over when it closes it.
		io.Copy(io.Discard, c)
		close(s.cut)
	}()
	return s, nil
}

// dribble writes one byte of body every interval until the connection is cut
// or stop is closed.
func (s *slowBody) dribble(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.cut:
			return
		case <-stop:
			return
		case <-t.C:
			if _, err := s.conn.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}
}

func (s *slowBody) isCut() bool {
	select {
	case <-s.cut:
		return true
	default:
		return false
	}
}

// TestHTTP_SlowBodies: 3,000 connections that send their headers and then
// dribble their bodies (1,500 to each listener) neither keep a normal
// request from being answered nor stay open: the node cuts every one of
// them (read_timeout). Before, they were held as long as they dribbled.
func TestHTTP_SlowBodies(t *testing.T) {
	const perListener = 1500
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) {
		cfg.API.ReadTimeout = node.Duration(2 * time.Second)
		cfg.Public.ReadTimeout = node.Duration(2 * time.Second)
	}
	c.Start(1)
	m := c.Members[0]
	register(t, c, 0, "ann@example.com")

	heads := map[string]string{
		m.APIAddr(): "PUT /v1/users/slow@example.com HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + c.Token +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
		m.PublicAddr(): "POST /ussync/v1/logout HTTP/1.1\r\nHost: site-0.localhost\r\nContent-Type: application/json\r\n" +
			"Content-Length: 100000\r\n\r\n{",
	}
	stop := make(chan struct{})
	var (
		mu    sync.Mutex
		slow  []*slowBody
		wg    sync.WaitGroup
		fails atomic.Int64
	)
	defer func() {
		close(stop)
		wg.Wait()
		for _, s := range slow {
			s.conn.Close()
		}
	}()
	// Dial in parallel, a few hundred at a time.
	sem := make(chan struct{}, 200)
	var dials sync.WaitGroup
	for addr, head := range heads {
		for range perListener {
			dials.Add(1)
			sem <- struct{}{}
			go func() {
				defer dials.Done()
				defer func() { <-sem }()
				s, err := dialSlowBody(addr, head)
				if err != nil {
					fails.Add(1)
					return
				}
				mu.Lock()
				slow = append(slow, s)
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.dribble(250*time.Millisecond, stop)
				}()
			}()
		}
	}
	dials.Wait()
	if n := fails.Load(); n > 0 {
		t.Fatalf("%d of %d slow clients could not connect", n, 2*perListener)
	}

	t.Run("a normal request still answers", func(t *testing.T) {
		a := login(t, m, "ann@example.com")
		if code, ec := checkOn(t, m, a.Session.ID); code != http.StatusOK {
			t.Fatalf("session check among slow bodies: %d %s", code, ec)
		}
		resp, err := c.HTTP.Get("http://" + m.PublicAddr() + "/healthz")
		if err != nil {
			t.Fatalf("public /healthz among slow bodies: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("public /healthz among slow bodies: %d", resp.StatusCode)
		}
	})

	t.Run("the slow ones are cut", func(t *testing.T) {
		eventually.True(t, 2*time.Minute, "every slow-body connection cut by the node", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range slow {
				if !s.isCut() {
					return false
				}
			}
			return true
		})
	})
}

// TestHTTP_SlowReader: a client that sends requests and never reads the
// answers (here thousands pipelined on one connection: tens of MB of
// answers, more than the sockets' buffers hold) cannot hold a connection: once the answers fill the socket
// buffers, the node's write waits, and write_timeout cuts the connection.
// Without it the connection would be held for as long as the client keeps
// it open.
func TestHTTP_SlowReader(t *testing.T) {
	const requests = 20000 // ~2 KB answers: far more than the sockets' buffers hold
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) { cfg.Public.WriteTimeout = node.Duration(2 * time.Second) }
	c.Start(1)
	m := c.Members[0]
	open := func() float64 {
		return metricValue(t, scrapeText(t, m), `ussync_http_connections{listener="public"}`)
	}
	conn, err := net.Dial("tcp", m.PublicAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// An answer the size of a page: the refusal page of a link that is no
	// link.
	req := []byte("GET /ussync/v1/verify?c=x HTTP/1.1\r\nHost: site-0.localhost\r\n\r\n")
	go func() { // blocks once the node stops reading; ends when it closes
		for range requests {
			if _, err := conn.Write(req); err != nil {
				return
			}
		}
	}()
	eventually.True(t, 10*time.Second, "the node holding the slow reader's connection", func() bool { return open() >= 1 })
	eventually.True(t, time.Minute, "the node cutting the slow reader's connection", func() bool { return open() == 0 })

	// What the client reads now is at most what was buffered (the node's
	// close may reset the connection before), then the end: fewer answers
	// than it asked for.
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(conn)
	answers := 0
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		answers++
	}
	if answers >= requests {
		t.Fatalf("the slow reader read %d answers of %d", answers, requests)
	}
	t.Logf("the slow reader got %d answers of %d before the node cut it", answers, requests)
}

// TestHTTP_ConnectionCap: over max_connections, a connection is answered
// 503 (JSON, Retry-After) and closed, and counted; once connections are
// released the node answers again.
func TestHTTP_ConnectionCap(t *testing.T) {
	const capacity = 20
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) {
		cfg.API.MaxConnections = capacity
		cfg.Public.MaxConnections = capacity
	}
	c.Start(1)
	m := c.Members[0]

	for _, addr := range []string{m.APIAddr(), m.PublicAddr()} {
		t.Run(addr, func(t *testing.T) {
			held := make([]net.Conn, 0, capacity)
			release := func() {
				for _, h := range held {
					h.Close()
				}
				held = held[:0]
			}
			defer release()
			for range capacity {
				h, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, h)
			}
			// One more: turned away with an answer, whatever it sends.
			// (The cap counts connections the node has accepted: wait
			// until it has accepted the held ones.)
			var ans *http.Response
			eventually.True(t, 10*time.Second, "a connection over the cap answered 503", func() bool {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					return false
				}
				defer conn.Close()
				fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				r, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					return false
				}
				defer r.Body.Close()
				if r.StatusCode != http.StatusServiceUnavailable {
					return false
				}
				var body struct{ Error struct{ Code string } }
				if json.NewDecoder(r.Body).Decode(&body) != nil || body.Error.Code != client.CodeUnavailable {
					return false
				}
				ans = r
				return true
			})
			if ans.Header.Get("Retry-After") == "" {
				t.Error("no Retry-After on the 503")
			}
			release()
			eventually.True(t, 10*time.Second, "the node answering once connections are released", func() bool {
				resp, err := c.HTTP.Get("http://" + addr + "/healthz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		})
	}
	metrics := scrapeText(t, m)
	for _, l := range []string{"api", "public"} {
		if v := metricValue(t, metrics, `ussync_http_connections_refused_total{listener="`+l+`"}`); v < 1 {
			t.Errorf("%s: ussync_http_connections_refused_total %v, want at least 1", l, v)
		}
	}
}

// TestAPI_HostCheck: the private listener refuses a Host header that names
// another host (DNS rebinding: a page at evil.example resolved to
// 127.0.0.1) with 421 wrong_host, the admin page included; it answers IP
// addresses, localhost names and api.allowed_hosts.
func TestAPI_HostCheck(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) { cfg.API.AllowedHosts = []string{"ussync.internal"} }
	c.Start(1)
	m := c.Members[0]
	_, port, _ := net.SplitHostPort(m.APIAddr())

	get := func(path, host string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+m.APIAddr()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := c.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error struct{ Code, Message string }
		}
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &body)
		return resp.StatusCode, body.Error.Code
	}
	for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1.nip.io:" + port, "localhost.evil.example", "ussync.internal.evil.example"} {
		for _, path := range []string{"/v1/status", "/admin/login", "/metrics", "/healthz"} {
			if code, ec := get(path, host); code != http.StatusMisdirectedRequest || ec != client.CodeWrongHost {
				t.Errorf("GET %s with Host %q: %d %q, want 421 %s", path, host, code, ec, client.CodeWrongHost)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "127.0.0.1", "[::1]:" + port, "localhost:" + port, "LOCALHOST.", "node.localhost:" + port, "ussync.internal:" + port, "USSYNC.internal", "10.1.2.3:" + port} {
		if code, ec := get("/v1/status", host); code != http.StatusOK {
			t.Errorf("GET /v1/status with Host %q: %d %q, want 200", host, code, ec)
		}
	}
	// The public listener is reached under the sites' own names.
	req, _ := http.NewRequest("GET", "http://"+m.PublicAddr()+"/healthz", nil)
	req.Host = "evil.example"
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("public /healthz with another Host: %d, want 200", resp.StatusCode)
	}
}

// scrape reads a member's /metrics.
func scrapeText(t *testing.T, m *nodetest.Member) string {
	t.Helper()
	resp, err := http.Get("http://" + m.APIAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue is the value of the series named exactly (name{labels}), or
// -1 when absent.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric %s: %q: %v", series, rest, err)
			}
			return v
		}
	}
	return -1
}
