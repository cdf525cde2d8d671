package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// maxBodyBytes bounds a private API request body.
const maxBodyBytes = 64 << 10

// apiDeps is everything the private API needs; the node wires it.
type apiDeps struct {
	// Store is the node's replica.
	Store *session.Store
	// Name is this node's name, recorded as the Site of the sessions it creates
	// and as the writer of the registers it sets.
	Name string
	// TTL is the lifetime of a session whose login gives none (session.ttl).
	TTL time.Duration
	// RequireVerified keeps sessions of unverified users on this site
	// (sync.require_verified).
	RequireVerified bool
	// Publish hands records this API changed to gossip (eager push, then
	// rebroadcast). Only replicated records are handed over. It must not
	// block and must not modify the records; nil publishes nothing.
	Publish func([]session.Record)
	// Status builds the answer of GET /v1/status. Nil answers the node name
	// and the store's counts only.
	Status func() client.Status
	// Token is the hash of the bearer token every /v1 call must carry.
	Token crypto.TokenHash
	// Log receives request failures (5xx) and panics, never a token. Nil
	// discards.
	Log *slog.Logger
	// Metrics receives the request and session metrics and serves /metrics.
	// Nil makes a private set (fine for tests).
	Metrics *Metrics
	// Handoff seals the login's hand-off links and redeems tickets for
	// POST /v1/tickets/redeem. Nil: logins carry no links and redeeming
	// answers 503.
	Handoff *handoff
	// Verify is e-mail verification by code (verify.go). Nil: no code is
	// ever valid and requesting one answers 503.
	Verify *verifier
}

// withDefaults fills the optional dependencies left nil.
func (d apiDeps) withDefaults() apiDeps {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	if d.Publish == nil {
		d.Publish = func([]session.Record) {}
	}
	return d
}

// api is the private HTTP API: the handler of the private listener.
type api struct {
	apiDeps
	mux    *http.ServeMux
	routes map[string]*routeMetrics // by pattern; read-only once built
	other  *routeMetrics            // requests no route matched
}

// newAPI returns the whole private listener: the /v1 calls (bearer token
// required), GET /healthz and GET /metrics. Every answer is JSON (but
// /metrics), carries Cache-Control: no-store and X-Content-Type-Options:
// nosniff, and every error is {"error":{"code","message"}}. Handlers never
// panic the server: a panic is logged and answered 500.
func newAPI(d apiDeps) http.Handler {
	d = d.withDefaults()
	a := &api{apiDeps: d, mux: http.NewServeMux(), routes: map[string]*routeMetrics{}}
	a.other = d.Metrics.route("unmatched")

	a.handle("PUT /v1/users/{email}", true, a.putUser)
	a.handle("GET /v1/users/{email}", true, a.getUser)
	a.handle("POST /v1/users/{email}/logout-everywhere", true, a.logoutEverywhere)
	a.handle("GET /v1/users/{email}/sessions", true, a.userSessions)
	a.handle("POST /v1/sessions", true, a.createSession)
	a.handle("GET /v1/sessions/{id}", true, a.checkSession)
	a.handle("DELETE /v1/sessions/{id}", true, a.endSession)
	a.handle("POST /v1/tickets/redeem", true, a.redeemTicket)
	a.routesUsers()
	a.routesVerify()
	a.handle("GET /v1/status", true, a.status)
	a.handle("GET /healthz", false, func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, healthBody)
		return nil
	})
	metrics := promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(d.Log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
	a.handle("GET /metrics", false, func(w http.ResponseWriter, r *http.Request) error {
		metrics.ServeHTTP(w, r)
		return nil
	})
	return a
}

var healthBody = &struct {
	Status string `json:"status"`
}{"ok"}

// handle registers h for pattern behind the bearer-token check (when auth is
// set) and the error adapter: the error h returns is the answer.
func (a *api) handle(pattern string, auth bool, h func(http.ResponseWriter, *http.Request) error) {
	a.routes[pattern] = a.Metrics.route(pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if sw, ok := w.(*statusWriter); ok {
			sw.routed = true
		}
		var err error
		if auth && !a.authorized(r) {
			err = errUnauthorized
		} else {
			err = h(w, r)
		}
		if err != nil {
			writeError(w, r, a.Log, err)
		}
	})
}

