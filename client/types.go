package client

import (
	"net/http"
	"time"
)

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
	// Bound says that the site of the node answering is bound to the
	// address: it proved the mailbox (registration, code, link, an
	// administrator through it) or the user completed a hand-off to it.
	// Only a bound site's logins of a verified user travel, and only a
	// bound site may change an existing user's login and display name.
	Bound bool `json:"bound"`
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
	// why (ReasonNotVerified, ReasonSiteNotBound) and Bind how to make the
	// next login travel.
	Synced bool      `json:"synced"`
	Reason string    `json:"reason,omitempty"`
	Bind   *BindHow  `json:"bind,omitempty"`
	Sync   LoginSync `json:"sync"`
}

// Why a login stays on its own site (LoginAnswer.Reason).
const (
	ReasonNotVerified  = "email_not_verified" // the user's address is not verified
	ReasonSiteNotBound = "site_not_bound"     // verified, but not by this site nor through a hand-off to it
)

// BindByCode is how a site binds itself to an address (BindHow.How): it
// sends the user a code from its own node and checks it.
const BindByCode = "code"

// BindHow says how a site makes its logins of a user travel: prove the
// mailbox on this site. After Verify succeeds, log the user in again: the
// new session travels.
type BindHow struct {
	How     string `json:"how"`     // BindByCode
	Send    string `json:"send"`    // the call that sends the code and link: "POST /v1/users/{email}/verification"
	Verify  string `json:"verify"`  // the call that checks the typed code: "POST /v1/users/{email}/verify"
	Message string `json:"message"` // for the site's developers and logs
}

// LoginSync are the hand-off links of a login, each with its own
// single-use ticket: empty for a session that is not synced, or with no
// other live member site.
type LoginSync struct {
	URLs  []SyncURL `json:"urls"`  // one per other live member site, for iframes
	Chain string    `json:"chain"` // one link through every other site that ends on ReturnTo
	// Skipped are the member sites left out of the links: their own node
	// reports that their site does not answer (or its reports stopped). The
	// session reaches them by a later hand-off or lazy mode.
	Skipped []string `json:"skipped,omitempty"`
	// Error, when set, says why a login that travels was offered no
	// hand-off (URLs and Chain empty) though other sites are members: the
	// user is logged in here only. The node logs it and counts it
	// (ussync_handoff_unavailable_total).
	Error *StepError `json:"error,omitempty"`
}

// HopMark is the query parameter the node's lazy-mode hop
// (<site>ussync/v1/hop?return=URL) adds to the return URL, whatever the
// round found: a page requested with it is a browser back from asking the
// other sites.
//
// Lazy mode is loop-free only if the site honours the mark. A lazy site
// MUST NOT send to the hop a request whose URL carries HopMark (check
// Hopped first), and must not drop the mark before it has checked it (a
// redirect to a canonical URL without the query loses it). Then a browser
// that keeps no cookie (no session, no ussync_checked) goes round the other
// sites once and lands on the page. The node cannot make up for a site
// that ignores the mark: the hop sends a return URL that has it straight
// back, without asking the other sites, so such a site and its hop bounce
// the browser between them until the browser gives up (too many
// redirects); and a site that drops the mark sends the browser round every
// site again each time (docs/handoff.md, "Lazy mode"). (The WordPress
// plugin marks its return URLs with its own ussync_hopped, which it checks
// the same way.)
const HopMark = "ussync_hop"

// Hopped reports whether r is a browser back from a lazy-mode hop (its URL
// has HopMark). A lazy site sends a browser without a session to the hop
// only when Hopped is false: see HopMark.
func Hopped(r *http.Request) bool { return r.URL.Query().Has(HopMark) }

// Codes of LoginSync.Error.
const (
	// SyncTooLarge: the hand-off does not fit in a URL even to one site at
	// a time (a chain too long for one URL goes in legs instead: only
	// records beyond their limits reach this).
	SyncTooLarge = "handoff_too_large"
	// SyncFailed: sealing the hand-off failed (the node's log says why).
	SyncFailed = "handoff_failed"
)

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
	// SiteWasBound: this site was bound to the user's address before this
	// redemption (it proved the mailbox, or an earlier hand-off reached
	// it). When false, a local account the site already had under the
	// address was never proven to belong to the mailbox's owner: reset its
	// credentials before logging the browser into it (docs/security.md,
	// "Pre-existing local accounts").
	SiteWasBound bool `json:"site_was_bound"`
}

