package node

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// Hand-off limits.
const (
	// maxRedirectBytes is the longest next/return/return_to URL accepted.
	maxRedirectBytes = 2048
	// sitesTTL is how long the parsed member list is reused: every public
	// request reads it (forward-auth, on every page view), and membership
	// changes take seconds to be noticed anyway.
	sitesTTL = time.Second
	// ticketKindHop marks a lazy-mode hop request (see ticketPayload).
	ticketKindHop = "hop"
	// ticketKindSession is the metric label of session tickets (their
	// payload has no kind).
	ticketKindSession = "session"
)

// Paths of the public endpoints, under <site path>.
const (
	publicPrefix = "ussync/v1/"
	pathSync     = publicPrefix + "sync"
	pathHopAsk   = publicPrefix + "hop/ask"
	pathHopDone  = publicPrefix + "hop/done"
)

// handoffConfig is what the ticket machinery needs; the node wires it.
type handoffConfig struct {
	// Keyring seals and opens tickets.
	Keyring *crypto.Keyring
	// Service performs the operations: the records a ticket carries are
	// accepted through it; its store keeps the replay cache and its clock
	// every expiry.
	Service *service
	// Name is this node's name: the Target of the tickets it accepts.
	Name string
	// SiteURL is this site's URL (site.url, validated).
	SiteURL string
	// TicketTTL is a ticket's lifetime (sync.ticket_ttl).
	TicketTTL time.Duration
	// BindIP binds the tickets this node seals to the client IP
	// (sync.bind_ip). Tickets bound by another node are checked whatever it
	// is.
	BindIP bool
	// HopInterval is the lifetime of the ussync_checked cookie
	// (sync.hop_interval).
	HopInterval time.Duration
	// Members lists the live members, this node included (gossip's
	// LiveMembers): the member list is the list of sites. Nil: this site
	// alone.
	Members func() []gossip.Member
	// Log receives refusals and failures, never a token or a ticket. Nil
	// discards.
	Log *slog.Logger
	// Metrics receives the hand-off counters. Nil makes a private set.
	Metrics *Metrics
	// Modes are the hand-off modes this site offers (sync.modes): a login
	// answer holds a chain only with "chain", sync URLs only with "iframe",
	// and neither with "lazy" alone. Nil offers chain and iframe both.
	Modes []string
	// OnUnknownUser is site.on_unknown_user: redeeming a ticket for a user
	// this site does not know creates it ("create", the default when empty)
	// or is refused ("reject"). See siteUsers.
	OnUnknownUser string
}

// handoff is the browser hand-off shared by the private API (login links,
// POST /v1/tickets/redeem) and the public listener. It is safe for
// concurrent use.
type handoff struct {
	handoffConfig
	self  site
	cache atomic.Pointer[siteList] // the last sites(), for sitesTTL

	issued   *prometheus.CounterVec // ussync_tickets_issued_total{kind}
	redeemed *prometheus.CounterVec // ussync_tickets_redeemed_total{result}
}

// newHandoff checks cfg and registers the hand-off metrics.
func newHandoff(cfg handoffConfig) (*handoff, error) {
	if cfg.Keyring == nil || cfg.Service == nil {
		return nil, errors.New("hand-off: keyring and service are required")
	}
	if cfg.TicketTTL <= 0 {
		cfg.TicketTTL = time.Minute
	}
	if cfg.HopInterval <= 0 {
		cfg.HopInterval = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	self, ok := parseSite(cfg.Name, cfg.SiteURL)
	if !ok {
		return nil, fmt.Errorf("hand-off: site url %q is not an absolute http(s) URL ending in /", cfg.SiteURL)
	}
	h := &handoff{handoffConfig: cfg, self: self}
	h.issued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_tickets_issued_total",
		Help: `Hand-off tickets sealed by this node, by kind ("session" for a browser's session, "hop" for a lazy-mode request).`,
	}, []string{"kind"})
	h.redeemed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_tickets_redeemed_total",
		Help: `Tickets presented to this node, by result: "ok" or the refusal's error code.`,
	}, []string{"result"})
	h.issued.WithLabelValues("session")
	h.redeemed.WithLabelValues("ok")
	cfg.Metrics.Registry.MustRegister(h.issued, h.redeemed)
	return h, nil
}

