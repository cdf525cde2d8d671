package node

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/ussync/ussync/client"
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
// active. Refusals are *httpError with the codes of docs/handoff.md; any
// other error is a store failure.
func (h *handoff) redeem(raw, clientIP string) (redemption, error) {
	rd, err := h.check(raw, clientIP)
	result := "ok"
	if err != nil {
		result = "error"
		if he, ok := errors.AsType[*httpError](err); ok {
			result = he.Code
			h.Log.Info("ticket refused", "code", he.Code, "ticket", rd.TicketID, "session", rd.Session.ID)
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
		return rd, errorf(http.StatusBadRequest, client.CodeTicketMalformed, "not a session ticket")
	}
	s := *p.Session
	s.ID = t.SessionID
	rd.Session.ID = t.SessionID
	at, ok := t.For(h.Name)
	if !ok {
		return rd, errorf(http.StatusForbidden, client.CodeTicketWrongTarget, "the ticket is for another site")
	}
	if len(t.Route) > 0 {
		rd.Rest = t.Route[at+1:]
	}
	if t.ClientIP != "" && !sameIP(t.ClientIP, clientIP) {
		return rd, errorf(http.StatusForbidden, client.CodeTicketIPMismatch, "the ticket is bound to another client address")
	}
	// An honest issuer never seals these; the checks keep a ticket from
	// planting a record under a session id its token does not hash to.
	if !crypto.ValidSessionID(t.SessionID) || !crypto.Equal(crypto.SessionID(t.Token), t.SessionID) ||
		s.Local || (session.Record{Session: &s}).Validate() != nil {
		return rd, errorf(http.StatusBadRequest, client.CodeTicketMalformed, "the ticket's session record is inconsistent")
	}
	if h.OnUnknownUser == UnknownUserReject {
		// Checked before the ticket is used up: once the site knows the
		// user, the same ticket opens (within its lifetime).
		known, err := h.users.known(s.Email, h.Name)
		if err != nil {
			return rd, err
		}
		if !known {
			return rd, errorf(http.StatusForbidden, client.CodeUnknownUser, "this site does not know the user (site.on_unknown_user: reject): they must register here first")
		}
	}
	first, err := h.Store.UseOnce(t.ID, t.ExpiresAt)
	if err != nil {
		return rd, err
	}
	if !first {
		return rd, errorf(http.StatusConflict, client.CodeTicketReplayed, "the ticket was already used here")
	}
	recs := []session.Record{{Session: &s}}
	if p.User != nil && p.User.Email == s.Email {
		recs = append(recs, session.Record{User: p.User})
	}
	if _, err := h.Store.Apply(recs...); err != nil {
		return rd, fmt.Errorf("apply ticket records: %w", err)
	}
	if rd.Session, err = h.Store.Session(s.ID); err != nil {
		return rd, fmt.Errorf("read session: %w", err)
	}
	rd.User, err = h.Store.User(s.Email)
	if errors.Is(err, session.ErrNotFound) {
		rd.User, err = session.User{Email: s.Email}, nil
	}
	if err != nil {
		return rd, fmt.Errorf("read user: %w", err)
	}
	v, state := newSessionView(&rd.Session, &rd.User, now)
	if state != session.StateActive {
		return rd, goneError(state, &v)
	}
	if rd.NewUser, err = h.users.redeemed(&rd.Session, h.Name); err != nil {
		return rd, err
	}
	rd.Token = t.Token
	return rd, nil
}

// ticketError is the refusal of a ticket OpenTicket refused.
func ticketError(err error) *httpError {
	switch {
	case errors.Is(err, crypto.ErrTicketUnknownKey):
		return errorf(http.StatusBadRequest, client.CodeTicketUnknownKey, "the ticket was sealed under a secret this node does not hold")
	case errors.Is(err, crypto.ErrTicketTampered):
		return errorf(http.StatusBadRequest, client.CodeTicketTampered, "the ticket failed authentication: it was altered or forged")
	case errors.Is(err, crypto.ErrTicketExpired):
		return errorf(http.StatusGone, client.CodeTicketExpired, "the ticket has expired")
	case errors.Is(err, crypto.ErrTicketNotYetValid):
		return errorf(http.StatusGone, client.CodeTicketExpired, "the ticket is issued in the future: the sites' clocks disagree by more than %s", crypto.MaxClockSkew)
	}
	// crypto's messages say what is wrong without quoting the input.
	return errorf(http.StatusBadRequest, client.CodeTicketMalformed, "not a ticket (%v)", err)
}

type redeemRequest struct {
	Ticket string `json:"ticket"`
	IP     string `json:"ip"`
}

// redeemTicket is POST /v1/tickets/redeem: a site that keeps its own
// cookies redeems the ticket its browser brought, with the same checks as
// GET /ussync/v1/sync.
func (a *api) redeemTicket(w http.ResponseWriter, r *http.Request) error {
	if a.Handoff == nil {
		return errorf(http.StatusServiceUnavailable, client.CodeUnavailable, "this node does not redeem tickets (no hand-off configured)")
	}
	var req redeemRequest
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req.Ticket == "" {
		return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"ticket\" is required")
	}
	if req.IP != "" {
		ip, err := netip.ParseAddr(req.IP)
		if err != nil {
			return errorf(http.StatusBadRequest, client.CodeInvalidField, "field \"ip\" is not an IP address")
		}
		req.IP = ip.String()
	}
	rd, err := a.Handoff.redeem(req.Ticket, req.IP)
	if err != nil {
		return err
	}
	ans := client.Redemption{Token: rd.Token, User: newUserView(&rd.User), NewUser: rd.NewUser}
	ans.Session, _ = newSessionView(&rd.Session, &rd.User, a.Store.Now())
	writeJSON(w, http.StatusOK, &ans)
	return nil
}
