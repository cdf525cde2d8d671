package session

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"
)

// Errors returned by the package.
var (
	// ErrNotFound means the store holds no such user or session.
	ErrNotFound = errors.New("not found")
	// ErrInvalidEmail means an address failed NormalizeEmail.
	ErrInvalidEmail = errors.New("invalid email")
	// ErrInvalidRecord means a record is missing its identity or is malformed.
	ErrInvalidRecord = errors.New("invalid record")
	// ErrClosed means the store was used after Close.
	ErrClosed = errors.New("store closed")
	// ErrBadCursor means a listing's cursor is not one the store made.
	ErrBadCursor = errors.New("bad cursor")
	// ErrClockAhead means a record (or a ticket's time) carries a timestamp
	// more than the max offset ahead of this node's wall clock: the sender's
	// clock, or this node's, is wrong, or the record is forged. Such a
	// record is never merged and never observed by the clock.
	ErrClockAhead = errors.New("timestamp ahead of this node's clock")
	// ErrLifetime means a session would live longer than the cluster's
	// maximum session TTL (Options.MaxSessionTTL) plus the max offset.
	ErrLifetime = errors.New("session lifetime over the cluster's maximum")
)

// Verification methods and session end reasons, as they appear in the API.
const (
	VerifiedRegistration = "registration"
	VerifiedAdmin        = "admin"
	VerifiedCode         = "code"

	EndLogout           = "logout"
	EndLogoutEverywhere = "logout_everywhere"
	EndAdmin            = "admin"
	EndExpired          = "expired"
	// EndSiteRevoked is the end a session of a revoked site is shown with
	// (its record is not changed: see Site).
	EndSiteRevoked = "site_revoked"
)

// Bounds on a record's fields, checked by Record.Validate: records travel in
// gossip messages and tickets, and a member's record is checked like any
// other input.
const (
	// MaxNameBytes bounds a user's login and display name.
	MaxNameBytes = 256
	// MaxUserAgentBytes bounds a session's user agent.
	MaxUserAgentBytes = 512
	// MaxSiteNameBytes bounds a node (site) name wherever a record holds
	// one: a session's site, a register's writer, a user's Sites key, a
	// Site record's name (memberlist's node names fit).
	MaxSiteNameBytes = 255
	// MaxSessionIDBytes bounds a session id (the hex SHA-256 of its token
	// is 64 bytes).
	MaxSessionIDBytes = 64
	// maxSmallField bounds the short fields of a session: IP, end reason.
	maxSmallField = 64
)

// Register is a last-writer-wins register: the write with the greatest
// (At, By) wins.
type Register[T comparable] struct {
	V  T      `json:"v"`
	At HLC    `json:"t,omitempty"`
	By string `json:"n,omitempty"`
}

// Set returns a register holding v, written at at by node by.
func Set[T comparable](v T, at HLC, by string) Register[T] {
	return Register[T]{V: v, At: at, By: by}
}

func joinRegister[T comparable](a, b Register[T]) Register[T] {
	if c := cmp.Compare(a.At, b.At); c != 0 {
		return pick(c > 0, a, b)
	}
	if c := cmp.Compare(a.By, b.By); c != 0 {
		return pick(c > 0, a, b)
	}
	if a.V == b.V {
		return a
	}
	// Two different values with one stamp: no real writer does this, but the
	// join must still be a function of the set of inputs.
	return pick(fmt.Sprint(a.V) > fmt.Sprint(b.V), a, b)
}

func pick[T any](first bool, a, b T) T {
	if first {
		return a
	}
	return b
}

// Verification is the verified state of a user's e-mail.
type Verification struct {
	OK     bool   `json:"ok"`
	Method string `json:"method,omitempty"` // registration, admin or code
}

// User is a person, identified by e-mail. Email never changes: an
// administrator moving a user to a new address makes a user at the new
// address and sets MovedTo on the old one.
//
// Fields added after the first release (MovedTo, Sites, UnboundBefore,
// Reset) are left out of the encoding while never set, so records written
// before they existed keep their bytes (and digest).
type User struct {
	Email         string                 `json:"email"`
	Login         Register[string]       `json:"login"`
	DisplayName   Register[string]       `json:"display_name"`
	Verified      Register[Verification] `json:"verified"`
	RevokedBefore HLC                    `json:"revoked_before,omitempty"`
	Created       HLC                    `json:"created,omitempty"`
	// MovedTo is the address the user was moved to ("" while not moved).
	// A moved user's sessions are never active.
	MovedTo Register[string] `json:"moved_to,omitzero"`
	// Sites is what each site (node name) knows of the user: whether its
	// backend has the user, and whether it is bound to the address (see
	// SiteBinding). Joined per site by max. At most MaxSitesPerUser
	// entries. A map here is never modified in place: the methods that
	// change it (MarkKnown, Bind) copy it first, and User values, the
	// store's cache included, share it.
	Sites map[string]SiteBinding `json:"sites,omitempty"`
	// UnboundBefore voids every binding made at or before it. It only grows
	// (max), like RevokedBefore; Unverify raises it.
	UnboundBefore HLC `json:"unbound_before,omitempty"`
	// Reset is the record's generation (see ResetUser): of two states with
	// different Resets the one with the greater wins whole; states of one
	// generation join field by field.
	Reset HLC `json:"reset,omitempty"`
}

