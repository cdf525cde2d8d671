package node

import (
	"errors"
	"fmt"

	"github.com/ussync/ussync/client"
)

// Errors of the node's operations: the service, the hand-off and e-mail
// verification return them (often inside a refusal that says, for people,
// what was refused). Besides these, the operations return the sentinels of
// the packages below: session.ErrNotFound (no such user or session),
// session.ErrInvalidEmail, session.ErrClosed (the node is shutting down),
// and crypto's ticket refusals (crypto.ErrTicketMalformed,
// ErrTicketUnknownKey, ErrTicketTampered, ErrTicketExpired,
// ErrTicketNotYetValid). The HTTP edge maps each to a status and an API code
// in one table (httperr.go); test with errors.Is.
var (
	// ErrUserMoved means a write named the old address of a user an
	// administrator moved; the message names the new address.
	ErrUserMoved = errors.New("the user was moved to another address")
	// ErrUnknownUser means a ticket named a user this site does not know,
	// under site.on_unknown_user: reject.
	ErrUnknownUser = errors.New("this site does not know the user")
	// ErrSessionEnded, ErrSessionRevoked and ErrSessionExpired mean a
	// session is not active: logged out, killed by its user's "log out
	// everywhere" (or move), past its expiry.
	ErrSessionEnded   = errors.New("the session has ended")
	ErrSessionRevoked = errors.New("the session was revoked by a log out everywhere")
	ErrSessionExpired = errors.New("the session has expired")
	// ErrTicketWrongTarget means a ticket (or a hop request, or a
	// verification link) was sealed for another site.
	ErrTicketWrongTarget = errors.New("the ticket is for another site")
	// ErrTicketIPMismatch means a ticket is bound to another client address.
	ErrTicketIPMismatch = errors.New("the ticket is bound to another client address")
	// ErrTicketReplayed means a ticket (or a verification link) was already
	// used on this site.
	ErrTicketReplayed = errors.New("the ticket was already used here")
	// ErrOtherBrowser means a hand-off was presented in another browser than
	// the one it was made for: the browser holds no nonce cookie matching
	// the ticket's binding, or (at the origin of a chain) does not hold the
	// session the chain was started for. A captured hand-off URL ends here.
	ErrOtherBrowser = errors.New("the hand-off was started in another browser")
	// ErrSessionConflict means a ticket would replace the active session of
	// another user in this browser: it is refused, never silently.
	ErrSessionConflict = errors.New("this browser is logged in here as another user")
	// ErrBadRedirect means a URL to send a browser to (next, return,
	// return_to) is not under a member site's URL, or not a usable URL.
	ErrBadRedirect = errors.New("not a member site's URL")
	// ErrNoSession means the browser has no active session on this site.
	ErrNoSession = errors.New("no active session on this site")
	// ErrInvalidCode means a verification code is wrong or expired, or none
	// was requested: one answer for all, so that it tells nothing.
	ErrInvalidCode = errors.New("the code is wrong or expired, or none was requested; check it, or request a new one")
	// ErrCodeLocked means too many wrong codes were tried; a new code must
	// be requested.
	ErrCodeLocked = errors.New("too many wrong codes: request a new code")
	// ErrRateLimited means a verification message was sent to the address
	// too recently or too often.
	ErrRateLimited = errors.New("a code was sent to this address too recently or too often")
	// ErrMailFailed means the SMTP server refused the message or could not
	// be reached (the node's log has the cause); no code is pending.
	ErrMailFailed = errors.New("the mail server did not accept the message; the node's log has the details. No code is pending: try again later")
	// ErrMailDisabled means the node sends no mail (no smtp.host).
	ErrMailDisabled = errors.New("this node sends no mail: smtp.host is not configured")
	// ErrLinkStale means a verification link's code was used, or replaced
	// by a newer one.
	ErrLinkStale = errors.New("the link's code was already used, or a newer code was sent")
	// ErrSiteRevoked means an administrator revoked a site (`ussync sites
	// revoke`) and the request needs that site's trust: a ticket of a
	// session it minted, or a change made through the revoked node itself
	// (a revoked node changes no replicated record).
	ErrSiteRevoked = errors.New("the site was revoked by an administrator")
	// ErrSessionSiteRevoked means a session is not active because the site
	// that minted it was revoked (it is answered as a revoked session).
	ErrSessionSiteRevoked = errors.New("the session's site was revoked by an administrator")
	// ErrUnknownSite means a site operation named a site this node has never
	// heard of: not a member, never revoked, no session of it.
	ErrUnknownSite = errors.New("no such site")
)

// Refusals of a request's form, made by the HTTP handlers themselves.
var (
	errInvalidJSON      = errors.New("invalid JSON")
	errUnknownField     = errors.New("unknown field")
	errInvalidField     = errors.New("invalid field")
	errInvalidID        = errors.New("invalid session id")
	errBadRequest       = errors.New("bad request")
	errBodyTooLarge     = errors.New("body too large")
	errUnsupportedMedia = errors.New("unsupported media type")
	errMethodNotAllowed = errors.New("method not allowed")
	errEmailImmutable   = errors.New("a user's e-mail never changes")
	errCSRF             = errors.New("cross-site request refused")
	errUnauthorized     = errors.New(`missing or invalid API token: send "Authorization: Bearer <api token>"`)
	errUnavailable      = errors.New("unavailable")
	errWrongHost        = errors.New("the Host header names no name of this listener")
	errInternal         = errors.New("internal error; the node's log has the details")
)

// refusal is an error of one of the kinds above with the words for people:
// Error is the message an answer carries (never a secret), Unwrap the kind
// the edge maps to a status and a code.
type refusal struct {
	kind error
	msg  string
	// session, for the private API's 410 answers, is the session that is not
	// active, as of the refusal.
	session *client.SessionInfo
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

// refuse returns an error of kind with a formatted message.
func refuse(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}
