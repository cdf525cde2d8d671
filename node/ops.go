package node

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// Limits on what a site may store about a user or a session. Records travel
// in gossip messages: they are kept small.
const (
	maxNameBytes      = 256 // login and display_name
	maxUserAgentBytes = 512
	maxSessionTTL     = 8760 * time.Hour // a year
)

// reasonNotVerified is why a session is kept on its own site.
const reasonNotVerified = "email_not_verified"

// pathEmail is the normalized {email} of the request path.
func pathEmail(r *http.Request) (string, error) {
	e, err := session.NormalizeEmail(r.PathValue("email"))
	if err != nil {
		return "", errorf(http.StatusBadRequest, client.CodeInvalidEmail, "the e-mail in the path is not a valid address (%v)", err)
	}
	return e, nil
}

// pathID is the {id} of the request path, checked.
func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !crypto.ValidSessionID(id) {
		return "", errorf(http.StatusBadRequest, client.CodeInvalidID, "a session id is 64 lower-case hex characters (the SHA-256 of the token)")
	}
	return id, nil
}

func checkName(field string, v *string) error {
	if v != nil && len(*v) > maxNameBytes {
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "field %q is longer than %d bytes", field, maxNameBytes)
	}
	return nil
}

// lookupUser returns the user, or a new one (Created unset) and false.
func (a *api) lookupUser(email string) (session.User, bool, error) {
	u, err := a.Store.User(email)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return session.User{Email: email}, false, nil
	case err != nil:
		return u, false, fmt.Errorf("read user: %w", err)
	}
	return u, true, nil
}

// applyTo makes the change to u (a new user, given its creation time, when
// not known), every write stamped at by node by; it reports whether u
// changed.
func (c userChange) applyTo(u *session.User, known bool, at session.HLC, by string) bool {
	changed := !known
	if !known {
		u.Created = at
	}
	changed = setRegister(&u.Login, c.Login, at, by) || changed
	changed = setRegister(&u.DisplayName, c.DisplayName, at, by) || changed
	return setRegister(&u.Verified, c.Verified, at, by) || changed
}

// setRegister sets r to v written at at by this node, when v is given and
// differs; it reports whether it did.
func setRegister[T comparable](r *session.Register[T], v *T, at session.HLC, by string) bool {
	if v == nil || *v == r.V {
		return false
	}
	*r = session.Set(*v, at, by)
	return true
}

// apply merges records into the store and publishes the changed ones that
// travel. It returns the merged state of the records that changed.
func (a *api) apply(recs ...session.Record) ([]session.Record, error) {
	changed, err := a.Store.Apply(recs...)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	pub := make([]session.Record, 0, len(changed))
	for _, rec := range changed {
		if rec.Replicated() {
			pub = append(pub, rec)
		}
	}
	if len(pub) > 0 {
		a.Publish(pub)
	}
	return changed, nil
}

type putUserRequest struct {
	Email       *string `json:"email"`
	Login       *string `json:"login"`
	DisplayName *string `json:"display_name"`
	VerifiedVia *string `json:"verified_via"`
	// Verified false clears the verification (an administrator's
	// "unverify"); true is accepted only beside verified_via.
	Verified *bool `json:"verified"`
}

// putUser is PUT /v1/users/{email}: create or update a user.
func (a *api) putUser(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	var req putUserRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Email != nil {
		e, err := session.NormalizeEmail(*req.Email)
		if err != nil {
			return errorf(http.StatusBadRequest, client.CodeInvalidEmail, "field \"email\" is not a valid address (%v)", err)
		}
		if e != email {
			return errorf(http.StatusConflict, client.CodeEmailImmutable, "a user's e-mail never changes: the body's %q differs from the path's", "email")
		}
	}
	var verified *session.Verification
	if req.VerifiedVia != nil {
		switch m := *req.VerifiedVia; m {
		case "":
		case session.VerifiedRegistration, session.VerifiedAdmin:
			verified = &session.Verification{OK: true, Method: m}
		default:
			return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"verified_via\" must be %q, %q or empty, not %q",
				session.VerifiedRegistration, session.VerifiedAdmin, m)
		}
	}
	if req.Verified != nil {
		switch {
		case *req.Verified && verified == nil:
			return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"verified\" may only be false (to clear the verification); to verify, send \"verified_via\"")
		case !*req.Verified && verified != nil:
			return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"verified\": false contradicts \"verified_via\"")
		case !*req.Verified:
			verified = &session.Verification{}
		}
	}
	if err := checkName("login", req.Login); err != nil {
		return err
	}
	if err := checkName("display_name", req.DisplayName); err != nil {
		return err
	}

	u, err := a.updateUser(email, userChange{Login: req.Login, DisplayName: req.DisplayName, Verified: verified})
	if err != nil {
		return err
	}
	// The site's backend has the user now (see siteUsers), unless this is
	// an administrator's verify or unverify and nothing else.
	adminOnly := req.Email == nil && req.Login == nil && req.DisplayName == nil &&
		(req.Verified != nil || (req.VerifiedVia != nil && *req.VerifiedVia == session.VerifiedAdmin))
	if !adminOnly {
		if err := a.siteUsers().acknowledge(email); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, newUserView(&u))
	return nil
}

