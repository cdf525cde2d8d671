package client

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// MiddlewareOptions configure Middleware. The zero value reads the
// __Host-ussync_session cookie, then the ussync_session one, answers 401 to
// a request with no active session and 503 when the node cannot tell
// (fails closed).
type MiddlewareOptions struct {
	// CookieName is the cookie that holds the session token. Default: both
	// HostCookie and DefaultCookie are read, in that order (see
	// CookieName); a cookie whose session is over is deleted under the
	// name it came with.
	CookieName string
	// CookiePath is the Path the cookie was set with; a cookie whose
	// session is over is deleted with it. Default "/".
	CookiePath string
	// LoginURL is where a browser with no active session is sent: 303 See
	// Other, for GET and HEAD requests, with the page it asked for in the
	// query parameter NextParam (added to LoginURL's query, before its
	// #fragment; "/" when the request's path would not pass SafeNext).
	// Empty, and for other methods: 401.
	LoginURL string
	// NextParam is the query parameter of LoginURL that carries the page
	// asked for (a path and query on this site). Default "next". The login
	// page receives it from the browser, so anyone can write a link that
	// sets it: pass it through SafeNext before redirecting there.
	NextParam string
	// Optional lets a request with no active session through too, without
	// a Visitor: for pages that show more to a logged-in user.
	Optional bool
	// OnNodeError answers a request whose session the node could not
	// check, and says nothing of the cookie (none is deleted). err says
	// why: it wraps ErrUnreachable (no answer: the node is down, or hung
	// past the Client's timeout), or wraps ErrBadURL (New was given a base
	// URL it cannot use), or is an *APIError (the node answered 5xx, 503
	// node_isolated among them, or refused the API token; or the answer
	// was not the session check's, such as a 404 from a wrong base URL's
	// path: SessionOver false), or is another error (an answer that was
	// not a node's JSON: another server on the address). Nil fails
	// closed: 503 Service Unavailable with Retry-After: 5, and the handler
	// does not run. To fail open, serve the handler from here (without a
	// Visitor).
	OnNodeError func(w http.ResponseWriter, r *http.Request, err error)
}

// Visitor is who a request comes from, as Middleware found it: its
// session, checked with the node on this request.
type Visitor struct {
	// Session is the cookie's session, active: Session.Email is the user.
	Session SessionInfo
	// NewUser is SessionCheck.NewUser: the session came to this site by a
	// hand-off and the site's backend has not PUT the user yet. A site that
	// keeps its own users adds this one and calls PutUser, which clears it.
	NewUser bool
	// Node is SessionCheck.Node: set while the site's node may answer from
	// stale data (catching up or isolated). A handler that must not trust
	// a possibly logged-out session (a payment, a password change) can
	// refuse while it is set; the node fails closed by itself past
	// sync.fail_closed_after.
	Node *NodeState
}

type visitorKey struct{}

// VisitorFrom returns the Visitor that Middleware put in a request's
// context; ok is false when there is none (no active session, under
// MiddlewareOptions.Optional).
func VisitorFrom(ctx context.Context) (v Visitor, ok bool) {
	v, ok = ctx.Value(visitorKey{}).(Visitor)
	return v, ok
}

// Middleware returns net/http middleware that lets a request through to
// the handler it wraps only with an active session: it reads the session
// cookie, checks the session on the site's node (GET /v1/sessions/{id}, on
// every request: a logout anywhere is seen on the next one) and puts the
// Visitor in the request's context (VisitorFrom). See MiddlewareOptions
// for the choices. The returned function is safe for concurrent use. A
// nil c is a programming error: Middleware panics.
//
// A request with no cookie, or whose session the node says is over
// (SessionOver: ended, revoked, expired, or unknown to it), is sent to the
// login URL or answered 401. Its cookie is then deleted, and so is one
// that cannot hold a token (not 43 characters of URL-safe base64), but
// only once every session cookie of the request was judged: at most 8 are
// checked with the node, and a request carrying more token-like ones
// deletes nothing. Any other failure of the check is the node's
// (OnNodeError) and deletes nothing.
//
// The check is one read on the node, made while the request waits: tens
// of microseconds on an idle loopback, a few milliseconds under load
// (README, "Performance"). When the
// node hangs, the request waits for the Client's timeout (DefaultTimeout,
// 10 s, unless WithTimeout; sooner if the request's context ends first),
// for all its cookies' checks together, then fails closed (OnNodeError,
// else 503). A Client made with WithTimeout(2 * time.Second) bounds that
// at 2 s.
//
// Every answer it makes or lets through carries "Cache-Control: private,
// no-store" and "Vary: Cookie", set before the wrapped handler runs: a
// page made for one visitor must not be kept by a shared cache (a CDN, a
// proxy) and shown to the next, nor kept in the browser's cache after a
// logout. A handler whose page may be kept (the same for everyone, under
// Optional) says so itself: w.Header().Set("Cache-Control", …) replaces
// it.
func Middleware(c *Client, opts MiddlewareOptions) func(http.Handler) http.Handler {
	if c == nil {
		panic("client.Middleware: nil *Client")
	}
	names, path := opts.cookieNames(), opts.cookiePath()
	if opts.NextParam == "" {
		opts.NextParam = "next"
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Cache-Control", "private, no-store")
			h.Add("Vary", "Cookie")
			v, over, err := visitorOf(c, r, names)
			switch {
			case err != nil:
				if opts.OnNodeError != nil {
					opts.OnNodeError(w, r, err)
					return
				}
				h.Set("Retry-After", "5")
				http.Error(w, "The login service of this site is not answering; try again in a moment.", http.StatusServiceUnavailable)
				return
			case v == nil:
				for _, name := range over {
					deleteCookie(w, r, name, path)
				}
			}
			switch {
			case v != nil:
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), visitorKey{}, *v)))
			case opts.Optional:
				next.ServeHTTP(w, r)
			case opts.LoginURL != "" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
				http.Redirect(w, r, loginURL(opts.LoginURL, opts.NextParam, SafeNext(r.URL.RequestURI())), http.StatusSeeOther)
			default:
				http.Error(w, "You are not logged in.", http.StatusUnauthorized)
			}
		})
	}
}

