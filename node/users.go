package node

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// routesUsers registers the administration calls: listings and rename.
func (a *api) routesUsers() {
	a.handle("GET /v1/sessions", true, a.listSessions)
	a.handle("GET /v1/users", true, a.listUsers)
	a.handle("POST /v1/users/{email}/rename", true, a.renameUser)
	a.handle("POST /v1/sessions/{id}/revoke", true, a.revokeSession)
}

// revokeSession is POST /v1/sessions/{id}/revoke: DELETE /v1/sessions/{id}
// done by an administrator, so the session ends with reason "admin". A
// session already over is left as it is (its first cause is kept); the
// answer is the session either way.
func (a *api) revokeSession(w http.ResponseWriter, r *http.Request) error {
	if err := decodeBody(w, r, &struct{}{}, true); err != nil {
		return err
	}
	s, u, err := a.readSession(r)
	if err != nil {
		return err
	}
	if s, _, err = a.endActiveAs(s, u, session.EndAdmin); err != nil {
		return err
	}
	if s.Ended != 0 {
		a.Log.Info("session revoked", "session", s.ID, "reason", s.EndReason)
	}
	v, _ := newSessionView(&s, &u, a.Store.Now())
	writeSession(w, http.StatusOK, &v)
	return nil
}

// errUserMoved is the answer for a write on the old address of a moved user.
func errUserMoved(u *session.User) error {
	return errorf(http.StatusConflict, client.CodeUserMoved,
		"the user was moved to %s by an administrator: use that address", u.MovedTo.V)
}

// queryOnly refuses query parameters other than names, and any given twice:
// a mistyped parameter is an error, not a silently wider listing.
func queryOnly(r *http.Request, names ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, client.CodeBadRequest, "the query string does not parse")
	}
	for k, v := range q {
		known := false
		for _, n := range names {
			known = known || k == n
		}
		if !known {
			return nil, errorf(http.StatusBadRequest, client.CodeInvalidField, "unknown query parameter %q (this call takes %s)", k, strings.Join(names, ", "))
		}
		if len(v) > 1 {
			return nil, errorf(http.StatusBadRequest, client.CodeInvalidField, "query parameter %q is given %d times", k, len(v))
		}
	}
	return q, nil
}

// queryLimit parses the limit parameter: 1 to session.MaxListLimit, default
// session.DefaultListLimit.
func queryLimit(q url.Values) (int, error) {
	s := q.Get("limit")
	if s == "" {
		return session.DefaultListLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > session.MaxListLimit {
		return 0, errorf(http.StatusBadRequest, client.CodeInvalidField, "query parameter \"limit\" must be a number from 1 to %d, not %q", session.MaxListLimit, s)
	}
	return n, nil
}

// listSessions is GET /v1/sessions?email=&site=&state=active|all&order=newest|oldest&after=&limit=:
// one page of every session this node holds, in creation order, and the
// cursor of the next page ("" after the last). A page reads a bounded part
// of the index whatever the store's size, so a filter matching little may
// answer fewer than limit sessions (even none) with a next cursor.
func (a *api) listSessions(w http.ResponseWriter, r *http.Request) error {
	q, err := queryOnly(r, "email", "site", "state", "order", "after", "limit")
	if err != nil {
		return err
	}
	var f session.SessionFilter
	if e := q.Get("email"); e != "" {
		if f.Email, err = session.NormalizeEmail(e); err != nil {
			return errorf(http.StatusBadRequest, client.CodeInvalidEmail, "query parameter \"email\" is not a valid address (%v)", err)
		}
	}
	f.Site = q.Get("site")
	switch st := q.Get("state"); st {
	case "", "active":
		f.Active = true
	case "all":
	default:
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "query parameter \"state\" must be \"active\" or \"all\", not %q", st)
	}
	switch o := q.Get("order"); o {
	case "", "newest":
	case "oldest":
		f.Oldest = true
	default:
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "query parameter \"order\" must be \"newest\" or \"oldest\", not %q", o)
	}
	f.After = q.Get("after")
	if f.Limit, err = queryLimit(q); err != nil {
		return err
	}
	page, next, err := a.Store.ListSessions(f)
	if errors.Is(err, session.ErrBadCursor) {
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "query parameter \"after\" is not a cursor this node gave (pass the \"next\" of the previous page)")
	}
	if err != nil {
		return err
	}
	views, err := a.sessionViews(page)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &struct {
		Sessions []client.SessionInfo `json:"sessions"`
		Next     string               `json:"next"`
	}{views, next})
	return nil
}

