package gossip

import (
	"errors"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Why this node owes a round to a peer (Health.Resyncing gives them).
const (
	// resyncReturned: the member came back from failure (a crash, a
	// partition): it may lack what was written while it was away, and this
	// node may lack what it wrote.
	resyncReturned = "back from failure"
	// resyncMoved: the member came back under its name at another address.
	resyncMoved = "back at a new address"
	// resyncAnnounce: this node came back at a new address, and tells the
	// member so by a push/pull (reclaim.go).
	resyncAnnounce = "announcing a new address"
	// resyncCatchUp: this node is catching up and asks a live member.
	resyncCatchUp = "catching up"
	// resyncRetry: a round with the peer timed out, or a step of it could
	// not be sent or was dropped.
	resyncRetry = "retrying a failed round"
)

// errClosed is returned by sends after Close.
var errClosed = errors.New("gossip closed")

// resyncEntry is a round owed to one peer: a push/pull is started with it
// (with backoff) until a round with it completes.
type resyncEntry struct {
	name, addr string
	reason     string
	since      time.Time
	next       time.Time
	backoff    time.Duration
	attempts   int
	running    bool
}

// resyncBook holds the rounds owed.
type resyncBook struct {
	mu      sync.Mutex
	base    time.Duration
	max     time.Duration
	entries map[string]*resyncEntry
	wake    chan struct{}
}

func newResyncBook(base, max time.Duration) *resyncBook {
	return &resyncBook{base: base, max: max, entries: map[string]*resyncEntry{}, wake: make(chan struct{}, 1)}
}

// jitter spreads d over [d/2, d], so that nodes that fail together do not
// retry together, and never wait longer than d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

func (b *resyncBook) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// now owes peer a round, to start at once (a new entry, or an existing one
// brought forward with its backoff reset).
func (b *resyncBook) now(name, addr, reason string) {
	b.mu.Lock()
	e := b.entries[name]
	if e == nil {
		e = &resyncEntry{name: name, since: time.Now()}
		b.entries[name] = e
	}
	e.addr, e.reason, e.backoff, e.next = addr, reason, b.base, time.Now()
	b.mu.Unlock()
	b.poke()
}

// later owes peer a round after a failed attempt: after the entry's backoff
// (jittered), which then doubles up to the maximum.
func (b *resyncBook) later(name, addr, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.entries[name]
	if e == nil {
		e = &resyncEntry{name: name, reason: reason, since: time.Now(), backoff: b.base}
		b.entries[name] = e
	}
	if addr != "" {
		e.addr = addr
	}
	e.running = false
	e.next = time.Now().Add(jitter(e.backoff))
	e.backoff = min(2*e.backoff, b.max)
}

// sent notes a push/pull that went through: the round it started has until
// wait to complete before it is tried again.
func (b *resyncBook) sent(name string, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.entries[name]; e != nil {
		e.running = false
		e.next = time.Now().Add(wait)
	}
}

// bringForward makes every owed round not under way start at once, with
// its backoff reset.
func (b *resyncBook) bringForward() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	for _, e := range b.entries {
		if !e.running {
			e.next, e.backoff = now, b.base
		}
	}
}

// done forgets peer's entry: a round with it completed.
func (b *resyncBook) done(name string) {
	b.mu.Lock()
	delete(b.entries, name)
	b.mu.Unlock()
}

// any reports whether some round is owed.
func (b *resyncBook) any() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.entries) > 0
}

// due returns the entries whose time has come, marked running.
func (b *resyncBook) due(now time.Time) []resyncEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []resyncEntry
	for _, e := range b.entries {
		if !e.running && !now.Before(e.next) && e.addr != "" {
			e.running = true
			e.attempts++
			out = append(out, *e)
		}
	}
	return out
}

// list returns the peers owed a round, by name.
func (b *resyncBook) list() []Resync {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Resync, 0, len(b.entries))
	for _, e := range b.entries {
		out = append(out, Resync{Member: e.name, Addr: e.addr, Reason: e.reason, Since: e.since, Attempts: e.attempts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Member < out[j].Member })
	return out
}

// Resync is a round this member owes another, and is retrying until it
// completes.
type Resync struct {
	Member   string
	Addr     string
	Reason   string    // "back from failure", "back at a new address", "announcing a new address", "catching up", "retrying a failed round"
	Since    time.Time // when it was first owed
	Attempts int       // push/pulls started for it so far
}

