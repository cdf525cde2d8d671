package node

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// The tickets a node seals and opens: their payload, the login's hand-off
// links, the chain's next hop and the lazy mode's hop requests.

// ticketPayload is the Payload of the tickets nodes seal. A session ticket
// carries the session and user records (the target merges them, so it needs
// no gossip first; the session's id is left out, the ticket's SessionID is
// it; the user without its per-site knowledge, User.WithoutSites); a hop
// request (Kind "hop") carries the page to come back to and the sites to
// ask; a bind state (Kind "bind", the first pass of a chain) carries the
// route, each site's commitment as it is written, and the page to come back
// to. Unknown fields are ignored.
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
	// Route and Bound are a bind state's: the sites of the chain, in order,
	// and each one's commitment (crypto.Binding.String), "" until the
	// browser has been there. Origin is the commitment of the nonce the
	// origin set when the state started there (an iframe's hand-off):
	// "" for a chain, whose origin checks its session cookie instead.
	Route  []string `json:"o,omitempty"`
	Bound  []string `json:"b,omitempty"`
	Origin string   `json:"g,omitempty"`
	// After is set on a bind state when the hand-off is split into legs
	// (a chain through every site would not fit in a URL): the member
	// sites whose names sort after it are still to be visited, by the
	// next leg. On a leg's state, it is the last site of the route; on a
	// continuation (no route: presented to the origin's bind step when a
	// leg comes back), where the next leg starts.
	After string `json:"n,omitempty"`
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
	if !h.policy().BindIP {
		return ""
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return ip
}

// sealSession seals a ticket that hands session s (user u) to the node
// target, bound to the browser whose nonce there commits to bind.
// clientIP is bound as is (see clientBinding). The ticket carries no token:
// the target mints its own.
func (h *handoff) sealSession(target string, s *session.Session, u *session.User, bind crypto.Binding, clientIP string) (string, error) {
	payload, err := sessionPayload(s, u)
	if err != nil {
		return "", err
	}
	return h.seal(ticketKindSession, crypto.Ticket{Target: target, Bindings: []crypto.Binding{bind},
		SessionID: s.ID, ClientIP: clientIP, Payload: payload})
}

// sealChain seals the chain ticket of a bound chain: one ticket for the
// route, bound on each of its sites to the browser's nonce there (binds,
// in the route's order).
func (h *handoff) sealChain(route []string, binds []crypto.Binding, s *session.Session, u *session.User, clientIP string) (string, error) {
	payload, err := sessionPayload(s, u)
	if err != nil {
		return "", err
	}
	return h.seal(ticketKindSession, crypto.Ticket{Route: route, Bindings: binds,
		SessionID: s.ID, ClientIP: clientIP, Payload: payload})
}

// sessionPayload is the ticket payload of a session and its user, the user
// without its per-site knowledge (the target records its own binding; the
// rest reaches it by gossip): encoded once per ticket.
func sessionPayload(s *session.Session, u *session.User) ([]byte, error) {
	if s.Local {
		return nil, errors.New("seal ticket: the session stays on its own site")
	}
	bare := *s
	bare.ID = "" // the ticket's SessionID
	p := ticketPayload{Session: &bare}
	if u != nil && u.Email == s.Email {
		w := u.WithoutSites()
		p.User = &w
	}
	return encodePayload(&p)
}

// seal stamps t with this node's clock and sync.ticket_ttl, seals it and
// counts it under kind.
func (h *handoff) seal(kind string, t crypto.Ticket) (string, error) {
	t.IssuedAt = h.now()
	t.ExpiresAt = t.IssuedAt.Add(h.policy().TicketTTL)
	tk, err := h.Keyring.SealTicket(t)
	if err != nil {
		return "", err
	}
	h.issued.WithLabelValues(kind).Inc()
	return tk, nil
}

