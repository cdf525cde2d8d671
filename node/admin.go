package node

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// The administrator web page: server-rendered html/template pages at /admin/
// on the private listener, with no script, no external asset and a strict
// CSP. An administrator logs in with the API token or the admin password;
// every change goes through the same functions as the private API (and so
// through gossip to every site).

//go:embed admin
var adminFiles embed.FS

// Limits and defaults of the admin page.
const (
	adminPrefix = "/admin/"
	// adminMaxSessions bounds the admin sessions kept in memory; the one
	// nearest expiry is dropped when a login would exceed it.
	adminMaxSessions = 1000
	// adminDeviceTTL is the lifetime of the device cookie a browser gets
	// when it logs in (admin_limit.go).
	adminDeviceTTL = 365 * 24 * time.Hour
	// adminPageSize is the default number of rows of a list; adminMaxPage
	// the most a page may ask for (the store's own limit).
	adminPageSize = 50
	adminMaxPage  = 500
	// adminMaxForm bounds a form body: the forms hold a few short fields.
	adminMaxForm = 16 << 10
)

// adminCSP is the Content-Security-Policy of every admin answer: no script
// at all, styles from the page's own stylesheet only, forms posted only to
// the page itself, never framed.
const adminCSP = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// adminConfig is what the admin page needs; the node wires it.
type adminConfig struct {
	// Service performs the operations (required).
	Service *service
	// Members lists the live members, for the sessions list's site filter.
	// Nil: none.
	Members func() []gossip.Member
	// Tokens are the API tokens, any of which logs an administrator in.
	Tokens *apiTokens
	// Activity records the changes made through the page with the name of
	// the token (or "password") its administrator logged in with. Nil
	// records nothing.
	Activity *activity
	// Log receives logins and failures, never a secret. Nil discards.
	Log *slog.Logger
	// Password is the bcrypt hash of the admin password; zero: the API
	// token is the only way in.
	Password crypto.PasswordHash
	// TTL is how long an admin session lasts (admin.session_ttl).
	TTL time.Duration
	// Resend sends a user a new verification code, as
	// POST /v1/users/{email}/verification does (Node.SendVerification).
	// Nil hides the action.
	Resend func(ctx context.Context, email string) error
}

// admin serves /admin/. It is safe for concurrent use.
type admin struct {
	cfg      adminConfig
	svc      *service
	password atomic.Pointer[crypto.PasswordHash] // cfg.Password, then reloads
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	css      []byte
	cssURL   string
	cookie   string // name of the admin session cookie
	preLogin string // name of the login form's CSRF cookie
	device   string // name of the device cookie of a browser that logged in
	limit    *loginLimiter
	mu       struct {
		sync.Mutex
		sessions map[string]*adminSession // by hex SHA-256 of the cookie value
	}
}

// adminFlash is a message shown once, on the page after a redirect.
type adminFlash struct {
	Kind string // ok, info, error
	Text string
}

