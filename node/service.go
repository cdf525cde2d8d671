package node

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// serviceConfig is what the service needs; the node wires it.
type serviceConfig struct {
	// Store is the node's replica.
	Store *session.Store
	// Name is this node's name, recorded as the Site of the sessions it
	// creates and as the writer of the registers it sets.
	Name string
	// TTL is the lifetime of a session whose login gives none (session.ttl).
	TTL time.Duration
	// MaxTTL is the longest session a login may ask for (session.max_ttl).
	// Zero: session.DefaultMaxSessionTTL.
	MaxTTL time.Duration
	// RequireVerified keeps a session on this site unless its user's
	// address is verified and this site is bound to it (User.Travels):
	// sync.require_verified. Off, every session travels.
	RequireVerified bool
	// Publish hands the records an operation changed to gossip (eager push,
	// then rebroadcast). Only replicated records are handed over. It must
	// not block and must not modify the records; nil publishes nothing.
	Publish func([]session.Record)
	// PublishWithDeltas hands over whole records and delta states
	// (session.RevocationDelta) together, as Publish does
	// (gossip.PublishWithDeltas). Nil: Publish of both, deltas first.
	PublishWithDeltas func(whole, deltas []session.Record)
	// Log receives what the operations did (never a token, an address or a
	// code). Nil discards.
	Log *slog.Logger
	// Metrics counts the sessions created and ended. Nil makes a private set.
	Metrics *Metrics
	// Members lists every member gossip knows, whatever its state (the
	// sites an administrator may revoke). Nil: none but this node.
	Members func() []gossip.Member
	// MembersVersion moves whenever the live members or their metadata
	// change (gossip.Gossip.MembersVersion): the hand-off's cached site
	// list is current while it has not moved. Nil: the list is reread
	// every sitesTTL only.
	MembersVersion func() uint64
}

// service performs the cluster's operations on this node: log in, end a
// session, log a user out everywhere, update a user, mark one verified, move
// one to a new address, accept the records a hand-off ticket carries, bind
// this site to a user's address, revoke a site or take it back, reset a
// damaged user (revocation in service_sites.go). The private API, the
// public endpoints, the admin page and the ticket redemption all call it;
// none of them changes a replicated record any other way. Every change is
// built by session's record changes (session/change.go) and goes through
// apply: merged into the store, then published, in that order, so that a
// peer never hears of a change this node has not made. Two writes are the
// deliberate exceptions: acceptHandoff merges a ticket's records with
// Store.ApplyChecked and publishes nothing (they came from the cluster;
// revocation is checked before, in handoff.mayRedeem), and
// Node.unrevokeSelf (node.go) applies and publishes this site's own
// un-revocation itself, since apply refuses on a revoked site.
//
// What a site knows of a user travels in the user's record (session's
// MarkKnown, Bind, Verify): the site that writes is always this node's
// (Name), so one site's API token binds and marks its own site only.
//
// Its errors are values (errors.go): session.ErrNotFound, ErrUserMoved,
// ErrInvalidCode, and failures of the store. It is safe for concurrent use.
type service struct {
	serviceConfig
	// pol is TTL and RequireVerified, as a reload leaves them (policy.go).
	pol atomic.Pointer[servicePolicy]
	// aliases are the cookie tokens this site minted for the sessions
	// hand-offs brought it (aliases.go).
	aliases *aliases
}

func newService(cfg serviceConfig) *service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Publish == nil {
		cfg.Publish = func([]session.Record) {}
	}
	if cfg.PublishWithDeltas == nil {
		publish := cfg.Publish
		cfg.PublishWithDeltas = func(whole, deltas []session.Record) { publish(slices.Concat(deltas, whole)) }
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = session.DefaultMaxSessionTTL
	}
	s := &service{serviceConfig: cfg, aliases: newAliases(cfg.Store)}
	s.setPolicy(servicePolicy{TTL: cfg.TTL, RequireVerified: cfg.RequireVerified})
	return s
}

// now is the store's wall clock.
func (s *service) now() time.Time { return s.Store.Now() }

