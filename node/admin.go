package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
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
	// adminFailWindow and adminMaxFailures rate-limit failed logins: an
	// address that failed adminMaxFailures times within adminFailWindow is
	// refused (429), even with the right secret, until the window passes.
	adminFailWindow  = time.Minute
	adminMaxFailures = 10
	adminMaxFailIPs  = 10000
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
	// Token is the hash of the API token, which logs an administrator in.
	Token crypto.TokenHash
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
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	css      []byte
	cssURL   string
	cookie   string // name of the admin session cookie
	preLogin string // name of the login form's CSRF cookie
	mu       struct {
		sync.Mutex
		sessions map[string]*adminSession // by hex SHA-256 of the cookie value
		failures map[string]*adminFailures
	}
}

// adminSession is one logged-in administrator (one browser).
type adminSession struct {
	csrf    string    // the token every form of this session carries
	expires time.Time // wall clock
	flash   *adminFlash
}

// adminFailures counts failed logins from one address.
type adminFailures struct {
	n     int
	since time.Time
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
	}
	a.mu.sessions = map[string]*adminSession{}
	a.mu.failures = map[string]*adminFailures{}

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
	a.handle("GET /admin/users/{email}", a.user)
	a.handle("POST /admin/users/{email}/verify", a.verify)
	a.handle("POST /admin/users/{email}/unverify", a.unverify)
	a.handle("POST /admin/users/{email}/resend", a.resend)
	a.handle("POST /admin/users/{email}/logout-everywhere", a.logoutEverywhere)
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
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.render(w, r, http.StatusNotFound, nil, "error", adminPage{Title: "Not found",
			Error: &adminError{Status: http.StatusNotFound, Text: "There is no such page."}})
		return
	}
	a.mux.ServeHTTP(w, r)
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
		if err := h(w, r, s); err != nil {
			a.fail(w, r, s, err)
		}
	})
}

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

// --- admin sessions -------------------------------------------------------

// random32 returns 32 random bytes, URL-safe base64.
func random32() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// adminKey is the map key of an admin session cookie value: its hash, so
// the map never holds a usable cookie.
func adminKey(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// session returns the live admin session of r's cookie, or nil.
func (a *admin) session(r *http.Request) *adminSession {
	c, err := r.Cookie(a.cookie)
	if err != nil || c.Value == "" {
		return nil
	}
	k := adminKey(c.Value)
	now := a.svc.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.mu.sessions[k]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		delete(a.mu.sessions, k)
		return nil
	}
	return s
}

// newSession starts an admin session and returns its cookie value.
func (a *admin) newSession() (string, error) {
	v, err := random32()
	if err != nil {
		return "", err
	}
	csrf, err := random32()
	if err != nil {
		return "", err
	}
	now := a.svc.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pruneSessionsLocked(now)
	a.mu.sessions[adminKey(v)] = &adminSession{csrf: csrf, expires: now.Add(a.cfg.TTL)}
	return v, nil
}

