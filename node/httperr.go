package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// answer is how the HTTP edge answers an error of one kind.
type answer struct {
	kind   error
	status int
	code   string // one of the client.Code* constants
	// msg, when set, is the message of a bare error of the kind (whose own
	// text is not meant for people); a refusal's message always wins.
	msg string
}

// answers is the one table that maps the errors below the handlers to HTTP
// statuses and API codes (docs: README "The private API", docs/handoff.md,
// docs/verification.md, docs/users.md). An error of no kind here is a 500
// whose cause goes to the log only.
var answers = []answer{
	// The request's form.
	{errInvalidJSON, http.StatusBadRequest, client.CodeInvalidJSON, ""},
	{errUnknownField, http.StatusBadRequest, client.CodeUnknownField, ""},
	{errInvalidField, http.StatusBadRequest, client.CodeInvalidField, ""},
	{errInvalidID, http.StatusBadRequest, client.CodeInvalidID, ""},
	{session.ErrInvalidEmail, http.StatusBadRequest, client.CodeInvalidEmail, ""},
	{errBadRequest, http.StatusBadRequest, client.CodeBadRequest, ""},
	{errUnauthorized, http.StatusUnauthorized, client.CodeUnauthorized, ""},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, client.CodeMethodNotAllowed, ""},
	{errEmailImmutable, http.StatusConflict, client.CodeEmailImmutable, ""},
	{errBodyTooLarge, http.StatusRequestEntityTooLarge, client.CodeBodyTooLarge, ""},
	{errUnsupportedMedia, http.StatusUnsupportedMediaType, client.CodeUnsupportedMedia, ""},
	{errCSRF, http.StatusForbidden, client.CodeCSRF, ""},
	// Users and sessions.
	{session.ErrNotFound, http.StatusNotFound, client.CodeNotFound, ""},
	{ErrUserMoved, http.StatusConflict, client.CodeUserMoved, ""},
	{ErrUnknownSite, http.StatusNotFound, client.CodeNotFound, ""},
	{ErrSiteRevoked, http.StatusForbidden, client.CodeSiteRevoked, ""},
	{ErrSessionEnded, http.StatusGone, client.CodeSessionEnded, ""},
	{ErrSessionRevoked, http.StatusGone, client.CodeSessionRevoked, ""},
	{ErrSessionExpired, http.StatusGone, client.CodeSessionExpired, ""},
	{ErrSessionSiteRevoked, http.StatusGone, client.CodeSessionRevoked, ""},
	{ErrNoSession, http.StatusUnauthorized, client.CodeNoSession, ""},
	// The hand-off.
	{crypto.ErrTicketMalformed, http.StatusBadRequest, client.CodeTicketMalformed, ""},
	{crypto.ErrTicketUnknownKey, http.StatusBadRequest, client.CodeTicketUnknownKey, ""},
	{crypto.ErrTicketTampered, http.StatusBadRequest, client.CodeTicketTampered, ""},
	{crypto.ErrTicketExpired, http.StatusGone, client.CodeTicketExpired, ""},
	{crypto.ErrTicketNotYetValid, http.StatusGone, client.CodeTicketExpired, ""},
	{crypto.ErrTicketLifetime, http.StatusBadRequest, client.CodeTicketLifetime, ""},
	{session.ErrLifetime, http.StatusBadRequest, client.CodeTicketLifetime, ""},
	{session.ErrClockAhead, http.StatusGone, client.CodeTicketExpired, ""},
	{ErrOtherBrowser, http.StatusForbidden, client.CodeOtherBrowser, ""},
	{ErrSessionConflict, http.StatusConflict, client.CodeSessionConflict, ""},
	{ErrTicketWrongTarget, http.StatusForbidden, client.CodeTicketWrongTarget, ""},
	{ErrTicketIPMismatch, http.StatusForbidden, client.CodeTicketIPMismatch, ""},
	{ErrTicketReplayed, http.StatusConflict, client.CodeTicketReplayed, ""},
	{ErrTicketBeforeStart, http.StatusConflict, client.CodeTicketBeforeStart, ""},
	{ErrUnknownUser, http.StatusForbidden, client.CodeUnknownUser, ""},
	{ErrBadRedirect, http.StatusBadRequest, client.CodeBadRedirect, ""},
	// E-mail verification.
	{ErrInvalidCode, http.StatusBadRequest, client.CodeInvalidCode, ""},
	{ErrCodeLocked, http.StatusTooManyRequests, client.CodeCodeLocked, ""},
	{ErrRateLimited, http.StatusTooManyRequests, client.CodeRateLimited, ""},
	{ErrLinkStale, http.StatusGone, client.CodeLinkStale, ""},
	{ErrMailFailed, http.StatusBadGateway, client.CodeMailFailed, ""},
	{ErrMailDisabled, http.StatusServiceUnavailable, client.CodeMailDisabled, ""},
	// The operator's calls: tokens, the keyring, backups.
	{ErrTokenExists, http.StatusConflict, client.CodeTokenExists, ""},
	{ErrTokenConfig, http.StatusConflict, client.CodeTokenConfig, ""},
	{ErrKeyPrimary, http.StatusConflict, client.CodeKeyPrimary, ""},
	// The node itself.
	{session.ErrClosed, http.StatusServiceUnavailable, client.CodeUnavailable, "the node is shutting down"},
	{errUnavailable, http.StatusServiceUnavailable, client.CodeUnavailable, ""},
	{ErrNodeIsolated, http.StatusServiceUnavailable, client.CodeNodeIsolated, ""},
	{session.ErrStorageFull, http.StatusServiceUnavailable, client.CodeStorageFull, "the node's data dir is out of space: nothing was written; it refuses writes until space is freed (its log has the figures)"},
	{errWrongHost, http.StatusMisdirectedRequest, client.CodeWrongHost, ""},
	{errInternal, http.StatusInternalServerError, client.CodeInternal, ""},
}

