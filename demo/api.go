package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// maxAnswerBytes bounds an answer of the private API read by a site.
const maxAnswerBytes = 1 << 20

// apiClient is a site's client of its own node's private API: what a real
// site's backend (a WordPress plugin, a Rails app) does over loopback. It is
// safe for concurrent use.
type apiClient struct {
	base  string // http://127.0.0.1:port
	token string
	http  *http.Client
}

func newAPIClient(addr, token string) *apiClient {
	return &apiClient{
		base:  "http://" + addr,
		token: token,
		http:  &http.Client{Timeout: 5 * time.Second},
	}
}

// apiError is a non-2xx answer of the private API.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// apiStatus returns the HTTP status of an *apiError, or 0.
func apiStatus(err error) int {
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae.Status
	}
	return 0
}

// do sends method path with body (JSON, if not nil) and decodes a 2xx answer
// into out (if not nil).
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call the node: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("read the node's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &env) == nil && env.Error.Code != "" {
			e.Code, e.Message = env.Error.Code, env.Error.Message
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	}
	return nil
}

// sessionView is a session as the private API shows it.
type sessionView struct {
	ID        string     `json:"id"`
	Email     string     `json:"email"`
	Site      string     `json:"site"`
	IP        string     `json:"ip"`
	UserAgent string     `json:"user_agent"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	EndedAt   *time.Time `json:"ended_at"`
	EndReason string     `json:"end_reason"`
	Active    bool       `json:"active"`
	Synced    bool       `json:"synced"`
}

// userView is a user as the private API shows it.
type userView struct {
	Email       string `json:"email"`
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
	Verified    bool   `json:"verified"`
	VerifiedVia string `json:"verified_via"`
}

// syncURL is one hand-off URL of a login answer.
type syncURL struct {
	Site string `json:"site"`
	URL  string `json:"url"`
}

// loginAnswer is the answer of POST /v1/sessions.
type loginAnswer struct {
	Session sessionView `json:"session"`
	Token   string      `json:"token"`
	Synced  bool        `json:"synced"`
	Reason  string      `json:"reason"`
	Sync    struct {
		URLs  []syncURL `json:"urls"`
		Chain string    `json:"chain"`
	} `json:"sync"`
}

// member is one cluster member of GET /v1/status.
type member struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	SiteURL string `json:"site_url"`
}

func userPath(email string) string { return "/v1/users/" + url.PathEscape(email) }

func (c *apiClient) user(ctx context.Context, email string) (userView, error) {
	var u userView
	err := c.do(ctx, http.MethodGet, userPath(email), nil, &u)
	return u, err
}

// putUser creates or updates a user; verifiedVia "" leaves it unverified.
func (c *apiClient) putUser(ctx context.Context, email, login, name, verifiedVia string) (userView, error) {
	body := map[string]string{"login": login, "display_name": name}
	if verifiedVia != "" {
		body["verified_via"] = verifiedVia
	}
	var u userView
	err := c.do(ctx, http.MethodPut, userPath(email), body, &u)
	return u, err
}

// login opens a session; returnTo is where the chain brings the browser back.
func (c *apiClient) login(ctx context.Context, email, ip, userAgent, returnTo string) (loginAnswer, error) {
	body := map[string]string{"email": email, "ip": ip, "user_agent": userAgent, "return_to": returnTo}
	var a loginAnswer
	err := c.do(ctx, http.MethodPost, "/v1/sessions", body, &a)
	return a, err
}

// session checks a session: an active one, or an *apiError (410 ended,
// 404 unknown).
func (c *apiClient) session(ctx context.Context, id string) (sessionView, error) {
	var a struct {
		Session sessionView `json:"session"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/sessions/"+id, nil, &a)
	return a.Session, err
}

func (c *apiClient) endSession(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/sessions/"+id, nil, nil)
}

func (c *apiClient) logoutEverywhere(ctx context.Context, email string) (int, error) {
	var a struct {
		Ended int `json:"ended"`
	}
	err := c.do(ctx, http.MethodPost, userPath(email)+"/logout-everywhere", nil, &a)
	return a.Ended, err
}

// sessions lists a user's sessions, history included, newest first.
func (c *apiClient) sessions(ctx context.Context, email string) ([]sessionView, error) {
	var a struct {
		Sessions []sessionView `json:"sessions"`
	}
	err := c.do(ctx, http.MethodGet, userPath(email)+"/sessions?state=all", nil, &a)
	return a.Sessions, err
}

func (c *apiClient) members(ctx context.Context) ([]member, error) {
	var a struct {
		Members []member `json:"members"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &a)
	return a.Members, err
}
