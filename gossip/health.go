package gossip

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Why a member is catching up (Health.CatchUpReason).
const (
	// CatchUpStarting: the member started and has peers to ask (join
	// addresses, or members it remembers from its last run).
	CatchUpStarting = "starting"
	// CatchUpRejoined: the member had been cut off from every member while
	// it had peers to reach, and one is back.
	CatchUpRejoined = "rejoined after being cut off from every member"
	// CatchUpStorageFull: the store refused records a peer sent because its
	// disk was full (session.ErrStorageFull); the catch-up's round waits
	// until the store accepts writes again.
	CatchUpStorageFull = "refused records while its disk was full"
	// CatchUpStalled: the member's process did not run for a while (it was
	// paused: SIGSTOP, a virtual machine suspended or moved; or starved of
	// CPU), so its peers may have held it dead and sent it nothing, and
	// what it holds may be stale however healthy it looked before (Stalled).
	CatchUpStalled = "its process did not run for a while (paused or starved of CPU)"
)

// Health is what a member knows of its own freshness and reach, for
// readiness and health checks, status and metrics. Health() builds it;
// CatchingUp, Isolated and KeyMismatch are its cheap parts.
//
// How a node may serve it (the gossip package serves nothing itself):
// /readyz 503 while CatchingUp; /healthz degraded while Isolated or
// KeyMismatch, each with its reason; status and metrics everything; a field
// on session checks while CatchingUp or Isolated, so that sites may fail
// closed.
type Health struct {
	// CatchingUp: this member may lack changes the cluster made while it was
	// away. It is set from start when the member has peers to ask (a new
	// member with neither join addresses nor remembered members is the
	// first of its cluster and has nothing to catch up on), and again when
	// a member comes back after this one had been cut off from every
	// member, and when the store refuses records a peer sent because its
	// disk is full; it is cleared once a full anti-entropy round with a live
	// member completes (doc.go, "Anti-entropy rounds"), after the store
	// accepts writes again for the last. Until then the store
	// answers from what it held: a session logged out elsewhere meanwhile
	// may still look active.
	CatchingUp bool
	// CatchUpReason is CatchUpStarting, CatchUpRejoined,
	// CatchUpStorageFull or CatchUpStalled while catching up, else empty.
	CatchUpReason string
	// CatchUpSince is when the current catch-up began (zero when none).
	CatchUpSince time.Time
	// CaughtUpAt and CaughtUpWith are when the last catch-up ended and the
	// member whose round ended it (zero and empty if none yet).
	CaughtUpAt   time.Time
	CaughtUpWith string

	// Isolated: no other member is alive, though this member has peers to
	// reach (join addresses other than itself, failed members it retries,
	// members it remembers). A partition, this node's network, or
	// KeyMismatch. A member alone by design (no one to reach) is not.
	Isolated bool
	// IsolatedSince is when it last found itself alone (zero when not
	// isolated).
	IsolatedSince time.Time

	// KeyMismatch: within the last five minutes, a join address or member
	// this member dialled answered in a key it does not hold, or a member's
	// address sent gossip that looks like memberlist's and that no
	// installed key decrypts. Typically a node that missed a key rotation
	// (this one, when it is also Isolated, or the peer named in Foreign).
	KeyMismatch bool
	// Foreign lists the sources of undecryptable gossip heard within the
	// last five minutes, most recent first (at most 256); noise from
	// strangers shows here without making KeyMismatch.
	Foreign []ForeignSource

	// Resyncing lists the rounds this member owes other members and keeps
	// retrying: members back from failure or at a new address, a member
	// asked to catch up, failed rounds.
	Resyncing []Resync
}

// Status sums h up in one word, the most severe first: "key_mismatch",
// "isolated", "catching_up" or "ok".
func (h Health) Status() string {
	switch {
	case h.KeyMismatch:
		return "key_mismatch"
	case h.Isolated:
		return "isolated"
	case h.CatchingUp:
		return "catching_up"
	}
	return "ok"
}

