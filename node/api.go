package node

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
)

// apiDeps is everything the private API needs; the node wires it.
type apiDeps struct {
	// Service performs the operations (required).
	Service *service
	// Status builds the answer of GET /v1/status. Nil answers the node name
	// and the store's counts only.
	Status func() client.Status
	// Token is the hash of the bearer token every /v1 call must carry.
	Token crypto.TokenHash
	// Log receives request failures (5xx) and panics, never a token. Nil
	// discards.
	Log *slog.Logger
	// Metrics receives the request metrics and serves /metrics. Nil makes a
	// private set (fine for tests).
	Metrics *Metrics
	// Handoff seals the login's hand-off links and redeems tickets for
	// POST /v1/tickets/redeem. Nil: logins carry no links and redeeming
	// answers 503.
	Handoff *handoff
	// Verify is e-mail verification by code (verifier.go). Nil: no code is
	// ever valid and requesting one answers 503.
	Verify *verifier
}

// api is the private HTTP API: the handler of the private listener. Its
// handlers translate HTTP to the service's operations and back; the routes
// are in routes.go.
type api struct {
	apiDeps
	svc    *service
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
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics()
	}
	a := &api{apiDeps: d, svc: d.Service, mux: http.NewServeMux(), routes: map[string]*routeMetrics{}}
	a.other = d.Metrics.route("unmatched")
	for _, rt := range a.routeTable() {
		a.handle(rt.pattern, rt.auth, rt.serve)
	}
	return a
}

// handle registers h for pattern behind the bearer-token check (when auth is
// set) and the error adapter: the error h returns is the answer.
func (a *api) handle(pattern string, auth bool, h func(http.ResponseWriter, *http.Request) error) {
	a.routes[pattern] = a.Metrics.route(pattern)
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if sw, ok := w.(*statusWriter); ok {
			sw.routed = true
		}
		var err error
		switch {
		case auth && !a.authorized(r):
			err = errUnauthorized
		case auth && !revokedMayServe[pattern] && a.svc.revoked():
			// A revoked site's backend reads nothing more through its node.
			err = a.svc.checkNotRevoked()
		default:
			err = h(w, r)
		}
		if err != nil {
			writeError(w, r, a.Log, err)
		}
	})
}

// revokedMayServe are the calls a node whose own site is revoked still
// answers: what it is, and the sites (which say it is revoked). Every other
// call is 403 site_revoked, so that a compromised site's token reads no
// more users or sessions once the site is revoked.
var revokedMayServe = map[string]bool{
	"GET /v1/status": true,
	"GET /v1/sites":  true,
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
	var body errorBody
	switch code {
	case http.StatusNotFound:
		body.Error.Code, body.Error.Message = client.CodeNotFound, fmt.Sprintf("no such route: %s %s", w.req.Method, w.req.URL.EscapedPath())
	case http.StatusMethodNotAllowed:
		body.Error.Code, body.Error.Message = client.CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed here (Allow: %s)", w.req.Method, w.Header().Get("Allow"))
	default:
		body.Error.Code, body.Error.Message = client.CodeBadRequest, strings.ToLower(http.StatusText(code))
	}
	_ = writeJSON(w.ResponseWriter, code, &body) // an error body always encodes
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
