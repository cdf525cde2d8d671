package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// Status fetches the node's view of the cluster (GET /v1/status).
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.call(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
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
// /v1/sessions/{id}; id is SessionID of the token). Only an active session
// comes back: one that is not is an *APIError with StatusCode 410 and Code
// CodeSessionEnded, CodeSessionRevoked or CodeSessionExpired, an unknown one
// a 404 CodeNotFound.
func (c *Client) Session(ctx context.Context, id string) (SessionInfo, error) {
	sc, err := c.CheckSession(ctx, id)
	return sc.Session, err
}

// CheckSession is Session with the whole answer of the check, NewUser
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
	var a SessionCheck
	err := c.call(ctx, method, path, nil, &a)
	return a.Session, err
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
	var p SessionPage
	err := c.call(ctx, http.MethodGet, withQuery("/v1/sessions", v), nil, &p)
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
	var p UserPage
	err := c.call(ctx, http.MethodGet, withQuery("/v1/users", v), nil, &p)
	return p, err
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// User fetches a user (GET /v1/users/{email}); an unknown one is a 404
// CodeNotFound.
func (c *Client) User(ctx context.Context, email string) (UserInfo, error) {
	var u UserInfo
	err := c.call(ctx, http.MethodGet, userPath(email), nil, &u)
	return u, err
}

// PutUser creates or updates a user (PUT /v1/users/{email}). A user moved
// to another address is a 409 CodeUserMoved.
func (c *Client) PutUser(ctx context.Context, email string, up UserUpdate) (UserInfo, error) {
	var u UserInfo
	err := c.call(ctx, http.MethodPut, userPath(email), up, &u)
	return u, err
}

// LogoutEverywhere ends every session of the user on every site and returns
// how many were active (POST /v1/users/{email}/logout-everywhere).
func (c *Client) LogoutEverywhere(ctx context.Context, email string) (int, error) {
	var a struct {
		Ended int `json:"ended"`
	}
	err := c.call(ctx, http.MethodPost, userPath(email)+"/logout-everywhere", nil, &a)
	return a.Ended, err
}

// RenameUser moves a user to a new address (POST /v1/users/{email}/rename).
func (c *Client) RenameUser(ctx context.Context, from, to string) (Rename, error) {
	var a Rename
	err := c.call(ctx, http.MethodPost, userPath(from)+"/rename", map[string]string{"new_email": to}, &a)
	return a, err
}

// RequestVerification e-mails the user a verification code and link (POST
// /v1/users/{email}/verification). It answers the same for an address with
// no user. Refusals: 429 CodeRateLimited (APIError.RetryAfter says when),
// 502 CodeMailFailed, 503 CodeMailDisabled.
func (c *Client) RequestVerification(ctx context.Context, email string) error {
	var a struct {
		Status string `json:"status"`
	}
	return c.call(ctx, http.MethodPost, userPath(email)+"/verification", nil, &a)
}

// VerifyCode checks the code the user typed (POST /v1/users/{email}/verify)
// and returns the user, now verified. A wrong, expired or missing code is a
// 400 CodeInvalidCode, too many wrong ones a 429 CodeCodeLocked.
func (c *Client) VerifyCode(ctx context.Context, email, code string) (UserInfo, error) {
	var u UserInfo
	err := c.call(ctx, http.MethodPost, userPath(email)+"/verify", map[string]string{"code": code}, &u)
	return u, err
}

// RedeemTicket redeems the hand-off ticket a browser brought to a site that
// keeps its own cookies (POST /v1/tickets/redeem); ip is the browser's
// address ("" when unknown). Refusals carry the Code* ticket codes.
func (c *Client) RedeemTicket(ctx context.Context, ticket, ip string) (Redemption, error) {
	body := struct {
		Ticket string `json:"ticket"`
		IP     string `json:"ip,omitempty"`
	}{ticket, ip}
	var r Redemption
	err := c.call(ctx, http.MethodPost, "/v1/tickets/redeem", &body, &r)
	return r, err
}

// ResetUser resets a damaged user record on every site (POST
// /v1/users/{email}/reset): a new generation of the record that outranks
// any timestamp of the old one. The user keeps the address, the names and
// a move; the verification and the sites' bindings are cleared and every
// session ends. An unknown user is a 404 CodeNotFound.
func (c *Client) ResetUser(ctx context.Context, email string) (Reset, error) {
	var r Reset
	err := c.call(ctx, http.MethodPost, userPath(email)+"/reset", nil, &r)
	return r, err
}

// Sites lists every site the node knows of: the members and the revoked
// sites (GET /v1/sites).
func (c *Client) Sites(ctx context.Context) ([]SiteInfo, error) {
	var l SiteList
	err := c.call(ctx, http.MethodGet, "/v1/sites", nil, &l)
	return l.Sites, err
}

// RevokeSite revokes a site on every node (POST /v1/sites/{name}/revoke),
// as Serf's force-leave plus a ban: every session it minted ends, its
// tickets and its URL are refused, its node changes nothing more. A name
// the node knows nothing of is a 404 CodeNotFound unless force is set. A
// node whose own site is revoked answers 403 CodeSiteRevoked.
func (c *Client) RevokeSite(ctx context.Context, name string, force bool) (SiteInfo, error) {
	var body any // no body: the node's default
	if force {
		body = map[string]bool{"force": true}
	}
	var s SiteInfo
	err := c.call(ctx, http.MethodPost, sitePath(name)+"/revoke", body, &s)
	return s, err
}

// UnrevokeSite takes a site's revocation back on every node (POST
// /v1/sites/{name}/unrevoke): its new logins are active again; what it
// minted until then stays revoked. Run it on a node that is not revoked.
func (c *Client) UnrevokeSite(ctx context.Context, name string) (SiteInfo, error) {
	var s SiteInfo
	err := c.call(ctx, http.MethodPost, sitePath(name)+"/unrevoke", nil, &s)
	return s, err
}

func userPath(email string) string { return "/v1/users/" + url.PathEscape(email) }

// Handoff runs one step of a browser's hand-off on the node (POST
// /v1/handoff), for a site that answers <site>ussync/v1/<step> itself: send
// the browser what the answer says (HandoffAnswer).
func (c *Client) Handoff(ctx context.Context, step HandoffStep) (HandoffAnswer, error) {
	var a HandoffAnswer
	err := c.call(ctx, http.MethodPost, "/v1/handoff", &step, &a)
	return a, err
}
func sitePath(name string) string { return "/v1/sites/" + url.PathEscape(name) }