// sealHop seals a lazy-mode hop request: a ticket for this node that
// carries the page to come back to and the names of the sites to ask, and
// the commitment of the browser's nonce here (the ticket an asked site
// makes for this one is bound to it).
func (h *handoff) sealHop(ret string, ask []string, bind crypto.Binding, clientIP string) (string, error) {
	payload, err := encodePayload(&ticketPayload{Kind: ticketKindHop, Return: ret, Ask: ask})
	if err != nil {
		return "", err
	}
	return h.seal(ticketKindHop, crypto.Ticket{Target: h.Name, Bindings: []crypto.Binding{bind}, ClientIP: clientIP, Payload: payload})
}

// sealBindState seals the bind state of a new chain through route for
// session sid, that ends on ret ("" for an iframe's): a ticket whose Target
// is this node (the chain comes back here between its passes). It carries
// no session: it is no credential, only the route and, as the browser
// goes, each site's commitment. after, when not "", says the hand-off goes
// on after this leg with the sites named after it (ticketPayload.After);
// with no route, the state is a continuation that starts the next leg.
func (h *handoff) sealBindState(route []string, ret, sid, clientIP, after string) (string, error) {
	payload, err := encodePayload(&ticketPayload{Kind: ticketKindBind, Route: route, Bound: make([]string, len(route)), Return: ret, After: after})
	if err != nil {
		return "", err
	}
	return h.seal(ticketKindBind, crypto.Ticket{Target: h.Name, SessionID: sid, ClientIP: clientIP, Payload: payload})
}

// resealBindState seals t again with the bind state p: same id, target,
// session, client binding and times (a site of the route cannot extend its
// life).
func (h *handoff) resealBindState(t crypto.Ticket, p *ticketPayload) (string, error) {
	payload, err := encodePayload(p)
	if err != nil {
		return "", err
	}
	t.Payload = payload
	return h.Keyring.SealTicket(t)
}

