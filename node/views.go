package node

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ussync/ussync/session"
)

// sessionView is a session as the API shows it:
//
//	{"id","email","site","ip","user_agent","created_at","expires_at",
//	 "ended_at","end_reason","active","synced"}
//
// Times are RFC 3339 in UTC. EndedAt (null while active) and EndReason ("")
// say why a session is not active whatever the cause: its own end, its
// user's "log out everywhere" (the revocation time, reason
// logout_everywhere) or its expiry (expires_at, reason expired). Synced is
// false for a session kept on its own site (its user's e-mail was not
// verified at login): other sites never hear of it.
//
// It encodes itself (appendJSON) without reflection or allocation: it is the
// answer of the session check every page view of every site makes.
type sessionView struct {
	ID        string
	Email     string
	Site      string
	IP        string
	UserAgent string
	CreatedAt time.Time
	ExpiresAt time.Time
	EndedAt   time.Time // zero (null) while active
	EndReason string
	Active    bool
	Synced    bool
}

// newSessionView shows s as of now, given its user u (zero if unknown here).
// It also returns the session's state.
func newSessionView(s *session.Session, u *session.User, now time.Time) (sessionView, session.State) {
	v := sessionView{
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
		v.EndedAt, v.EndReason = s.Ended.Time(), s.EndReason
	case session.StateRevoked:
		v.EndedAt, v.EndReason = u.RevokedBefore.Time(), session.EndLogoutEverywhere
	case session.StateExpired:
		v.EndedAt, v.EndReason = v.ExpiresAt, session.EndExpired
	}
	return v, state
}

// MarshalJSON encodes v as appendJSON does.
func (v sessionView) MarshalJSON() ([]byte, error) { return v.appendJSON(nil), nil }

// appendJSON appends v's JSON object to b.
func (v *sessionView) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, v.ID)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, v.Email)
	b = append(b, `,"site":`...)
	b = appendJSONString(b, v.Site)
	b = append(b, `,"ip":`...)
	b = appendJSONString(b, v.IP)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, v.UserAgent)
	b = append(b, `,"created_at":`...)
	b = appendJSONTime(b, v.CreatedAt)
	b = append(b, `,"expires_at":`...)
	b = appendJSONTime(b, v.ExpiresAt)
	b = append(b, `,"ended_at":`...)
	b = appendJSONTime(b, v.EndedAt)
	b = append(b, `,"end_reason":`...)
	b = appendJSONString(b, v.EndReason)
	b = append(b, `,"active":`...)
	b = strconv.AppendBool(b, v.Active)
	b = append(b, `,"synced":`...)
	b = strconv.AppendBool(b, v.Synced)
	return append(b, '}')
}

// appendJSONTime appends t as an RFC 3339 UTC string, as encoding/json
// does, or null for the zero time.
func appendJSONTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString appends s as a JSON string, escaping as encoding/json
// does (HTML characters and U+2028/U+2029 included); invalid UTF-8 becomes
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// userView is a user as the API shows it. Times are RFC 3339 in UTC.
type userView struct {
	Email         string     `json:"email"`
	Login         string     `json:"login"`
	DisplayName   string     `json:"display_name"`
	Verified      bool       `json:"verified"`
	VerifiedVia   string     `json:"verified_via"`   // registration, admin or code; "" when not verified
	VerifiedAt    *time.Time `json:"verified_at"`    // null when not verified
	RevokedBefore *time.Time `json:"revoked_before"` // null until a "log out everywhere"
	CreatedAt     *time.Time `json:"created_at"`     // null only for a user known from a peer without it
}

func newUserView(u *session.User) userView {
	v := userView{
		Email:       u.Email,
		Login:       u.Login.V,
		DisplayName: u.DisplayName.V,
		Verified:    u.Verified.V.OK,
		CreatedAt:   hlcTime(u.Created),
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
