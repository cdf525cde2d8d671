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
type User struct {
	Email         string                 `json:"email"`
	Login         Register[string]       `json:"login"`
	DisplayName   Register[string]       `json:"display_name"`
	Verified      Register[Verification] `json:"verified"`
	RevokedBefore HLC                    `json:"revoked_before,omitempty"`
	Created       HLC                    `json:"created,omitempty"`
	// MovedTo is the address the user was moved to ("" while not moved).
	// A moved user's sessions are never active. Left out of the encoding
	// while never set, so records written before it existed keep their
	// bytes (and digest).
	MovedTo Register[string] `json:"moved_to,omitzero"`
}

// JoinUser merges two states of the same user.
func JoinUser(a, b User) User {
	return User{
		Email:         a.Email,
		Login:         joinRegister(a.Login, b.Login),
		DisplayName:   joinRegister(a.DisplayName, b.DisplayName),
		Verified:      joinRegister(a.Verified, b.Verified),
		RevokedBefore: max(a.RevokedBefore, b.RevokedBefore),
		Created:       minNonZero(a.Created, b.Created),
		MovedTo:       joinRegister(a.MovedTo, b.MovedTo),
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
)

// StateAt tells whether s is active at now given its user u (whose
// RevokedBefore may be zero when the user is not known yet). Every session
// of a user moved to another address is revoked.
func (s Session) StateAt(u User, now time.Time) State {
	switch {
	case s.Ended != 0:
		return StateEnded
	case s.Created <= u.RevokedBefore || u.MovedTo.V != "":
		return StateRevoked
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

// Record is one replicated item: exactly one of User and Session is set.
// Records are what nodes gossip and what anti-entropy compares.
type Record struct {
	User    *User    `json:"u,omitempty"`
	Session *Session `json:"s,omitempty"`
}

// Key is the record's identity in the store and the digest.
func (r Record) Key() string {
	switch {
	case r.User != nil:
		return "u" + r.User.Email
	case r.Session != nil:
		return "s" + r.Session.ID
	}
	return ""
}

// Validate checks that r has exactly one part with its identity set.
func (r Record) Validate() error {
	switch {
	case (r.User == nil) == (r.Session == nil):
		return fmt.Errorf("%w: want exactly one of user and session", ErrInvalidRecord)
	case r.User != nil && r.User.Email == "":
		return fmt.Errorf("%w: user without email", ErrInvalidRecord)
	case r.Session != nil && (r.Session.ID == "" || r.Session.Email == ""):
		return fmt.Errorf("%w: session without id or email", ErrInvalidRecord)
	case r.Session != nil && r.Session.Ended == 0 && r.Session.EndReason != "":
		return fmt.Errorf("%w: end reason without an end", ErrInvalidRecord)
	}
	return nil
}

// MaxHLC is the greatest timestamp the record carries, for Clock.Observe.
func (r Record) MaxHLC() HLC {
	if u := r.User; u != nil {
		return max(u.Login.At, u.DisplayName.At, u.Verified.At, u.RevokedBefore, u.Created, u.MovedTo.At)
	}
	if s := r.Session; s != nil {
		return max(s.Created, s.Ended)
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
