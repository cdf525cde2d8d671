package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	// ErrUnreachable is wrapped by Client errors when no HTTP answer came
	// back: the node is down or hung, the address is wrong or the network
	// is in the way.
	ErrUnreachable = errors.New("the node cannot be reached")
	// ErrBadURL is wrapped by every error of a Client that New was given a
	// base URL it cannot use (empty, not a URL, another scheme than http,
	// https or unix, no host or socket path, a query or a fragment); the
	// error says which. No call of such a Client reaches the network.
	ErrBadURL = errors.New("bad API URL")
)

// maxAnswerBody bounds an answer: a page of 500 sessions is ~250 KB, a status
// of a thousand members ~200 KB.
const maxAnswerBody = 8 << 20

// Client calls a node's private API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
	err   error // why New could not use its base URL (wraps ErrBadURL), or nil
}

// DefaultTimeout is how long a Client's call waits for the node's answer
// unless WithTimeout says otherwise: long enough for a node under load, a
// ceiling on what a hung node costs each call.
const DefaultTimeout = 10 * time.Second

// New returns a client of the private API at baseURL (e.g.
// "http://127.0.0.1:7947"; a missing scheme means http) that sends token as
// the bearer token. A node whose API listens on a Unix socket (api.listen:
// unix:/run/ussync/api.sock) is reached with "unix:///run/ussync/api.sock"
// (or "unix:/run/ussync/api.sock"). Each call gives up after
// DefaultTimeout (WithTimeout changes it) unless its context ends first.
// New does no I/O; given a base URL it cannot use, it returns a Client
// every call of which returns an error wrapping ErrBadURL that says why.
//
// The client keeps up to 64 idle connections to the node, so that a
// site's backend checking sessions from many requests at once reuses them
// instead of opening (and leaving in TIME_WAIT) one per check.
func New(baseURL, token string) *Client {
	if path, ok := strings.CutPrefix(baseURL, "unix:"); ok {
		c := newUnix(strings.TrimPrefix(path, "//"), token)
		if strings.TrimPrefix(path, "//") == "" {
			c.err = badURL(baseURL, "no socket path (unix:///run/ussync/api.sock)")
		}
		return c
	}
	base := baseURL
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &Client{
		base:  strings.TrimRight(base, "/"),
		token: token,
		http:  &http.Client{Timeout: DefaultTimeout, Transport: pooled(nil)},
	}
	c.err = checkBase(baseURL, base)
	return c
}

// checkBase says why New cannot use base (baseURL with its scheme), or
// returns nil.
func checkBase(baseURL, base string) error {
	if baseURL == "" {
		return badURL(baseURL, "empty; give the node's api.listen, e.g. http://127.0.0.1:7947")
	}
	u, err := url.Parse(base)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return badURL(baseURL, "not a URL: "+err.Error())
	case u.Scheme != "http" && u.Scheme != "https":
		return badURL(baseURL, "scheme "+u.Scheme+"; want http, https or unix")
	case u.Host == "":
		return badURL(baseURL, "no host")
	case u.RawQuery != "" || u.ForceQuery:
		return badURL(baseURL, "a query; the calls' paths are added to the URL")
	case u.Fragment != "" || strings.Contains(base, "#"):
		return badURL(baseURL, "a fragment; the calls' paths are added to the URL")
	}
	return nil
}

func badURL(baseURL, why string) error {
	return fmt.Errorf("%w %q: %s", ErrBadURL, baseURL, why)
}

// newUnix is a client of the API on the Unix socket at path: requests go
// to http://localhost over connections to the socket.
func newUnix(path, token string) *Client {
	tr := pooled(func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	})
	return &Client{base: "http://localhost", token: token, http: &http.Client{Timeout: DefaultTimeout, Transport: tr}}
}

// maxIdleConns is how many idle connections to its node a Client keeps:
// a site's backend calls its node from many requests at once, and Go's
// default of 2 per host closes the rest after each burst.
const maxIdleConns = 64

// pooled is Go's default transport (proxy from the environment, which
// leaves loopback alone; dial and TLS handshake time limits) keeping
// maxIdleConns idle connections to the node, dialled with dial when it is
// not nil (a Unix socket: no proxy then).
func pooled(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = maxIdleConns
	tr.MaxIdleConnsPerHost = maxIdleConns
	tr.IdleConnTimeout = 90 * time.Second
	if dial != nil {
		tr.DialContext = dial
		tr.Proxy = nil
	}
	return tr
}