// apply merges recs into the store, then publishes those that changed and
// travel. It returns the merged state of the records that changed. It is
// the one way the operations change a replicated record; a node whose site
// was revoked changes none (ErrSiteRevoked, see checkNotRevoked). Two writes
// bypass it on purpose: acceptHandoff (a ticket's records, from the
// cluster, not published again) and Node.unrevokeSelf (which must write on
// a revoked site, so applies and publishes itself).
//
// With delta not nil, the changed users are published as delta(user)
// (gossip.PublishWithDeltas): delta must return a delta state of its
// argument's change (session.RevocationDelta).
func (s *service) apply(delta func(session.User) session.User, recs ...session.Record) ([]session.Record, error) {
	if err := s.checkNotRevoked(); err != nil {
		return nil, err
	}
	changed, err := s.Store.Apply(recs...)
	if err != nil {
		return nil, fmt.Errorf("apply: %w", err)
	}
	pub := make([]session.Record, 0, len(changed))
	var deltas []session.Record
	for _, rec := range changed {
		switch {
		case !rec.Replicated():
		case rec.User != nil && delta != nil:
			d := delta(*rec.User)
			deltas = append(deltas, session.Record{User: &d})
		default:
			pub = append(pub, rec)
		}
	}
	switch {
	case len(deltas) > 0:
		s.PublishWithDeltas(pub, deltas)
	case len(pub) > 0:
		s.Publish(pub)
	}
	return changed, nil
}

// user returns the user of email (normalized), or a new one (Created unset)
// and false when this node does not hold it.
func (s *service) user(email string) (session.User, bool, error) {
	u, err := s.Store.User(email)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return session.User{Email: email}, false, nil
	case err != nil:
		return u, false, fmt.Errorf("read user: %w", err)
	}
	return u, true, nil
}

// session returns session id and its user (zero but for the email when
// this node has not heard of the user yet); session.ErrNotFound when the
// node holds no such session. id is a session's id or an alias this site
// minted for one (aliases.go): a cookie's sha256 either way.
func (s *service) session(id string) (session.Session, session.User, error) {
	// An alias in memory costs a map lookup; a session's own id misses it
	// and reads the store's cache, as before aliases existed.
	if sid, ok := s.aliases.cached(id); ok {
		id = sid
	}
	sess, err := s.Store.Session(id)
	if errors.Is(err, session.ErrNotFound) {
		sid, ok, aerr := s.aliases.lookup(id)
		if aerr != nil {
			return sess, session.User{}, aerr
		}
		if ok {
			sess, err = s.Store.Session(sid)
		}
	}
	if errors.Is(err, session.ErrNotFound) {
		return sess, session.User{}, refuse(session.ErrNotFound, "no such session")
	}
	if err != nil {
		return sess, session.User{}, fmt.Errorf("read session: %w", err)
	}
	u, _, err := s.user(sess.Email)
	return sess, u, err
}

// usersOf returns the user of each session of list (zero but for the
// email when unknown here), reading each user once.
func (s *service) usersOf(list []session.Session) ([]session.User, error) {
	byEmail := map[string]session.User{}
	users := make([]session.User, len(list))
	for i := range list {
		u, ok := byEmail[list[i].Email]
		if !ok {
			var err error
			if u, _, err = s.user(list[i].Email); err != nil {
				return nil, err
			}
			byEmail[u.Email] = u
		}
		users[i] = u
	}
	return users, nil
}

// errMoved is the refusal of a write on the old address of a moved user.
func errMoved(u *session.User) error {
	return refuse(ErrUserMoved, "the user was moved to %s by an administrator: use that address", u.MovedTo.V)
}

// updateUser creates or updates email's user (checked and normalized by the
// caller) on behalf of this site and publishes the change to every site.
// The change is session.SiteUpdate's: a verification in c (verified_via)
// binds this site, clearing it voids every site's binding, and a site that
// is not bound to a verified address never overwrites its profile. ack says
// the site's backend has the user: false for an administrator's verify or
// unverify alone. It returns the user as it now stands, or ErrUserMoved.
func (s *service) updateUser(email string, c session.UserChange, ack bool) (session.User, error) {
	u, known, err := s.user(email)
	if err != nil {
		return u, err
	}
	if u.MovedTo.V != "" {
		return u, errMoved(&u)
	}
	nu, changed := s.change(u, known, c, ack, s.Store.Clock().Now())
	if !changed {
		return u, nil
	}
	return s.applyUser(nu)
}

// change is the user change of this site's write c, at at
// (session.SiteUpdate; a login is a write with no verification and ack
// set). It reports whether the user changed.
func (s *service) change(u session.User, known bool, c session.UserChange, ack bool, at session.HLC) (session.User, bool) {
	nu, changed, kept := session.SiteUpdate(u, known, c, ack, at, s.Name)
	if kept {
		s.Log.Debug("profile left as it is: this site is not bound to the user's address")
	}
	return nu, changed
}