func (h *handoff) now() time.Time { return h.Service.now() }

// site is one member site: a node name and its parsed site URL.
type site struct {
	Name string
	URL  *url.URL // absolute http(s), path ending in "/"
	// Origin is scheme://host[:port] in lower case, without a default port:
	// what browsers send in Origin.
	Origin string
}

// parseSite parses a member's advertised site URL; a URL that is not
// absolute http(s) with a path ending in "/" is no site.
func parseSite(name, raw string) (site, bool) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasSuffix(u.Path, "/") ||
		!cleanPath(u) || !plainHost(u.Hostname()) {
		return site{}, false
	}
	return site{Name: name, URL: u, Origin: originOf(u)}, true
}

// plainHost reports whether h is an IP address or a DNS name of letters,
// digits, '-', '_' and '.': what may go into an origin, a CSP source and a
// Location header as is.
func plainHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// originOf is u's origin as a browser serializes it.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" && !(scheme == "http" && p == "80") && !(scheme == "https" && p == "443") {
		host += ":" + p
	}
	return scheme + "://" + host
}

// contains reports whether u is this site's URL or under it: same origin,
// and a path inside the site's path (a site at /blog/ contains /blog and
// /blog/x, not /blogx).
func (s site) contains(u *url.URL) bool {
	if originOf(u) != s.Origin {
		return false
	}
	p := u.Path
	if p == "" {
		p = "/"
	}
	return strings.HasPrefix(p, s.URL.Path) || p+"/" == s.URL.Path
}

// link is the URL of one of the site's public endpoints with a query.
func (s site) link(path string, q url.Values) string {
	return s.URL.String() + path + "?" + q.Encode()
}

// https reports whether the site is served over https.
func (s site) https() bool { return s.URL.Scheme == "https" }

// localhost reports whether the site's host is one browsers treat as a
// secure context over plain http (localhost, *.localhost, loopback).
func (s site) localhost() bool {
	h := strings.ToLower(s.URL.Hostname())
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || h == "127.0.0.1" || h == "::1"
}

// siteList is a member list read at a time (wall clock, not the store's).
type siteList struct {
	at    time.Time
	sites []site
}

// sites lists the live member sites, this one first, then the others by
// name, as they were at most sitesTTL ago. A member with an unusable site
// URL is left out (it cannot be redirected to); this site is always in, even
// before gossip has started. The slice is shared: read it, never change it.
func (h *handoff) sites() []site {
	now := time.Now()
	if l := h.cache.Load(); l != nil && now.Sub(l.at) < sitesTTL && !now.Before(l.at) {
		return l.sites
	}
	l := &siteList{at: now, sites: h.loadSites()}
	h.cache.Store(l)
	return l.sites
}

func (h *handoff) loadSites() []site {
	out := []site{h.self}
	if h.Members == nil {
		return out
	}
	for _, m := range h.Members() {
		if m.Name == h.Name {
			continue
		}
		if s, ok := parseSite(m.Name, m.SiteURL); ok {
			out = append(out, s)
		}
	}
	return out
}

// siteNamed returns the member site of the node name.
func siteNamed(sites []site, name string) (site, bool) {
	for _, s := range sites {
		if s.Name == name {
			return s, true
		}
	}
	return site{}, false
}

// memberOrigin reports whether origin (an Origin header) is a member site's.
func memberOrigin(sites []site, origin string) bool {
	if origin == "" {
		return false
	}
	o := strings.ToLower(origin)
	for _, s := range sites {
		if s.Origin == o {
			return true
		}
	}
	return false
}

