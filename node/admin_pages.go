package node

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// The admin page's pages and actions. Every action calls the service, as
// the private API does, and so goes through gossip to every site.

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
	Activity *adminActivity
	Sites    *adminSites
	Error    *adminError
}

type adminSites struct {
	Rows        []client.SiteInfo
	SelfRevoked bool // this node's own site is revoked: it changes nothing
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
		v, st := a.svc.view(&list[i], u, now)
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
	"short":     func(id string) string { return id[:min(len(id), 12)] },
	"hasPrefix": strings.HasPrefix,
	"userURL":   adminUserURL,
	"plural":    adminPlural,
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
