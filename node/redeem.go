package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// redemption is an accepted session ticket: the session and its user as
// this node now holds them, and the token this site minted for the
// browser's cookie.
type redemption struct {
	TicketID string
	// Rest is the route of a chain ticket after this site: where the
	// browser goes next, whether or not the ticket was accepted here. It is
	// set once the ticket is known to name this site.
	Rest []string
	// Token is this site's own cookie token for the session (an alias: see
	// aliases.go), never the token of the login.
	Token   string
	Session session.Session
	User    session.User
	// NewUser: this site's backend has not said it has the user (User.
	// KnownTo), under site.on_unknown_user: create.
	NewUser bool
	// WasBound: this site was bound to the user's address before this
	// redemption (it proved the mailbox, or an earlier hand-off reached
	// it). A site that was not bound has never proven that whoever holds
	// a local account under the address owns the mailbox: the hand-off is
	// the first proof, and credentials set before it are not (see
	// docs/security.md, "Pre-existing local accounts").
	WasBound bool
}

// redeem checks a session ticket presented by browser br and, when every
// check passes, records it as used: the ticket opens under the keyring
// within the cluster's limits, names this node, matches its IP binding,
// is bound to this browser (its nonce cookie here matches the ticket's
// binding), carries consistent records the store accepts, would not replace
// another user's active session in this browser, names a user this site
// knows under site.on_unknown_user: reject, was not redeemed here before,
// and its session (merged with what this node holds) is active. Then this
// site is bound to the user's address (the user completed the hand-off)
// and a cookie token of this site's own is minted.
//
// Its refusals (crypto.ErrTicketMalformed, ErrTicketUnknownKey,
// ErrTicketTampered, ErrTicketExpired, ErrTicketNotYetValid,
// ErrTicketLifetime; ErrTicketWrongTarget, ErrTicketIPMismatch,
// ErrOtherBrowser, ErrSessionConflict, ErrUnknownUser, ErrSiteRevoked,
// ErrTicketReplayed, ErrTicketBeforeStart;
// session.ErrLifetime, session.ErrClockAhead; ErrSessionEnded,
// ErrSessionRevoked, ErrSessionExpired, ErrSessionSiteRevoked) are refusals whose messages say
// why; any other error is a store failure. Only the last four (the
// session is no longer active) use the ticket up: they are found after the
// ticket is marked used (Store.UseOnce); every other refusal leaves it
// unused.
func (h *handoff) redeem(raw string, br *browser) (redemption, error) {
	rd, err := h.check(raw, br)
	result := "ok"
	if err != nil {
		result = "error"
		if _, refused := errors.AsType[*refusal](err); refused {
			result = errorCode(err)
			// The reason says what the code alone does not (a ticket of an
			// earlier version's node is other_browser too); refusals'
			// messages never quote the ticket.
			h.Log.Info("ticket refused", "code", result, "reason", err.Error(), "ticket", rd.TicketID, "session", rd.Session.ID)
		}
	}
	h.redeemed.WithLabelValues(result).Inc()
	return rd, err
}

func (h *handoff) check(raw string, br *browser) (redemption, error) {
	t, p, rd, err := h.openSession(raw, br)
	if err != nil {
		return rd, err
	}
	s := *p.Session
	if err := h.mayRedeem(&t, &s, br); err != nil {
		return rd, err
	}
	if h.TicketGuard != nil {
		if err := h.TicketGuard(t.IssuedAt); err != nil {
			return rd, err
		}
	}
	first, err := h.Service.Store.UseOnce(t.ID, t.ExpiresAt)
	if err != nil {
		return rd, err
	}
	if !first {
		return rd, refuse(ErrTicketReplayed, "the ticket was already used here")
	}
	if rd.Session, rd.User, err = h.Service.acceptHandoff(s, p.User); err != nil {
		return rd, err
	}
	v, state := h.Service.view(&rd.Session, &rd.User, h.now())
	if state != session.StateActive {
		return rd, errGone(state, &v)
	}
	// The user's browser completed the hand-off: this site is bound.
	rd.WasBound = rd.User.BoundTo(h.Name)
	if rd.User, err = h.Service.bind(rd.User, &rd.Session); err != nil {
		return rd, err
	}
	if rd.Token, err = h.Service.aliases.mint(rd.Session.ID, time.UnixMilli(rd.Session.ExpiresAt)); err != nil {
		return rd, err
	}
	rd.NewUser = h.Service.newUser(&rd.User)
	return rd, nil
}