// applyUser merges and publishes nu, and returns the user as it then
// stands.
func (s *service) applyUser(nu session.User) (session.User, error) {
	merged, err := s.apply(nil, session.Record{User: &nu})
	if err != nil {
		return nu, err
	}
	if len(merged) > 0 {
		return *merged[0].User, nil
	}
	u, _, err := s.user(nu.Email)
	return u, err
}

// login is what a login gives the service: the request, checked and
// normalized by the caller.
type login struct {
	Email     string
	Change    session.UserChange // the login and display name it names
	IP        string
	UserAgent string
	TTL       time.Duration // 0: serviceConfig.TTL
}

// loginResult is what a login made: the session, its token (which only the
// caller will ever hold), the user as they now stand, and, for a session
// kept on this site, why (session.ReasonNotVerified or
// ReasonSiteNotBound).
type loginResult struct {
	Session session.Session
	Token   string
	User    session.User
	Reason  string
}

// login opens a session for l on this site: a new session, and the user
// (created, or updated with the login's names where this site may write
// them, and marked known to this site). The session stays on this site
// (Local) unless the user's address is verified and this site is bound to
// it (User.Travels), when the node requires it. It returns ErrUserMoved for
// a moved user.
func (s *service) login(l login) (loginResult, error) {
	u, known, err := s.user(l.Email)
	if err != nil {
		return loginResult{User: u}, err
	}
	if u.MovedTo.V != "" {
		return loginResult{User: u}, errMoved(&u)
	}
	token, id, err := crypto.NewToken()
	if err != nil {
		return loginResult{User: u}, err
	}
	pol := s.policy()
	ttl := l.TTL
	if ttl == 0 {
		ttl = pol.TTL
	}
	// Taken after reading the user: the clock has observed its
	// RevokedBefore, so the session is created after it.
	at := s.Store.Clock().Now()
	nu, userChanged := s.change(u, known, l.Change, true, at)
	travels, reason := nu.Travels(s.Name)
	if !pol.RequireVerified {
		travels, reason = true, ""
	}
	sess := session.Session{
		ID:        id,
		Email:     l.Email,
		Site:      s.Name,
		IP:        l.IP,
		UserAgent: l.UserAgent,
		Created:   at,
		ExpiresAt: s.now().UnixMilli() + ttl.Milliseconds(),
		Local:     !travels,
	}
	recs := make([]session.Record, 0, 2)
	if userChanged {
		recs = append(recs, session.Record{User: &nu})
	}
	recs = append(recs, session.Record{Session: &sess})
	// The user goes out as the delta of the login's change (the site it
	// marked known, its names): a user many sites know outgrows a packet,
	// and its push would take a TCP stream to every member.
	before := u
	merged, err := s.apply(func(m session.User) session.User { return session.SitesDelta(m, before) }, recs...)
	if err != nil {
		return loginResult{User: u}, err
	}
	u = nu
	for _, rec := range merged {
		if rec.User != nil {
			u = *rec.User
		}
	}
	s.Metrics.sessionCreated(!sess.Local)
	s.Log.Info("session created", "session", id, "synced", !sess.Local, "reason", reason)
	return loginResult{Session: sess, Token: token, User: u, Reason: reason}, nil
}

// end logs session sess (of user u) out, on every site, with reason
// (session.EndLogout, or EndAdmin for an administrator's revoke), if it is
// active; a session already not active (ended, revoked or expired) is left
// as it is, so its first cause is kept. It returns the session as it now
// stands and whether this call ended it.
func (s *service) end(sess session.Session, u session.User, reason string) (session.Session, bool, error) {
	if sess.StateIn(u, s.Store.Site(sess.Site), s.now()) != session.StateActive {
		return sess, false, nil
	}
	ended := session.EndSession(sess, s.Store.Clock().Now(), reason)
	merged, err := s.apply(nil, session.Record{Session: &ended})
	if err != nil {
		return sess, false, err
	}
	if len(merged) > 0 {
		s.Metrics.sessionsEndedAdd(reason, 1)
		return *merged[0].Session, true, nil
	}
	// Someone else ended it first: answer with what won.
	if sess, err = s.Store.Session(sess.ID); err != nil {
		return sess, false, fmt.Errorf("read session: %w", err)
	}
	return sess, false, nil
}

