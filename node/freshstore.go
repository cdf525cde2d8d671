package node

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// A node started on an empty data dir (session.Store.Fresh) has lost what
// was node-local (docs/operations.md, "A node restarted on an empty data
// dir"). The replicated records come back from its peers; its replay cache
// of tickets does not: a ticket its previous life redeemed would open again.
// So a fresh node refuses every session ticket that may predate its store
// (issued before it started, plus the clock skew tickets allow), with
// ErrTicketBeforeStart, unless it finds out that its name is new to the
// cluster, in which case no ticket for it can predate it:
//
//   - once a full anti-entropy round with a live member has completed and
//     the node is not catching up, it looks, once, for a record naming its
//     site (a session created here, a user this site knew, a site record);
//   - none: the name is new, and the guard is lifted;
//   - one: the node had a previous life; the guard stays. Tickets that
//     predate the store expire within one ticket TTL (and the skew) of the
//     start, so from then on the guard refuses nothing any more.
//
// A node that never completes a round (alone, or cut off) keeps the guard:
// it cannot tell. The cost for a new node is nothing once it has joined;
// for a wiped one, the browsers whose hand-off was under way when it
// started lose that hand-off (they log in again on that site).

// freshGuard refuses the tickets that may predate a fresh store. Safe for
// concurrent use; a nil *freshGuard refuses nothing (the store was not
// fresh).
type freshGuard struct {
	store *session.Store
	name  string
	log   *slog.Logger
	// start is the store's opening by the node's wall clock; before is
	// start plus the skew: a ticket issued before it may be older than the
	// store. until is when the last ticket of this node's TTL issued before
	// then expires (for status).
	start, before, until time.Time

	lifted atomic.Bool // the name is new to the cluster: nothing predates the store
	looked atomic.Bool // the records were searched (after a round)
	// rounds tells whether a full anti-entropy round completed and the
	// node is not catching up (gossip).
	rounds func() bool
}

// newFreshGuard returns the guard of a store opened at start, or nil when
// the store is not fresh. skew is the cluster's max clock offset
// (cluster.max_clock_offset; zero: crypto.MaxClockSkew), the future a
// ticket's issue time may be in.
func newFreshGuard(st *session.Store, name string, ticketTTL, skew time.Duration, rounds func() bool, log *slog.Logger) *freshGuard {
	if !st.Fresh() {
		return nil
	}
	if skew <= 0 {
		skew = crypto.MaxClockSkew
	}
	start := st.Now()
	g := &freshGuard{store: st, name: name, log: log, rounds: rounds, start: start,
		before: start.Add(skew), until: start.Add(skew + ticketTTL)}
	log.Warn("started on an empty data dir: the replay cache of hand-off tickets is empty, so tickets issued before this start are refused until it is known that this node's name is new to the cluster (or they expire)",
		"refused_until", g.until.UTC().Format(time.RFC3339))
	return g
}

// check refuses a ticket issued at issued that may predate the store.
func (g *freshGuard) check(issued time.Time) error {
	if g == nil || g.lifted.Load() || !issued.Before(g.before) {
		return nil
	}
	return refuse(ErrTicketBeforeStart, "this site's node started on an empty data dir at %s and cannot tell whether this ticket, issued before, was used here already; log in again on this site",
		g.start.UTC().Format(time.RFC3339))
}

// settle looks for the node's past in the store once a round has
// completed, and lifts the guard when there is none. It is called by the
// freshness watch; it does nothing once done or once the guard has no
// ticket left to refuse.
func (g *freshGuard) settle() {
	if g == nil || g.looked.Load() || !g.rounds() {
		return
	}
	if g.store.Now().After(g.until.Add(crypto.MaxTicketLifetime)) {
		g.looked.Store(true) // every ticket it could refuse has expired
		return
	}
	past, err := g.hasPast()
	if err != nil {
		g.log.Warn("look for this node's past in the store; tickets issued before the start stay refused", "err", err)
		return // tried again at the next watch
	}
	g.looked.Store(true)
	if past {
		g.log.Warn("the cluster holds records of this node's previous life: tickets issued before this start stay refused",
			"refused_until", g.until.UTC().Format(time.RFC3339))
		return
	}
	g.lifted.Store(true)
	g.log.Info("this node's name is new to the cluster: no ticket predates its store")
}

// hasPast reports whether a replicated record names this site from
// before its start: a session created here, a user this site knew or was
// bound to, a site record. What this life wrote since does not count.
func (g *freshGuard) hasPast() (bool, error) {
	if g.store.Site(g.name).Name != "" {
		return true, nil
	}
	startMs := g.start.UnixMilli()
	before := func(h session.HLC) bool { return h != 0 && h.WallMs() < startMs }
	after := ""
	for {
		page, next, err := g.store.ListSessions(session.SessionFilter{Site: g.name, After: after, Limit: session.MaxListLimit})
		if err != nil {
			return false, fmt.Errorf("list sessions: %w", err)
		}
		for i := range page {
			if before(page[i].Created) {
				return true, nil
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	after = ""
	for {
		page, next, err := g.store.ListUsers(after, session.MaxListLimit)
		if err != nil {
			return false, err
		}
		for i := range page {
			if b, ok := page[i].Sites[g.name]; ok && (before(b.Known) || before(b.Bound)) {
				return true, nil
			}
		}
		if next == "" {
			return false, nil
		}
		after = next
	}
}

// addHealth reports the guard in h while it may refuse tickets.
func (g *freshGuard) addHealth(h *client.GossipHealth) {
	if g == nil {
		return
	}
	h.FreshStore = true
	if !g.lifted.Load() && g.store.Now().Before(g.until) {
		h.TicketsRefusedUntil = utcOrNil(g.until)
	}
}