// WithTimeout returns a copy of c whose calls give up after d unless their
// context ends first (d <= 0: only the context bounds them); c is left as
// it is, and the two share their connections. A site's pages wait on the
// session check Middleware makes, so a Client made for it may want less
// than DefaultTimeout:
//
//	api := client.New(url, token).WithTimeout(2 * time.Second)
//
// Calls that wait on the whole cluster (the keyring's) and Backup have no
// limit of their own whatever d is: their context bounds them.
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	hc := *c.http
	hc.Timeout = max(d, 0)
	cp.http = &hc
	return &cp
}

// APIError is a non-2xx answer of the private API, from its
// {"error":{"code","message"}} body.
type APIError struct {
	StatusCode int    // HTTP status
	Code       string // machine-readable code, one of the Code* constants; empty if the body had none
	Message    string // the node's explanation, or the HTTP status text
	// RetryAfter is the answer's Retry-After (429 rate_limited, 503), or 0.
	RetryAfter time.Duration
	// NodeState is the answer's HeaderNodeState, which every answer of the
	// node's session check carries (GET /v1/sessions/{id}: Session,
	// CheckSession), its refusals included; "" on the answers of other
	// calls, and on an answer that was not the session check's (a wrong
	// base URL's path, another server, a proxy's error page). SessionOver
	// reads it.
	NodeState string
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// ErrorCode returns the Code of err when it is (or wraps) an *APIError, else
// "". Sites switch on it: ErrorCode(err) == CodeSessionRevoked.
func ErrorCode(err error) string {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.Code
	}
	return ""
}

// SessionOver reports whether err, from Session or CheckSession, is the
// node's verdict that the session is not active: 410 session_ended,
// session_revoked or session_expired, or 404 not_found (a session the node
// does not know: never issued, or forgotten long after its end), on an
// answer that carries HeaderNodeState, as only the session check's do.
// Any other error is no verdict on the session: no answer, a 5xx (the
// node failing closed, 503 node_isolated, among them), a refused API
// token, or a 404 from a wrong base URL's path or from another server.
// A site that logs a browser out when the check fails logs it out only
// when SessionOver is true; Middleware does.
func SessionOver(err error) bool {
	ae, ok := errors.AsType[*APIError](err)
	if !ok || ae.NodeState == "" {
		return false
	}
	switch ae.StatusCode {
	case http.StatusGone:
		return ae.Code == CodeSessionEnded || ae.Code == CodeSessionRevoked || ae.Code == CodeSessionExpired
	case http.StatusNotFound:
		return ae.Code == CodeNotFound
	}
	return false
}

// call sends one request (body JSON-encoded when not nil) and decodes a 2xx
// answer into out. A transport failure wraps ErrUnreachable; an error
// answer is an *APIError.
func (c *Client) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody+1))
	if err != nil {
		return fmt.Errorf("%w at %s: reading the answer: %v", ErrUnreachable, c.base, err)
	}
	if len(data) > maxAnswerBody {
		return fmt.Errorf("%s %s: answer larger than %d bytes", method, path, maxAnswerBody)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the expected JSON (is %s a ussync node?): %v", method, path, c.base, err)
	}
	return nil
}

// request is a request of the API at path, with the bearer token; its
// error wraps ErrBadURL.
func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if c.err != nil {
		return nil, c.err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, badURL(c.base, err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	return req, nil
}

// callLong is call without the client's own time limit: for calls that
// wait on the whole cluster (the keyring's), bounded by ctx and the node.
func (c *Client) callLong(ctx context.Context, method, path string, body, out any) error {
	return c.WithTimeout(0).call(ctx, method, path, body, out)
}

// unreachable explains a transport error without Go's "Get \"...\":" noise.
func (c *Client) unreachable(err error) error {
	var reason string
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused (is `ussync agent` running, and is this its api.listen?)"
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		reason = "no answer in time"
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the method and URL Go prefixes
		}
		reason = err.Error()
	}
	return fmt.Errorf("%w at %s: %s", ErrUnreachable, c.base, reason)
}

func apiError(resp *http.Response, body []byte) error {
	e := &APIError{StatusCode: resp.StatusCode}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error.Message != "" {
		e.Code, e.Message = env.Error.Code, env.Error.Message
	} else {
		e.Message = http.StatusText(resp.StatusCode)
	}
	e.NodeState = resp.Header.Get(HeaderNodeState)
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}
