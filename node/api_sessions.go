package node

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// The private API's session calls. Each handler checks and
// decodes its request, calls the service, and answers its result or returns
// its error (answered by writeError, through the table of httperr.go).

type createSessionRequest struct {
	Email       string  `json:"email"`
	Login       *string `json:"login"`
	DisplayName *string `json:"display_name"`
	IP          string  `json:"ip"`
	UserAgent   string  `json:"user_agent"`
	TTL         string  `json:"ttl"`
	// ReturnTo is where the hand-off chain ends: a URL under this site's
	// URL (default: the site URL).
	ReturnTo string `json:"return_to"`
}

// login checks the request and returns the service's login; maxTTL is
// session.max_ttl.
func (req *createSessionRequest) login(maxTTL time.Duration) (login, error) {
	l := login{
		Change:    session.UserChange{Login: req.Login, DisplayName: req.DisplayName},
		UserAgent: req.UserAgent,
	}
	if req.Email == "" {
		return l, refuse(session.ErrInvalidEmail, "field \"email\" is required")
	}
	var err error
	if l.Email, err = session.NormalizeEmail(req.Email); err != nil {
		return l, refuse(session.ErrInvalidEmail, "field \"email\" is not a valid address (%v)", err)
	}
	if req.TTL != "" {
		if l.TTL, err = time.ParseDuration(req.TTL); err != nil || l.TTL <= 0 || l.TTL > maxTTL {
			return l, refuse(errInvalidField, "field \"ttl\" must be a Go duration above 0 and at most %s (session.max_ttl; e.g. \"720h\"), not %q", maxTTL, req.TTL)
		}
	}
	if req.IP != "" {
		ip, err := netip.ParseAddr(req.IP)
		if err != nil {
			return l, refuse(errInvalidField, "field \"ip\" is not an IP address: %q", req.IP)
		}
		l.IP = ip.String()
	}
	if len(req.UserAgent) > maxUserAgentBytes {
		return l, refuse(errInvalidField, "field \"user_agent\" is longer than %d bytes", maxUserAgentBytes)
	}
	if err := checkName("login", req.Login); err != nil {
		return l, err
	}
	return l, checkName("display_name", req.DisplayName)
}

// createSession is POST /v1/sessions: log a user in, and hand the browser
// the links that carry the session to the other sites.
func (a *api) createSession(w http.ResponseWriter, r *http.Request) error {
	var req createSessionRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	l, err := req.login(a.svc.MaxTTL)
	if err != nil {
		return err
	}
	var returnTo string
	if a.Handoff != nil {
		if returnTo, err = a.Handoff.returnTo(req.ReturnTo); err != nil {
			return err
		}
		if a.Handoff.policy().BindIP && l.IP == "" {
			return refuse(errInvalidField, "field \"ip\" is required: this node binds hand-off tickets to the client address (sync.bind_ip)")
		}
	}
	res, err := a.svc.login(l)
	if err != nil {
		return err
	}
	s, u := &res.Session, &res.User
	ans := client.LoginAnswer{Token: res.Token, Synced: !s.Local, Reason: res.Reason}
	ans.Session, _ = a.svc.view(s, u, a.svc.now())
	if s.Local && res.Reason != "" {
		ans.Bind = bindHow(l.Email, res.Reason)
	}
	ans.Sync.URLs = []client.SyncURL{}
	if !s.Local && a.Handoff != nil {
		// The session is stored and published already: a failure here costs
		// the browser its hand-off, not the login.
		if urls, chain, err := a.Handoff.loginSync(s, l.IP, returnTo); err != nil {
			ans.Sync.Error = a.Handoff.unavailableFor(s.ID, err)
		} else {
			ans.Sync.URLs, ans.Sync.Chain = urls, chain
		}
		ans.Sync.Skipped = a.Handoff.skippedAtLogin()
	}
	return writeJSON(w, http.StatusCreated, &ans)
}

// bindHow tells a site whose login stays on it (reason) how to bind itself
// to the address: prove the mailbox on this site, by a code and link its
// node sends; the next login after that travels.
func bindHow(email, reason string) *client.BindHow {
	p := "/v1/users/" + url.PathEscape(email)
	b := &client.BindHow{How: client.BindByCode, Send: "POST " + p + "/verification", Verify: "POST " + p + "/verify"}
	switch reason {
	case session.ReasonSiteNotBound:
		b.Message = "This site has not proved the address: send the user a code from this site (send), check it (verify), then log in again; that login travels. A hand-off from a site where the user is logged in binds this site too."
	default:
		b.Message = "The address is not verified: send the user a code from this site (send), check it (verify), then log in again; that login travels."
	}
	return b
}

// pathSession is the session of the request path's {id} and its user.
func (a *api) pathSession(r *http.Request) (session.Session, session.User, error) {
	id, err := pathID(r)
	if err != nil {
		return session.Session{}, session.User{}, err
	}
	return a.svc.session(id)
}

