package node

import (
	"errors"
	"fmt"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// redemption is an accepted session ticket: the session and its user as
// this node now holds them, and the token to put in the cookie.
type redemption struct {
	TicketID string
	// Rest is the route of a chain ticket after this site: where the
	// browser goes next, whether or not the ticket was accepted here. It is
	// set once the ticket is known to name this site.
	Rest    []string
	Token   string
	Session session.Session
	User    session.User
	// NewUser: this site did not know the user before (or its backend has
	// not acknowledged it yet), under site.on_unknown_user: create.
	NewUser bool
}

// redeem checks a session ticket presented by the client at clientIP (""
// when unknown) and, when every check passes, records it as used: the
// ticket opens under the keyring, is not expired, names this node, matches
// its IP binding, carries a consistent session record, was not redeemed
// here before, and its session (merged with what this node holds) is
// active. Its refusals (crypto.ErrTicketMalformed, ErrTicketUnknownKey,
// ErrTicketTampered, ErrTicketExpired, ErrTicketNotYetValid;
// ErrTicketWrongTarget, ErrTicketIPMismatch, ErrTicketReplayed, ErrTicketBeforeStart,
// ErrUnknownUser; ErrSessionEnded, ErrSessionRevoked, ErrSessionExpired)
// are refusals whose messages say why; any other error is a store failure.
func (h *handoff) redeem(raw, clientIP string) (redemption, error) {
	rd, err := h.check(raw, clientIP)
	result := "ok"
	if err != nil {
		result = "error"
		if _, refused := errors.AsType[*refusal](err); refused {
			result = errorCode(err)
			h.Log.Info("ticket refused", "code", result, "ticket", rd.TicketID, "session", rd.Session.ID)
		}
	}
	h.redeemed.WithLabelValues(result).Inc()
	return rd, err
}

func (h *handoff) check(raw, clientIP string) (redemption, error) {
	now := h.now()
	t, err := h.Keyring.OpenTicket(raw, now)
	if err != nil {
		return redemption{}, ticketError(err)
	}
	rd := redemption{TicketID: t.ID}
	var p ticketPayload
	if err := decodePayload(t.Payload, &p); err != nil || p.Kind != "" || p.Session == nil {
		return rd, refuse(crypto.ErrTicketMalformed, "not a session ticket")
	}
	s := *p.Session
	s.ID = t.SessionID
	rd.Session.ID = t.SessionID
	at, ok := t.For(h.Name)
	if !ok {
		return rd, refuse(ErrTicketWrongTarget, "the ticket is for another site")
	}
	if len(t.Route) > 0 {
		rd.Rest = t.Route[at+1:]
	}
	if t.ClientIP != "" && !sameIP(t.ClientIP, clientIP) {
		return rd, refuse(ErrTicketIPMismatch, "the ticket is bound to another client address")
	}
	// An honest issuer never seals these; the checks keep a ticket from
	// planting a record under a session id its token does not hash to.
	if !crypto.ValidSessionID(t.SessionID) || !crypto.Equal(crypto.SessionID(t.Token), t.SessionID) ||
		s.Local || (session.Record{Session: &s}).Validate() != nil {
		return rd, refuse(crypto.ErrTicketMalformed, "the ticket's session record is inconsistent")
	}
	if h.OnUnknownUser == UnknownUserReject {
		// Checked before the ticket is used up: once the site knows the
		// user, the same ticket opens (within its lifetime).
		known, err := h.Service.users.known(s.Email, h.Name)
		if err != nil {
			return rd, err
		}
		if !known {
			return rd, refuse(ErrUnknownUser, "this site does not know the user (site.on_unknown_user: reject): they must register here first")
		}
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
	v, state := newSessionView(&rd.Session, &rd.User, now)
	if state != session.StateActive {
		return rd, errGone(state, &v)
	}
	if rd.NewUser, err = h.Service.users.redeemed(&rd.Session, h.Name); err != nil {
		return rd, err
	}
	rd.Token = t.Token
	return rd, nil
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
		msg = fmt.Sprintf("the ticket is issued in the future: the sites' clocks disagree by more than %s", crypto.MaxClockSkew)
	case !errors.Is(err, crypto.ErrTicketMalformed):
		err = fmt.Errorf("%w: %w", crypto.ErrTicketMalformed, err)
	}
	return &refusal{kind: err, msg: msg}
}
