package client

import (
	"net/url"
	"strings"
)

// maxNextBytes bounds a next path SafeNext accepts: longer than any page
// address a site links to (browsers and proxies start refusing URLs
// around 2 KB to 8 KB), short enough that a login URL carrying it stays
// usable.
const maxNextBytes = 2048

// SafeNext returns next when it is a page of this site to send a browser
// to after its login, and "/" otherwise: the check a login handler makes
// on the page Middleware sent along (MiddlewareOptions.NextParam) before
// it redirects there, so that a link to the login page cannot send a
// browser on to another site (an open redirect: CWE-601, OWASP's
// "Unvalidated Redirects and Forwards").
//
// next is accepted when it is at most 2048 bytes; starts with one "/" that
// is not followed by another "/"; parses (net/url) with no scheme, host or
// user; and neither it nor its percent-decoded path holds a backslash or
// a control character (U+0000–U+001F, U+007F). Browsers drop tabs and line
// breaks from a URL and read "\" as "/", so "/\t/evil.example" and
// "/\\evil.example" are other sites to them; the decoded form is checked
// too for a site that decodes next once more on its way. An accepted next
// is returned unchanged: a path, an optional ?query and #fragment.
func SafeNext(next string) string {
	if len(next) > maxNextBytes || len(next) < 1 || next[0] != '/' || strings.HasPrefix(next, "//") || !plainPath(next) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		strings.HasPrefix(u.Path, "//") || !plainPath(u.Path) {
		return "/"
	}
	return next
}

// plainPath reports whether s holds no backslash and no ASCII control
// character.
func plainPath(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
