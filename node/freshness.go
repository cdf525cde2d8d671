package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/session"
)

// Freshness is what a node knows of its own data: whether it may be
// missing changes the cluster made (docs/operations.md, "Partial
// failures"). Gossip tells (gossip.Health): a node that just started with
// peers to ask, or came back after being cut off from every member, is
// catching up until an anti-entropy round with a live member completes; a
// node that sees no other member alive though it has some to reach is
// isolated; a peer answering in another cluster key is a key mismatch.
// The node shows it
//
//   - on every session check: the header client.HeaderNodeState, and the
//     field "node" of a 200 answer while not ok;
//   - on GET /healthz: always 200 (liveness: the process answers, and a
//     restart cures none of these), with the state in its field "gossip"
//     (ok, catching_up, isolated, key_mismatch, ...; health.go);
//   - on GET /readyz: 503 while catching up or isolated;
//   - in status (Status.Health) and metrics (ussync_node_*).
//
// With sync.fail_closed_after set, a node that has been catching up or
// isolated for longer answers the session check of an active session 503
// node_isolated instead of 200, so that sites fail closed; ended and
// unknown sessions are answered as usual (they are closed already).

// healthSource is what freshness reads of the gossip member.
type healthSource interface {
	// CatchingUp and Isolated are cheap; Health copies more.
	CatchingUp() bool
	Isolated() bool
	Health() gossip.Health
	// Stalled starts a catch-up after the process did not run for d
	// (gossip.Gossip.Stalled).
	Stalled(d time.Duration)
}

// stallAfter is the gap between two readings of the watch (freshInterval
// apart) that says the process did not run: paused (SIGSTOP, a virtual
// machine suspended or moved) or starved of CPU. Its peers may have held
// it dead meanwhile and sent it nothing, while its own view of the cluster
// stood still: until a round with a live member completes, it is catching
// up. Requests that queued while it stood still are answered after it
// resumes, before any other goroutine may have noticed; the session check
// measures the gap itself (current), so none of them is vouched for as
// fresh.
const stallAfter = 2 * time.Second

// freshInterval is how often the watch reads gossip's state: the longest a
// change of isolation (or the end of a catch-up) takes to show on session
// checks. The start of a catch-up shows at once (CatchingUp is read on
// every check).
const freshInterval = 100 * time.Millisecond

// freshness watches gossip's health and holds the node's state for the
// session check. It is safe for concurrent use; a nil *freshness is a node
// always fresh (tests of the API alone).
type freshness struct {
	src       healthSource
	failAfter time.Duration
	log       *slog.Logger
	// guard is the fresh store's ticket refusal (freshstore.go); nil when
	// the store was not fresh.
	guard *freshGuard
	// space measures the store's free space (session.Store.Space); nil:
	// not reported.
	space func() session.Space
	// site is the check of this node's site (sitecheck.go); nil: off.
	site *siteCheck

	snap atomic.Pointer[freshSnap]
	// epoch and ticked time the watch on the monotonic clock: ticked is
	// the time of its last reading since epoch (0: not watching, as in
	// tests that drive update by hand).
	epoch        time.Time
	ticked       atomic.Int64
	failedClosed prometheus.Counter // ussync_session_checks_failed_closed_total
}

// freshSnap is one reading of the node's state. A new one replaces it
// whenever the state changes; the session check only reads it.
type freshSnap struct {
	state  string   // client.NodeState*
	header []string // {state}: set as is on every check, no allocation
	since  time.Time
	view   *client.NodeState // nil when ok
	// refusal, when set, is the answer to the check of an active session:
	// failing closed.
	refusal error
}

var (
	okSnap       = &freshSnap{state: client.NodeStateOK, header: []string{client.NodeStateOK}}
	catchingSnap = &freshSnap{state: client.NodeStateCatchingUp, header: []string{client.NodeStateCatchingUp},
		view: &client.NodeState{State: client.NodeStateCatchingUp, CatchingUp: true}}
)

func newFreshness(src healthSource, failAfter time.Duration, log *slog.Logger, m *Metrics) *freshness {
	f := &freshness{src: src, failAfter: failAfter, log: log, epoch: time.Now()}
	f.snap.Store(okSnap)
	f.failedClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ussync_session_checks_failed_closed_total",
		Help: "Session checks of active sessions answered 503 node_isolated: the node was catching up or isolated for longer than sync.fail_closed_after.",
	})
	m.Registry.MustRegister(f.failedClosed)
	f.update(time.Now())
	return f
}

