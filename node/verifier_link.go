package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// The one-click link of a verification message: a ticket sealed for this
// node naming the address, opened by the public verify page
// (verify_page.go), which consumes the pending code like a typed code.

// link seals the one-click link of the code with link id for email.
func (v *verifier) link(email, id string, now, expires time.Time) (string, error) {
	payload, err := json.Marshal(&linkPayload{Kind: ticketKindVerify, Email: email})
	if err != nil {
		return "", fmt.Errorf("encode link payload: %w", err)
	}
	tk, err := v.Keyring.SealTicket(crypto.Ticket{
		ID:        id,
		Target:    v.Name,
		IssuedAt:  now,
		ExpiresAt: expires,
		Payload:   payload,
	})
	if err != nil {
		return "", err
	}
	return v.SiteURL + pathVerify + "?" + url.Values{"c": {tk}}.Encode(), nil
}

// inspectLink checks a one-click link's token c without using it: what the
// confirmation page a GET shows needs (mail scanners open links; only the
// page's button, a POST, verifies). It returns the address, or the refusal
// redeemLink would give (but for a replay: a link whose code was used is
// stale).
func (v *verifier) inspectLink(c string) (string, error) {
	t, email, err := v.openLink(c)
	if err != nil {
		return "", err
	}
	rec, ok := v.pending(email)
	if !ok || rec.ID != t.ID || v.Store.Now().UnixMilli() >= rec.Expires {
		return "", refuse(ErrLinkStale, "the link's code was already used, or a newer code was sent")
	}
	return email, nil
}

// redeemLink checks a one-click link's token c and consumes its code. It
// returns the address to mark verified, or a refusal: the ticket's own
// (crypto's ticket sentinels, ErrTicketWrongTarget), ErrTicketReplayed for
// a link used before, ErrLinkStale when its code was used or replaced by
// a newer one. A code locked by wrong tries does not stop its link: the
// link is not guessable.
func (v *verifier) redeemLink(c string) (string, error) {
	email, err := v.useLink(c)
	result := "verified"
	if _, refused := errors.AsType[*refusal](err); refused {
		result = errorCode(err)
	} else if err != nil {
		result = "error"
	}
	v.checks.WithLabelValues("link", result).Inc()
	return email, err
}

// openLink opens a link's ticket: within the code's lifetime (and the
// clocks' offset), of kind verify, for this node.
func (v *verifier) openLink(c string) (crypto.Ticket, string, error) {
	t, err := v.Keyring.OpenTicketWithin(c, v.Store.Now(), crypto.TicketLimits{MaxLifetime: v.CodeTTL, MaxOffset: v.MaxOffset})
	if err != nil {
		return t, "", ticketError(err)
	}
	var p linkPayload
	if json.Unmarshal(t.Payload, &p) != nil || p.Kind != ticketKindVerify {
		return t, "", refuse(crypto.ErrTicketMalformed, "not a verification link")
	}
	email, err := session.NormalizeEmail(p.Email)
	if err != nil || email != p.Email {
		return t, "", refuse(crypto.ErrTicketMalformed, "not a verification link")
	}
	if t.Target != v.Name {
		return t, "", refuse(ErrTicketWrongTarget, "the link is for another site")
	}
	return t, email, nil
}

func (v *verifier) useLink(c string) (string, error) {
	now := v.Store.Now()
	t, email, err := v.openLink(c)
	if err != nil {
		return "", err
	}
	first, err := v.Store.UseOnce(t.ID, t.ExpiresAt)
	if err != nil {
		return "", err
	}
	if !first {
		return "", refuse(ErrTicketReplayed, "the link was already used")
	}
	stale := false
	err = v.Store.LocalUpdate(localCodePrefix+email, v.CodeTTL, func(old []byte) ([]byte, error) {
		var rec pendingCode
		if old == nil || json.Unmarshal(old, &rec) != nil || rec.ID != t.ID || now.UnixMilli() >= rec.Expires {
			stale = true
			return nil, errUnchanged
		}
		return nil, nil // consumed: the code and its link
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return "", fmt.Errorf("consume code: %w", err)
	}
	if stale {
		return "", refuse(ErrLinkStale, "the link's code was already used, or a newer code was sent")
	}
	return email, nil
}