// parseRedirect parses a URL given as a redirect target (next, return,
// return_to). It must be absolute http(s), with no user info, no backslash,
// no control character and no dot segment or encoded slash or dot in its
// path, so that what is checked is what a browser will load.
func parseRedirect(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("empty")
	}
	if len(raw) > maxRedirectBytes {
		return nil, fmt.Errorf("longer than %d bytes", maxRedirectBytes)
	}
	if strings.ContainsAny(raw, "\\\t\r\n ") {
		return nil, errors.New("holds a backslash or white space")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("not an absolute http(s) URL")
	}
	if u.User != nil {
		return nil, errors.New("holds a user name")
	}
	if !cleanPath(u) {
		return nil, errors.New("its path has dot segments or encoded slashes")
	}
	return u, nil
}

// cleanPath reports whether u's path has no "." or ".." segment and no
// encoded '/', '\' or '.' that a server or browser might decode later.
func cleanPath(u *url.URL) bool {
	for seg := range strings.SplitSeq(u.Path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	ep := strings.ToLower(u.EscapedPath())
	return !strings.Contains(ep, "%2f") && !strings.Contains(ep, "%5c") && !strings.Contains(ep, "%2e")
}

func errBadRedirect(what, why string) error {
	return refuse(ErrBadRedirect, "%s %s", what, why)
}

// memberRedirect checks that raw is a URL under a member site's URL and
// returns it parsed; otherwise a 400 bad_redirect naming what (a parameter).
func memberRedirect(sites []site, what, raw string) (*url.URL, error) {
	u, err := parseRedirect(raw)
	if err != nil {
		return nil, errBadRedirect(what, "is not a usable URL: "+err.Error())
	}
	for _, s := range sites {
		if s.contains(u) {
			return u, nil
		}
	}
	return nil, errBadRedirect(what, "is not under a member site's URL")
}

// selfRedirect is memberRedirect restricted to this site.
func (h *handoff) selfRedirect(what, raw string) (*url.URL, error) {
	u, err := parseRedirect(raw)
	if err != nil {
		return nil, errBadRedirect(what, "is not a usable URL: "+err.Error())
	}
	if !h.self.contains(u) {
		return nil, errBadRedirect(what, "is not under this site's URL "+h.self.URL.String())
	}
	return u, nil
}

// ticketPayload is the Payload of the tickets nodes seal. A session ticket
// carries the session and user records (the target merges them, so it needs
// no gossip first; the session's id is left out, the ticket's SessionID is
// it); a hop request (Kind "hop") carries the page to come back to and the
// sites to ask. Unknown fields are ignored.
//
// Encoding: JSON, or, when the JSON is over deflateAbove bytes,
// payloadDeflate followed by the JSON compressed with DEFLATE. A typical
// payload (400-600 bytes) is left plain: a login seals one chain ticket,
// whatever the number of sites, so the 150 or so characters DEFLATE would
// save appear once in a URL, while compressing cost a login about 13 µs,
// more than sealing. A long one (a user agent full of escapes) is
// compressed, to stay under crypto.MaxTicketBytes.
type ticketPayload struct {
	Kind    string           `json:"k,omitempty"`
	Session *session.Session `json:"s,omitempty"`
	User    *session.User    `json:"u,omitempty"`
	Return  string           `json:"r,omitempty"`
	Ask     []string         `json:"a,omitempty"`
}

const (
	// payloadDeflate is the first byte of a compressed payload (JSON starts
	// with '{').
	payloadDeflate = 0x01
	// deflateAbove is the longest payload JSON left uncompressed.
	deflateAbove = 1024
	// maxPayloadBytes bounds an inflated payload: a ticket is at most
	// crypto.MaxTicketBytes, so anything larger is not one of ours.
	maxPayloadBytes = 16 << 10
)

var (
	deflaters = sync.Pool{New: func() any {
		// BestSpeed: 5% larger than the default level on a typical payload,
		// and much cheaper to reset for each ticket.
		w, _ := flate.NewWriter(nil, flate.BestSpeed) // only fails for a bad level
		return w
	}}
	inflaters sync.Pool // of io.ReadCloser that are flate.Resetter
)

func encodePayload(p *ticketPayload) ([]byte, error) {
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false) // shorter; the payload is sealed, never rendered
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("encode ticket payload: %w", err)
	}
	plain := bytes.TrimSuffix(js.Bytes(), []byte("\n"))
	if len(plain) <= deflateAbove {
		return plain, nil
	}
	var out bytes.Buffer
	out.Grow(len(plain)/2 + 16)
	out.WriteByte(payloadDeflate)
	w := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(w)
	w.Reset(&out)
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("compress ticket payload: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compress ticket payload: %w", err)
	}
	return out.Bytes(), nil
}