// cookieNames are the names of the session cookies o reads.
func (o *MiddlewareOptions) cookieNames() []string {
	if o.CookieName != "" {
		return []string{o.CookieName}
	}
	return []string{HostCookie, DefaultCookie}
}

// cookiePath is the Path the session cookies were set with.
func (o *MiddlewareOptions) cookiePath() string {
	if o.CookiePath == "" {
		return "/"
	}
	return o.CookiePath
}

// checks bounds the node calls made for one request, all together, by
// the client's timeout (DefaultTimeout unless WithTimeout).
func (c *Client) checks(ctx context.Context) (context.Context, context.CancelFunc) {
	if d := c.http.Timeout; d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return ctx, func() {}
}

// maxCookieTries bounds the session checks one request makes: a browser
// may send several session cookies of one name (set for nested paths, or
// for a parent domain by another host of it), as the node's own public
// endpoints allow.
const maxCookieTries = 8

// visitorOf judges the request's session cookies of names, in that order
// and each name's in the browser's, and returns the Visitor of the first
// whose session the node says is active (nil when none is). A value that
// cannot be a token is no session and costs no check. over lists the
// names to delete: set only when every cookie was judged, none active; a
// request with more token-like cookies than maxCookieTries has them
// checked, the rest not, and nothing deleted (the rest may hold the live
// session). err is set when the node could not tell (SessionOver false).
func visitorOf(c *Client, r *http.Request, names []string) (v *Visitor, over []string, err error) {
	ctx, cancel := c.checks(r.Context())
	defer cancel()
	seen, all, err := eachSession(r, names, func(id string) (bool, error) {
		sc, err := c.CheckSession(ctx, id)
		switch {
		case err == nil:
			v = &Visitor{Session: sc.Session, NewUser: sc.NewUser, Node: sc.Node}
			return true, nil
		case SessionOver(err):
			return false, nil
		}
		return true, err
	})
	if err != nil || v != nil || !all {
		return v, nil, err
	}
	return nil, seen, nil
}

// eachSession calls judge with the session id of each of r's session
// cookies of names that could hold a token, in that order and each name's
// in the browser's, until judge says stop or returns an error (which
// eachSession returns); a value that cannot be a token costs no call.
// seen lists the names of the cookies passed over, stop or error aside;
// all is false when judge stopped, or when more than maxCookieTries
// cookies would have needed a call (the rest were not judged).
func eachSession(r *http.Request, names []string, judge func(id string) (stop bool, err error)) (seen []string, all bool, err error) {
	tries := 0
	for _, name := range names {
		for _, ck := range r.CookiesNamed(name) {
			if couldBeToken(ck.Value) {
				if tries == maxCookieTries {
					return seen, false, nil
				}
				tries++
				if stop, err := judge(SessionID(ck.Value)); stop || err != nil {
					return seen, false, err
				}
			}
			if !slices.Contains(seen, name) {
				seen = append(seen, name)
			}
		}
	}
	return seen, true, nil
}

// loginURL is base with param set to next, in its query and before its
// fragment.
func loginURL(base, param, next string) string {
	base, frag, hasFrag := strings.Cut(base, "#")
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	u := base + sep + url.Values{param: {next}}.Encode()
	if hasFrag {
		u += "#" + frag
	}
	return u
}