// pruneSessionsLocked drops expired admin sessions and, when the map is
// full, the one that would expire first.
func (a *admin) pruneSessionsLocked(now time.Time) {
	for k, s := range a.mu.sessions {
		if !now.Before(s.expires) {
			delete(a.mu.sessions, k)
		}
	}
	for len(a.mu.sessions) >= adminMaxSessions {
		var oldest string
		for k, s := range a.mu.sessions {
			if oldest == "" || s.expires.Before(a.mu.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(a.mu.sessions, oldest)
	}
}

func (a *admin) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     adminPrefix,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

// takeFlash returns and clears the session's flash.
func (a *admin) takeFlash(s *adminSession) *adminFlash {
	if s == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f := s.flash
	s.flash = nil
	return f
}

// --- login ----------------------------------------------------------------

// clientKey is the address failed logins are counted under.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// throttled reports whether ip has failed too often lately.
func (a *admin) throttled(ip string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := a.mu.failures[ip]
	if f == nil {
		return false
	}
	if now.Sub(f.since) >= adminFailWindow {
		delete(a.mu.failures, ip)
		return false
	}
	return f.n >= adminMaxFailures
}

// failed counts a failed login from ip.
func (a *admin) failed(ip string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.mu.failures) >= adminMaxFailIPs {
		for k, f := range a.mu.failures {
			if now.Sub(f.since) >= adminFailWindow {
				delete(a.mu.failures, k)
			}
		}
		if len(a.mu.failures) >= adminMaxFailIPs {
			clear(a.mu.failures) // a flood from many addresses: start over
		}
	}
	f := a.mu.failures[ip]
	if f == nil || now.Sub(f.since) >= adminFailWindow {
		f = &adminFailures{since: now}
		a.mu.failures[ip] = f
	}
	f.n++
}

// loginForm is GET /admin/login. The form's CSRF token is also set in a
// short-lived cookie (double submit): there is no admin session yet.
func (a *admin) loginForm(w http.ResponseWriter, r *http.Request) {
	if a.session(r) != nil {
		http.Redirect(w, r, adminLocal(r.URL.Query().Get("next"), adminPrefix+"sessions"), http.StatusSeeOther)
		return
	}
	var flash *adminFlash
	if r.URL.Query().Get("bye") != "" {
		flash = &adminFlash{"info", "You are logged out."}
	}
	a.showLogin(w, r, http.StatusOK, flash)
}

func (a *admin) showLogin(w http.ResponseWriter, r *http.Request, status int, flash *adminFlash) {
	tok, err := random32()
	if err != nil {
		a.fail(w, r, nil, err)
		return
	}
	a.setCookie(w, r, a.preLogin, tok, int(time.Hour/time.Second))
	a.render(w, r, status, nil, "login", adminPage{
		Title: "Log in",
		Flash: flash,
		CSRF:  tok,
		Login: &adminLogin{Password: !a.cfg.Password.IsZero(), Next: adminLocal(r.FormValue("next"), "")},
	})
}

// login is POST /admin/login: the API token, or the admin password.
func (a *admin) login(w http.ResponseWriter, r *http.Request) {
	c, _ := r.Cookie(a.preLogin)
	want := ""
	if c != nil {
		want = c.Value
	}
	if err := a.checkForm(w, r, want); err != nil {
		a.fail(w, r, nil, err)
		return
	}
	ip, now := clientKey(r), a.svc.now()
	if a.throttled(ip, now) {
		a.log.Warn("admin login refused: too many failures", "ip", ip)
		a.showLogin(w, r, http.StatusTooManyRequests, &adminFlash{"error", "Too many failed attempts from your address: wait a minute, then try again."})
		return
	}
	secret := r.PostForm.Get("secret")
	ok := secret != "" && a.cfg.Token.Matches(secret)
	if !ok && secret != "" && !a.cfg.Password.IsZero() {
		ok = a.cfg.Password.Check(secret)
	}
	if !ok {
		a.failed(ip, now)
		a.log.Warn("admin login failed", "ip", ip)
		what := "API token"
		if !a.cfg.Password.IsZero() {
			what = "password or API token"
		}
		a.showLogin(w, r, http.StatusUnauthorized, &adminFlash{"error", "Wrong " + what + "."})
		return
	}
	v, err := a.newSession()
	if err != nil {
		a.fail(w, r, nil, err)
		return
	}
	a.setCookie(w, r, a.cookie, v, int(a.cfg.TTL/time.Second))
	a.setCookie(w, r, a.preLogin, "", -1)
	a.log.Info("admin logged in", "ip", ip)
	http.Redirect(w, r, adminLocal(r.PostForm.Get("next"), adminPrefix+"sessions"), http.StatusSeeOther)
}

// logout is POST /admin/logout.
func (a *admin) logout(w http.ResponseWriter, r *http.Request, _ *adminSession) error {
	if c, err := r.Cookie(a.cookie); err == nil {
		a.mu.Lock()
		delete(a.mu.sessions, adminKey(c.Value))
		a.mu.Unlock()
	}
	a.setCookie(w, r, a.cookie, "", -1)
	http.Redirect(w, r, adminPrefix+"login?bye=1", http.StatusSeeOther)
	return nil
}

// --- pages ----------------------------------------------------------------

// adminPage is what layout.html and every page template show. One of the
// page parts is set.
type adminPage struct {
	Title string
	Nav   string // sessions or users: the current tab
	Flash *adminFlash
	CSRF  string
	Back  string // this page's URL, where a form's action returns
	// Set by render.
	Node     string
	CSS      string
	LoggedIn bool

	Login    *adminLogin
	Sessions *adminSessions
	Users    *adminUsers
	User     *adminUser
	Error    *adminError
}

type adminLogin struct {
	Password bool // a password is configured
	Next     string
}

type adminError struct {
	Status int
	Text   string
}

// adminSessionRow is one line of a sessions table.
type adminSessionRow struct {
	client.SessionInfo
	Login    string
	State    session.State
	Verified bool
}

type adminSessions struct {
	Filter adminFilter
	Rows   []adminSessionRow
	Next   string // URL of the next page ("" on the last)
	First  string // URL of the first page ("" on it)
	Sites  []string
	Error  string // the filter's fault
}

// adminFilter is the sessions list's query, as the form shows it.
type adminFilter struct {
	Email  string
	Site   string
	Active bool
	Oldest bool
	Limit  int
	After  string
}

type adminUsers struct {
	Rows   []client.UserInfo
	Resend bool // the resend action is available
	Next   string
	First  string
	Find   string
	Error  string
}

type adminUser struct {
	U      client.UserInfo
	Known  bool // the user record is here (not only sessions of it)
	Active int  // active sessions on this page
	Rows   []adminSessionRow
	Next   string
	First  string
	Resend bool // the resend action is available
}

// render writes page with status using template name, for session s (nil:
// logged out).
func (a *admin) render(w http.ResponseWriter, r *http.Request, status int, s *adminSession, name string, p adminPage) {
	p.Node, p.CSS = a.svc.Name, a.cssURL
	if s != nil {
		p.LoggedIn = true
		p.CSRF = s.csrf
		if p.Flash == nil {
			p.Flash = a.takeFlash(s)
		}
		if p.Back == "" {
			p.Back = adminLocal(r.URL.RequestURI(), adminPrefix+"sessions")
		}
	}
	t := a.pages[name]
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", &p); err != nil {
		a.log.Error("admin page failed", "page", name, "err", err)
		http.Error(w, "internal error; the node's log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, b.String())
}

// pageSize reads the limit query parameter.
func pageSize(q url.Values) int {
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n <= 0 {
		return adminPageSize
	}
	return min(n, adminMaxPage)
}

// sessions is GET /admin/sessions: every session, filtered, sorted, paged.
func (a *admin) sessions(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	q := r.URL.Query()
	f := adminFilter{
		Email:  strings.TrimSpace(q.Get("email")),
		Site:   strings.TrimSpace(q.Get("site")),
		Active: q.Get("active") != "",
		Oldest: q.Get("sort") == "oldest",
		Limit:  pageSize(q),
		After:  q.Get("after"),
	}
	page := &adminSessions{Filter: f}
	sf := session.SessionFilter{Site: f.Site, Active: f.Active, Oldest: f.Oldest, After: f.After, Limit: f.Limit}
	if f.Email != "" {
		e, err := session.NormalizeEmail(f.Email)
		if err != nil {
			page.Error = "The e-mail filter is not a valid address."
		}
		sf.Email = e
	}
	if f.Site != "" && validName(f.Site) != nil {
		page.Error = "The site filter is not a node name."
	}
	if page.Error == "" {
		list, next, err := a.svc.Store.ListSessions(sf)
		if err != nil {
			a.log.Warn("admin: list sessions", "err", err)
			page.Error = "The sessions could not be listed (a stale page link?): " + err.Error()
		}
		if page.Rows, err = a.rows(list); err != nil {
			return err
		}
		if next != "" {
			page.Next = f.url(next)
		}
		if f.After != "" {
			page.First = f.url("")
		}
	}
	if a.cfg.Members != nil {
		for _, m := range a.cfg.Members() {
			page.Sites = append(page.Sites, m.Name)
		}
	}
	a.render(w, r, http.StatusOK, s, "sessions", adminPage{Title: "Sessions", Nav: "sessions", Sessions: page})
	return nil
}

// url is the sessions list with this filter, from cursor after.
func (f adminFilter) url(after string) string {
	v := url.Values{}
	if f.Email != "" {
		v.Set("email", f.Email)
	}
	if f.Site != "" {
		v.Set("site", f.Site)
	}
	if f.Active {
		v.Set("active", "1")
	}
	if f.Oldest {
		v.Set("sort", "oldest")
	}
	if f.Limit != adminPageSize {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	if after != "" {
		v.Set("after", after)
	}
	if len(v) == 0 {
		return adminPrefix + "sessions"
	}
	return adminPrefix + "sessions?" + v.Encode()
}

// rows shows sessions with their users' login names and states.
func (a *admin) rows(list []session.Session) ([]adminSessionRow, error) {
	users, err := a.svc.usersOf(list)
	if err != nil {
		return nil, err
	}
	now := a.svc.now()
	rows := make([]adminSessionRow, len(list))
	for i := range list {
		u := &users[i]
		v, st := newSessionView(&list[i], u, now)
		rows[i] = adminSessionRow{SessionInfo: v, Login: u.Login.V, State: st, Verified: u.Verified.V.OK}
	}
	return rows, nil
}

// users is GET /admin/users: every user in e-mail order, paged.
func (a *admin) users(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	q := r.URL.Query()
	page := &adminUsers{Resend: a.cfg.Resend != nil}
	if find := strings.TrimSpace(q.Get("find")); find != "" {
		e, err := session.NormalizeEmail(find)
		if err == nil {
			http.Redirect(w, r, adminUserURL(e), http.StatusSeeOther)
			return nil
		}
		page.Find, page.Error = find, "Not a valid e-mail address."
	}
	after, limit := q.Get("after"), pageSize(q)
	list, next, err := a.svc.Store.ListUsers(after, limit)
	if err != nil {
		a.log.Warn("admin: list users", "err", err)
		page.Error = "The users could not be listed: " + err.Error()
	}
	page.Rows = make([]client.UserInfo, len(list))
	for i := range list {
		page.Rows[i] = newUserView(&list[i])
	}
	link := func(after string) string {
		v := url.Values{}
		if limit != adminPageSize {
			v.Set("limit", strconv.Itoa(limit))
		}
		if after != "" {
			v.Set("after", after)
		}
		if len(v) == 0 {
			return adminPrefix + "users"
		}
		return adminPrefix + "users?" + v.Encode()
	}
	if next != "" {
		page.Next = link(next)
	}
	if after != "" {
		page.First = link("")
	}
	a.render(w, r, http.StatusOK, s, "users", adminPage{Title: "Users", Nav: "users", Users: page})
	return nil
}

// adminUserURL is the page of a user.
func adminUserURL(email string) string {
	return adminPrefix + "users/" + url.PathEscape(email)
}

// user is GET /admin/users/{email}: a user and the history of its sessions.
func (a *admin) user(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	email, err := pathEmail(r)
	if err != nil {
		return refuse(session.ErrNotFound, "That is not an e-mail address.")
	}
	u, known, err := a.svc.user(email)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := session.SessionFilter{Email: email, After: q.Get("after"), Limit: pageSize(q)}
	list, next, err := a.svc.Store.ListSessions(f)
	if err != nil {
		return refuse(errInvalidField, "The history could not be listed: %v", err)
	}
	if !known && len(list) == 0 && f.After == "" {
		return refuse(session.ErrNotFound, "No user or session with this e-mail is known to this node.")
	}
	page := &adminUser{U: newUserView(&u), Known: known, Resend: a.cfg.Resend != nil}
	if page.Rows, err = a.rows(list); err != nil {
		return err
	}
	for _, row := range page.Rows {
		if row.Active {
			page.Active++
		}
	}
	link := func(after string) string {
		v := url.Values{}
		if f.Limit != adminPageSize {
			v.Set("limit", strconv.Itoa(f.Limit))
		}
		if after != "" {
			v.Set("after", after)
		}
		if len(v) == 0 {
			return adminUserURL(email)
		}
		return adminUserURL(email) + "?" + v.Encode()
	}
	if next != "" {
		page.Next = link(next)
	}
	if f.After != "" {
		page.First = link("")
	}
	a.render(w, r, http.StatusOK, s, "user", adminPage{Title: email, Nav: "users", User: page})
	return nil
}

// destroy is POST /admin/sessions/{id}/destroy: end one session on every
// site (end reason admin), as DELETE /v1/sessions/{id} does.
func (a *admin) destroy(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	sess, u, err := a.svc.session(id)
	if err != nil {
		return err
	}
	_, ended, err := a.svc.end(sess, u, session.EndAdmin)
	if err != nil {
		return err
	}
	a.log.Info("admin destroyed a session", "session", sess.ID, "ended", ended)
	flash := &adminFlash{"ok", "Session " + sess.ID[:12] + "… of " + sess.Email + " destroyed, on every site."}
	if !ended {
		flash = &adminFlash{"info", "Session " + sess.ID[:12] + "… was already over."}
	}
	a.redirect(w, r, s, flash)
	return nil
}

// setVerified is verify and unverify: the user's verified register, set
// through the same function as PUT /v1/users/{email}.
func (a *admin) setVerified(w http.ResponseWriter, r *http.Request, s *adminSession, v session.Verification) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	if _, known, err := a.svc.user(email); err != nil {
		return err
	} else if !known {
		return refuse(session.ErrNotFound, "No such user: %s.", email)
	}
	if _, err := a.svc.updateUser(email, session.UserChange{Verified: &v}, false); err != nil {
		return err
	}
	a.log.Info("admin set a user's verification", "verified", v.OK)
	text := email + " is now verified (by an administrator), on every site."
	if !v.OK {
		text = email + " is now unverified: their next logins stay on their own site."
	}
	a.redirect(w, r, s, &adminFlash{"ok", text})
	return nil
}

// verify is POST /admin/users/{email}/verify.
func (a *admin) verify(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	return a.setVerified(w, r, s, session.Verification{OK: true, Method: session.VerifiedAdmin})
}

// unverify is POST /admin/users/{email}/unverify.
func (a *admin) unverify(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	return a.setVerified(w, r, s, session.Verification{})
}

// resend is POST /admin/users/{email}/resend: a new verification code by
// e-mail, as POST /v1/users/{email}/verification sends it.
func (a *admin) resend(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	if a.cfg.Resend == nil {
		return refuse(session.ErrNotFound, "This node sends no verification codes (no smtp: section).")
	}
	if err := a.cfg.Resend(r.Context(), email); err != nil {
		return err
	}
	a.log.Info("admin sent a verification code")
	a.redirect(w, r, s, &adminFlash{"ok", "A new verification code is on its way to " + email + "."})
	return nil
}

// logoutEverywhere is POST /admin/users/{email}/logout-everywhere: the same
// function as POST /v1/users/{email}/logout-everywhere.
func (a *admin) logoutEverywhere(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	email, err := pathEmail(r)
	if err != nil {
		return err
	}
	n, err := a.svc.logoutEverywhere(email)
	if err != nil {
		return err
	}
	a.redirect(w, r, s, &adminFlash{"ok", fmt.Sprintf("%s is logged out everywhere: %d active session%s ended, on every site.", email, n, adminPlural(n))})
	return nil
}

func adminPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// adminFuncs are the templates' helpers.
var adminFuncs = template.FuncMap{
	// when formats a time (time.Time or *time.Time, nil: a dash) in UTC.
	"when": func(v any) string {
		var t time.Time
		switch x := v.(type) {
		case time.Time:
			t = x
		case *time.Time:
			if x == nil {
				return "—"
			}
			t = *x
		}
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	// iso is the RFC 3339 form, for title attributes and <time datetime>.
	"iso": func(v any) string {
		switch x := v.(type) {
		case time.Time:
			return x.UTC().Format(time.RFC3339)
		case *time.Time:
			if x != nil {
				return x.UTC().Format(time.RFC3339)
			}
		}
		return ""
	},
	"short":   func(id string) string { return id[:min(len(id), 12)] },
	"userURL": adminUserURL,
	"plural":  adminPlural,
	// dict builds the argument of a sub-template from key, value pairs.
	"dict": func(kv ...any) (map[string]any, error) {
		if len(kv)%2 != 0 {
			return nil, errors.New("dict: odd number of arguments")
		}
		m := make(map[string]any, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, ok := kv[i].(string)
			if !ok {
				return nil, errors.New("dict: a key is not a string")
			}
			m[k] = kv[i+1]
		}
		return m, nil
	},
	// pageSizes are the page sizes offered, the current one included.
	"pageSizes": func(cur int) []int {
		sizes := []int{20, 50, 100, 200, 500}
		if !slices.Contains(sizes, cur) {
			sizes = append(sizes, cur)
			slices.Sort(sizes)
		}
		return sizes
	},
}
