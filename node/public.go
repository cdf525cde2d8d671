package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// Public listener limits.
const (
	// maxTokenBytes: a cookie value longer than any token is not looked up.
	maxTokenBytes = 128
	// maxCookieTries bounds the cookies of one name looked up for one
	// request (nested site paths may send several).
	maxCookieTries = 8
	// corsMaxAge is how long browsers may cache a preflight answer (seconds).
	corsMaxAge = "600"
	// refusedHeader names the refusal of a ticket whose browser was sent on
	// anyway (down a chain, or to next): for logs and tests, never a secret.
	refusedHeader = "X-Ussync-Refused"
	// wasBoundHeader is on a sync step's answer that handed a session to
	// this site: "true" when the site was bound to the user's address
	// before this redemption, else "false" (redemption.WasBound). For the
	// site's backend that forwards the step; never a secret to the user.
	wasBoundHeader = "X-Ussync-Site-Was-Bound"
)

// publicDeps is what the public listener needs; the node wires it.
type publicDeps struct {
	// Service performs the operations: the logout, the verification a link
	// completes (required).
	Service *service
	// Handoff is the ticket machinery (required).
	Handoff *handoff
	// Verify is e-mail verification (verifier.go). Nil: the verification
	// link answers 404.
	Verify *verifier
	// Log receives failures and panics, never a token or a ticket. Nil
	// discards.
	Log *slog.Logger
	// TrustedProxies are the prefixes whose X-Forwarded-For and
	// X-Forwarded-Proto are believed (public.trusted_proxies).
	TrustedProxies []netip.Prefix
}

// public is the browser-facing listener: the endpoints of docs/handoff.md
// under <site path>ussync/v1/, and GET /healthz. Every answer carries the
// security headers (securityHeaders); every error is JSON
// {"error":{"code","message"}}. It is safe for concurrent use.
type public struct {
	svc      *service
	h        *handoff
	verifier *verifier
	trusted  []netip.Prefix
	log      *slog.Logger
	// base is the decoded path every endpoint sits under: the site's path
	// and "ussync/v1/". A site at https://example.com/blog/ answers
	// /blog/ussync/v1/sync and nothing else, so sites sharing a host in
	// sub-folders each have their own endpoints and cookies.
	base   string
	routes map[string]publicRoute // by the path after base
}

// publicRoute is one public endpoint.
type publicRoute struct {
	label   string   // for logs: "GET /ussync/v1/sync"
	methods []string // accepted methods; nil: any
	// preflight lists the methods a CORS preflight (OPTIONS) from a member
	// origin is granted; "": no preflight.
	preflight string
	serve     func(http.ResponseWriter, *http.Request, *publicReq) error
}

// publicReq is what every public handler needs to know about its request.
type publicReq struct {
	sites  []site // the live member sites, this one first
	client clientAddr
}

// newPublic returns the public listener's handler.
func newPublic(d publicDeps) (http.Handler, error) {
	if d.Handoff == nil || d.Service == nil {
		return nil, errors.New("public listener: no hand-off or no service")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	p := &public{
		svc:      d.Service,
		h:        d.Handoff,
		verifier: d.Verify,
		trusted:  d.TrustedProxies,
		log:      d.Log,
		base:     d.Handoff.self.URL.Path + publicPrefix,
	}
	get := []string{http.MethodGet}
	p.routes = map[string]publicRoute{
		"whoami": {methods: get, preflight: "GET", serve: p.whoami},
		"logout": {methods: []string{http.MethodPost}, preflight: "POST", serve: p.logout},
		"auth":   {serve: p.auth}, // forward-auth proxies may send the original method
		"verify": {methods: []string{http.MethodGet, http.MethodPost}, serve: p.verify},
	}
	for path := range steps {
		p.routes[path] = publicRoute{methods: get, serve: p.step(path)}
	}
	for path, rt := range p.routes {
		method := "*"
		if rt.methods != nil {
			method = strings.Join(rt.methods, ",")
		}
		rt.label = method + " /" + publicPrefix + path
		p.routes[path] = rt
	}
	return p, nil
}

// ServeHTTP sets the security headers, routes, answers errors as JSON and
// turns a handler's panic into a logged 500.
func (p *public) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pr := &publicReq{sites: p.h.sites(), client: clientOf(r, p.trusted)}
	securityHeaders(w.Header(), pr.sites)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			p.log.Error("public handler panic", "route", routeLabel(r), "method", r.Method,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			writeError(w, r, p.log, errInternal)
		}
	}()
	if r.URL.Path == "/healthz" || r.URL.Path == p.base+"healthz" { // the site check's, through the proxy
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			// A step page's probe that the browser preflights (an
			// extension or a proxy adds headers to every request).
			if err := healthPreflight(w, r, pr); err != nil {
				writeError(w, r, p.log, err)
			}
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, r, p.log, refuse(errMethodNotAllowed, "%s is not allowed here (Allow: GET, HEAD)", r.Method))
			return
		}
		// Readable by the member sites' pages: a step page probes the next
		// site here before it sends the browser there (step_onward.go).
		cors(w, r, pr)
		_ = writeJSON(w, http.StatusOK, publicHealth)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, p.base)
	rt, found := p.routes[rest]
	if !ok || !found {
		writeError(w, r, p.log, refuse(session.ErrNotFound, "no such endpoint (this site's are under %s)", p.base))
		return
	}
	r = r.WithContext(r.Context()) // a copy: the route label is ours to set
	r.Pattern = rt.label
	var err error
	switch {
	case r.Method == http.MethodOptions && rt.preflight != "":
		err = p.preflight(w, r, pr, rt.preflight)
	case rt.methods != nil && !slices.Contains(rt.methods, r.Method):
		allow := strings.Join(rt.methods, ", ")
		if rt.preflight != "" {
			allow += ", OPTIONS"
		}
		w.Header().Set("Allow", allow)
		err = refuse(errMethodNotAllowed, "%s is not allowed here (Allow: %s)", r.Method, allow)
	default:
		err = rt.serve(w, r, pr)
	}
	if err != nil {
		writeError(w, r, p.log, publicError(err))
	}
}