// decodePayload decodes a payload written by encodePayload (or plain JSON).
func decodePayload(b []byte, p *ticketPayload) error {
	if len(b) == 0 {
		return errors.New("empty payload")
	}
	if b[0] == payloadDeflate {
		var r io.ReadCloser
		if v := inflaters.Get(); v != nil {
			r = v.(io.ReadCloser)
			if err := r.(flate.Resetter).Reset(bytes.NewReader(b[1:]), nil); err != nil {
				return fmt.Errorf("inflate payload: %w", err)
			}
		} else {
			r = flate.NewReader(bytes.NewReader(b[1:]))
		}
		js, err := io.ReadAll(io.LimitReader(r, maxPayloadBytes+1))
		inflaters.Put(r)
		if err != nil {
			return fmt.Errorf("inflate payload: %w", err)
		}
		if len(js) > maxPayloadBytes {
			return fmt.Errorf("payload over %d bytes", maxPayloadBytes)
		}
		b = js
	}
	return json.Unmarshal(b, p)
}

// clientBinding is the ClientIP a ticket sealed for this client gets: its
// address (IPv4-mapped IPv6 as IPv4) when sync.bind_ip is on, else none.
func (h *handoff) clientBinding(ip string) string {
	if !h.BindIP {
		return ""
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ip
}

// sealSession seals a ticket that hands session s (token, user u) to the
// node target. clientIP is bound as is (see clientBinding).
func (h *handoff) sealSession(target string, s *session.Session, u *session.User, token, clientIP string) (string, error) {
	payload, err := sessionPayload(s, u)
	if err != nil {
		return "", err
	}
	return h.seal(ticketKindSession, crypto.Ticket{Target: target, SessionID: s.ID, Token: token, ClientIP: clientIP, Payload: payload})
}

// sessionPayload is the ticket payload of a session and its user: encoded
// once per login, however many tickets carry it.
func sessionPayload(s *session.Session, u *session.User) ([]byte, error) {
	if s.Local {
		return nil, errors.New("seal ticket: the session stays on its own site")
	}
	bare := *s
	bare.ID = "" // the ticket's SessionID
	p := ticketPayload{Session: &bare}
	if u != nil && u.Email == s.Email {
		p.User = u
	}
	return encodePayload(&p)
}

// seal stamps t with this node's clock and sync.ticket_ttl, seals it and
// counts it under kind.
func (h *handoff) seal(kind string, t crypto.Ticket) (string, error) {
	t.IssuedAt = h.now()
	t.ExpiresAt = t.IssuedAt.Add(h.TicketTTL)
	tk, err := h.Keyring.SealTicket(t)
	if err != nil {
		return "", err
	}
	h.issued.WithLabelValues(kind).Inc()
	return tk, nil
}

// sealHop seals a lazy-mode hop request: a ticket for this node that
// carries the page to come back to and the names of the sites to ask.
func (h *handoff) sealHop(ret string, ask []string, clientIP string) (string, error) {
	payload, err := encodePayload(&ticketPayload{Kind: ticketKindHop, Return: ret, Ask: ask})
	if err != nil {
		return "", err
	}
	return h.seal(ticketKindHop, crypto.Ticket{Target: h.Name, ClientIP: clientIP, Payload: payload})
}

// syncLink is the sync URL of ticket on site s, with the page to end on
// (optional).
func syncLink(s site, ticket string, next string) string {
	q := url.Values{"t": {ticket}}
	if next != "" {
		q.Set("next", next)
	}
	return s.link(pathSync, q)
}

// returnTo checks a login's return_to (default: this site's URL).
func (h *handoff) returnTo(raw string) (string, error) {
	if raw == "" {
		return h.self.URL.String(), nil
	}
	u, err := h.selfRedirect(`field "return_to"`, raw)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// loginSync builds the hand-off links of a new session: one sync URL per
// other live member site (for iframes), each with a ticket for that site,
// and one chain through all of them that ends on ret, with one chain ticket
// whose route is those sites. With no other site, both are empty.
func (h *handoff) loginSync(s *session.Session, u *session.User, token, clientIP, ret string) ([]client.SyncURL, string, error) {
	urls := []client.SyncURL{}
	others := h.sites()[1:]
	chain, iframe := h.offers(client.ModeChain), h.offers(client.ModeIframe)
	if len(others) == 0 || (!chain && !iframe) {
		return urls, "", nil
	}
	bind := h.clientBinding(clientIP)
	payload, err := sessionPayload(s, u)
	if err != nil {
		return []client.SyncURL{}, "", err
	}
	// Every ticket minted is a credential in flight: mint no more than the
	// modes can use. An iframe's ticket is good on its own site only.
	ticket := crypto.Ticket{SessionID: s.ID, Token: token, ClientIP: bind, Payload: payload}
	if iframe {
		for _, o := range others {
			ticket.Target = o.Name
			tk, err := h.seal(ticketKindSession, ticket)
			if err != nil {
				return []client.SyncURL{}, "", err
			}
			urls = append(urls, client.SyncURL{Site: o.Name, URL: syncLink(o, tk, "")})
		}
	}
	if !chain {
		return urls, "", nil
	}
	ticket.Target, ticket.Route = "", make([]string, len(others))
	for i, o := range others {
		ticket.Route[i] = o.Name
	}
	tk, err := h.seal(ticketKindSession, ticket)
	if err != nil {
		return []client.SyncURL{}, "", err
	}
	return urls, syncLink(others[0], tk, ret), nil
}

// offers reports whether this site offers a hand-off mode.
func (h *handoff) offers(mode string) bool {
	return h.Modes == nil || slices.Contains(h.Modes, mode)
}

// chainNext is where a chain goes after this hop: the sync URL, with the
// same ticket and next, of the first site of rest (the route after this
// site) that is a live member. A site that is not is skipped (it is missed,
// the user is not stranded). It returns "" when no site is left.
func (h *handoff) chainNext(sites []site, ticket string, rest []string, next string) string {
	for _, name := range rest {
		s, ok := siteNamed(sites, name)
		if !ok || s.Name == h.Name {
			h.Log.Info("chain: skipping a site that is not a live member", "site", name)
			continue
		}
		return syncLink(s, ticket, next)
	}
	return ""
}

// openHop opens a hop request presented by the client at clientIP: a
// ticket of kind hop, unexpired, matching its IP binding. Its Target is the
// asking site.
func (h *handoff) openHop(raw, clientIP string) (crypto.Ticket, ticketPayload, error) {
	var p ticketPayload
	t, err := h.Keyring.OpenTicket(raw, h.now())
	if err != nil {
		return t, p, ticketError(err)
	}
	if err := decodePayload(t.Payload, &p); err != nil || p.Kind != ticketKindHop {
		return t, p, refuse(crypto.ErrTicketMalformed, "not a hop request")
	}
	if t.ClientIP != "" && !sameIP(t.ClientIP, clientIP) {
		return t, p, refuse(ErrTicketIPMismatch, "the hop request is bound to another client address")
	}
	return t, p, nil
}