// resyncLater owes peer a round after a failure (see resyncBook.later).
func (g *Gossip) resyncLater(peer, addr, reason string) {
	if peer == "" || peer == g.cfg.Name {
		return
	}
	g.resyncs.later(peer, addr, reason)
}

// resyncNow owes peer a round, to start at once.
func (g *Gossip) resyncNow(peer, addr, reason string) {
	if peer == "" || peer == g.cfg.Name || g.ctx.Err() != nil {
		return
	}
	g.resyncs.now(peer, addr, reason)
}

// maintainLoop drives what anti-entropy owes: it gives up rounds that stall,
// starts the push/pulls owed, and keeps a catching-up node asking a live
// member.
func (g *Gossip) maintainLoop() {
	defer g.wg.Done()
	tick := max(min(g.cfg.ResyncInterval/2, 250*time.Millisecond), 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		case <-g.resyncs.wake:
		}
		now := time.Now()
		for _, r := range g.rounds.expired(now) {
			g.failRound(r, "no answer before the round timeout")
		}
		// While the store refuses writes for a full disk, a catch-up's
		// round would only have its repairs refused: it waits for space.
		full := g.storageOwed.Load() > 0 && !g.storageBack()
		if !full && g.CatchingUp() && !g.resyncs.any() && !g.rounds.pending("") && now.Sub(g.lastPull()) >= g.cfg.ResyncInterval {
			// Nothing under way (a join's round has not started, or one
			// ended without completing): ask a live member. With none, and
			// no one left to reach (the remembered members were forgotten
			// after ReconnectTimeout), this member is alone by design now.
			if peer := g.someLivePeer(); peer != nil {
				g.resyncNow(peer.Name, addrOf(peer), resyncCatchUp)
			} else if !g.peersToReach() {
				g.caughtUp("", "no peer left to ask")
			}
		}
		for _, e := range g.resyncs.due(now) {
			g.wg.Add(1)
			go g.resyncAttempt(e)
		}
		if since := g.isolatedSince(); !since.IsZero() && now.Sub(since) >= g.cfg.ReconnectMaxBackoff {
			// Past a start's first joins: say so, once a minute.
			g.logOnce("isolated", func() {
				g.log.Warn("no other member is alive: retrying the join addresses and the members this node knows (logged once a minute)",
					"since", since.Format(time.RFC3339), "key_mismatch", g.KeyMismatch())
			})
		}
	}
}

// storageBack reports whether the store, which refused records a peer sent
// because its disk was full, accepts writes again; if so, every round owed
// starts at once, with its backoff reset (a round tried while the disk was
// full failed and backed off), and the catch-up may ask a live member.
func (g *Gossip) storageBack() bool {
	owed := g.storageOwed.Load()
	if g.store.Space().Full || !g.storageOwed.CompareAndSwap(owed, 0) {
		// Still full, or refused again since: not yet.
		return false
	}
	g.log.Info("the store accepts writes again: catching up on the records it refused", "refused_applies", owed)
	g.resyncs.bringForward()
	g.resyncs.poke()
	return true
}

// resyncAttempt starts one push/pull owed to e's peer.
func (g *Gossip) resyncAttempt(e resyncEntry) {
	defer g.wg.Done()
	g.stats.resyncs.Add(1)
	if err := g.pushPull(e.addr); err != nil {
		if g.ctx.Err() == nil {
			g.log.Debug("resync failed; retrying", "peer", e.name, "addr", e.addr, "reason", e.reason, "attempt", e.attempts, "err", err)
			g.resyncs.later(e.name, e.addr, e.reason)
		}
		return
	}
	// The digests crossed; the round completes when its repairs are
	// applied (or at once if the digests were equal). If it does not, try
	// again once it could have.
	g.resyncs.sent(e.name, g.roundTimeout())
}

// someLivePeer picks a live member other than this node, at random.
func (g *Gossip) someLivePeer() *memberlist.Node {
	g.nodesMu.RLock()
	defer g.nodesMu.RUnlock()
	var names []string
	for name := range g.nodes {
		if name != g.cfg.Name {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	n := g.nodes[names[rand.N(len(names))]]
	return &n
}

// roundTimeout is how long a round may go without progress.
func (g *Gossip) roundTimeout() time.Duration { return g.cfg.RoundTimeout }

// lastPull is when this member last started a round or a catch-up.
func (g *Gossip) lastPull() time.Time { return time.UnixMilli(g.stats.lastPull.Load()) }

// pulled notes that a round or a catch-up started now.
func (g *Gossip) pulled() { g.stats.lastPull.Store(time.Now().UnixMilli()) }