// newAdmin builds the admin page over the service's operations.
func newAdmin(cfg adminConfig) (*admin, error) {
	if cfg.Service == nil {
		return nil, errors.New("admin page: no service")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 8 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	a := &admin{
		cfg:      cfg,
		svc:      cfg.Service,
		log:      cfg.Log,
		mux:      http.NewServeMux(),
		pages:    map[string]*template.Template{},
		cookie:   "ussync_admin_" + cfg.Service.Name,
		preLogin: "ussync_admin_login_" + cfg.Service.Name,
		device:   "ussync_admin_device_" + cfg.Service.Name,
		limit:    newLoginLimiter(),
	}
	a.password.Store(&cfg.Password)
	if cfg.Tokens == nil {
		return nil, errors.New("admin page: no tokens")
	}
	a.mu.sessions = map[string]*adminSession{}

	var err error
	if a.css, err = adminFiles.ReadFile("admin/admin.css"); err != nil {
		return nil, fmt.Errorf("admin stylesheet: %w", err)
	}
	sum := sha256.Sum256(a.css)
	a.cssURL = adminPrefix + "static/admin.css?v=" + hex.EncodeToString(sum[:6])
	layout, err := template.New("layout.html").Funcs(adminFuncs).ParseFS(adminFiles, "admin/layout.html")
	if err != nil {
		return nil, fmt.Errorf("admin templates: %w", err)
	}
	names, err := fs.Glob(adminFiles, "admin/*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		page := strings.TrimSuffix(strings.TrimPrefix(name, "admin/"), ".html")
		if page == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(adminFiles, name)
		if err != nil {
			return nil, fmt.Errorf("admin template %s: %w", name, err)
		}
		a.pages[page] = t
	}

	a.mux.HandleFunc("GET /admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, adminPrefix+"sessions", http.StatusSeeOther)
	})
	a.mux.HandleFunc("GET /admin/static/admin.css", a.stylesheet)
	a.mux.HandleFunc("GET /admin/login", a.loginForm)
	a.mux.HandleFunc("POST /admin/login", a.login)
	a.handle("POST /admin/logout", a.logout)
	a.handle("GET /admin/sessions", a.sessions)
	a.handle("POST /admin/sessions/{id}/destroy", a.destroy)
	a.handle("GET /admin/users", a.users)
	a.handle("GET /admin/activity", a.activity)
	a.handle("GET /admin/users/{email}", a.user)
	a.handle("POST /admin/users/{email}/verify", a.verify)
	a.handle("POST /admin/users/{email}/unverify", a.unverify)
	a.handle("POST /admin/users/{email}/resend", a.resend)
	a.handle("POST /admin/users/{email}/logout-everywhere", a.logoutEverywhere)
	a.handle("POST /admin/users/{email}/reset", a.resetUser)
	a.handle("GET /admin/sites", a.sites)
	a.handle("POST /admin/sites/{name}/revoke", a.revokeSite)
	a.handle("POST /admin/sites/{name}/unrevoke", a.unrevokeSite)
	return a, nil
}

// ServeHTTP sets the headers every admin answer carries, then routes.
func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", adminCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	// Mounted beside the API, not inside api.ServeHTTP: its own recover,
	// so that a panic here too is logged and answered 500 (doc.go).
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			a.log.Error("admin handler panic", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			a.render(w, r, http.StatusInternalServerError, nil, "error", adminPage{Title: "Internal error",
				Error: &adminError{Status: http.StatusInternalServerError, Text: "Something went wrong on this node; the log says what."}})
		}
	}()
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.render(w, r, http.StatusNotFound, nil, "error", adminPage{Title: "Not found",
			Error: &adminError{Status: http.StatusNotFound, Text: "There is no such page."}})
		return
	}
	a.mux.ServeHTTP(w, r)
}

// adminRevokedMayServe are the pages a node whose own site is revoked
// still serves (it says so on the sites page); the others answer 403.
var adminRevokedMayServe = map[string]bool{
	"GET /admin/sites":   true,
	"POST /admin/logout": true,
}

// adminHandler is an admin route that needs a logged-in administrator. It
// returns an error instead of answering one: render turns it into a page.
type adminHandler func(w http.ResponseWriter, r *http.Request, s *adminSession) error

// handle registers h behind the login and, for POST, the CSRF checks. A
// browser without a live admin session is sent to the login form; a POST
// whose csrf field is missing or wrong, or that comes from another origin,
// is refused with 403 and changes nothing.
func (a *admin) handle(pattern string, h adminHandler) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s := a.session(r)
		if s == nil {
			next := adminPrefix + "sessions"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, adminPrefix+"login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if err := a.checkForm(w, r, s.csrf); err != nil {
				a.fail(w, r, s, err)
				return
			}
		}
		if !adminRevokedMayServe[pattern] && a.svc.revoked() {
			a.fail(w, r, s, a.svc.checkNotRevoked()) // as the private API: see revokedMayServe
			return
		}
		if err := h(w, r, s); err != nil {
			a.fail(w, r, s, err)
			return
		}
		if action := adminActions[pattern]; action != "" {
			a.cfg.Activity.record(s.actor, action, auditSubject(r))
		}
	})
}