// sessionViews shows sessions as of now, reading each user once.
func (a *api) sessionViews(list []session.Session) ([]client.SessionInfo, error) {
	now := a.Store.Now()
	users := map[string]session.User{}
	views := make([]client.SessionInfo, len(list))
	for i := range list {
		u, ok := users[list[i].Email]
		if !ok {
			var err error
			if u, _, err = a.lookupUser(list[i].Email); err != nil {
				return nil, err
			}
			users[u.Email] = u
		}
		views[i], _ = newSessionView(&list[i], &u, now)
	}
	return views, nil
}

// listUsers is GET /v1/users?after=&limit=: one page of users in e-mail
// order, after the e-mail given, and the cursor of the next page ("" after
// the last).
func (a *api) listUsers(w http.ResponseWriter, r *http.Request) error {
	q, err := queryOnly(r, "after", "limit")
	if err != nil {
		return err
	}
	limit, err := queryLimit(q)
	if err != nil {
		return err
	}
	page, next, err := a.Store.ListUsers(q.Get("after"), limit)
	if err != nil {
		return err
	}
	views := make([]client.UserInfo, len(page))
	for i := range page {
		views[i] = newUserView(&page[i])
	}
	writeJSON(w, http.StatusOK, &struct {
		Users []client.UserInfo `json:"users"`
		Next  string            `json:"next"`
	}{views, next})
	return nil
}

type renameRequest struct {
	NewEmail string `json:"new_email"`
}

// renameUser is POST /v1/users/{email}/rename {"new_email"}: an
// administrator moves a user to a new address. The user at the new address
// (created, or merged with one that exists) takes the old one's login,
// display name and creation time, and its verification when the old one
// was verified; the old address is logged out everywhere (its active
// sessions end with reason "admin") and marked moved, so that every node
// refuses it (409 user_moved). All of it is gossiped. Renaming to the
// address a user was moved from moves it back.
func (a *api) renameUser(w http.ResponseWriter, r *http.Request) error {
	from, err := pathEmail(r)
	if err != nil {
		return err
	}
	var req renameRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.NewEmail == "" {
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"new_email\" is required")
	}
	to, err := session.NormalizeEmail(req.NewEmail)
	if err != nil {
		return errorf(http.StatusBadRequest, client.CodeInvalidEmail, "field \"new_email\" is not a valid address (%v)", err)
	}
	if to == from {
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"new_email\" is the user's address already")
	}
	old, known, err := a.lookupUser(from)
	if err != nil {
		return err
	}
	if !known {
		return errorf(http.StatusNotFound, client.CodeNotFound, "no such user")
	}
	if old.MovedTo.V != "" {
		return errUserMoved(&old)
	}
	nu, _, err := a.lookupUser(to)
	if err != nil {
		return err
	}
	active, err := a.Store.UserSessions(from, false, 0)
	if err != nil {
		return fmt.Errorf("read sessions: %w", err)
	}

	// Taken after reading both users: the clock has observed their stamps,
	// so the new values win every register.
	at := a.Store.Clock().Now()
	if nu.Created == 0 || (old.Created != 0 && old.Created < nu.Created) {
		nu.Created = old.Created
	}
	if nu.Created == 0 {
		nu.Created = at
	}
	if old.Login.V != "" {
		setRegister(&nu.Login, &old.Login.V, at, a.Name)
	}
	if old.DisplayName.V != "" {
		setRegister(&nu.DisplayName, &old.DisplayName.V, at, a.Name)
	}
	if old.Verified.V.OK {
		setRegister(&nu.Verified, &old.Verified.V, at, a.Name)
	}
	// Written even when this node holds no move of the new address: a move
	// away from it that has not reached this node yet is older, and loses.
	nu.MovedTo = session.Set("", at, a.Name)
	old.MovedTo = session.Set(to, at, a.Name)
	old.RevokedBefore = max(old.RevokedBefore, at)
	recs := make([]session.Record, 0, 2+len(active))
	recs = append(recs, session.Record{User: &nu}, session.Record{User: &old})
	for i := range active {
		active[i].Ended, active[i].EndReason = at, session.EndAdmin
		recs = append(recs, session.Record{Session: &active[i]})
	}
	merged, err := a.apply(recs...)
	if err != nil {
		return err
	}
	for _, rec := range merged {
		if rec.User != nil && rec.User.Email == to {
			nu = *rec.User
		}
	}
	a.Metrics.sessionsEndedAdd(session.EndAdmin, len(active))
	// This site knew the old address: it knows the new one. (Other sites
	// learn it when their backend PUTs it, or as a new user.)
	users := a.siteUsers()
	if k, err := users.known(from, a.Name); err != nil {
		return err
	} else if k {
		if err := users.acknowledge(to); err != nil {
			return err
		}
	}
	a.Log.Info("user moved to a new address", "sessions_ended", len(active))
	writeJSON(w, http.StatusOK, &client.Rename{User: newUserView(&nu), MovedFrom: from, Ended: len(active)})
	return nil
}