// userChange is what updateUser sets; a nil field is left as it is.
type userChange struct {
	Login       *string
	DisplayName *string
	Verified    *session.Verification
}

// updateUser creates or updates email's user (checked and normalized by the
// caller) and publishes the change to every site. It returns the user as it
// now stands. PUT /v1/users/{email} and the admin page go through it.
func (a *api) updateUser(email string, c userChange) (session.User, error) {
	u, known, err := a.lookupUser(email)
	if err != nil {
		return u, err
	}
	if u.MovedTo.V != "" {
		return u, errUserMoved(&u)
	}
	if c.applyTo(&u, known, a.Store.Clock().Now(), a.Name) {
		merged, err := a.apply(session.Record{User: &u})
		if err != nil {
			return u, err
		}
		if len(merged) > 0 {
			u = *merged[0].User
		}
	}
	return u, nil
}

// getUser is GET /v1/users/{email}.
func (a *api) getUser(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	u, err := a.Store.User(email)
	if errors.Is(err, session.ErrNotFound) {
		return errorf(http.StatusNotFound, client.CodeNotFound, "no such user")
	}
	if err != nil {
		return fmt.Errorf("read user: %w", err)
	}
	writeJSON(w, http.StatusOK, newUserView(&u))
	return nil
}

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

// createSession is POST /v1/sessions: log a user in.
func (a *api) createSession(w http.ResponseWriter, r *http.Request) error {
	var req createSessionRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Email == "" {
		return errorf(http.StatusBadRequest, client.CodeInvalidEmail, "field \"email\" is required")
	}
	email, err := session.NormalizeEmail(req.Email)
	if err != nil {
		return errorf(http.StatusBadRequest, client.CodeInvalidEmail, "field \"email\" is not a valid address (%v)", err)
	}
	ttl := a.TTL
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 || ttl > maxSessionTTL {
			return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"ttl\" must be a Go duration above 0 and at most %s (e.g. \"720h\"), not %q", maxSessionTTL, req.TTL)
		}
	}
	if req.IP != "" {
		ip, err := netip.ParseAddr(req.IP)
		if err != nil {
			return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"ip\" is not an IP address: %q", req.IP)
		}
		req.IP = ip.String()
	}
	if len(req.UserAgent) > maxUserAgentBytes {
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"user_agent\" is longer than %d bytes", maxUserAgentBytes)
	}
	if err := checkName("login", req.Login); err != nil {
		return err
	}
	if err := checkName("display_name", req.DisplayName); err != nil {
		return err
	}
	var returnTo string
	if a.Handoff != nil {
		if returnTo, err = a.Handoff.returnTo(req.ReturnTo); err != nil {
			return err
		}
		if a.Handoff.BindIP && req.IP == "" {
			return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"ip\" is required: this node binds hand-off tickets to the client address (sync.bind_ip)")
		}
	}

	u, known, err := a.lookupUser(email)
	if err != nil {
		return err
	}
	if u.MovedTo.V != "" {
		return errUserMoved(&u)
	}
	token, id, err := crypto.NewToken()
	if err != nil {
		return err
	}
	// Taken after reading the user: the clock has observed its
	// RevokedBefore, so the session is created after it.
	at := a.Store.Clock().Now()
	userChanged := userChange{Login: req.Login, DisplayName: req.DisplayName}.applyTo(&u, known, at, a.Name)
	s := session.Session{
		ID:        id,
		Email:     email,
		Site:      a.Name,
		IP:        req.IP,
		UserAgent: req.UserAgent,
		Created:   at,
		ExpiresAt: a.Store.Now().UnixMilli() + ttl.Milliseconds(),
		Local:     a.RequireVerified && !u.Verified.V.OK,
	}
	recs := make([]session.Record, 0, 2)
	if userChanged {
		recs = append(recs, session.Record{User: &u})
	}
	recs = append(recs, session.Record{Session: &s})
	merged, err := a.apply(recs...)
	if err != nil {
		return err
	}
	for _, rec := range merged {
		if rec.User != nil {
			u = *rec.User
		}
	}
	a.Metrics.sessionCreated(!s.Local)
	a.Log.Info("session created", "session", id, "synced", !s.Local)
	if err := a.siteUsers().acknowledge(email); err != nil { // a login here: the site has the user
		a.Log.Warn("mark the user known", "session", id, "err", err)
	}

	ans := client.LoginAnswer{Token: token, Synced: !s.Local}
	ans.Session, _ = newSessionView(&s, &u, a.Store.Now())
	if s.Local {
		ans.Reason = reasonNotVerified
	}
	ans.Sync.URLs = []client.SyncURL{}
	if !s.Local && a.Handoff != nil {
		// The session is stored and published already: a failure here costs
		// the browser its hand-off, not the login.
		if urls, chain, err := a.Handoff.loginSync(&s, &u, token, req.IP, returnTo); err != nil {
			a.Log.Warn("seal hand-off tickets", "session", id, "err", err)
		} else {
			ans.Sync.URLs, ans.Sync.Chain = urls, chain
		}
	}
	writeJSON(w, http.StatusCreated, &ans)
	return nil
}