// HandoffStep is the body of POST /v1/handoff: one step of a browser's
// hand-off (docs/handoff.md, "Sites that answer the steps themselves"),
// for a site that answers <site>ussync/v1/<step> itself and relays the
// answer to the browser.
type HandoffStep struct {
	// Step is the path after <site path>ussync/v1/: "sync", "bind",
	// "chain", "hop", "hop/ask" or "hop/done".
	Step string `json:"step"`
	// Query is the request's query string as the browser sent it (without
	// the "?").
	Query string `json:"query"`
	// Cookies are the browser's cookies on this site, by name: at least
	// every ussync_* and __Host-ussync_* one. The site's own session, when
	// it keeps the ussync token elsewhere, goes in as ussync_session (or
	// its __Host- name): the chain step checks the browser holds it.
	Cookies map[string]string `json:"cookies,omitempty"`
	// IP is the browser's address as the site sees it.
	IP string `json:"ip,omitempty"`
	// HTTPS says the browser came over https (the cookies get Secure).
	HTTPS bool `json:"https,omitempty"`
	// Navigate says the request is the browser's top-level navigation
	// (Sec-Fetch-Mode: navigate, or an Accept that asks for HTML): a step
	// that sends it to another site then answers with a step page
	// (HandoffAnswer.Page) that probes the site first and skips it when it
	// does not answer (docs/handoff.md, "A site that dies mid-hand-off").
	Navigate bool `json:"navigate,omitempty"`
}

// HandoffAnswer is the answer of POST /v1/handoff: what to answer the
// browser. Status is 303 (redirect to Location), 204 (no content), 200
// (the step page Page, sent as text/html with the Content-Security-Policy
// CSP; only for a request with Navigate) or the 4xx of a refusal, whose
// Error the site sends as the JSON body {"error":{…}}. Set every cookie of
// Cookies, whatever the status.
type HandoffAnswer struct {
	Status   int         `json:"status"`
	Location string      `json:"location,omitempty"`
	Page     string      `json:"page,omitempty"`
	CSP      string      `json:"csp,omitempty"`
	Cookies  []SetCookie `json:"cookies"`
	// Refused is the code of a ticket refused on a step that sends the
	// browser on all the same (X-Ussync-Refused).
	Refused string     `json:"refused,omitempty"`
	Error   *StepError `json:"error,omitempty"`
	// Session, User and NewUser are set when the step handed a session to
	// this site (a sync step that set ussync_session): the site may log
	// its own user in from them.
	Session *SessionInfo `json:"session,omitempty"`
	User    *UserInfo    `json:"user,omitempty"`
	NewUser bool         `json:"new_user,omitempty"`
	// SiteWasBound is Redemption.SiteWasBound of the session handed over.
	SiteWasBound bool `json:"site_was_bound,omitempty"`
}

// SetCookie is a cookie a hand-off step sets, with every attribute to send
// (Max-Age < 0 deletes it). SameSite is "Lax" or "None".
type SetCookie struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Path     string `json:"path"`
	MaxAge   int    `json:"max_age"`
	Secure   bool   `json:"secure"`
	HttpOnly bool   `json:"http_only"`
	SameSite string `json:"same_site"`
}

// StepError is a refused step's error, the body's "error" object.
type StepError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// SiteInfo is one site as a node knows it (GET /v1/sites): a member gossip
// knows, a site an administrator revoked (`ussync sites revoke`), or both.
// Times are RFC 3339 in UTC.
type SiteInfo struct {
	Name    string `json:"name"`               // the node's name
	SiteURL string `json:"site_url,omitempty"` // as the member advertises it; "" when not a member now
	State   string `json:"state,omitempty"`    // member state: alive, suspect, dead, left; "" when not a member now
	// Revoked: its sessions are not active on any node, its tickets are
	// refused, its URL is no redirect target nor CORS origin, and its node
	// changes nothing.
	Revoked bool `json:"revoked"`
	// Since is when the site was last revoked or un-revoked, By on which
	// node; both empty for a site never revoked.
	Since *time.Time `json:"since,omitempty"`
	By    string     `json:"by,omitempty"`
	// RevokedBefore: every session the site minted up to this time stays
	// revoked for good, even once the site is un-revoked.
	RevokedBefore *time.Time `json:"revoked_before,omitempty"`
}

// SiteList is the answer of GET /v1/sites, by name.
type SiteList struct {
	Sites []SiteInfo `json:"sites"`
}

// Reset is the answer of POST /v1/users/{email}/reset.
type Reset struct {
	User  UserInfo `json:"user"`  // the user's new record: unverified, logged out everywhere
	Ended int      `json:"ended"` // sessions that were active on the node that reset it
}
