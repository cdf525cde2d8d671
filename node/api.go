package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// apiDeps is everything the private API needs; the node wires it.
type apiDeps struct {
	// Service performs the operations (required).
	Service *service
	// Status builds the answer of GET /v1/status. Nil answers the node name
	// and the store's counts only.
	Status func() client.Status
	// Tokens are the bearer tokens a /v1 call may carry (tokens.go). Nil:
	// Token alone, named "config".
	Tokens *apiTokens
	// Token is the hash of the one bearer token of a node without Tokens
	// (tests).
	Token crypto.TokenHash
	// Keyring runs the keyring calls (keys.go). Nil: they answer 503.
	Keyring keyringFunc
	// Backup streams the store for GET /v1/backup (backup.go). Nil: the
	// call answers 503.
	Backup func(io.Writer) (BackupCounts, error)
	// GossipHealth is gossip's health in a word and why, for GET /healthz
	// (health.go); nil: not said.
	GossipHealth func() (status, reason string)
	// NotReady lists why the node is not ready, for GET /readyz
	// (health.go); nil: always ready.
	NotReady func() []string
	// Activity records the changes made through the API (activity.go).
	// Nil records nothing.
	Activity *activity
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
	// Fresh is the node's freshness (freshness.go): the session check's
	// node state, /healthz and /readyz. Nil: always fresh.
	Fresh *freshness
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
	if d.Tokens == nil {
		d.Tokens = newAPITokens(nil, nil, d.Log, d.Token)
	}
	a := &api{apiDeps: d, svc: d.Service, mux: http.NewServeMux(), routes: map[string]*routeMetrics{}}
	a.other = d.Metrics.route("unmatched")
	for _, rt := range a.routeTable() {
		a.handle(rt)
	}
	return a
}

// handle registers rt behind the bearer-token check (when rt.auth is set)
// and the error adapter: the error rt.serve returns is the answer. A call
// of a route with an audit action that succeeds is recorded in the
// activity history with the name of its token; the handler finds that name
// with actorOf (only those routes pay for carrying it).
func (a *api) handle(rt route) {
	a.routes[rt.pattern] = a.Metrics.route(rt.pattern)
	a.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
		sw, _ := w.(*statusWriter)
		if sw != nil {
			sw.routed = true
		}
		var (
			err error
			tok *apiToken
		)
		if rt.auth {
			if tok = a.authorized(r); tok == nil {
				err = errUnauthorized
			} else if !revokedMayServe[rt.pattern] && a.svc.revoked() {
				// A revoked site's backend reads nothing more through its node.
				err = a.svc.checkNotRevoked()
			}
		}
		if err == nil {
			if rt.audit != "" {
				r = r.WithContext(context.WithValue(r.Context(), actorKey{}, tok.name))
			}
			err = rt.serve(w, r)
		}
		if err != nil {
			writeError(w, r, a.Log, err)
			return
		}
		if rt.audit != "" && rt.audit != auditSelf && (sw == nil || sw.status < 400) {
			a.Activity.record(tok.name, rt.audit, auditSubject(r))
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

// authorized returns the token the request's bearer token is, or nil. The
// comparison is in constant time (apiTokens.match).
func (a *api) authorized(r *http.Request) *apiToken {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return nil
	}
	return a.Tokens.match(strings.TrimSpace(h[len(prefix):]))
}

// actorKey carries the name of the token of an audited call in its
// request's context.
type actorKey struct{}

// actorOf returns the name of the token that made an audited call ("" for
// a route without an audit action).
func actorOf(r *http.Request) string {
	s, _ := r.Context().Value(actorKey{}).(string)
	return s
}

// auditSubject is what an audited call was made to: the e-mail address of
// the path, else its session id's first 16 characters, else its name.
func auditSubject(r *http.Request) string {
	if e := r.PathValue("email"); e != "" {
		if n, err := session.NormalizeEmail(e); err == nil {
			return n
		}
		return e
	}
	if id := r.PathValue("id"); id != "" {
		return id[:min(16, len(id))]
	}
	return r.PathValue("name")
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
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = noSniff
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