// JoinUser merges two states of the same user. It is a join: first by
// Reset (the later generation wins whole, which is how a reset undoes a
// timestamp nothing can outbid), then field by field.
func JoinUser(a, b User) User {
	if a.Reset != b.Reset {
		return pick(a.Reset > b.Reset, a, b)
	}
	return User{
		Email:         a.Email,
		Login:         joinRegister(a.Login, b.Login),
		DisplayName:   joinRegister(a.DisplayName, b.DisplayName),
		Verified:      joinRegister(a.Verified, b.Verified),
		RevokedBefore: max(a.RevokedBefore, b.RevokedBefore),
		Created:       minNonZero(a.Created, b.Created),
		MovedTo:       joinRegister(a.MovedTo, b.MovedTo),
		Sites:         joinSites(a.Sites, b.Sites),
		UnboundBefore: max(a.UnboundBefore, b.UnboundBefore),
		Reset:         a.Reset,
	}
}

func minNonZero(a, b HLC) HLC {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// Session is one login. Only Ended and EndReason ever change.
type Session struct {
	ID        string `json:"id"` // hex SHA-256 of the token
	Email     string `json:"email"`
	Site      string `json:"site"` // the node name where the login happened
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"ua,omitempty"`
	Created   HLC    `json:"created"`
	ExpiresAt int64  `json:"expires"` // Unix milliseconds
	Ended     HLC    `json:"ended,omitempty"`
	EndReason string `json:"reason,omitempty"`
	// Local marks a session that stays on its own site (its user's e-mail
	// was not verified at login): it is stored but never gossiped, never in
	// the digest and never repaired.
	Local bool `json:"local,omitempty"`
}

// JoinSession merges two states of the same session: ended wins over alive,
// and of two ends the earliest is kept.
func JoinSession(a, b Session) Session {
	// The immutable part never differs between honest replicas; if it does,
	// take the smaller so the join is still well defined.
	out := pick(compareImmutable(a, b) <= 0, a, b)
	switch {
	case a.Ended == 0:
		out.Ended, out.EndReason = b.Ended, b.EndReason
	case b.Ended == 0:
		out.Ended, out.EndReason = a.Ended, a.EndReason
	case a.Ended < b.Ended || (a.Ended == b.Ended && a.EndReason <= b.EndReason):
		out.Ended, out.EndReason = a.Ended, a.EndReason
	default:
		out.Ended, out.EndReason = b.Ended, b.EndReason
	}
	if out.Ended == 0 {
		out.EndReason = "" // a reason without an end means nothing
	}
	return out
}

func compareImmutable(a, b Session) int {
	return cmp.Or(
		cmp.Compare(a.Created, b.Created),
		cmp.Compare(a.ExpiresAt, b.ExpiresAt),
		cmp.Compare(a.Email, b.Email),
		cmp.Compare(a.Site, b.Site),
		cmp.Compare(a.IP, b.IP),
		cmp.Compare(a.UserAgent, b.UserAgent),
		cmpBool(a.Local, b.Local),
	)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Replicated reports whether r travels to other nodes (everything but local
// sessions).
func (r Record) Replicated() bool { return r.Session == nil || !r.Session.Local }

// State is why a session is or is not active.
type State string

// Session states, as the API reports them.
const (
	StateActive  State = "active"
	StateEnded   State = "ended"
	StateRevoked State = "revoked"
	StateExpired State = "expired"
	// StateSiteRevoked is a session minted by a site an administrator
	// revoked (see Site).
	StateSiteRevoked State = "site_revoked"
)

// StateAt tells whether s is active at now given its user u (whose
// RevokedBefore may be zero when the user is not known yet). Every session
// of a user moved to another address is revoked. It does not know about
// revoked sites: StateIn does.
func (s Session) StateAt(u User, now time.Time) State {
	return s.StateIn(u, Site{}, now)
}

// StateIn is StateAt that also knows the state of the session's site
// (Store.Site(s.Site)): a session a revoked site minted is
// StateSiteRevoked. A Site of another name (the zero Site) revokes nothing.
// The order of the answers is: ended, revoked (by its user), site revoked,
// expired.
func (s Session) StateIn(u User, site Site, now time.Time) State {
	switch {
	case s.Ended != 0:
		return StateEnded
	case s.Created <= u.RevokedBefore || u.MovedTo.V != "":
		return StateRevoked
	case site.Revokes(&s):
		return StateSiteRevoked
	case now.UnixMilli() >= s.ExpiresAt:
		return StateExpired
	}
	return StateActive
}

// EndedAt is when s stopped being usable by its own fields: its end, or its
// expiry if it never ended (Unix ms). Sweeping counts retention from here.
func (s Session) EndedAt() int64 {
	if s.Ended != 0 {
		return min(s.Ended.WallMs(), s.ExpiresAt)
	}
	return s.ExpiresAt
}

// Record is one replicated item: exactly one of User, Session and Site is
// set. Records are what nodes gossip and what anti-entropy compares. A node
// of a version that knows no Site record decodes one as a record with
// nothing set, which Validate refuses: it ignores it.
type Record struct {
	User    *User    `json:"u,omitempty"`
	Session *Session `json:"s,omitempty"`
	Site    *Site    `json:"site,omitempty"`
}

// Key is the record's identity in the store and the digest: "u" + email,
// "s" + session id, "n" + site (node) name.
func (r Record) Key() string {
	switch {
	case r.User != nil:
		return "u" + r.User.Email
	case r.Session != nil:
		return "s" + r.Session.ID
	case r.Site != nil:
		return "n" + r.Site.Name
	}
	return ""
}

// Validate checks that r has exactly one part, with its identity set and
// its fields within bounds. Every failure wraps ErrInvalidRecord.
func (r Record) Validate() error {
	n := 0
	for _, set := range []bool{r.User != nil, r.Session != nil, r.Site != nil} {
		if set {
			n++
		}
	}
	var err error
	switch {
	case n != 1:
		err = errors.New("want exactly one of user, session and site")
	case r.User != nil:
		err = r.User.validate()
	case r.Session != nil:
		err = r.Session.validate()
	default:
		err = r.Site.validate()
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	return nil
}

func (u *User) validate() error {
	switch {
	case u.Email == "":
		return errors.New("user without email")
	case len(u.Email) > MaxEmailBytes || len(u.MovedTo.V) > MaxEmailBytes:
		return fmt.Errorf("an address over %d bytes", MaxEmailBytes)
	case len(u.Login.V) > MaxNameBytes || len(u.DisplayName.V) > MaxNameBytes:
		return fmt.Errorf("a name over %d bytes", MaxNameBytes)
	case len(u.Verified.V.Method) > maxSmallField:
		return errors.New("a verification method too long")
	case longName(u.Login.By, u.DisplayName.By, u.Verified.By, u.MovedTo.By):
		return fmt.Errorf("a writer's name over %d bytes", MaxSiteNameBytes)
	}
	return validateSites(u.Sites)
}

func (s *Session) validate() error {
	switch {
	case s.ID == "" || s.Email == "":
		return errors.New("session without id or email")
	case s.Ended == 0 && s.EndReason != "":
		return errors.New("end reason without an end")
	case len(s.ID) > MaxSessionIDBytes:
		return fmt.Errorf("a session id over %d bytes", MaxSessionIDBytes)
	case len(s.Email) > MaxEmailBytes:
		return fmt.Errorf("an address over %d bytes", MaxEmailBytes)
	case longName(s.Site):
		return fmt.Errorf("a site name over %d bytes", MaxSiteNameBytes)
	case len(s.IP) > maxSmallField || len(s.EndReason) > maxSmallField:
		return errors.New("an IP or end reason too long")
	case len(s.UserAgent) > MaxUserAgentBytes:
		return fmt.Errorf("a user agent over %d bytes", MaxUserAgentBytes)
	}
	return nil
}

func longName(names ...string) bool {
	for _, n := range names {
		if len(n) > MaxSiteNameBytes {
			return true
		}
	}
	return false
}

// MaxHLC is the greatest timestamp the record carries, for Clock.Observe and
// the max offset check.
func (r Record) MaxHLC() HLC {
	if u := r.User; u != nil {
		h := max(u.Login.At, u.DisplayName.At, u.Verified.At, u.RevokedBefore, u.Created, u.MovedTo.At, u.UnboundBefore, u.Reset)
		for _, b := range u.Sites {
			h = max(h, b.Known, b.Bound)
		}
		return h
	}
	if s := r.Session; s != nil {
		return max(s.Created, s.Ended)
	}
	if x := r.Site; x != nil {
		return max(x.Revoked.At, x.RevokedBefore)
	}
	return 0
}

// Join merges two states of the record with the same key.
func Join(a, b Record) Record {
	switch {
	case a.User != nil && b.User != nil:
		u := JoinUser(*a.User, *b.User)
		return Record{User: &u}
	case a.Session != nil && b.Session != nil:
		s := JoinSession(*a.Session, *b.Session)
		return Record{Session: &s}
	case a.Site != nil && b.Site != nil:
		x := JoinSite(*a.Site, *b.Site)
		return Record{Site: &x}
	}
	panic("session: join of records of different kinds")
}

// Buckets is the number of anti-entropy buckets records are spread over.
const Buckets = 256

// BucketOf is the anti-entropy bucket of a record key.
func BucketOf(key string) uint8 {
	h := sha256.Sum256([]byte(key))
	return h[0]
}