// Reason says in one line what Status names, for an operator: which peer
// answers in another key, since when the member is isolated or catching
// up. It is "" when Status is "ok".
func (h Health) Reason() string {
	switch {
	case h.KeyMismatch:
		for _, f := range h.Foreign {
			if f.Answered {
				return fmt.Sprintf("%s answers in another cluster key: this node's secret is not the cluster's, or that node missed a key rotation", f.Addr)
			}
		}
		for _, f := range h.Foreign {
			if f.Member && f.Plausible {
				return fmt.Sprintf("%s, a member's address, sends gossip no installed key decrypts: that node missed a key rotation, or this one did", f.Addr)
			}
		}
		return "a peer uses another cluster key"
	case h.Isolated:
		return fmt.Sprintf("no other member is alive since %s, though this node has peers to reach", h.IsolatedSince.UTC().Format(time.RFC3339))
	case h.CatchingUp:
		return fmt.Sprintf("catching up (%s) since %s: no full anti-entropy round with a live member yet", h.CatchUpReason, h.CatchUpSince.UTC().Format(time.RFC3339))
	}
	return ""
}

// readiness is the catching-up and isolation state.
type readiness struct {
	catching atomic.Bool

	mu         sync.Mutex
	reason     string
	since      time.Time
	caughtAt   time.Time
	caughtWith string
	aloneSince time.Time // zero while another member is alive
}

// digestFlags are the flags this member's digest carries: digestFresh
// while it catches up for the first time on a store it started empty.
// Everything it holds then came from its peers, or was written here and
// pushed as it was, so its peers need not pull from it (compare). Once it
// has caught up the flag is gone for good: what it writes from then on is
// its own like anyone's.
func (g *Gossip) digestFlags() uint8 {
	if !g.ready.catching.Load() || !g.store.Fresh() {
		return 0
	}
	g.ready.mu.Lock()
	defer g.ready.mu.Unlock()
	if g.ready.reason == CatchUpStarting && g.ready.caughtAt.IsZero() {
		return digestFresh
	}
	return 0
}

// startCatchUp marks the member as catching up, unless it already is.
func (g *Gossip) startCatchUp(reason string) {
	g.ready.mu.Lock()
	defer g.ready.mu.Unlock()
	if g.ready.catching.Load() {
		return
	}
	g.ready.reason, g.ready.since = reason, time.Now()
	g.ready.catching.Store(true)
	g.pulled()
	g.resyncs.poke()
}

// Stalled tells the member that its process did not run for d: the
// caller measured a gap that long between two readings of a ticker it
// expects every fraction of a second (node/freshness.go). Memberlist keeps
// the view it had when the process stopped, so without this the member
// would answer from a store that may lack what the cluster did while its
// peers held it dead. It starts a catch-up (CatchUpStalled) when there is
// anyone to catch up from: another member alive, or peers to reach; a
// member alone by design has nothing to miss.
func (g *Gossip) Stalled(d time.Duration) {
	g.nodesMu.RLock()
	others := len(g.nodes) > 1
	g.nodesMu.RUnlock()
	if !others && !g.peersToReach() {
		return
	}
	g.log.Warn("this process did not run for a while: catching up, since peers may have held it dead and sent it nothing", "stalled_for", d.Round(time.Millisecond))
	g.startCatchUp(CatchUpStalled)
}

// caughtUp ends a catch-up: a round with peer completed. A round that
// completes while records refused for a full disk are owed (storageOwed)
// ends nothing: it may have completed with nothing to repair, while what
// was refused is still missing.
func (g *Gossip) caughtUp(peer, how string) {
	g.ready.mu.Lock()
	if !g.ready.catching.Load() || g.storageOwed.Load() > 0 {
		g.ready.mu.Unlock()
		return
	}
	reason, since := g.ready.reason, g.ready.since
	g.ready.catching.Store(false)
	g.ready.reason, g.ready.since = "", time.Time{}
	g.ready.caughtAt, g.ready.caughtWith = time.Now(), peer
	g.ready.mu.Unlock()
	g.stats.catchUps.Add(1)
	g.log.Info("caught up", "peer", peer, "how", how, "was", reason, "took", time.Since(since).Round(time.Millisecond))
}