// adminActions are the actions the admin page's changes are recorded
// under in the activity history, by route.
var adminActions = map[string]string{
	"POST /admin/sessions/{id}/destroy":           "session.revoke",
	"POST /admin/users/{email}/verify":            "user.verify",
	"POST /admin/users/{email}/unverify":          "user.unverify",
	"POST /admin/users/{email}/resend":            "user.resend_code",
	"POST /admin/users/{email}/logout-everywhere": "user.logout_everywhere",
}

// setPassword replaces the admin password (a reload); a zero hash leaves
// the API tokens as the only way in.
func (a *admin) setPassword(h crypto.PasswordHash) { a.password.Store(&h) }

// checkForm parses a POST form (bounded) and checks that it comes from this
// origin and carries the expected CSRF token, compared in constant time.
func (a *admin) checkForm(w http.ResponseWriter, r *http.Request, want string) error {
	if !sameOrigin(r) {
		return errFormRefused
	}
	r.Body = http.MaxBytesReader(w, r.Body, adminMaxForm)
	if err := r.ParseForm(); err != nil {
		return refuse(errBadRequest, "The form could not be read.")
	}
	if got := r.PostForm.Get("csrf"); got == "" || want == "" || !crypto.Equal(got, want) {
		return errFormRefused
	}
	return nil
}

// sameOrigin reports whether a state-changing request comes from a page of
// this origin, by the browser's own word: Sec-Fetch-Site when sent, else
// Origin when sent. A request with neither (not a browser, or a very old
// one) is left to the CSRF token alone.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// errFormRefused is the refusal of a form whose CSRF token is missing or
// wrong, or that came from another origin.
var errFormRefused = &refusal{kind: errCSRF,
	msg: "This form's security token is missing or wrong (or it was sent from another site). Nothing was changed: reload the page and try again."}

// fail answers err: a refusal as a page with its status (answers) and
// message (after a POST: a flash on the page the form came from, but for a
// refused form, which gets its 403 page); anything else is logged and a
// 500.
func (a *admin) fail(w http.ResponseWriter, r *http.Request, s *adminSession, err error) {
	ans, msg, ok := answerOf(err)
	switch {
	case errors.Is(err, session.ErrClosed):
		ans.status, msg = http.StatusServiceUnavailable, "The node is shutting down."
	case !ok:
		a.log.Error("admin request failed", "route", r.Pattern, "method", r.Method, "err", err)
		ans.status, msg = http.StatusInternalServerError, "Internal error; the node's log has the details."
	}
	if r.Method == http.MethodPost && s != nil && ans.status < 500 && !errors.Is(err, errCSRF) && ans.status != http.StatusBadRequest {
		a.redirect(w, r, s, &adminFlash{"error", msg})
		return
	}
	a.render(w, r, ans.status, s, "error", adminPage{Title: http.StatusText(ans.status),
		Error: &adminError{Status: ans.status, Text: msg}})
}

// redirect answers a POST with 303 to the page the form came from (its
// "back" field, when it is an admin page) and leaves flash for it.
func (a *admin) redirect(w http.ResponseWriter, r *http.Request, s *adminSession, flash *adminFlash) {
	if flash != nil {
		a.mu.Lock()
		s.flash = flash
		a.mu.Unlock()
	}
	http.Redirect(w, r, adminLocal(r.PostForm.Get("back"), adminPrefix+"sessions"), http.StatusSeeOther)
}

// adminLocal returns p when it is a path under /admin/ of this origin (no
// scheme, no host, no backslash trick), else def: redirect targets come
// from forms and query strings.
func adminLocal(p, def string) string {
	if !strings.HasPrefix(p, adminPrefix) || strings.ContainsAny(p, "\\\r\n") || strings.Contains(p, "//") {
		return def
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" {
		return def
	}
	return p
}

// stylesheet serves the page's only asset. Its URL carries a hash of the
// content, so it may be cached for long.
func (a *admin) stylesheet(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=86400")
	w.Write(a.css)
}
