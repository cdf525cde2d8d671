// Command go-site is a small Go website that uses ussync for its logins:
// its /account page is protected by client.Middleware, which checks the
// browser's session with the site's own ussync node on every request, so a
// logout on any site of the family is seen here on the next page view.
//
// Protecting a handler takes the lines between the "ussync:" markers in
// newSite. The rest is what any site has anyway: a login form (here an
// e-mail and no password: put your own authentication where login says
// so), a logout button, a home page.
//
// Run it beside a node (`ussync agent --dev` prints its API address and
// token):
//
//	USSYNC_API_URL=http://127.0.0.1:7947 USSYNC_API_TOKEN=… go run ./examples/go-site
//
// USSYNC_API_URL and USSYNC_API_TOKEN are the variables the ussync client
// commands read (`ussync status`, …), so one environment serves both;
// USSYNC_API is the agent's own api.listen (HOST:PORT), not read here.
// It listens on ADDR (default 127.0.0.1:8080), takes SITE_URL (default
// http://ADDR/) for the name of its session cookie, and links only the
// standard library and package client: neither the node's store nor its
// gossip.
package main

import (
	"context"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ussync/ussync/client"
)

func main() {
	token := os.Getenv("USSYNC_API_TOKEN")
	if token == "" {
		log.Fatal("go-site: set USSYNC_API_TOKEN to the node's API token (api.token)")
	}
	api := client.New(env("USSYNC_API_URL", "http://127.0.0.1:7947"), token)
	ln, err := net.Listen("tcp", env("ADDR", "127.0.0.1:8080"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("go-site: listening on http://%s/\n", ln.Addr())
	siteURL := env("SITE_URL", "http://"+ln.Addr().String()+"/")
	srv := &http.Server{Handler: newSite(api, siteURL), ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.Serve(ln))
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newSite is the routes of the site at siteURL (its node's site.url),
// over the private API of its node.
func newSite(api *client.Client, siteURL string) http.Handler {
	s := &site{api: api, siteURL: siteURL, ussync: client.MiddlewareOptions{LoginURL: "/login"}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)

	// ussync: a browser without an active session is sent to /login.
	protect := client.Middleware(api, s.ussync)
	mux.Handle("GET /account", protect(http.HandlerFunc(account)))
	// ussync: end.

	return mux
}

// account is the protected page: the visitor is in the request's context.
func account(w http.ResponseWriter, r *http.Request) {
	v, _ := client.VisitorFrom(r.Context())
	page.Execute(w, map[string]any{"Title": "Your account", "Email": v.Session.Email, "Since": v.Session.CreatedAt})
}

type site struct {
	api     *client.Client
	siteURL string                   // the site's base URL, as its node's site.url
	ussync  client.MiddlewareOptions // the middleware's, which the logout shares
}

func (s *site) home(w http.ResponseWriter, r *http.Request) {
	page.Execute(w, map[string]any{"Title": "Welcome"})
}

func (s *site) loginForm(w http.ResponseWriter, r *http.Request) {
	page.Execute(w, map[string]any{"Title": "Log in", "Form": true, "Next": r.URL.Query().Get("next")})
}

// login checks who the visitor is (here: nobody checks; a real site checks
// a password), opens a session on the node and sets the cookie the
// middleware reads.
func (s *site) login(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	ans, err := s.api.Login(ctx, client.LoginRequest{Email: r.PostFormValue("email"), UserAgent: r.UserAgent()})
	if client.ErrorCode(err) == client.CodeInvalidEmail {
		http.Error(w, "That is not an e-mail address.", http.StatusBadRequest)
		return
	}
	if err != nil {
		log.Printf("login: %v", err)
		http.Error(w, "The login service is not answering.", http.StatusBadGateway)
		return
	}
	// The name the node's hand-off sets on this site too: __Host-… on an
	// https site at the root of its host, which must be Secure with Path=/.
	name := client.CookieName(s.siteURL)
	http.SetCookie(w, &http.Cookie{Name: name, Value: ans.Token, Path: "/", Expires: ans.Session.ExpiresAt,
		HttpOnly: true, Secure: strings.HasPrefix(s.siteURL, "https:") || r.TLS != nil, SameSite: http.SameSiteLaxMode})
	next := r.PostFormValue("next")
	if next == "" {
		next = "/account"
	}
	// This site's pages only: a link to the login page must not send the
	// browser on to another site.
	http.Redirect(w, r, client.SafeNext(next), http.StatusSeeOther)
}

// logout ends the session on every site of the family and deletes its
// cookies, under both names the middleware reads (an https site at the
// root of its host holds __Host-ussync_session, set by the node's
// hand-off). When the node cannot end it, the visitor is told and stays
// logged in here: looking logged out on this site alone while the other
// sites keep the session would mislead.
func (s *site) logout(w http.ResponseWriter, r *http.Request) {
	if err := client.Logout(s.api, w, r, s.ussync); err != nil {
		log.Printf("logout: %v", err)
		http.Error(w, "The login service is not answering, so you are still logged in; try again in a moment.", http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1>
{{if .Email}}<p>Logged in as <b>{{.Email}}</b> since {{.Since.Format "15:04:05"}}.</p>
<form method="post" action="/logout"><button>Log out</button></form>
{{else if .Form}}<form method="post" action="/login"><input type="hidden" name="next" value="{{.Next}}">
<label>E-mail <input name="email" type="email" required></label> <button>Log in</button></form>
{{else}}<p><a href="/account">Your account</a></p>{{end}}
</body></html>
`))
