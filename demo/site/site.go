package site

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
)

// Cookies of a demo site. ussync_session and ussync_checked are the names
// docs/handoff.md gives: the node sets them too, on the sites a ticket or a
// hop brings the browser to.
const (
	sessionCookie = "ussync_session" // the session token
	checkedCookie = "ussync_checked" // lazy mode: the other sites were asked lately
	csrfCookie    = "demo_csrf"      // this browser's form token
	flashCookie   = "demo_flash"     // a notice for the next page
)

// pendingTTL is how long the iframe sync URLs of a login wait for the page
// that embeds them: longer than a ticket lives is useless.
const pendingTTL = 2 * time.Minute

// callTimeout bounds the private API calls of one request.
const callTimeout = 5 * time.Second

var (
	//go:embed templates
	templateFS embed.FS
	//go:embed static
	staticFS embed.FS

	pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
		"when":  when,
		"agent": agentSummary,
		"short": func(id string) string { return id[:min(8, len(id))] },
	}).ParseFS(templateFS, "templates/page.html"))
)

// Spec is one site of the demo as every site knows it.
type Spec struct {
	Name    string // node name, also the CSS theme: shop, blog, forum
	Title   string // short name in the navigation
	Brand   string // the site's own name
	Tagline string
	Mark    string // one-letter logo
	URL     string // base URL, ending in "/"
}

// origin is the site's scheme://host:port.
func (f Spec) origin() string { return strings.TrimSuffix(f.URL, "/") }

// User is a demo user the login form offers.
type User struct {
	Email       string
	DisplayName string
}

// Config is what a site is built from.
type Config struct {
	Index       int            // this site in Family
	Family      []Spec         // every site of the demo, this one included
	Mode        string         // client.ModeChain, ModeIframe or ModeLazy
	API         *client.Client // this site's node, private API
	Public      string         // this site's node, public listener host:port
	HopInterval time.Duration  // the node's sync.hop_interval
	Users       []User         // the demo users the login form offers
	Log         *slog.Logger
}

// Site is one demo website: a handful of pages, a client of its node's
// private API, and a reverse proxy of <site url>ussync/ to its node. Build
// it with New, start it with Serve, stop it with Shutdown.
type Site struct {
	Spec
	Config
	csp   string
	proxy *httputil.ReverseProxy
	srv   *http.Server
	done  chan struct{}

	mu struct {
		sync.Mutex
		pending   map[string]pendingSync // iframe mode: by session id
		members   []client.MemberStatus
		membersAt time.Time
	}
}

// pendingSync are the sync URLs of a login, kept for the page shown next.
type pendingSync struct {
	urls  []string
	until time.Time
}

// New builds the site cfg.Family[cfg.Index]; it serves nothing yet.
func New(cfg Config) *Site {
	s := &Site{Spec: cfg.Family[cfg.Index], Config: cfg}
	s.mu.pending = map[string]pendingSync{}

	var others []string
	for i, f := range cfg.Family {
		if i != cfg.Index {
			others = append(others, f.origin())
		}
	}
	// The chain leaves by a redirect of the login form (form-action), the
	// iframe mode frames this site's hand-off step, which goes on to the
	// other sites (frame-src); nothing frames us.
	s.csp = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'; " +
		"form-action 'self' " + strings.Join(others, " ") + "; frame-src 'self' " + strings.Join(others, " ")

	target := &url.URL{Scheme: "http", Host: cfg.Public}
	s.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // as nginx's proxy_set_header Host $host
			pr.SetXForwarded()       // X-Forwarded-For: the browser's address
		},
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Log.Warn("node's public listener unreachable", "err", err)
			http.Error(w, "this site's ussync node is not answering", http.StatusBadGateway)
		},
	}
	return s
}

func (s *Site) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /register", s.register)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("POST /logout-everywhere", s.logoutEverywhere)
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.Handle("/ussync/", s.proxy)
	return mux
}

// Serve serves the site on ln, in the background, until Shutdown.
func (s *Site) Serve(ln net.Listener) {
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(s.Log.Handler(), slog.LevelDebug),
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error("site server stopped", "err", err)
		}
	}()
}

// Shutdown stops the site, letting requests in flight finish (until ctx
// ends).
func (s *Site) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// visitor is who the browser is on this site.
type visitor struct {
	Session *client.SessionInfo // the cookie's session, when active
	User    *client.UserInfo    // its user
	// NewMember is set on the page view that added the user to this site
	// (a session arrived for an address this site had no account for).
	NewMember bool
	// Ended is the code of the node's refusal of a cookie whose session is
	// no longer active (session_ended, session_revoked, session_expired,
	// not_found); the cookie has been cleared.
	Ended string
}