// authorized checks the bearer token in constant time.
func (a *api) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	return a.Token.Matches(strings.TrimSpace(h[len(prefix):]))
}

// ServeHTTP is the outer layer: common headers, the JSON form of the
// router's own 404/405, metrics and panic recovery.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := statusWriters.Get().(*statusWriter)
	sw.ResponseWriter, sw.req = w, r
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.Log.Error("api handler panic", "route", routeLabel(r), "method", r.Method,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if sw.status == 0 {
				sw.routed = true // answer as the API, not as the router
				writeError(sw, r, a.Log, errInternal)
			}
		}
		rm := a.routes[r.Pattern]
		if rm == nil {
			rm = a.other
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		rm.observe(status, time.Since(start))
		*sw = statusWriter{}
		statusWriters.Put(sw)
	}()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	a.mux.ServeHTTP(sw, r)
}

// routeLabel names r's route for logs and metrics: its pattern, never its
// path (which holds e-mails).
func routeLabel(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	return r.Pattern
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

// statusWriter records the status of an answer and turns the router's own
// plain-text errors (unknown route, wrong method) into JSON ones.
type statusWriter struct {
	http.ResponseWriter
	req    *http.Request
	status int
	// routed is set by the route adapter: a registered handler answers.
	// Otherwise the answer is the ServeMux's own.
	routed bool
	// discard drops the body of a router error already answered as JSON.
	discard bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status != 0 {
		w.ResponseWriter.WriteHeader(code) // let net/http complain about it
		return
	}
	w.status = code
	if w.routed || code < 400 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.discard = true
	var he *httpError
	switch code {
	case http.StatusNotFound:
		he = errorf(code, client.CodeNotFound, "no such route: %s %s", w.req.Method, w.req.URL.EscapedPath())
	case http.StatusMethodNotAllowed:
		he = errorf(code, client.CodeMethodNotAllowed, "%s is not allowed here (Allow: %s)", w.req.Method, w.Header().Get("Allow"))
	default:
		he = errorf(code, client.CodeBadRequest, "%s", strings.ToLower(http.StatusText(code)))
	}
	var body errorBody
	body.Error.Code, body.Error.Message = he.Code, he.Message
	writeJSON(w.ResponseWriter, code, &body)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes on (promhttp may stream).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// decodeBody decodes the request's JSON body into dst strictly: a JSON
// object, no unknown field, nothing after it, at most maxBodyBytes, with
// Content-Type application/json. An empty body is an error unless optional
// (dst is then left as it is).
func decodeBody(w http.ResponseWriter, r *http.Request, dst any, optional bool) error {
	if r.ContentLength > 0 && !jsonContentType(r) {
		return errUnsupportedMedia(r)
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errorf(http.StatusRequestEntityTooLarge, client.CodeBodyTooLarge, "the body is larger than %d bytes", maxBodyBytes)
		}
		return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "read the body: %v", err)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		if optional {
			return nil
		}
		return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "the body is empty: send a JSON object")
	}
	if !jsonContentType(r) {
		return errUnsupportedMedia(r)
	}
	if trimmed[0] != '{' {
		return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "unexpected data after the JSON object (at byte %d)", dec.InputOffset())
	}
	return nil
}

func errUnsupportedMedia(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return errorf(http.StatusUnsupportedMediaType, client.CodeUnsupportedMedia, "a body needs Content-Type: application/json")
	}
	return errorf(http.StatusUnsupportedMediaType, client.CodeUnsupportedMedia, "Content-Type %q is not application/json", ct)
}

// jsonContentType reports whether r's Content-Type is application/json
// (parameters such as charset allowed).
func jsonContentType(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "application/json" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// jsonError explains a decoding error, naming the field at fault.
func jsonError(err error) error {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "invalid JSON at byte %d: %v", se.Offset, se)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "the body must be a JSON object")
		}
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "field %q must be %s, not %s", te.Field, jsonType(te.Type.String()), te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "the JSON body is truncated")
	}
	// encoding/json has no typed error for an unknown field.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return errorf(http.StatusBadRequest, client.CodeUnknownField, "unknown field %s", name)
	}
	return errorf(http.StatusBadRequest, client.CodeInvalidJSON, "invalid JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
}

func jsonType(goType string) string {
	switch strings.TrimPrefix(goType, "*") {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	}
	return "a " + goType
}