// publicError keeps the session view of a 410 answer off the public
// listener: the browser learns why, not the session's details.
func publicError(err error) error {
	if rf, ok := errors.AsType[*refusal](err); ok && rf.session != nil {
		c := *rf
		c.session = nil
		return &c
	}
	return err
}

// securityHeaders sets the headers every public answer carries: only member
// sites may frame it, nothing is sniffed or cached, and no referrer leaves
// (tickets sit in URLs).
func securityHeaders(h http.Header, sites []site) {
	var b strings.Builder
	b.WriteString("default-src 'none'; frame-ancestors")
	for i, s := range sites {
		dup := false
		for _, o := range sites[:i] {
			dup = dup || o.Origin == s.Origin
		}
		if !dup {
			b.WriteString(" ")
			b.WriteString(s.Origin)
		}
	}
	h.Set("Content-Security-Policy", b.String())
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// step serves the browser step path (browser.go) as HTTP: the query and
// the cookies in, the cookies, the refusal header and a 303 or 204 out.
func (p *public) step(path string) func(http.ResponseWriter, *http.Request, *publicReq) error {
	return func(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
		res, err := p.h.runStep(path, r.URL.RawQuery, browserOf(r, pr.client), pr.sites)
		if err != nil {
			if wantsHTML(r) {
				p.writeStepRefusal(w, r, publicError(err))
				return nil
			}
			return err
		}
		if wantsHTML(r) && p.h.stepPageNeeded(r.Context(), &res) {
			return p.writeStepOnward(w, &res)
		}
		for _, c := range res.Cookies {
			http.SetCookie(w, c)
		}
		if res.Refused != "" {
			w.Header().Set(refusedHeader, res.Refused)
		}
		if res.Redeemed != nil {
			w.Header().Set(wasBoundHeader, strconv.FormatBool(res.Redeemed.WasBound))
		}
		if res.Location != "" {
			w.Header().Set("Location", res.Location)
		}
		w.WriteHeader(res.Status)
		return nil
	}
}

// sessions returns the active sessions of the request's session cookies.
func (p *public) sessions(r *http.Request, pr *publicReq) ([]browserSession, error) {
	return p.h.browserSessions(browserOf(r, pr.client))
}

// cors sets the CORS answer headers: the Origin is echoed, with
// credentials, only when it is a member site's.
func cors(w http.ResponseWriter, r *http.Request, pr *publicReq) {
	h := w.Header()
	h.Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); memberOrigin(pr.sites, o) {
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// allowMemberOrigin starts a CORS answer: it varies on Origin, and grants
// the request's origin when it is a member site's (refused, 403 csrf,
// otherwise). It returns the headers to add the rest to.
func allowMemberOrigin(w http.ResponseWriter, r *http.Request, pr *publicReq) (http.Header, error) {
	h := w.Header()
	h.Add("Vary", "Origin")
	o := r.Header.Get("Origin")
	if !memberOrigin(pr.sites, o) {
		return nil, refuse(errCSRF, "the origin is not a member site")
	}
	h.Set("Access-Control-Allow-Origin", o)
	return h, nil
}

// preflight answers a CORS preflight: granted (204) to a member origin,
// refused (403 csrf) to any other.
func (p *public) preflight(w http.ResponseWriter, r *http.Request, pr *publicReq, methods string) error {
	h, err := allowMemberOrigin(w, r, pr)
	if err != nil {
		return err
	}
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", methods)
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// healthPreflight answers a CORS preflight of the health URL: granted
// (204) to a member origin, for GET and HEAD, with whatever request headers
// the browser asks for (the answer is public and takes no credentials);
// refused (403 csrf) to any other origin.
func healthPreflight(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	h, err := allowMemberOrigin(w, r, pr)
	if err != nil {
		return err
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && len(req) <= 1024 && headerList(req) {
		h.Set("Access-Control-Allow-Headers", req)
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// headerList reports whether s is a comma-separated list of header names
// (RFC 9110 tokens), safe to echo.
func headerList(s string) bool {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return false
		}
		for i := 0; i < len(f); i++ {
			c := f[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
				return false
			}
		}
	}
	return true
}

type whoamiAnswer struct {
	Email       string             `json:"email"`
	Login       string             `json:"login"`
	DisplayName string             `json:"display_name"`
	Session     client.SessionInfo `json:"session"`
}

// whoami is GET /ussync/v1/whoami: who the browser is on this site.
func (p *public) whoami(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	cors(w, r, pr)
	held, err := p.sessions(r, pr)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return ErrNoSession
	}
	bs := held[0]
	ans := whoamiAnswer{Email: bs.Session.Email, Login: bs.User.Login.V, DisplayName: bs.User.DisplayName.V}
	ans.Session, _ = p.svc.view(&bs.Session, &bs.User, p.svc.now())
	return writeJSON(w, http.StatusOK, &ans)
}

// fromMember reports whether a state-changing request comes from a member
// site's page: its Origin, or without one its Referer, is a member origin.
func fromMember(r *http.Request, sites []site) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return memberOrigin(sites, o)
	}
	ref := r.Header.Get("Referer")
	if ref == "" {
		return false
	}
	u, err := url.Parse(ref)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	return memberOrigin(sites, originOf(u))
}

// logout is POST /ussync/v1/logout[?everywhere=1]: end every active
// session the browser's cookies on this site hold (or all of their users'
// sessions), on every site, and clear the cookies. A browser may hold
// several (nested site paths, a cookie from before the site moved to an
// https root): none is left alive behind a logout.
func (p *public) logout(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	cors(w, r, pr)
	if !fromMember(r, pr.sites) {
		return refuse(errCSRF, "a logout must come from a member site's page (Origin or Referer)")
	}
	q, err := queryParams(r, "everywhere")
	if err != nil {
		return err
	}
	everywhere := false
	switch q["everywhere"] {
	case "", "0", "false":
	case "1", "true":
		everywhere = true
	default:
		return refuse(errInvalidField, "query parameter \"everywhere\" must be 1 or 0")
	}
	held, err := p.sessions(r, pr)
	if err != nil {
		return err
	}
	n := 0
	done := map[string]bool{}
	for _, bs := range held {
		switch {
		case everywhere && !done[bs.Session.Email]:
			done[bs.Session.Email] = true
			k, err := p.svc.logoutEverywhere(bs.Session.Email)
			if err != nil {
				return err
			}
			n += k
		case !everywhere:
			_, ended, err := p.svc.end(bs.Session, bs.User, session.EndLogout)
			if err != nil {
				return err
			}
			if ended {
				n++
			}
		}
	}
	br := browserOf(r, pr.client)
	http.SetCookie(w, p.h.cookie(cookieSession, "", -1, http.SameSiteLaxMode, p.h.secure(br, false)))
	if !p.h.self.hostCookies() && len(r.CookiesNamed(hostPrefix+cookieSession)) > 0 {
		// A __Host- cookie of the same host is deleted only under its own
		// name; it can be deleted only over https.
		http.SetCookie(w, &http.Cookie{Name: hostPrefix + cookieSession, Path: "/", MaxAge: -1, Secure: true, HttpOnly: true})
	}
	return writeJSON(w, http.StatusOK, &struct {
		Ended int `json:"ended"`
	}{n})
}

// auth is /ussync/v1/auth, any method: forward-auth for reverse proxies.
// 200 with X-Ussync-Email and X-Ussync-Session when the cookie's session is
// active, else 401.
func (p *public) auth(w http.ResponseWriter, r *http.Request, pr *publicReq) error {
	held, err := p.sessions(r, pr)
	if err != nil {
		return err
	}
	if len(held) == 0 {
		return ErrNoSession
	}
	bs := held[0]
	h := w.Header()
	h.Set("X-Ussync-Email", bs.Session.Email)
	h.Set("X-Ussync-Session", bs.Session.ID)
	return writeJSON(w, http.StatusOK, &struct {
		Email   string `json:"email"`
		Session string `json:"session"`
	}{bs.Session.Email, bs.Session.ID})
}