// visitor checks the browser's session cookie with the node, as a site does
// on every page view: GET /v1/sessions/{sha256(token)}.
func (s *Site) visitor(ctx context.Context, w http.ResponseWriter, r *http.Request) (visitor, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return visitor{}, nil
	}
	check, err := s.API.CheckSession(ctx, client.SessionID(c.Value))
	sv := check.Session
	if err != nil {
		ae, ok := errors.AsType[*client.APIError](err)
		if !ok || ae.StatusCode/100 != 4 {
			return visitor{}, err
		}
		s.setCookie(w, sessionCookie, "", -1)
		return visitor{Ended: ae.Code}, nil
	}
	u, err := s.API.User(ctx, sv.Email)
	if err != nil {
		if apiStatus(err) != http.StatusNotFound {
			return visitor{}, err
		}
		u = client.UserInfo{Email: sv.Email} // its record has not arrived yet
	}
	v := visitor{Session: &sv, User: &u}
	if check.NewUser {
		// This site has no account for the user yet (the seed plugin's "auto
		// add new subscriber"): add one, which tells the node it is known.
		login, name := u.Login, u.DisplayName
		if login == "" {
			login = LoginName(u.Email)
		}
		if _, err := s.API.PutUser(ctx, u.Email, client.UserUpdate{Login: &login, DisplayName: &name}); err != nil {
			return visitor{}, err
		}
		v.NewMember = true
	}
	return v, nil
}

// home is the site's one page: the site's own content, who is logged in,
// the user's sessions, the forms.
func (s *Site) home(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	v, err := s.visitor(ctx, w, r)
	if err != nil {
		s.nodeDown(w, err)
		return
	}
	hopped := r.URL.Query().Has("hopped")
	_, checkedErr := r.Cookie(checkedCookie)
	checked := checkedErr == nil
	if s.Mode == client.ModeLazy && v.Session == nil && !checked && !hopped {
		// Lazy mode: ask the other sites once. The node sends the browser
		// round them and back to return=, with a session cookie or with
		// ussync_checked; "hopped" stops a loop in a browser that keeps no
		// cookies at all.
		ret := s.URL + "?hopped=1"
		http.Redirect(w, r, s.URL+"ussync/v1/hop?return="+url.QueryEscape(ret), http.StatusFound)
		return
	}
	if hopped && (v.Session != nil || checked) {
		http.Redirect(w, r, "/", http.StatusFound) // back from the hop: a clean address
		return
	}
	s.render(w, r, http.StatusOK, v, "")
}

// login is the login form: e-mail only (it is a demo), for a user this
// site's node knows.
func (s *Site) login(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	email, ok := s.postedEmail(w, r, "Enter an e-mail address.")
	if !ok {
		return
	}
	u, found, ok := s.findUser(ctx, w, r, email)
	if !ok {
		return
	}
	if !found {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no account for %s. Pick a demo user, or register the address below.", email))
		return
	}
	s.startSession(ctx, w, r, u)
}

// register creates an unverified user and logs it in: its session stays on
// this site (sync.require_verified), which is the point of showing it.
func (s *Site) register(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	email, ok := s.postedEmail(w, r, "Enter the e-mail address to register.")
	if !ok {
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = LoginName(email)
	}
	if len(name) > 100 {
		s.fail(w, r, http.StatusBadRequest, "That name is too long.")
		return
	}
	_, found, ok := s.findUser(ctx, w, r, email)
	if !ok {
		return
	}
	if found {
		s.fail(w, r, http.StatusConflict, fmt.Sprintf("%s is already registered: log in instead.", email))
		return
	}
	login := LoginName(email)
	u, err := s.API.PutUser(ctx, email, client.UserUpdate{Login: &login, DisplayName: &name})
	if err != nil {
		if apiStatus(err) == http.StatusBadRequest {
			s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a valid e-mail address.", email))
			return
		}
		s.nodeDown(w, err)
		return
	}
	s.startSession(ctx, w, r, u)
}

// postedEmail checks a form's CSRF token and returns the e-mail it posted,
// lower-cased; when it returns false the answer is written (missing is the
// message for an empty field).
func (s *Site) postedEmail(w http.ResponseWriter, r *http.Request, missing string) (string, bool) {
	if !s.checkCSRF(r) {
		s.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this site. Reload the page and try again.")
		return "", false
	}
	email := strings.ToLower(strings.TrimSpace(r.PostFormValue("email")))
	if email == "" {
		s.fail(w, r, http.StatusBadRequest, missing)
		return "", false
	}
	return email, true
}

// findUser looks a user up on the node: found tells whether it exists. When
// ok is false the answer (an invalid address, the node down) is written.
func (s *Site) findUser(ctx context.Context, w http.ResponseWriter, r *http.Request, email string) (u client.UserInfo, found, ok bool) {
	u, err := s.API.User(ctx, email)
	switch {
	case err == nil:
		return u, true, true
	case apiStatus(err) == http.StatusNotFound:
		return u, false, true
	case apiStatus(err) == http.StatusBadRequest:
		s.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a valid e-mail address.", email))
	default:
		s.nodeDown(w, err)
	}
	return u, false, false
}