// readSession returns the session of the path's id and its user (zero but
// for the email when this node has not heard of the user yet).
func (a *api) readSession(r *http.Request) (session.Session, session.User, error) {
	id, err := pathID(r)
	if err != nil {
		return session.Session{}, session.User{}, err
	}
	s, err := a.Store.Session(id)
	if errors.Is(err, session.ErrNotFound) {
		return s, session.User{}, errorf(http.StatusNotFound, client.CodeNotFound, "no such session")
	}
	if err != nil {
		return s, session.User{}, fmt.Errorf("read session: %w", err)
	}
	u, _, err := a.lookupUser(s.Email)
	return s, u, err
}

// checkSession is GET /v1/sessions/{id}, called on every page view of every
// site: one read of the session, one of its user, no log on success.
func (a *api) checkSession(w http.ResponseWriter, r *http.Request) error {
	s, u, err := a.readSession(r)
	if err != nil {
		return err
	}
	v, state := newSessionView(&s, &u, a.Store.Now())
	if state != session.StateActive {
		gone := v // only this copy escapes: the happy path stays on the stack
		return goneError(state, &gone)
	}
	writeJSON(w, http.StatusOK, client.SessionCheck{Session: v, NewUser: a.newUserSession(s.ID)})
	return nil
}

// goneError is the 410 answer for a session that is not active.
func goneError(state session.State, v *client.SessionInfo) error {
	e := &httpError{Status: http.StatusGone, Session: v}
	switch state {
	case session.StateRevoked:
		e.Code, e.Message = client.CodeSessionRevoked, "the session was revoked by a log out everywhere"
	case session.StateExpired:
		e.Code, e.Message = client.CodeSessionExpired, "the session has expired"
	default:
		e.Code, e.Message = client.CodeSessionEnded, "the session has ended ("+v.EndReason+")"
	}
	return e
}

// endSession is DELETE /v1/sessions/{id}: log out. A session that is already
// not active (ended, revoked or expired) is left as it is, so its first
// cause is kept; the answer is then the same as the first time.
func (a *api) endSession(w http.ResponseWriter, r *http.Request) error {
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	s, u, err := a.readSession(r)
	if err != nil {
		return err
	}
	if s, _, err = a.endActive(s, u); err != nil {
		return err
	}
	v, _ := newSessionView(&s, &u, a.Store.Now())
	writeSession(w, http.StatusOK, &v)
	return nil
}