// logoutEverywhere raises the user's RevokedBefore (which also kills
// sessions created earlier that reach this or another node later) and ends
// every active session of the user. It returns how many active sessions it
// ended; an email with no user and no session here is session.ErrNotFound.
func (s *service) logoutEverywhere(email string) (int, error) {
	u, known, err := s.user(email)
	if err != nil {
		return 0, err
	}
	active, err := s.Store.UserSessions(email, false, 0)
	if err != nil {
		return 0, fmt.Errorf("read sessions: %w", err)
	}
	if !known && len(active) == 0 {
		all, err := s.Store.UserSessions(email, true, 1)
		if err != nil {
			return 0, fmt.Errorf("read sessions: %w", err)
		}
		if len(all) == 0 {
			return 0, refuse(session.ErrNotFound, "no such user")
		}
	}
	// The user travels as its revocation delta: a user many sites know
	// outgrows a packet, and its push would take a TCP stream to every
	// member (a handshake across the internet, a second when a SYN is lost).
	if _, err := s.apply(session.RevocationDelta, session.RevokeAll(u, known, active, s.Store.Clock().Now())...); err != nil {
		return 0, err
	}
	s.Metrics.sessionsEndedAdd(session.EndLogoutEverywhere, len(active))
	s.Log.Info("logged out everywhere", "sessions", len(active))
	return len(active), nil
}

// markVerified marks email's user verified by code, on every site (the
// register is published like a PUT), and binds this site to the address:
// the user proved the mailbox here (a code typed on this site, or the link
// its node sent). On a user verified already the code restamps the
// verification, which keeps its first method (User.Verify says why). A user this node does not hold is
// ErrInvalidCode: a code is only ever sent to an existing user.
func (s *service) markVerified(email string) (session.User, error) {
	u, known, err := s.user(email)
	if err != nil {
		return u, err
	}
	if !known {
		return u, ErrInvalidCode
	}
	// The write of a verified_via from this site (session.SiteUpdate):
	// Verify, which binds this site, then ClaimProfile, since it is bound.
	code := session.Verification{OK: true, Method: session.VerifiedCode}
	u, changed := s.change(u, true, session.UserChange{Verified: &code}, false, s.Store.Clock().Now())
	if !changed {
		return u, nil
	}
	s.Log.Info("e-mail verified by code")
	return s.applyUser(u)
}

// proof is what a user brings to show an address is theirs: the code of
// the message this node sent (Email and Code), or its one-click link
// (Link, which names the address itself).
type proof struct {
	Email, Code, Link string
}

// verifyAddress checks p with v (verifier.checkCode, verifier.redeemLink),
// and on success marks the address verified (markVerified). It returns the
// user as it then stands, or the verifier's refusal (ErrInvalidCode, the
// link's ticket errors, ErrLinkStale) and changes nothing. The one way a
// code or a link verifies an address: POST /v1/users/{email}/verify and
// the public verify page both call it.
func (s *service) verifyAddress(v *verifier, p proof) (session.User, error) {
	email := p.Email
	var err error
	if p.Link != "" {
		email, err = v.redeemLink(p.Link)
	} else {
		err = v.checkCode(email, p.Code)
	}
	if err != nil {
		return session.User{}, err
	}
	return s.markVerified(email)
}

// move is an administrator moving user from to address to (both normalized,
// different): see session.Move. The old address is logged out everywhere
// (its active sessions end with reason admin) and refused from then on
// (ErrUserMoved). It returns the user at the new address and how many
// sessions it ended; session.ErrNotFound when from has no user here,
// ErrUserMoved when from was moved already.
func (s *service) move(from, to string) (session.User, int, error) {
	old, known, err := s.user(from)
	if err != nil {
		return old, 0, err
	}
	if !known {
		return old, 0, refuse(session.ErrNotFound, "no such user")
	}
	if old.MovedTo.V != "" {
		return old, 0, errMoved(&old)
	}
	nu, _, err := s.user(to)
	if err != nil {
		return nu, 0, err
	}
	active, err := s.Store.UserSessions(from, false, 0)
	if err != nil {
		return nu, 0, fmt.Errorf("read sessions: %w", err)
	}
	// Taken after reading both users: the clock has observed their stamps,
	// so the new values win every register.
	at := s.Store.Clock().Now()
	recs := session.Move(old, nu, active, at, s.Name)
	merged, err := s.apply(nil, recs...)
	if err != nil {
		return nu, 0, err
	}
	nu = *recs[0].User
	for _, rec := range merged {
		if rec.User != nil && rec.User.Email == to {
			nu = *rec.User
		}
	}
	s.Metrics.sessionsEndedAdd(session.EndAdmin, len(active))
	s.Log.Info("user moved to a new address", "sessions_ended", len(active))
	return nu, len(active), nil
}

