package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// The admin page's own sessions and login: the API token or the admin
// password, a CSRF token per browser, and the limiter of failed logins
// (admin_limit.go).

// adminSession is one logged-in administrator (one browser).
type adminSession struct {
	csrf    string    // the token every form of this session carries
	actor   string    // "admin:<token name>" or "admin:password": who the changes are recorded as
	expires time.Time // wall clock
	flash   *adminFlash
}

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

// newSession starts an admin session for actor and returns its cookie
// value.
func (a *admin) newSession(actor string) (string, error) {
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
	a.mu.sessions[adminKey(v)] = &adminSession{csrf: csrf, actor: actor, expires: now.Add(a.cfg.TTL)}
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

// attemptOf is the login attempt r makes: its address, and its device
// cookie when this node issued it.
func (a *admin) attemptOf(r *http.Request) attempt {
	at := attempt{ip: clientKey(r)}
	if c, err := r.Cookie(a.device); err == nil && c.Value != "" {
		if k := adminKey(c.Value); a.limit.known(k) {
			at.device = k
		}
	}
	return at
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
		Login: &adminLogin{Password: !a.password.Load().IsZero(), Next: adminLocal(r.FormValue("next"), "")},
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
	at, now := a.attemptOf(r), a.svc.now()
	if wait := a.limit.wait(at, now); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		a.log.Warn("admin login refused: too many failures, backing off", "ip", at.ip, "known_device", at.device != "", "retry_after_s", secs)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		a.showLogin(w, r, http.StatusTooManyRequests, &adminFlash{"error", fmt.Sprintf(
			"Too many failed attempts: wait %d s, then try again (each failure doubles the wait; a browser that logged in here before is not held back by others' failures).", secs)})
		return
	}
	secret := r.PostForm.Get("secret")
	pw := *a.password.Load()
	var actor string
	if tok := a.cfg.Tokens.match(secret); secret != "" && tok != nil {
		actor = "admin:" + tok.name
	} else if secret != "" && !pw.IsZero() && pw.Check(secret) {
		actor = "admin:password"
	}
	if actor == "" {
		if secret != "" { // an empty form guesses nothing
			account, ipFails := a.limit.failed(at, now)
			a.log.Warn("admin login failed", "ip", at.ip, "known_device", at.device != "", "failures", account, "failures_from_ip", ipFails)
		}
		what := "API token"
		if !pw.IsZero() {
			what = "password or API token"
		}
		a.showLogin(w, r, http.StatusUnauthorized, &adminFlash{"error", "Wrong " + what + "."})
		return
	}
	device, err := random32()
	if err != nil {
		a.fail(w, r, nil, err)
		return
	}
	a.limit.succeeded(at, adminKey(device), now)
	a.setCookie(w, r, a.device, device, int(adminDeviceTTL/time.Second))
	v, err := a.newSession(actor)
	if err != nil {
		a.fail(w, r, nil, err)
		return
	}
	a.setCookie(w, r, a.cookie, v, int(a.cfg.TTL/time.Second))
	a.setCookie(w, r, a.preLogin, "", -1)
	a.log.Info("admin logged in", "ip", at.ip, "actor", actor)
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