// answerOf finds how to answer err, and the message to send. ok is false
// for an error of no known kind (a bug, or a store failure).
func answerOf(err error) (a answer, msg string, ok bool) {
	r, isRefusal := errors.AsType[*refusal](err)
	for _, a := range answers {
		if (isRefusal && r.kind == a.kind) || errors.Is(err, a.kind) {
			switch {
			case isRefusal:
				msg = r.msg
			case a.msg != "":
				msg = a.msg
			default:
				msg = err.Error()
			}
			return a, msg, true
		}
	}
	return answer{}, "", false
}

// errorCode is the API code of err ("" for an error of no known kind): the
// label refusals are counted under.
func errorCode(err error) string {
	a, _, _ := answerOf(err)
	return a.code
}

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Session *client.SessionInfo `json:"session,omitempty"`
}

// writeError answers err as {"error":{"code","message"}} with the status
// of its kind (answers). An error of no known kind is a 500 whose real
// cause goes to the log only (the errors handlers return never carry a
// token). A refusal's session, when set, is sent beside the error.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	a, msg, ok := answerOf(err)
	if !ok {
		log.Error("api request failed", "route", routeLabel(r), "method", r.Method, "err", err)
		a, msg, _ = answerOf(errInternal)
	}
	if a.code == client.CodeUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ussync"`)
	}
	if a.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	var body errorBody
	body.Error.Code, body.Error.Message = a.code, msg
	if rf, ok := errors.AsType[*refusal](err); ok {
		body.Session = rf.session
	}
	_ = writeJSON(w, a.status, &body) // an error body always encodes
}

// writeJSON answers v as JSON with the status. It encodes v before it
// writes anything: when v does not encode (a time past the year 9999, a
// damaged record's), nothing is written and the error is returned, for the
// handler to return in turn: writeError then logs it and answers 500, never
// an empty 200. A failed write is the client gone, and is not returned.
//
// The encoding goes into a pooled buffer (the session check, on every page
// view of every site, allocated its answer twice: the encoding, then the
// encoding and a newline). json.Encoder writes what json.Marshal returns,
// and the newline.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledJSON {
			buf.Reset()
			jsonBuffers.Put(buf)
		}
	}()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return fmt.Errorf("encode the answer: %w", err)
	}
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

// jsonBuffers holds writeJSON's buffers; one grown past maxPooledJSON (a
// long listing) is left to the garbage collector.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledJSON = 64 << 10

// Header values every answer sets, shared rather than allocated for each
// (http.Header.Set makes a new slice each time). Nothing modifies a header
// value in place: Add appends, which copies a full slice.
var (
	contentTypeJSON = []string{"application/json"}
	noStore         = []string{"no-store"}
	noSniff         = []string{"nosniff"}
)
