package node

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/client"
)

// The node's two HTTP listeners hold a bounded number of connections
// (api/public.max_connections), and the private one answers only to the
// names it is reached by (api.allowed_hosts), against DNS rebinding.

// turnAwayAnswer is what a plain-HTTP connection over the cap is told before
// it is closed.
var turnAwayAnswer = func() string {
	body := `{"error":{"code":"` + client.CodeUnavailable + `","message":"the node holds too many connections; try again in a moment"}}`
	return "HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json\r\n" +
		"Cache-Control: no-store\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"\r\n" + body
}()

// turnAwayParallel bounds the connections being turned away at once (each
// is answered on a goroutine of its own, for at most turnAwayTime); past
// it, a connection over the cap is closed without an answer.
const (
	turnAwayParallel = 64
	turnAwayTime     = time.Second
)

// limitListener is a net.Listener that holds at most max connections open:
// a connection accepted over the cap is answered 503 (plain HTTP) or closed
// (TLS: a plain answer would be garbage to the handshake), and the
// listener goes on accepting. Unlike netutil.LimitListener, which stops
// accepting at the cap, it never leaves a client waiting in the kernel's
// backlog with no answer.
type limitListener struct {
	net.Listener
	max     int64
	answer  []byte // nil: close without an answer
	open    atomic.Int64
	refused atomic.Uint64
	turning chan struct{}  // a slot per connection being turned away
	wg      sync.WaitGroup // the turn-away goroutines; Close waits for them
	mu      sync.Mutex     // orders wg.Add after Close against its Wait
	closed  bool
}

func newLimitListener(ln net.Listener, max int, tls bool) *limitListener {
	l := &limitListener{Listener: ln, max: int64(max), turning: make(chan struct{}, turnAwayParallel)}
	if !tls {
		l.answer = []byte(turnAwayAnswer)
	}
	return l
}

// Accept returns the next connection within the cap; those over it are
// turned away here.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		l.turnAway(c)
	}
}

// turnAway answers c 503 and closes it, on a goroutine of its own; the
// request it may have sent is read and dropped meanwhile, so that closing
// does not reset the connection before the client reads the answer.
func (l *limitListener) turnAway(c net.Conn) {
	if l.answer == nil {
		c.Close()
		return
	}
	select {
	case l.turning <- struct{}{}:
	default:
		c.Close()
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		<-l.turning
		c.Close()
		return
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		defer func() { <-l.turning }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(turnAwayTime))
		if _, err := c.Write(l.answer); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		var buf [4096]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				return
			}
		}
	}()
}

// Close stops accepting and waits for the connections being turned away
// (each for at most turnAwayTime).
func (l *limitListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	err := l.Listener.Close()
	l.wg.Wait()
	return err
}

// Open is the number of connections held now.
func (l *limitListener) Open() int64 { return l.open.Load() }

// Refused is the number of connections turned away since the start.
func (l *limitListener) Refused() uint64 { return l.refused.Load() }

// limitConn gives its slot back when it is closed (once, however often
// Close is called).
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// hostGuard refuses requests to the private listener whose Host header
// names a host the node is not known by. A web page can make a browser
// send requests to 127.0.0.1 under the page's own name (DNS rebinding:
// the name resolves to the attacker, then to 127.0.0.1); the Host header
// still carries that name, so checking it closes the door. What is
// accepted: no Host (not a browser), IP addresses (a rebinding needs a
// name), localhost and *.localhost (browsers resolve them to loopback
// themselves, RFC 6761), the host of api.listen, and api.allowed_hosts.
type hostGuard struct {
	next  http.Handler
	names map[string]bool // lower case, without a trailing dot
	log   *slog.Logger
}

func newHostGuard(next http.Handler, listen string, extra []string, log *slog.Logger) *hostGuard {
	g := &hostGuard{next: next, names: map[string]bool{}, log: log}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		g.names[normalHost(h)] = true
	}
	for _, h := range extra {
		g.names[normalHost(h)] = true
	}
	return g
}

func normalHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// allowed reports whether hostport, a Host header, names this listener.
func (g *hostGuard) allowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	h = normalHost(h)
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || g.names[h]
}

func (g *hostGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.allowed(r.Host) {
		g.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	writeError(w, r, g.log, refuse(errWrongHost,
		"this node's private API does not answer to the host name in the Host header (a guard against DNS rebinding): "+
			"reach it by IP address or localhost, or add the name to api.allowed_hosts"))
}
