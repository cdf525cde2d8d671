package client

import "time"

// SessionInfo is a session as the private API shows it. Times are RFC 3339
// in UTC. EndedAt (null while active) and EndReason ("") say why a session is
// not active whatever the cause: its own end, its user's "log out
// everywhere" (the revocation time, reason logout_everywhere) or its expiry
// (expires_at, reason expired). Synced is false for a session kept on its own
// site (its user's e-mail was not verified at login): other sites never hear
// of it.
type SessionInfo struct {
	ID        string     `json:"id"` // hex SHA-256 of the token: SessionID(token)
	Email     string     `json:"email"`
	Site      string     `json:"site"` // the node the login happened on
	IP        string     `json:"ip"`
	UserAgent string     `json:"user_agent"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	EndedAt   *time.Time `json:"ended_at"`
	EndReason string     `json:"end_reason"` // one of the End* constants, "" while active
	Active    bool       `json:"active"`
	Synced    bool       `json:"synced"`
}

// SessionCheck is the answer of the session check, GET /v1/sessions/{id}
// (and, without NewUser, of the other calls that answer one session).
type SessionCheck struct {
	Session SessionInfo `json:"session"`
	// NewUser is set while the session's user is unknown to this site:
	// the session came by a ticket and this site's backend has not PUT the
	// user yet (site.on_unknown_user: create). The site adds the user to
	// its own user list and PUTs it, which clears the flag.
	NewUser bool `json:"new_user,omitempty"`
	// Node is set while the answering node may answer from stale data (it
	// is catching up or isolated); the header HeaderNodeState says the
	// same on every answer of the check, errors included.
	Node *NodeState `json:"node,omitempty"`
}

// UserInfo is a user as the private API shows it. Times are RFC 3339 in UTC.
type UserInfo struct {
	Email         string     `json:"email"`
	Login         string     `json:"login"`
	DisplayName   string     `json:"display_name"`
	Verified      bool       `json:"verified"`
	VerifiedVia   string     `json:"verified_via"`   // one of the Verified* constants; "" when not verified
	VerifiedAt    *time.Time `json:"verified_at"`    // null when not verified
	RevokedBefore *time.Time `json:"revoked_before"` // null until a "log out everywhere"
	CreatedAt     *time.Time `json:"created_at"`     // null only for a user known from a peer without it
	MovedTo       string     `json:"moved_to"`       // the address an administrator moved the user to; "" if not moved
}

// UserUpdate is the body of PUT /v1/users/{email}; nil fields are left out
// (and left as they are).
type UserUpdate struct {
	Login       *string `json:"login,omitempty"`
	DisplayName *string `json:"display_name,omitempty"`
	// VerifiedVia marks the e-mail verified: VerifiedRegistration or
	// VerifiedAdmin.
	VerifiedVia *string `json:"verified_via,omitempty"`
	// Verified false clears the verification (an administrator's
	// "unverify"); true is accepted only beside VerifiedVia.
	Verified *bool `json:"verified,omitempty"`
}

// Rename is the answer of POST /v1/users/{email}/rename.
type Rename struct {
	User      UserInfo `json:"user"`       // the user at the new address
	MovedFrom string   `json:"moved_from"` // the old address
	Ended     int      `json:"ended"`      // active sessions of the old address ended
}

// SessionQuery selects a page of GET /v1/sessions; zero fields are left to
// the node's defaults.
type SessionQuery struct {
	Email  string
	Site   string
	All    bool // history too (state=all); else active sessions only
	Oldest bool // oldest first (order=oldest); else newest first
	After  string
	Limit  int // 1 to 500; 0: the node's default (50)
}

// SessionPage is one page of sessions and the cursor of the next ("" after
// the last).
type SessionPage struct {
	Sessions []SessionInfo `json:"sessions"`
	Next     string        `json:"next"`
}

// UserPage is one page of users and the cursor of the next ("" after the
// last).
type UserPage struct {
	Users []UserInfo `json:"users"`
	Next  string     `json:"next"`
}

// LoginRequest is the body of POST /v1/sessions; zero fields are left to
// the node.
type LoginRequest struct {
	Email       string  `json:"email"`
	Login       *string `json:"login,omitempty"`        // sets the user's login; nil leaves it
	DisplayName *string `json:"display_name,omitempty"` // sets the user's display name; nil leaves it
	// IP is the browser's address, recorded with the session; the node
	// requires it when it binds hand-off tickets to it (sync.bind_ip).
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	// TTL is the session's lifetime, at most a year; 0 is the node's
	// session.ttl.
	TTL time.Duration `json:"-"`
	// ReturnTo is where the hand-off chain brings the browser back: a URL
	// under the node's site URL (default: the site URL).
	ReturnTo string `json:"return_to,omitempty"`
}

// LoginAnswer is the answer of POST /v1/sessions.
type LoginAnswer struct {
	Session SessionInfo `json:"session"`
	// Token is the session's secret, returned once: the site puts it in its
	// cookie. The node keeps only its hash (the session id).
	Token string `json:"token"`
	// Synced is false for a session kept on its own site; Reason then says
	// why ("email_not_verified").
	Synced bool      `json:"synced"`
	Reason string    `json:"reason,omitempty"`
	Sync   LoginSync `json:"sync"`
}

// LoginSync are the hand-off links of a login, each with its own
// single-use ticket: empty for a session that is not synced, or with no
// other live member site.
type LoginSync struct {
	URLs  []SyncURL `json:"urls"`  // one per other live member site, for iframes
	Chain string    `json:"chain"` // one link through every other site that ends on ReturnTo
}

// SyncURL is another site's sync URL of a login.
type SyncURL struct {
	Site string `json:"site"` // the member's name
	URL  string `json:"url"`
}

// Redemption is the answer of POST /v1/tickets/redeem: the session a
// ticket handed to this site.
type Redemption struct {
	Session SessionInfo `json:"session"`
	User    UserInfo    `json:"user"`
	// Token is the session's secret, for the site's own cookie.
	Token string `json:"token"`
	// NewUser: the site did not know this user; it should add them to its
	// own users (and PUT them, which acknowledges it).
	NewUser bool `json:"new_user"`
}