// current is the state a session check answers with: one atomic load, and
// one more for gossip's CatchingUp.
func (f *freshness) current() *freshSnap {
	if f == nil {
		return okSnap
	}
	s := f.snap.Load()
	if s.state == client.NodeStateOK && (f.src.CatchingUp() || f.stalled() > stallAfter) {
		return catchingSnap // began since the last reading, or the process stood still
	}
	return s
}

// stalled is how long ago the watch last read gossip's state (0 when not
// watching).
func (f *freshness) stalled() time.Duration {
	t := f.ticked.Load()
	if t == 0 {
		return 0
	}
	return time.Since(f.epoch) - time.Duration(t)
}

// tick is one reading of the watch: a gap longer than stallAfter since the
// last one starts a catch-up before the reading is recorded, so that no
// session check in between answers as fresh.
func (f *freshness) tick() {
	if d := f.stalled(); d > stallAfter {
		f.src.Stalled(d)
	}
	f.ticked.Store(max(int64(time.Since(f.epoch)), 1))
	f.update(time.Now())
	f.guard.settle()
}

// watch updates the state every freshInterval until ctx ends.
func (f *freshness) watch(ctx context.Context) {
	t := time.NewTicker(freshInterval)
	defer t.Stop()
	f.ticked.Store(max(int64(time.Since(f.epoch)), 1))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.tick()
		}
	}
}

// update reads gossip's state at now and replaces the snapshot if it
// changed, logging the moves in and out of failing closed (gossip logs
// isolation and key mismatch itself, once a minute).
func (f *freshness) update(now time.Time) {
	prev := f.snap.Load()
	catching, isolated := f.src.CatchingUp(), f.src.Isolated()
	if !catching && !isolated {
		if prev != okSnap {
			f.snap.Store(okSnap)
			if prev.refusal != nil {
				f.log.Warn("session checks answer again: this node is in touch with the cluster", "stale_for", now.Sub(prev.since).Round(time.Second))
			}
		}
		return
	}
	h := f.src.Health()
	var since time.Time
	for _, t := range []time.Time{h.CatchUpSince, h.IsolatedSince} {
		if !t.IsZero() && (since.IsZero() || t.Before(since)) {
			since = t
		}
	}
	if since.IsZero() {
		since = now // between gossip's readings
	}
	if prev.state != client.NodeStateOK && !prev.since.IsZero() && prev.since.Before(since) {
		since = prev.since // one stale spell: isolated, then catching up
	}
	state := client.NodeStateCatchingUp
	if isolated {
		state = client.NodeStateIsolated
	}
	failing := f.failAfter > 0 && now.Sub(since) >= f.failAfter
	if prev.state == state && prev.since.Equal(since) && (prev.refusal != nil) == failing {
		return
	}
	s := &freshSnap{state: state, header: []string{state}, since: since}
	at := since.UTC()
	s.view = &client.NodeState{State: state, CatchingUp: catching, Isolated: isolated, Since: &at}
	if failing {
		what := "catching up (no anti-entropy round with a live member completed yet)"
		if isolated {
			what = "isolated (no other member alive)"
		}
		s.refusal = refuse(ErrNodeIsolated, "this node has been %s since %s, longer than sync.fail_closed_after (%s): it may be missing logouts made on other sites, so it vouches for no session until it is in touch again",
			what, at.Format(time.RFC3339), f.failAfter)
		if prev.refusal == nil {
			f.log.Error("session checks fail closed: this node may be missing logouts made elsewhere (sync.fail_closed_after); `ussync status` says why",
				"state", state, "since", at.Format(time.RFC3339), "fail_closed_after", f.failAfter.String(), "reason", h.Reason())
		}
	}
	f.snap.Store(s)
}

// sessionCheck sets the node-state header of a session check on w and
// returns the snapshot: its view goes into a 200 answer, and its refusal,
// when set, replaces one.
func (f *freshness) sessionCheck(w http.ResponseWriter) *freshSnap {
	s := f.current()
	w.Header()[client.HeaderNodeState] = s.header
	return s
}

// refused counts a session check failed closed.
func (f *freshness) refused() { f.failedClosed.Inc() }

