package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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

// maxAnswerBody bounds the answers of the calls but status: a page of 500
// sessions is ~250 KB.
const maxAnswerBody = 8 << 20

// SessionQuery selects a page of GET /v1/sessions; zero fields are left to
// the node's defaults.
type SessionQuery struct {
	Email  string
	Site   string
	All    bool // history too (state=all); else active sessions only
	Oldest bool // oldest first (order=oldest); else newest first
	After  string
	Limit  int
}

// SessionPage is one page of sessions and the cursor of the next ("" after
// the last).
type SessionPage struct {
	Sessions []SessionInfo `json:"sessions"`
	Next     string        `json:"next"`
}

// UserPage is one page of users and the cursor of the next.
type UserPage struct {
	Users []UserInfo `json:"users"`
	Next  string     `json:"next"`
}

// UserUpdate is the body of PUT /v1/users/{email}; nil fields are left out.
type UserUpdate struct {
	Login       *string `json:"login,omitempty"`
	DisplayName *string `json:"display_name,omitempty"`
	VerifiedVia *string `json:"verified_via,omitempty"`
	Verified    *bool   `json:"verified,omitempty"`
}

// Rename is the answer of POST /v1/users/{email}/rename.
type Rename struct {
	User      UserInfo `json:"user"`
	MovedFrom string   `json:"moved_from"`
	Ended     int      `json:"ended"`
}

// Sessions fetches one page of the node's sessions (GET /v1/sessions).
func (c *Client) Sessions(ctx context.Context, q SessionQuery) (SessionPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"email": q.Email, "site": q.Site, "after": q.After} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.All {
		v.Set("state", "all")
	}
	if q.Oldest {
		v.Set("order", "oldest")
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/sessions"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var p SessionPage
	err := c.call(ctx, http.MethodGet, path, nil, &p)
	return p, err
}

// Users fetches one page of users in e-mail order, after the given e-mail
// (GET /v1/users).
func (c *Client) Users(ctx context.Context, after string, limit int) (UserPage, error) {
	v := url.Values{}
	if after != "" {
		v.Set("after", after)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/users"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var p UserPage
	err := c.call(ctx, http.MethodGet, path, nil, &p)
	return p, err
}

// LoginRequest is the body of POST /v1/sessions; zero fields are left to
// the node.
type LoginRequest struct {
	Email       string  `json:"email"`
	Login       *string `json:"login,omitempty"`        // sets the user's login; nil leaves it
	DisplayName *string `json:"display_name,omitempty"` // sets the user's display name; nil leaves it
	// IP is the browser's address, recorded with the session; the node
	// requires it when it binds hand-off tickets to it (sync.bind_ip).
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	// TTL is the session's lifetime, at most a year; 0 is the node's
	// session.ttl.
	TTL time.Duration `json:"-"`
	// ReturnTo is where the hand-off chain brings the browser back: a URL
	// under the node's site URL (default: the site URL).
	ReturnTo string `json:"return_to,omitempty"`
}

// LoginAnswer is the answer of POST /v1/sessions (the server encodes it,
// Client decodes it).
type LoginAnswer struct {
	Session SessionInfo `json:"session"`
	// Token is the session's secret, returned once: the site puts it in its
	// cookie. The node keeps only its hash (the session id).
	Token string `json:"token"`
	// Synced is false for a session kept on its own site; Reason then says
	// why ("email_not_verified").
	Synced bool      `json:"synced"`
	Reason string    `json:"reason,omitempty"`
	Sync   LoginSync `json:"sync"`
}

// LoginSync are the hand-off links of a login, each with its own
// single-use ticket: empty for a session that is not synced, or with no
// other live member site.
type LoginSync struct {
	URLs  []SyncURL `json:"urls"`  // one per other live member site, for iframes
	Chain string    `json:"chain"` // one link through every other site that ends on ReturnTo
}

// SyncURL is another site's sync URL of a login.
type SyncURL struct {
	Site string `json:"site"` // the member's name
	URL  string `json:"url"`
}

// Login logs a user in: it opens a session on this node's site (POST
// /v1/sessions), creating the user if the node does not know it. The
// answer's Token is not kept by the node: it is the caller's to hand to
// the browser.
func (c *Client) Login(ctx context.Context, req LoginRequest) (LoginAnswer, error) {
	body := struct {
		LoginRequest
		TTL string `json:"ttl,omitempty"`
	}{LoginRequest: req}
	if req.TTL != 0 {
		body.TTL = req.TTL.String()
	}
	var a LoginAnswer
	err := c.call(ctx, http.MethodPost, "/v1/sessions", &body, &a)
	return a, err
}

// Session checks a session, as a site does on every page view (GET
// /v1/sessions/{id}; id is crypto.SessionID of the token). Only an active
// session comes back: one that is not is an *APIError with StatusCode 410
// and Code session_ended, session_revoked or session_expired, an unknown
// one a 404 not_found.
func (c *Client) Session(ctx context.Context, id string) (SessionInfo, error) {
	sc, err := c.CheckSession(ctx, id)
	return sc.Session, err
}

// CheckSession is Session with the whole answer of the check, new_user
// included.
func (c *Client) CheckSession(ctx context.Context, id string) (SessionCheck, error) {
	var sc SessionCheck
	err := c.call(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, &sc)
	return sc, err
}

// EndSession logs a session out on every site (DELETE /v1/sessions/{id}:
// end reason "logout"). A session already over is left as it is; the
// answer says how it ended.
func (c *Client) EndSession(ctx context.Context, id string) (SessionInfo, error) {
	return c.session(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id))
}

// RevokeSession ends a session on every site, as an administrator (POST
// /v1/sessions/{id}/revoke: end reason "admin"). A session already over is
// left as it is; the answer says how it ended.
func (c *Client) RevokeSession(ctx context.Context, id string) (SessionInfo, error) {
	return c.session(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/revoke")
}

// session sends a bodiless call whose answer is {"session":…}.
func (c *Client) session(ctx context.Context, method, path string) (SessionInfo, error) {
	var a struct {
		Session SessionInfo `json:"session"`
	}
	err := c.call(ctx, method, path, nil, &a)
	return a.Session, err
}

// User fetches a user (GET /v1/users/{email}).
func (c *Client) User(ctx context.Context, email string) (UserInfo, error) {
	var u UserInfo
	err := c.call(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(email), nil, &u)
	return u, err
}

// PutUser creates or updates a user (PUT /v1/users/{email}).
func (c *Client) PutUser(ctx context.Context, email string, up UserUpdate) (UserInfo, error) {
	var u UserInfo
	err := c.call(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(email), up, &u)
	return u, err
}

// LogoutEverywhere ends every session of the user on every site and returns
// how many were active (POST /v1/users/{email}/logout-everywhere).
func (c *Client) LogoutEverywhere(ctx context.Context, email string) (int, error) {
	var a struct {
		Ended int `json:"ended"`
	}
	err := c.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(email)+"/logout-everywhere", nil, &a)
	return a.Ended, err
}

// RenameUser moves a user to a new address (POST /v1/users/{email}/rename).
func (c *Client) RenameUser(ctx context.Context, from, to string) (Rename, error) {
	var a Rename
	err := c.call(ctx, http.MethodPost, "/v1/users/"+url.PathEscape(from)+"/rename", map[string]string{"new_email": to}, &a)
	return a, err
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
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("bad API URL %q: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
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
