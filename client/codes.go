package client

// Error codes of the API, the "code" of an {"error":{"code","message"}}
// answer (APIError.Code). Clients switch on them; the message is for people.
// The number beside each is the HTTP status it comes with.
const (
	CodeInvalidJSON      = "invalid_json"           // 400: the body is not one JSON object
	CodeUnknownField     = "unknown_field"          // 400: the body has a field the call does not take
	CodeInvalidEmail     = "invalid_email"          // 400: an address is not a valid e-mail address
	CodeInvalidID        = "invalid_id"             // 400: a session id is not 64 lower-case hex characters
	CodeInvalidField     = "invalid_field"          // 400: a field or query parameter has a bad value
	CodeBadRequest       = "bad_request"            // 400: a request the router refused
	CodeUnauthorized     = "unauthorized"           // 401: missing or wrong bearer token
	CodeNotFound         = "not_found"              // 404: no such user, session or route
	CodeMethodNotAllowed = "method_not_allowed"     // 405: the route exists for other methods (see Allow)
	CodeEmailImmutable   = "email_immutable"        // 409: a body email differs from the path's
	CodeSessionEnded     = "session_ended"          // 410: logged out (end_reason says how)
	CodeSessionRevoked   = "session_revoked"        // 410: killed by "log out everywhere", a move, a reset or its site's revocation
	CodeSessionExpired   = "session_expired"        // 410: past expires_at
	CodeBodyTooLarge     = "body_too_large"         // 413: body over 64 KiB
	CodeUnsupportedMedia = "unsupported_media_type" // 415: a body that is not application/json
	CodeInternal         = "internal"               // 500: a bug or a store failure, logged by the node
	CodeUnavailable      = "unavailable"            // 503: the node is shutting down, holds too many connections, or does not offer the call
	CodeWrongHost        = "wrong_host"             // 421: the Host header names no name of the private listener (api.allowed_hosts)
)

// Error codes of user administration (docs/users.md).
const (
	CodeUserMoved   = "user_moved"   // 409: the user was moved to another address (the message names it)
	CodeUnknownUser = "unknown_user" // 403: a ticket for a user this site does not know, under site.on_unknown_user: reject
)

// Error codes of site containment (docs/security.md, "Containing a site").
const (
	CodeSiteRevoked = "site_revoked" // 403: the site was revoked: its tickets are refused, and a revoked node changes nothing
)

// Error codes of the browser hand-off (docs/handoff.md), on the public
// listener and POST /v1/tickets/redeem.
const (
	CodeTicketMalformed   = "ticket_malformed"    // 400: not a ticket (encoding, length, version, content)
	CodeTicketUnknownKey  = "ticket_unknown_key"  // 400: sealed under a secret this node does not hold
	CodeTicketTampered    = "ticket_tampered"     // 400: authentication failed
	CodeTicketExpired     = "ticket_expired"      // 410: past its expiry, or issued in the future beyond the skew
	CodeTicketWrongTarget = "ticket_wrong_target" // 403: sealed for another site
	CodeTicketIPMismatch  = "ticket_ip_mismatch"  // 403: bound to another client address
	CodeTicketReplayed    = "ticket_replayed"     // 409: already redeemed here
	CodeTicketLifetime    = "ticket_lifetime"     // 400: the ticket, or the session it carries, lives longer than the cluster allows
	CodeOtherBrowser      = "other_browser"       // 403: the hand-off was made for another browser (nonce cookie or origin session missing)
	CodeSessionConflict   = "session_conflict"    // 409: the browser is logged in on this site as another user
	CodeBadRedirect       = "bad_redirect"        // 400: next/return/return_to is not under a member site's URL
	CodeCSRF              = "csrf"                // 403: a state-changing or preflight request from a foreign origin
	CodeNoSession         = "no_session"          // 401: the browser has no active session on this site
)

// Error codes of e-mail verification (docs/verification.md).
const (
	CodeInvalidCode  = "invalid_code"  // 400: wrong, expired or no pending code (one answer for all)
	CodeCodeLocked   = "code_locked"   // 429: too many wrong codes; request a new one
	CodeRateLimited  = "rate_limited"  // 429: a message was sent too recently or too often (Retry-After)
	CodeMailFailed   = "mail_failed"   // 502: the SMTP server refused or could not be reached
	CodeMailDisabled = "mail_disabled" // 503: no smtp.host configured
	CodeLinkStale    = "link_stale"    // 410: the link's code was used, or a newer one was sent
)

// Verification methods, the verified_via of a user (UserInfo.VerifiedVia,
// UserUpdate.VerifiedVia).
const (
	VerifiedRegistration = "registration" // the site's registration proved the mailbox
	VerifiedAdmin        = "admin"        // an administrator vouched for it
	VerifiedCode         = "code"         // the user typed the e-mailed code or opened its link
)

// Session end reasons (SessionInfo.EndReason).
const (
	EndLogout           = "logout"            // DELETE /v1/sessions/{id}, or the public logout
	EndLogoutEverywhere = "logout_everywhere" // the user's "log out everywhere"
	EndAdmin            = "admin"             // an administrator revoked it, or moved its user
	EndExpired          = "expired"           // past expires_at
)

// Hand-off modes (docs/handoff.md; the node's sync.modes): what a login
// answer's Sync holds and what the site does with it.
const (
	ModeChain  = "chain"  // redirect the browser to Sync.Chain after the login
	ModeLazy   = "lazy"   // nothing at login; a site without a cookie sends the browser to <site>ussync/v1/hop
	ModeIframe = "iframe" // embed each of Sync.URLs, with "&m=iframe", in a hidden iframe
)

// Error codes of the operator's calls (docs/operations.md): API tokens,
// the keyring, backups.
const (
	CodeTokenExists = "token_exists" // 409: an API token of that name exists; revoke it first, or pick another name
	CodeTokenConfig = "token_config" // 409: the configuration's token is changed in the configuration, not through the API
	CodeKeyPrimary  = "key_primary"  // 409: the key to remove is the node's primary: use another key first
)