// health is the node's health for GET /healthz and status: gossip's, and
// whether it fails closed, its site answers, its disk has room and a
// wiped store refuses old tickets.
func (f *freshness) health() client.GossipHealth {
	if f == nil {
		return client.GossipHealth{Status: "ok"}
	}
	nh := gossipHealthOf(f.src.Health())
	nh.FailClosed = f.snap.Load().refusal != nil
	if nh.FailClosed {
		nh.Reason += fmt.Sprintf("; session checks fail closed (sync.fail_closed_after %s)", f.failAfter)
	}
	f.site.addHealth(&nh)
	if f.space != nil {
		if sp := f.space(); sp.Full {
			nh.StorageFull, nh.FreeBytes, nh.ReserveBytes = true, sp.Free, sp.Reserve
			nh.Status = "storage_full"
			why := fmt.Sprintf("storage full: %d bytes free in the data dir's filesystem, under the %d the store keeps in reserve: every write is refused (503 storage_full) until space is freed", sp.Free, sp.Reserve)
			if nh.Reason != "" {
				why += "; " + nh.Reason
			}
			nh.Reason = why
		}
	}
	f.guard.addHealth(&nh)
	return nh
}

// registerFreshMetrics exports the freshness figures on /metrics.
func (n *Node) registerFreshMetrics() {
	f := n.fresh
	bit := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m := n.metrics
	// ussync_catching_up, ussync_isolated, ussync_key_mismatch and
	// ussync_catchups_total are the metrics rework's (status_build.go).
	m.RegisterFunc("ussync_fail_closed", "1 while session checks of active sessions answer 503 node_isolated (sync.fail_closed_after).",
		func() float64 { return bit(f.snap.Load().refusal != nil) })
	m.RegisterFunc("ussync_stale_seconds", "Seconds the node has been catching up or isolated without a break; 0 while in touch.",
		func() float64 {
			s := f.current()
			if s.state == client.NodeStateOK || s.since.IsZero() {
				return 0
			}
			return time.Since(s.since).Seconds()
		})
	m.RegisterFunc("ussync_site_down", "1 while this node's site does not answer its health check (site.health_url): the other sites leave it out of their hand-offs.",
		func() float64 { d, _, _ := f.site.down(); return bit(d) })
	st := n.store
	m.RegisterFunc("ussync_store_full", "1 while the data dir's filesystem has less free space than the store keeps in reserve: every write is refused (503 storage_full).",
		func() float64 { return bit(st.Space().Full) })
	m.RegisterFunc("ussync_store_free_bytes", "Bytes free in the data dir's filesystem, for this node's user.",
		func() float64 { return float64(st.Space().Free) })
	m.RegisterCounterFunc("ussync_store_writes_refused_total", "Writes the store refused for want of free space (storage_full).",
		func() float64 { return float64(st.Space().Refused) })
	m.RegisterCounterFunc("ussync_store_digest_scrubbed_total", "Buckets of the anti-entropy digest found different from their records by the background scrub, and corrected (a bug: report it).",
		func() float64 { return float64(st.Scrubbed()) })
}

// startFreshness builds the node's freshness and the fresh store's ticket
// guard, and registers their metrics (after the store, gossip and metrics;
// the watch starts with the node's loops).
func (n *Node) startFreshness() {
	g := n.gossip
	n.fresh = newFreshness(g, time.Duration(n.cfg.Sync.FailClosedAfter), n.log, n.metrics)
	n.fresh.space = n.store.Space
	n.fresh.site = newSiteCheck(n.cfg.Site.HealthCheckURL(), time.Duration(n.cfg.Site.HealthInterval), g.SetSite, n.log)
	n.fresh.guard = newFreshGuard(n.store, n.cfg.Node.Name, time.Duration(n.cfg.Sync.TicketTTL), time.Duration(n.cfg.Cluster.MaxClockOffset),
		func() bool { return !g.CatchingUp() && g.Stats().RoundsCompleted > 0 }, n.log)
	n.registerFreshMetrics()
}

// joinFailed says why no join address answered at start: plainly, when
// one answered in another cluster key (this node's secret is not theirs);
// else that the node keeps trying.
func (n *Node) joinFailed(err error) {
	h := n.gossip.Health()
	var peers []string
	for _, f := range h.Foreign {
		if f.Answered {
			peers = append(peers, f.Addr)
		}
	}
	if len(peers) == 0 {
		n.log.Warn("no join address answered; retrying in the background", "err", err)
		return
	}
	var mine []string
	for _, k := range n.keyring.Keys() {
		mine = append(mine, k.Fingerprint)
	}
	n.log.Error("the join addresses answer in another cluster key: this node's secret is not the cluster's (a key rotation it missed, or the wrong secret file). "+
		"Compare this node's key fingerprints with those `ussync status` shows on a member, install the cluster's secret and restart; until then this node runs alone and hears no logout",
		"peers", strings.Join(peers, ","), "fingerprints", strings.Join(mine, ","))
}

// Health is the node's freshness and reach, of its site and of its disk,
// as status shows it (after Start).
func (n *Node) Health() client.GossipHealth { return n.fresh.health() }
