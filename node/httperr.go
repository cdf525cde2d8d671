package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/ussync/ussync/session"
)

// Error codes of the private API, the "code" of an
// {"error":{"code","message"}} answer. Clients switch on them; the message
// is for people.
const (
	codeInvalidJSON      = "invalid_json"           // 400: the body is not one JSON object
	codeUnknownField     = "unknown_field"          // 400: the body has a field the call does not take
	codeInvalidEmail     = "invalid_email"          // 400: an address failed session.NormalizeEmail
	codeInvalidID        = "invalid_id"             // 400: a session id is not 64 lower-case hex characters
	codeInvalidField     = "invalid_field"          // 400: a field or query parameter has a bad value
	codeBadRequest       = "bad_request"            // 400: a request the router refused
	codeUnauthorized     = "unauthorized"           // 401: missing or wrong bearer token
	codeNotFound         = "not_found"              // 404: no such user, session or route
	codeMethodNotAllowed = "method_not_allowed"     // 405: the route exists for other methods (see Allow)
	codeEmailImmutable   = "email_immutable"        // 409: a body email differs from the path's
	codeSessionEnded     = "session_ended"          // 410: logged out (end_reason says how)
	codeSessionRevoked   = "session_revoked"        // 410: killed by "log out everywhere"
	codeSessionExpired   = "session_expired"        // 410: past expires_at
	codeBodyTooLarge     = "body_too_large"         // 413: body over maxBodyBytes
	codeUnsupportedMedia = "unsupported_media_type" // 415: a body that is not application/json
	codeInternal         = "internal"               // 500: a bug or a store failure, logged
	codeUnavailable      = "unavailable"            // 503: the node is shutting down
)

// Error codes of the browser hand-off (docs/handoff.md), on the public
// listener and POST /v1/tickets/redeem.
const (
	codeTicketMalformed   = "ticket_malformed"    // 400: not a ticket (encoding, length, version, content)
	codeTicketUnknownKey  = "ticket_unknown_key"  // 400: sealed under a secret this node does not hold
	codeTicketTampered    = "ticket_tampered"     // 400: authentication failed
	codeTicketExpired     = "ticket_expired"      // 410: past its expiry, or issued in the future beyond the skew
	codeTicketWrongTarget = "ticket_wrong_target" // 403: sealed for another site
	codeTicketIPMismatch  = "ticket_ip_mismatch"  // 403: bound to another client address
	codeTicketReplayed    = "ticket_replayed"     // 409: already redeemed here
	codeBadRedirect       = "bad_redirect"        // 400: next/return/return_to is not under a member site's URL
	codeCSRF              = "csrf"                // 403: a state-changing or preflight request from a foreign origin
	codeNoSession         = "no_session"          // 401: the browser has no active session on this site
)

// httpError is an API error answer: the one way a handler says anything but
// success. Handlers return it (as error); the route adapter writes it.
type httpError struct {
	Status  int    // HTTP status code
	Code    string // machine-readable code, one of the code* constants
	Message string // human-readable explanation; never holds a secret
	// Session, when set, is sent beside the error (410 answers say which
	// session ended and why).
	Session *SessionInfo
}

func (e *httpError) Error() string {
	return strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
}

// errorf builds an httpError with a formatted message.
func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized = &httpError{Status: http.StatusUnauthorized, Code: codeUnauthorized,
		Message: `missing or invalid API token: send "Authorization: Bearer <api token>"`}
	errInternal = &httpError{Status: http.StatusInternalServerError, Code: codeInternal,
		Message: "internal error; the node's log has the details"}
	errUnavailable = &httpError{Status: http.StatusServiceUnavailable, Code: codeUnavailable,
		Message: "the node is shutting down"}
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Session *SessionInfo `json:"session,omitempty"`
}

// writeError answers err. An *httpError is sent as it is; a closed store is
// 503; anything else is a 500 whose real cause goes to the log only (the
// errors handlers return never carry a token).
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		if errors.Is(err, session.ErrClosed) {
			he = errUnavailable
		} else {
			log.Error("api request failed", "route", routeLabel(r), "method", r.Method, "err", err)
			he = errInternal
		}
	}
	if he.Code == codeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ussync"`)
	}
	if he.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	var body errorBody
	body.Error.Code, body.Error.Message, body.Session = he.Code, he.Message, he.Session
	writeJSON(w, he.Status, &body)
}

// writeJSON answers v as JSON with the status. v must encode (the API's own
// view types always do).
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a failed write is the client gone
}

// writeSession answers {"session":v} with the status.
func writeSession(w http.ResponseWriter, status int, v *SessionInfo) {
	writeJSON(w, status, SessionCheck{Session: *v})
}