// siteUsers is the set of users this site knows, and which of them it was
// told of by a ticket only (new users its backend has not acknowledged).
// It is node-local: kept under the store's local keys, never gossiped. A
// user is known once the site's backend has PUT them, or they have held a
// session here: a login on this node, or a ticket redeemed here. A user
// first known by a ticket is new until the backend PUTs it (or logs it in
// here); the sessions redeemed for it meanwhile say "new_user": true. It is
// safe for concurrent use.
type siteUsers struct {
	store *session.Store

	once    sync.Once
	loadErr error
	count   atomic.Int64 // len(mu.pending): the session check's fast path
	// acked holds emails known to be acknowledged, up to maxAcked of them:
	// acknowledged is final, and every login asks (a store read each).
	acked  sync.Map
	nAcked atomic.Int64
	// writeMu serializes acknowledge and redeemed, so that a redemption
	// racing an acknowledgement cannot flag the user new again after it.
	writeMu sync.Mutex
	mu      struct {
		sync.Mutex
		pending map[string]pendingUser // by session id
	}
}

// pendingUser is a session redeemed here for a user not yet acknowledged.
type pendingUser struct {
	email string
	until time.Time // the session's expiry: the entry goes with it
}

// Local keys of the known-user set.
const (
	keyKnown   = "known/"    // + email -> "" (acknowledged) or "new"
	keyNewUser = "new-user/" // + session id -> email, until the session expires
	knownNew   = "new"
)

func newSiteUsers(st *session.Store) *siteUsers { return &siteUsers{store: st} }

// siteUsers is the hand-off's set, or one over the store alone when this
// API redeems no tickets (then no session is ever pending).
func (a *api) siteUsers() *siteUsers {
	if a.Handoff != nil && a.Handoff.users != nil {
		return a.Handoff.users
	}
	return newSiteUsers(a.Store)
}

// load reads the pending sessions from the store, once.
func (k *siteUsers) load() error {
	k.once.Do(func() {
		now := k.store.Now()
		k.mu.Lock()
		defer k.mu.Unlock()
		k.mu.pending = map[string]pendingUser{}
		k.loadErr = k.store.LocalScan(keyNewUser, func(key string, v []byte, expires time.Time) error {
			if expires.IsZero() || expires.After(now) {
				k.mu.pending[strings.TrimPrefix(key, keyNewUser)] = pendingUser{email: string(v), until: expires}
			}
			return nil
		})
		k.count.Store(int64(len(k.mu.pending)))
	})
	return k.loadErr
}

