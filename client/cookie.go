package client

import (
	"net/http"
	"net/url"
	"strings"
)

// DefaultCookie is the session cookie's name on a site not served over
// https at the root of its host: the one the node sets there when a
// hand-off brings the browser (docs/handoff.md), and the one a site sets
// from LoginAnswer.Token at login. A site served over https at the root of
// its host uses HostCookie instead (CookieName tells which). Unless told
// otherwise, Middleware reads HostCookie first, then DefaultCookie.
const DefaultCookie = "ussync_session"

// HostCookie is DefaultCookie with the __Host- prefix (RFC 6265bis): the
// session cookie's name on a site served over https at the root of its
// host, where it must be set Secure, with Path=/ and no Domain, so that no
// other host of the domain can set or overwrite it.
const HostCookie = "__Host-" + DefaultCookie

// CookieName returns the name of the session cookie of the site at
// siteURL (the node's site.url): HostCookie for an https site at the root
// of its host, else DefaultCookie.
func CookieName(siteURL string) string {
	u, err := url.Parse(siteURL)
	if err == nil && u.Scheme == "https" && (u.Path == "" || u.Path == "/") {
		return HostCookie
	}
	return DefaultCookie
}

// tokenLen is the length of every session token a node issues: 32 random
// bytes in URL-safe base64 without padding (crypto.NewToken; client may
// not import crypto, and TestMiddleware, whose sessions a real node
// issues, fails if the two part).
const tokenLen = 43

// couldBeToken reports whether v has the form of a session token: tokenLen
// characters of the URL-safe base64 alphabet (RFC 4648, section 5). Any
// other cookie value (empty, cut short, over-long, tossed in by another
// host of the domain) is no session whatever the node would say, and is
// judged without asking it.
func couldBeToken(v string) bool {
	if len(v) != tokenLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// deleteCookie deletes, on w, the session cookie name set with path: a
// __Host- cookie always has Path=/ and Secure, another is Secure over
// https. It deletes the cookie of that name, path and host whatever its
// value; one set for a parent domain or another path stays.
func deleteCookie(w http.ResponseWriter, r *http.Request, name, path string) {
	secure := r.TLS != nil
	if strings.HasPrefix(name, "__Host-") {
		path, secure = "/", true
	}
	http.SetCookie(w, &http.Cookie{Name: name, Path: path, MaxAge: -1,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
}