// checkSession is GET /v1/sessions/{id}, called on every page view of every
// site: one read of the session, one of its user, no log on success.
// Every answer carries the node's state (client.HeaderNodeState); a node
// failing closed (sync.fail_closed_after) answers an active session 503
// node_isolated (freshness.go).
func (a *api) checkSession(w http.ResponseWriter, r *http.Request) error {
	fresh := a.Fresh.sessionCheck(w)
	s, u, err := a.pathSession(r)
	if err != nil {
		return err
	}
	v, state := a.svc.view(&s, &u, a.svc.now())
	if state != session.StateActive {
		gone := v // only this copy escapes: the happy path stays on the stack
		return errGone(state, &gone)
	}
	if fresh.refusal != nil {
		a.Fresh.refused()
		return fresh.refusal
	}
	return writeJSON(w, http.StatusOK, client.SessionCheck{Session: v, NewUser: a.svc.newUser(&u), Node: fresh.view})
}

// errGone is the refusal of a session that is not active, with the session
// as it stands (sent beside the error by the private API).
func errGone(state session.State, v *client.SessionInfo) error {
	e := &refusal{session: v}
	switch state {
	case session.StateRevoked:
		e.kind, e.msg = ErrSessionRevoked, "the session was revoked by a log out everywhere"
	case session.StateExpired:
		e.kind, e.msg = ErrSessionExpired, "the session has expired"
	case session.StateSiteRevoked:
		e.kind, e.msg = ErrSessionSiteRevoked, "the site that created the session ("+v.Site+") was revoked by an administrator"
	default:
		e.kind, e.msg = ErrSessionEnded, "the session has ended ("+v.EndReason+")"
	}
	return e
}

// endSession is DELETE /v1/sessions/{id}: log out. A session that is already
// not active (ended, revoked or expired) is left as it is, so its first
// cause is kept; the answer is then the same as the first time.
func (a *api) endSession(w http.ResponseWriter, r *http.Request) error {
	return a.end(w, r, session.EndLogout)
}

// revokeSession is POST /v1/sessions/{id}/revoke: DELETE /v1/sessions/{id}
// done by an administrator, so the session ends with reason "admin". A
// session already over is left as it is (its first cause is kept); the
// answer is the session either way.
func (a *api) revokeSession(w http.ResponseWriter, r *http.Request) error {
	return a.end(w, r, session.EndAdmin)
}

// end is endSession and revokeSession: the path's session ended with
// reason, answered as it then stands.
func (a *api) end(w http.ResponseWriter, r *http.Request, reason string) error {
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	s, u, err := a.pathSession(r)
	if err != nil {
		return err
	}
	if s, _, err = a.svc.end(s, u, reason); err != nil {
		return err
	}
	if reason == session.EndAdmin && s.Ended != 0 {
		a.Log.Info("session revoked", "session", s.ID, "reason", s.EndReason)
	}
	v, _ := a.svc.view(&s, &u, a.svc.now())
	return writeJSON(w, http.StatusOK, client.SessionCheck{Session: v})
}

// listSessions is GET /v1/sessions?email=&site=&state=active|all&order=newest|oldest&after=&limit=:
// one page of every session this node holds, in creation order, and the
// cursor of the next page ("" after the last). A page reads a bounded part
// of the index whatever the store's size, so a filter matching little may
// answer fewer than limit sessions (even none) with a next cursor.
func (a *api) listSessions(w http.ResponseWriter, r *http.Request) error {
	f, err := sessionFilter(r)
	if err != nil {
		return err
	}
	page, next, err := a.svc.Store.ListSessions(f)
	if errors.Is(err, session.ErrBadCursor) {
		return refuse(errInvalidField, "query parameter \"after\" is not a cursor this node gave (pass the \"next\" of the previous page)")
	}
	if err != nil {
		return err
	}
	users, err := a.svc.usersOf(page)
	if err != nil {
		return err
	}
	now := a.svc.now()
	views := make([]client.SessionInfo, len(page))
	for i := range page {
		views[i], _ = a.svc.view(&page[i], &users[i], now)
	}
	return writeJSON(w, http.StatusOK, &client.SessionPage{Sessions: views, Next: next})
}

// sessionFilter reads the query of GET /v1/sessions.
func sessionFilter(r *http.Request) (session.SessionFilter, error) {
	var f session.SessionFilter
	q, err := queryOnly(r, "email", "site", "state", "order", "after", "limit")
	if err != nil {
		return f, err
	}
	if e := q.Get("email"); e != "" {
		if f.Email, err = session.NormalizeEmail(e); err != nil {
			return f, refuse(session.ErrInvalidEmail, "query parameter \"email\" is not a valid address (%v)", err)
		}
	}
	f.Site = q.Get("site")
	switch st := q.Get("state"); st {
	case "", "active":
		f.Active = true
	case "all":
	default:
		return f, refuse(errInvalidField, "query parameter \"state\" must be \"active\" or \"all\", not %q", st)
	}
	switch o := q.Get("order"); o {
	case "", "newest":
	case "oldest":
		f.Oldest = true
	default:
		return f, refuse(errInvalidField, "query parameter \"order\" must be \"newest\" or \"oldest\", not %q", o)
	}
	f.After = q.Get("after")
	f.Limit, err = queryLimit(q)
	return f, err
}