// syncLink is the sync URL of ticket on site s, with the page to end on
// (optional), in an iframe or not.
func syncLink(s site, ticket string, next string, iframe bool) string {
	q := url.Values{"t": {ticket}}
	if next != "" {
		q.Set("next", next)
	}
	return s.link(pathSync, withMode(q, iframe))
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

// loginSync builds the hand-off links of a new session s: one chain through
// every other live member site known to be good (routeSites) that ends on
// ret, and one link per other
// site for the iframes. Each starts the first pass of a bound hand-off
// (bind, then chain, then sync: docs/handoff.md): what the login answer
// holds are bind states, no credential. Both start on this site: an
// iframe's, because its bind step checks the session cookie while the
// iframe is still same-site with the page, and sets a nonce the chain step
// checks after the cross-site hop; a chain's, so that even its first hop
// to another site is made by a step page that skips a site that died since
// (step_onward.go). A chain that does not fit in a URL goes in legs
// (sealLeg). With no other site, both are empty.
func (h *handoff) loginSync(s *session.Session, clientIP, ret string) ([]client.SyncURL, string, error) {
	urls := []client.SyncURL{}
	others := h.routeSites()
	chain, iframe := h.offers(client.ModeChain), h.offers(client.ModeIframe)
	if len(others) == 0 || (!chain && !iframe) || s.Local {
		return urls, "", nil
	}
	bind := h.clientBinding(clientIP)
	if iframe {
		for _, o := range others {
			st, err := h.sealBindState([]string{o.Name}, "", s.ID, bind, "")
			if err != nil {
				return []client.SyncURL{}, "", err
			}
			urls = append(urls, client.SyncURL{Site: o.Name, URL: h.self.link(pathBind, url.Values{"h": {st}})})
		}
	}
	if !chain {
		return urls, "", nil
	}
	route := make([]string, len(others))
	for i, o := range others {
		route[i] = o.Name
	}
	slices.Sort(route) // legs go on by name (ticketPayload.After)
	st, err := h.sealLeg(route, ret, s, bind)
	if err != nil {
		return []client.SyncURL{}, "", err
	}
	// The chain starts on this site's own bind step: the browser is
	// here, so the first hop to another site is made by a step page that
	// can skip it when it has died since (step_onward.go).
	return urls, h.self.link(pathBind, url.Values{"h": {st}}), nil
}

// sealLeg seals the bind state of the first leg of a chain through route
// (names, in order) for session s, ending on ret: the whole route when it
// fits in a ticket (chainFits), else its longest prefix that does, the
// state saying the hand-off goes on after it (docs/handoff.md, "Legs").
// crypto.ErrTicketTooLarge when not even one site fits: the session's own
// records are too large to travel.
func (h *handoff) sealLeg(route []string, ret string, s *session.Session, clientIP string) (string, error) {
	if len(route) == 0 {
		return "", errors.New("seal a leg: no site")
	}
	err := h.chainFits(route, ret, "", s)
	if err == nil {
		return h.sealBindState(route, ret, s.ID, clientIP, "")
	}
	if !errors.Is(err, crypto.ErrTicketTooLarge) {
		return "", err
	}
	// The longest prefix that fits, with the continuation's name (its
	// last) in it: sort.Search over the prefix lengths 1..len-1.
	n := sort.Search(len(route)-1, func(i int) bool {
		k := i + 1
		return h.chainFits(route[:k], ret, route[k-1], s) != nil
	})
	if n == 0 {
		return "", h.chainFits(route[:1], ret, route[0], s)
	}
	leg := route[:n]
	h.legs.Inc()
	return h.sealBindState(leg, ret, s.ID, clientIP, leg[n-1])
}

// chainFits checks, before a chain is offered, that what its browser will
// carry fits in a ticket at its largest: the bind state once every site of
// route wrote its commitment (with after, ticketPayload.After), and the
// chain ticket the origin seals then. A chain that could not be completed
// would strand the browser half-way; crypto.ErrTicketTooLarge says it is
// not offered whole.
func (h *handoff) chainFits(route []string, ret, after string, s *session.Session) error {
	var b crypto.Binding
	for i := range b {
		b[i] = byte(i*37 + 11) // as incompressible as a real commitment
	}
	full := ticketPayload{Kind: ticketKindBind, Route: route, Bound: make([]string, len(route)), Return: ret, Origin: b.String(), After: after}
	binds := make([]crypto.Binding, len(route))
	for i := range route {
		b[0], b[1] = byte(i), byte(i>>8)
		full.Bound[i], binds[i] = b.String(), b
	}
	payload, err := encodePayload(&full)
	if err != nil {
		return err
	}
	now := h.now()
	trial := crypto.Ticket{Target: h.Name, SessionID: s.ID, ClientIP: s.IP, Payload: payload, IssuedAt: now, ExpiresAt: now.Add(h.TicketTTL)}
	if _, err := h.Keyring.SealTicket(trial); err != nil {
		return err
	}
	_, u, err := h.Service.session(s.ID)
	if err != nil {
		return err
	}
	if payload, err = sessionPayload(s, &u); err != nil {
		return err
	}
	trial = crypto.Ticket{Route: route, Bindings: binds, SessionID: s.ID, ClientIP: s.IP, Payload: payload, IssuedAt: now, ExpiresAt: now.Add(h.TicketTTL)}
	_, err = h.Keyring.SealTicket(trial)
	return err
}

// skippedAtLogin lists, and counts, the member sites a login's links
// leave out (routeSites): their site does not answer, or speaks an older
// hand-off.
func (h *handoff) skippedAtLogin() []string {
	l := h.siteList()
	if len(l.skipped) == 0 || (!h.offers(client.ModeChain) && !h.offers(client.ModeIframe)) {
		return nil
	}
	names := make([]string, 0, len(l.skipped))
	for name, why := range l.skipped {
		names = append(names, name)
		h.skipped.WithLabelValues(why).Inc()
	}
	slices.Sort(names)
	whys := make([]string, len(names))
	for i, name := range names {
		whys[i] = name + ":" + l.skipped[name]
	}
	h.Log.Info("login: hand-off links leave out sites a browser could not come back from", "sites", strings.Join(whys, ","))
	return names
}

// unavailableFor is the login answer's sync.error for a hand-off that could
// not be built for session sid: logged and counted, never silent.
func (h *handoff) unavailableFor(sid string, err error) *client.StepError {
	e := &client.StepError{Code: client.SyncFailed, Message: "the hand-off to the other sites could not be made; the user is logged in on this site only (the node's log says why)"}
	if errors.Is(err, crypto.ErrTicketTooLarge) {
		e = &client.StepError{Code: client.SyncTooLarge, Message: "the hand-off to the other sites does not fit in a URL, even one site at a time (the user's fields or a site's name too long); the user is logged in on this site only"}
	}
	h.unavailable.WithLabelValues(e.Code).Inc()
	h.Log.Error("login: no hand-off offered", "session", sid, "code", e.Code, "err", err)
	return e
}

// offers reports whether this site offers a hand-off mode.
func (h *handoff) offers(mode string) bool {
	modes := h.policy().Modes
	return modes == nil || slices.Contains(modes, mode)
}

// chainOnward is where a chain goes after this hop: the sync URL, with the
// same ticket and next, of each site of rest (the route after this site)
// that may be sent to now (routeOnward), then next. A site that may not is
// skipped (it is missed, the user is not stranded). Empty when neither is
// left.
func (h *handoff) chainOnward(sites []site, ticket string, rest []string, next string, iframe bool) []onward {
	// A chain an older node made names older sites: they have sync.
	on := h.routeOnward(sites, rest, func(s site) string { return syncLink(s, ticket, next, iframe) }, true)
	if next != "" {
		on = append(on, h.onwardURL(sites, next))
	}
	return on
}

// nextSite is the site name of a hand-off's route, when the browser may be
// sent there now: a live member other than this one, known to be good and
// speaking this node's hand-off (or, with older, an older one: mayVisit). A
// site that is not is skipped, logged and counted: it misses this hand-off
// (the next one, or lazy mode, brings the session there), the user is not
// stranded.
func (h *handoff) nextSite(sites []site, name string, older bool) (site, bool) {
	s, ok := siteNamed(sites, name)
	switch {
	case ok && s.Name == h.Name:
		return site{}, false
	case !ok:
		h.skip("not_live", name)
		return site{}, false
	}
	if why, ok := h.mayVisit(name, older); !ok {
		h.skip(why, name)
		return site{}, false
	}
	return s, true
}

// skip logs and counts a site left out of a hand-off for reason.
func (h *handoff) skip(reason, name string) {
	if reason == "" {
		reason = skipSiteStale
	}
	h.skipped.WithLabelValues(reason).Inc()
	h.Log.Info("hand-off: skipping a site the browser could not come back from", "site", name, "reason", reason)
}

// openHop opens a hop request presented by the client at clientIP: a
// ticket of kind hop, unexpired, bound to the asking site's nonce, matching
// its IP binding. Its Target is the asking site.
func (h *handoff) openHop(raw, clientIP string) (crypto.Ticket, ticketPayload, error) {
	var p ticketPayload
	t, err := h.Keyring.OpenTicketWithin(raw, h.now(), h.limits())
	if err != nil {
		return t, p, ticketError(err)
	}
	if err := decodePayload(t.Payload, &p); err != nil || p.Kind != ticketKindHop || len(t.Bindings) != 1 {
		return t, p, refuse(crypto.ErrTicketMalformed, "not a hop request")
	}
	if t.ClientIP != "" && !sameIP(t.ClientIP, clientIP) {
		return t, p, refuse(ErrTicketIPMismatch, "the hop request is bound to another client address")
	}
	return t, p, nil
}
