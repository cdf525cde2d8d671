package node

import (
	"time"

	"github.com/ussync/ussync/session"
)

// SessionInfo is a session as the private API shows it (the server encodes
// it, Client decodes it). Times are RFC 3339 in UTC.
// EndedAt (null while active) and EndReason ("") say why a session is not
// active whatever the cause: its own end, its user's "log out everywhere"
// (the revocation time, reason logout_everywhere) or its expiry (expires_at,
// reason expired). Synced is false for a session kept on its own site (its
// user's e-mail was not verified at login): other sites never hear of it.
type SessionInfo struct {
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

// newSessionView shows s as of now, given its user u (zero if unknown here).
// It also returns the session's state.
func newSessionView(s *session.Session, u *session.User, now time.Time) (SessionInfo, session.State) {
	v := SessionInfo{
		ID:        s.ID,
		Email:     s.Email,
		Site:      s.Site,
		IP:        s.IP,
		UserAgent: s.UserAgent,
		CreatedAt: s.Created.Time(),
		ExpiresAt: time.UnixMilli(s.ExpiresAt).UTC(),
		Synced:    !s.Local,
	}
	state := s.StateAt(*u, now)
	switch state {
	case session.StateActive:
		v.Active = true
	case session.StateEnded:
		v.EndedAt, v.EndReason = hlcTime(s.Ended), s.EndReason
	case session.StateRevoked:
		v.EndedAt, v.EndReason = hlcTime(u.RevokedBefore), session.EndLogoutEverywhere
		if s.Created > u.RevokedBefore { // revoked by the user's move alone
			v.EndedAt, v.EndReason = hlcTime(u.MovedTo.At), session.EndAdmin
		}
	case session.StateExpired:
		v.EndedAt, v.EndReason = &v.ExpiresAt, session.EndExpired
	}
	return v, state
}

// SessionCheck is the answer of the session check (and, without NewUser,
// of the other calls that answer one session).
type SessionCheck struct {
	Session SessionInfo `json:"session"`
	// NewUser is set while the session's user is unknown to this site:
	// the session came by a ticket and this site's backend has not PUT the
	// user yet (site.on_unknown_user: create). The site adds the user to
	// its own user list and PUTs it, which clears the flag.
	NewUser bool `json:"new_user,omitempty"`
}

// UserInfo is a user as the private API shows it (the server encodes it,
// Client decodes it). Times are RFC 3339 in UTC.
type UserInfo struct {
	Email         string     `json:"email"`
	Login         string     `json:"login"`
	DisplayName   string     `json:"display_name"`
	Verified      bool       `json:"verified"`
	VerifiedVia   string     `json:"verified_via"`   // registration, admin or code; "" when not verified
	VerifiedAt    *time.Time `json:"verified_at"`    // null when not verified
	RevokedBefore *time.Time `json:"revoked_before"` // null until a "log out everywhere"
	CreatedAt     *time.Time `json:"created_at"`     // null only for a user known from a peer without it
	MovedTo       string     `json:"moved_to"`       // the address an administrator moved the user to; "" if not moved
}

func newUserView(u *session.User) UserInfo {
	v := UserInfo{
		Email:       u.Email,
		Login:       u.Login.V,
		DisplayName: u.DisplayName.V,
		Verified:    u.Verified.V.OK,
		CreatedAt:   hlcTime(u.Created),
		MovedTo:     u.MovedTo.V,
	}
	if v.Verified {
		v.VerifiedVia = u.Verified.V.Method
		v.VerifiedAt = hlcTime(u.Verified.At)
	}
	v.RevokedBefore = hlcTime(u.RevokedBefore)
	return v
}

// hlcTime is h's wall time, or nil for the zero HLC ("never").
func hlcTime(h session.HLC) *time.Time {
	if h == 0 {
		return nil
	}
	t := h.Time()
	return &t
}
