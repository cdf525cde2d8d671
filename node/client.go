package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrUnreachable is wrapped by Client errors when no HTTP answer came back: the
// node is down, the address is wrong or the network is in the way.
var ErrUnreachable = errors.New("the node cannot be reached")

// maxStatusBody bounds a status answer: a thousand members is ~200 KB.
const maxStatusBody = 8 << 20

// Client calls a node's private API. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// NewClient returns a client of the private API at baseURL (e.g.
// "http://127.0.0.1:7947"; a missing scheme means http) that sends token as
// the bearer token. Each call gives up after 10 s unless its context ends first.
func NewClient(baseURL, token string) *Client {
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	return &Client{
		base:  strings.TrimRight(baseURL, "/"),
		token: token,
		http:  &http.Client{Timeout: 10 * time.Second},
	}
}

// APIError is a non-2xx answer of the private API, from its
// {"error":{"code","message"}} body.
type APIError struct {
	StatusCode int    // HTTP status
	Code       string // machine-readable code, e.g. "unauthorized"; empty if the body had none
	Message    string // the node's explanation, or the HTTP status text
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("HTTP %d %s: %s", e.StatusCode, e.Code, e.Message)
}

// Status fetches the node's view of the cluster (GET /v1/status). A transport
// failure wraps ErrUnreachable; an error answer is an *APIError.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.get(ctx, "/v1/status", maxStatusBody, &st)
	return st, err
}

func (c *Client) get(ctx context.Context, path string, limit int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("bad API URL %q: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("%w at %s: reading the answer: %v", ErrUnreachable, c.base, err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("GET %s: answer larger than %d bytes", path, limit)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: the answer is not the expected JSON (is %s a ussync node?): %v", path, c.base, err)
	}
	return nil
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
	return e
}