// acceptHandoff merges the records a hand-off ticket carries (the session,
// and its user when the ticket has it) and returns them as this node now
// holds them. They are not published: they come from the node that sealed
// the ticket, which published them already, and gossip brings them here
// too; the ticket only lets this site act before it does. A record the
// store refuses (a timestamp ahead of this node's clock, a session living
// longer than the cluster allows) is returned as its error (see
// ticketRecordError).
func (s *service) acceptHandoff(sess session.Session, u *session.User) (session.Session, session.User, error) {
	recs := []session.Record{{Session: &sess}}
	if u != nil && u.Email == sess.Email {
		recs = append(recs, session.Record{User: u})
	}
	_, refused, err := s.Store.ApplyChecked(recs...)
	if err != nil {
		return sess, session.User{}, fmt.Errorf("apply ticket records: %w", err)
	}
	if len(refused) > 0 {
		return sess, session.User{}, ticketRecordError(refused[0].Err)
	}
	got, err := s.Store.Session(sess.ID)
	if err != nil {
		return sess, session.User{}, fmt.Errorf("read session: %w", err)
	}
	user, _, err := s.user(sess.Email)
	return got, user, err
}

// bind records that a hand-off of u's session sess to this site was
// completed by the user's browser: this site is bound to the address from
// now on (User.Bind), and the change is published. A site already bound
// writes nothing. A hand-off binds only what its session proves: the site
// that made it is bound to the address still, and the session was made
// after the bindings were last voided (User.UnboundBefore). A session of an
// unverified address, or one made before an administrator's unverify,
// binds nothing: it travelled on no proof, or on a proof that is void.
func (s *service) bind(u session.User, sess *session.Session) (session.User, error) {
	if u.Created == 0 || u.BoundTo(s.Name) {
		return u, nil
	}
	if sess.Created <= u.UnboundBefore || !u.BoundTo(sess.Site) {
		s.Log.Info("hand-off binds nothing: the site that made the session is no longer bound to the address", "session", sess.ID)
		return u, nil
	}
	if !u.Bind(s.Name, s.Store.Clock().Now()) {
		return u, nil
	}
	return s.applyUser(u)
}

// newUser reports whether this site's backend has not said it has u yet
// (User.KnownTo): a user who arrived by a hand-off, the site's "new user".
func (s *service) newUser(u *session.User) bool {
	return u.Created != 0 && !u.KnownTo(s.Name)
}

// resetUser resets email's user record on every node (session.ResetUser):
// a new generation of the record, which wins over any state of the old one
// whatever its timestamps. It keeps the address, the creation time, the
// names and a move; it clears the verification and the sites' bindings,
// and logs the user out everywhere. It returns the user as it now stands
// and how many sessions were active here before; session.ErrNotFound when
// this node holds no such user.
func (s *service) resetUser(email string) (session.User, int, error) {
	u, known, err := s.user(email)
	if err != nil {
		return u, 0, err
	}
	if !known {
		return u, 0, refuse(session.ErrNotFound, "no such user")
	}
	active, err := s.Store.UserSessions(email, false, 0)
	if err != nil {
		return u, 0, fmt.Errorf("read sessions: %w", err)
	}
	at := s.Store.Clock().Now()
	if u.Reset >= at {
		return u, 0, refuse(errInvalidField, "the user's record was reset at %s, ahead of this node's clock: reset it from another node", u.Reset.Time())
	}
	r := session.ResetUser(u, at)
	merged, err := s.apply(nil, session.Record{User: &r})
	if err != nil {
		return u, 0, err
	}
	u = r
	if len(merged) > 0 {
		u = *merged[0].User
	}
	s.Metrics.sessionsEndedAdd(session.EndAdmin, len(active))
	s.Log.Warn("user record reset: verification and bindings cleared, logged out everywhere", "sessions_ended", len(active))
	return u, len(active), nil
}