// endActive logs session s (of user u) out, on every site, if it is
// active; a session already not active is left as it is, so its first cause
// is kept. It returns the session as it now stands and whether this call
// ended it.
func (a *api) endActive(s session.Session, u session.User) (session.Session, bool, error) {
	return a.endActiveAs(s, u, session.EndLogout)
}

// endActiveAs is endActive with the end reason recorded (logout, or admin
// for a session an administrator destroyed).
func (a *api) endActiveAs(s session.Session, u session.User, reason string) (session.Session, bool, error) {
	if s.StateAt(u, a.Store.Now()) != session.StateActive {
		return s, false, nil
	}
	s.Ended, s.EndReason = a.Store.Clock().Now(), reason
	merged, err := a.apply(session.Record{Session: &s})
	if err != nil {
		return s, false, err
	}
	if len(merged) > 0 {
		a.Metrics.sessionsEndedAdd(reason, 1)
		return *merged[0].Session, true, nil
	}
	// Someone else ended it first: answer with what won.
	if s, err = a.Store.Session(s.ID); err != nil {
		return s, false, fmt.Errorf("read session: %w", err)
	}
	return s, false, nil
}

// logoutEverywhere is POST /v1/users/{email}/logout-everywhere: raise the
// user's RevokedBefore (which also kills sessions created earlier that reach
// this or another node later) and end every active session.
func (a *api) logoutEverywhere(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	n, err := a.logoutUser(email)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &struct {
		Ended int `json:"ended"`
	}{n})
	return nil
}

// logoutUser logs the user out everywhere and returns how many active
// sessions it ended; an email with no user and no session is a 404.
func (a *api) logoutUser(email string) (int, error) {
	u, known, err := a.lookupUser(email)
	if err != nil {
		return 0, err
	}
	active, err := a.Store.UserSessions(email, false, 0)
	if err != nil {
		return 0, fmt.Errorf("read sessions: %w", err)
	}
	if !known && len(active) == 0 {
		all, err := a.Store.UserSessions(email, true, 1)
		if err != nil {
			return 0, fmt.Errorf("read sessions: %w", err)
		}
		if len(all) == 0 {
			return 0, errorf(http.StatusNotFound, client.CodeNotFound, "no such user")
		}
	}
	// A user this node has only seen sessions of still gets its revocation
	// written: the record joins with the real one when it arrives.
	at := a.Store.Clock().Now()
	if !known {
		u.Created = at
	}
	u.RevokedBefore = max(u.RevokedBefore, at)
	recs := make([]session.Record, 0, 1+len(active))
	recs = append(recs, session.Record{User: &u})
	for i := range active {
		active[i].Ended, active[i].EndReason = at, session.EndLogoutEverywhere
		recs = append(recs, session.Record{Session: &active[i]})
	}
	if _, err := a.apply(recs...); err != nil {
		return 0, err
	}
	a.Metrics.sessionsEndedAdd(session.EndLogoutEverywhere, len(active))
	a.Log.Info("logged out everywhere", "sessions", len(active))
	return len(active), nil
}

// userSessions is GET /v1/users/{email}/sessions?state=active|all.
func (a *api) userSessions(w http.ResponseWriter, r *http.Request) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	var all bool
	switch st := r.URL.Query().Get("state"); st {
	case "", "active":
	case "all":
		all = true
	default:
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "query parameter \"state\" must be \"active\" or \"all\", not %q", st)
	}
	u, known, err := a.lookupUser(email)
	if err != nil {
		return err
	}
	list, err := a.Store.UserSessions(email, all, 0)
	if err != nil {
		return fmt.Errorf("read sessions: %w", err)
	}
	if !known && len(list) == 0 {
		return errorf(http.StatusNotFound, client.CodeNotFound, "no such user")
	}
	now := a.Store.Now()
	views := make([]client.SessionInfo, len(list))
	for i := range list {
		views[i], _ = newSessionView(&list[i], &u, now)
	}
	writeJSON(w, http.StatusOK, &struct {
		Sessions []client.SessionInfo `json:"sessions"`
	}{views})
	return nil
}

// status is GET /v1/status.
func (a *api) status(w http.ResponseWriter, r *http.Request) error {
	var st client.Status
	if a.Status != nil {
		st = a.Status()
	} else {
		st.Node = a.Name
		st.Counts.Users, st.Counts.Sessions = a.Store.Counts()
	}
	writeJSON(w, http.StatusOK, &st)
	return nil
}