// openSession opens a session ticket presented by br and checks what it
// says of itself: within the cluster's limits, a session ticket, for this
// node (rd.Rest is then set), from br's address when bound to one, with a
// consistent session record (its id filled in) and records the store would
// accept.
func (h *handoff) openSession(raw string, br *browser) (crypto.Ticket, ticketPayload, redemption, error) {
	var p ticketPayload
	t, err := h.Keyring.OpenTicketWithin(raw, h.now(), h.limits())
	if err != nil {
		return t, p, redemption{}, ticketError(err)
	}
	rd := redemption{TicketID: t.ID}
	if err := decodePayload(t.Payload, &p); err != nil || p.Kind != "" || p.Session == nil {
		return t, p, rd, refuse(crypto.ErrTicketMalformed, "not a session ticket")
	}
	p.Session.ID = t.SessionID
	rd.Session.ID = t.SessionID
	at, ok := t.For(h.Name)
	if !ok {
		return t, p, rd, refuse(ErrTicketWrongTarget, "the ticket is for another site")
	}
	if len(t.Route) > 0 {
		rd.Rest = t.Route[at+1:]
	}
	if t.ClientIP != "" && !sameIP(t.ClientIP, br.client.String()) {
		return t, p, rd, refuse(ErrTicketIPMismatch, "the ticket is bound to another client address")
	}
	// An honest issuer never seals these; the checks keep a ticket from
	// planting a record this node would refuse from a peer.
	s := p.Session
	if !crypto.ValidSessionID(t.SessionID) || s.Local || (session.Record{Session: s}).Validate() != nil {
		return t, p, rd, refuse(crypto.ErrTicketMalformed, "the ticket's session record is inconsistent")
	}
	if err := h.Service.Store.Check(session.Record{Session: s}); err != nil {
		return t, p, rd, ticketRecordError(err)
	}
	if p.User != nil {
		if err := h.Service.Store.Check(session.Record{User: p.User}); err != nil {
			return t, p, rd, ticketRecordError(err)
		}
	}
	return t, p, rd, nil
}

// mayRedeem checks what the ticket t of session s asks of the browser br
// and of this site, before anything is used up (a ticket presented in the
// wrong browser stays good in the right one): br holds the nonce the
// ticket is bound to here; the ticket would not replace the active session
// of another user in br (defence in depth: never silently); the site knows
// the user under site.on_unknown_user: reject (once the site knows the
// user, the same ticket opens, within its lifetime).
func (h *handoff) mayRedeem(t *crypto.Ticket, s *session.Session, br *browser) error {
	at, _ := t.For(h.Name)
	if len(t.Bindings) == 0 {
		return refuse(ErrOtherBrowser, "the ticket is bound to no browser (a node of an earlier version sealed it): log in again")
	}
	if !h.holdsNonce(br, t.Bindings[at]) {
		return refuse(ErrOtherBrowser, "the ticket was issued to another browser: a hand-off only works in the browser that logged in")
	}
	// A revoked site is handed nothing, and what it minted is not taken.
	if err := h.Service.checkNotRevoked(); err != nil {
		return err
	}
	if h.Service.Store.Site(s.Site).IsRevoked() {
		return refuse(ErrSiteRevoked, "the ticket's session was created by site %s, which an administrator revoked", s.Site)
	}
	held, err := h.browserSessions(br)
	if err != nil {
		return err
	}
	for _, bs := range held {
		if bs.Session.Email != s.Email {
			return refuse(ErrSessionConflict, "this browser is logged in on this site as another user: log out here first, then log in again")
		}
	}
	if h.policy().OnUnknownUser == UnknownUserReject {
		u, _, err := h.Service.user(s.Email)
		if err != nil {
			return err
		}
		if !u.KnownTo(h.Name) {
			return refuse(ErrUnknownUser, "this site does not know the user (site.on_unknown_user: reject): they must register here first")
		}
	}
	return nil
}

// limits are the cluster's bounds on the hand-off tickets this node opens.
func (h *handoff) limits() crypto.TicketLimits {
	return crypto.TicketLimits{MaxLifetime: h.policy().TicketTTL, MaxOffset: h.MaxOffset}
}

// ticketError is the refusal of a ticket OpenTicket refused: its error
// (one of crypto's ticket sentinels), with words for people.
func ticketError(err error) error {
	msg := "not a ticket (" + err.Error() + ")" // crypto's messages never quote the input
	switch {
	case errors.Is(err, crypto.ErrTicketUnknownKey):
		msg = "the ticket was sealed under a secret this node does not hold"
	case errors.Is(err, crypto.ErrTicketTampered):
		msg = "the ticket failed authentication: it was altered or forged"
	case errors.Is(err, crypto.ErrTicketExpired):
		msg = "the ticket has expired"
	case errors.Is(err, crypto.ErrTicketNotYetValid):
		msg = "the ticket is issued in the future: the sites' clocks disagree by more than the cluster's max offset"
	case errors.Is(err, crypto.ErrTicketLifetime):
		msg = "the ticket lives longer than the cluster allows (a member sealed it against the cluster's limits)"
	case !errors.Is(err, crypto.ErrTicketMalformed):
		err = fmt.Errorf("%w: %w", crypto.ErrTicketMalformed, err)
	}
	return &refusal{kind: err, msg: msg}
}

// ticketRecordError is the refusal of a record a ticket carries that the
// store refuses (Store.Check): malformed, stamped ahead of this node's
// clock, or a session living longer than the cluster allows.
func ticketRecordError(err error) error {
	switch {
	case errors.Is(err, session.ErrClockAhead):
		return refuse(session.ErrClockAhead, "the ticket's records are stamped in the future: the sites' clocks disagree by more than the cluster's max offset")
	case errors.Is(err, session.ErrLifetime):
		return refuse(session.ErrLifetime, "the ticket's session lives longer than the cluster's maximum session TTL")
	}
	return refuse(crypto.ErrTicketMalformed, "the ticket's records are inconsistent")
}