// startSession logs u in: POST /v1/sessions, the site's own cookie, then
// the hand-off of the demo's mode.
func (s *Site) startSession(ctx context.Context, w http.ResponseWriter, r *http.Request, u client.UserInfo) {
	ans, err := s.API.Login(ctx, client.LoginRequest{Email: u.Email, IP: clientIP(r), UserAgent: r.UserAgent(), ReturnTo: s.URL})
	if err != nil {
		s.nodeDown(w, err)
		return
	}
	s.setCookie(w, sessionCookie, ans.Token, int(time.Until(ans.Session.ExpiresAt).Seconds()))
	if !ans.Synced {
		flash := "unverified"
		if ans.Reason == client.ReasonSiteNotBound {
			flash = "notbound"
		}
		s.setFlash(w, flash)
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.setFlash(w, "loggedin")
	switch s.Mode {
	case client.ModeChain:
		if ans.Sync.Chain != "" {
			// Through every other site and back to return_to (this page).
			http.Redirect(w, r, ans.Sync.Chain, http.StatusSeeOther)
			return
		}
	case client.ModeIframe:
		urls := make([]string, 0, len(ans.Sync.URLs))
		for _, su := range ans.Sync.URLs {
			urls = append(urls, su.URL+"&m=iframe")
		}
		s.mu.Lock()
		now := time.Now()
		for id, p := range s.mu.pending {
			if now.After(p.until) {
				delete(s.mu.pending, id)
			}
		}
		s.mu.pending[ans.Session.ID] = pendingSync{urls: urls, until: now.Add(pendingTTL)}
		s.mu.Unlock()
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends this browser's session, on every site (the node gossips it).
func (s *Site) logout(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	if !s.checkCSRF(r) {
		s.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this site. Reload the page and try again.")
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		if _, err := s.API.EndSession(ctx, client.SessionID(c.Value)); err != nil && apiStatus(err)/100 != 4 {
			s.nodeDown(w, err)
			return
		}
	}
	s.loggedOut(w, r, "loggedout")
}

// logoutEverywhere ends every session of the user, on every site.
func (s *Site) logoutEverywhere(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	if !s.checkCSRF(r) {
		s.fail(w, r, http.StatusForbidden, "This form has expired or did not come from this site. Reload the page and try again.")
		return
	}
	v, err := s.visitor(ctx, w, r)
	if err != nil {
		s.nodeDown(w, err)
		return
	}
	if v.Session == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	n, err := s.API.LogoutEverywhere(ctx, v.Session.Email)
	if err != nil {
		s.nodeDown(w, err)
		return
	}
	s.loggedOut(w, r, "everywhere."+strconv.Itoa(n))
}

// loggedOut clears the cookie and goes home with a notice. In lazy mode it
// also sets ussync_checked: asking the other sites right after a logout
// would find nothing.
func (s *Site) loggedOut(w http.ResponseWriter, r *http.Request, flash string) {
	s.setCookie(w, sessionCookie, "", -1)
	if s.Mode == client.ModeLazy {
		s.setCookie(w, checkedCookie, "1", int(s.HopInterval.Seconds()))
	}
	s.setFlash(w, flash)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// fail answers a form error: the page again, with the message.
func (s *Site) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
	defer cancel()
	v, err := s.visitor(ctx, w, r)
	if err != nil {
		s.nodeDown(w, err)
		return
	}
	s.render(w, r, status, v, msg)
}

func (s *Site) nodeDown(w http.ResponseWriter, err error) {
	s.Log.Error("private API call failed", "err", err)
	http.Error(w, "This site's ussync node did not answer as expected; see the demo's log.", http.StatusBadGateway)
}

func (s *Site) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   strings.HasPrefix(s.URL, "https://"),
		SameSite: http.SameSiteLaxMode,
	})
}

// setFlash leaves a notice (a code, see notices) for the next page.
func (s *Site) setFlash(w http.ResponseWriter, code string) {
	s.setCookie(w, flashCookie, code, 60)
}

// csrfToken returns this browser's form token, setting the cookie that
// holds it if the browser has none.
func (s *Site) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	b := make([]byte, 32)
	rand.Read(b) // never fails
	tok := base64.RawURLEncoding.EncodeToString(b)
	s.setCookie(w, csrfCookie, tok, 0)
	return tok
}

// checkCSRF accepts a form only from this site's own pages: the hidden field
// must equal the browser's token cookie (compared in constant time), which
// another site can neither read nor set; a browser's Origin header, when
// sent, must be this site's.
func (s *Site) checkCSRF(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != s.origin() {
		return false
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf"))) == 1
}

// clientIP is the browser's address: the site is the edge, nothing proxies it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// LoginName is the login a demo site gives a user: the local part of the
// e-mail address.
func LoginName(email string) string {
	name, _, _ := strings.Cut(email, "@")
	return name
}

// members returns the node's member list, cached for two seconds (the
// navigation shows which sites are alive).
func (s *Site) members(ctx context.Context) []client.MemberStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.mu.membersAt) < 2*time.Second {
		return s.mu.members
	}
	st, err := s.API.Status(ctx)
	if err != nil {
		s.Log.Warn("read member list", "err", err)
		return s.mu.members
	}
	s.mu.members, s.mu.membersAt = st.Members, time.Now()
	return st.Members
}

// takePending returns and forgets the iframe sync URLs of a session.
func (s *Site) takePending(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.mu.pending[id]
	delete(s.mu.pending, id)
	if !ok || time.Now().After(p.until) {
		return nil
	}
	return p.urls
}
