package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// httpError is an API error answer: the one way a handler says anything but
// success. Handlers return it (as error); the route adapter writes it.
type httpError struct {
	Status  int    // HTTP status code
	Code    string // machine-readable code, one of the code* constants
	Message string // human-readable explanation; never holds a secret
	// Session, when set, is sent beside the error (410 answers say which
	// session ended and why).
	Session *client.SessionInfo
}

func (e *httpError) Error() string {
	return strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
}

// errorf builds an httpError with a formatted message.
func errorf(status int, code, format string, args ...any) *httpError {
	return &httpError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

var (
	errUnauthorized = &httpError{Status: http.StatusUnauthorized, Code: client.CodeUnauthorized,
		Message: `missing or invalid API token: send "Authorization: Bearer <api token>"`}
	errInternal = &httpError{Status: http.StatusInternalServerError, Code: client.CodeInternal,
		Message: "internal error; the node's log has the details"}
	errUnavailable = &httpError{Status: http.StatusServiceUnavailable, Code: client.CodeUnavailable,
		Message: "the node is shutting down"}
)

// errorBody is the JSON shape of every error answer.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Session *client.SessionInfo `json:"session,omitempty"`
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
	if he.Code == client.CodeUnauthorized {
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
func writeSession(w http.ResponseWriter, status int, v *client.SessionInfo) {
	writeJSON(w, status, client.SessionCheck{Session: *v})
}
