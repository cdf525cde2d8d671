package bench

import (
	"context"
	"net"
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
	fc   *fasthttp.Client
	auth string
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
	return &client{fc: fc, auth: "Bearer " + c.Token}
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
	req.SetRequestURI("http://" + m.APIAddr() + path)
	req.Header.Set("Authorization", cl.auth)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := cl.fc.DoTimeout(req, resp, requestTimeout); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}