// known reports whether this site knows the user. A user without a mark
// who has a session created on this node (name) is known too: history from
// before the marks existed (the next redemption marks it).
func (k *siteUsers) known(email, name string) (bool, error) {
	_, err := k.store.LocalGet(keyKnown + email)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, session.ErrNotFound) {
		return false, err
	}
	return k.loggedInHere(email, name)
}

// loggedInHere reports whether the user has a session created on this node.
func (k *siteUsers) loggedInHere(email, name string) (bool, error) {
	page, _, err := k.store.ListSessions(session.SessionFilter{Email: email, Site: name, Limit: 1})
	return len(page) > 0, err
}

// acknowledge marks the user known and no longer new: the site's backend
// has PUT it, or logged it in here.
func (k *siteUsers) acknowledge(email string) error {
	if _, ok := k.acked.Load(email); ok {
		return nil
	}
	if v, err := k.store.LocalGet(keyKnown + email); err == nil && len(v) == 0 {
		k.remember(email)
		return nil // the common case: known already, no write
	}
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	return k.acknowledgeLocked(email)
}

// maxAcked bounds siteUsers.acked (about 10 MB); past it, the store answers.
const maxAcked = 100_000

func (k *siteUsers) remember(email string) {
	if k.nAcked.Load() < maxAcked {
		if _, had := k.acked.LoadOrStore(email, struct{}{}); !had {
			k.nAcked.Add(1)
		}
	}
}

func (k *siteUsers) acknowledgeLocked(email string) error {
	if err := k.store.LocalPut(keyKnown+email, nil, 0); err != nil {
		return err
	}
	k.remember(email)
	if err := k.load(); err != nil {
		return err
	}
	k.mu.Lock()
	var done []string
	for id, p := range k.mu.pending {
		if p.email == email {
			done = append(done, id)
			delete(k.mu.pending, id)
		}
	}
	k.count.Store(int64(len(k.mu.pending)))
	k.mu.Unlock()
	for _, id := range done {
		if err := k.store.LocalDelete(keyNewUser + id); err != nil {
			return err
		}
	}
	return nil
}

// redeemed records that a session of the user was redeemed here (node
// name) and reports whether the user is new to this site (unknown until
// now, or not yet acknowledged); a new user's session stays flagged until
// then.
func (k *siteUsers) redeemed(s *session.Session, name string) (bool, error) {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	v, err := k.store.LocalGet(keyKnown + s.Email)
	switch {
	case err == nil && string(v) != knownNew:
		return false, nil
	case errors.Is(err, session.ErrNotFound):
		if here, err := k.loggedInHere(s.Email, name); err != nil {
			return false, err
		} else if here {
			return false, k.acknowledgeLocked(s.Email)
		}
	case err != nil:
		return false, err
	}
	if err := k.load(); err != nil {
		return false, err
	}
	until := time.UnixMilli(s.ExpiresAt)
	ttl := until.Sub(k.store.Now()) + time.Minute
	if err := k.store.LocalPut(keyNewUser+s.ID, []byte(s.Email), max(ttl, time.Minute)); err != nil {
		return false, err
	}
	if err := k.store.LocalPut(keyKnown+s.Email, []byte(knownNew), 0); err != nil {
		return false, err
	}
	k.mu.Lock()
	k.mu.pending[s.ID] = pendingUser{email: s.Email, until: until}
	k.count.Store(int64(len(k.mu.pending)))
	k.mu.Unlock()
	return true, nil
}

// isNew reports whether the session was redeemed here for a user the
// site's backend has not acknowledged yet. It costs nothing while no
// session is pending (the session check calls it on every page view).
func (k *siteUsers) isNew(id string) bool {
	if k.load() != nil || k.count.Load() == 0 {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.mu.pending[id]
	if ok && !p.until.IsZero() && !k.store.Now().Before(p.until) {
		delete(k.mu.pending, id) // expired: the store's copy goes by its TTL
		k.count.Store(int64(len(k.mu.pending)))
		return false
	}
	return ok
}

// newUserSession reports whether session id was redeemed here for a user
// the site's backend has not acknowledged yet.
func (a *api) newUserSession(id string) bool {
	return a.Handoff != nil && a.Handoff.users != nil && a.Handoff.users.isNew(id)
}