// membersChanged updates the isolation state after a member joined or
// left; joined tells which.
func (g *Gossip) membersChanged(joined bool) {
	g.nodesMu.RLock()
	alone := len(g.nodes) <= 1
	g.nodesMu.RUnlock()
	g.ready.mu.Lock()
	was := g.ready.aloneSince
	switch {
	case alone && was.IsZero():
		g.ready.aloneSince = time.Now()
	case !alone:
		g.ready.aloneSince = time.Time{}
	}
	g.ready.mu.Unlock()
	if joined && !alone && !was.IsZero() && g.peersToReach() {
		g.startCatchUp(CatchUpRejoined)
	}
	g.snapshotDirty.Store(true)
}

// CatchingUp reports whether this member is catching up (Health.CatchingUp).
// It is one atomic load: fit for every session check.
func (g *Gossip) CatchingUp() bool { return g.ready.catching.Load() }

// Isolated reports whether no other member is alive though this member has
// peers to reach (Health.Isolated).
func (g *Gossip) Isolated() bool { return !g.isolatedSince().IsZero() }

// isolatedSince is Health.IsolatedSince.
func (g *Gossip) isolatedSince() time.Time {
	g.ready.mu.Lock()
	since := g.ready.aloneSince
	g.ready.mu.Unlock()
	if since.IsZero() || !g.peersToReach() {
		return time.Time{}
	}
	return since
}

// KeyMismatch reports whether a peer with another key was heard lately
// (Health.KeyMismatch).
func (g *Gossip) KeyMismatch() bool {
	return keyMismatch(g.foreign.list(g.knownAddr))
}

// Health returns this member's health; see Health. It takes a few locks
// and copies the foreign sources: for health checks, status and metrics.
func (g *Gossip) Health() Health {
	var h Health
	g.ready.mu.Lock()
	h.CatchingUp = g.ready.catching.Load()
	h.CatchUpReason, h.CatchUpSince = g.ready.reason, g.ready.since
	h.CaughtUpAt, h.CaughtUpWith = g.ready.caughtAt, g.ready.caughtWith
	g.ready.mu.Unlock()
	h.IsolatedSince = g.isolatedSince()
	h.Isolated = !h.IsolatedSince.IsZero()
	h.Foreign = g.foreign.list(g.knownAddr)
	h.KeyMismatch = keyMismatch(h.Foreign)
	h.Resyncing = g.resyncs.list()
	return h
}

// peersToReach reports whether this member has someone to reach: a join
// address other than its own, a failed member it retries, a member it
// remembers.
func (g *Gossip) peersToReach() bool {
	for _, a := range g.cfg.Join {
		if a != g.addr && g.resolver.cached(a) != g.addr {
			return true
		}
	}
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	for _, f := range g.failed {
		if !f.left {
			return true
		}
	}
	return len(g.remembered) > 0
}

// knownAddr reports whether addr (host:port, or a bare host) is a live,
// failed or remembered member's address or a join address.
func (g *Gossip) knownAddr(addr string) bool {
	host := hostOf(addr)
	bare := host == addr
	match := func(a string) bool {
		if bare {
			return hostOf(a) == host
		}
		return a == addr
	}
	for _, a := range g.cfg.Join {
		if match(a) {
			return true
		}
	}
	g.nodesMu.RLock()
	for _, n := range g.nodes {
		if n.Name != g.cfg.Name && match(addrOf(&n)) {
			g.nodesMu.RUnlock()
			return true
		}
	}
	g.nodesMu.RUnlock()
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	for _, f := range g.failed {
		if match(f.member.Addr) {
			return true
		}
	}
	for _, a := range g.remembered {
		if match(a) {
			return true
		}
	}
	return false
}

// knownIP is knownAddr for the guard, which has only a stream's source IP.
func (g *Gossip) knownIP(ip netip.Addr) bool { return g.knownAddr(ip.String()) }
