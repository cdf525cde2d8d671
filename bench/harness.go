package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// The harness every scenario runs its cluster in: nodetest's, outside a
// test.

// harness is nodetest.T for use outside tests: temporary directories and
// cleanups are undone by close, and Fatalf unwinds to withCluster, which
// turns it into an error. Only the goroutine running withCluster's function
// may call Fatalf (the harness helpers that can fail).
type harness struct {
	log      io.Writer
	logMu    sync.Mutex
	mu       sync.Mutex
	cleanups []func()
	// closing drops node logs once teardown starts: memberlist reports its
	// own sockets closing under it as errors, which says nothing about the
	// figures.
	closing atomic.Bool
}

// fatal is the panic value of harness.Fatalf.
type fatal struct{ err error }

func (h *harness) Helper() {}

func (h *harness) Fatalf(format string, args ...any) {
	panic(fatal{fmt.Errorf(format, args...)})
}

func (h *harness) Logf(format string, args ...any) {
	if h.log == nil || h.closing.Load() {
		return
	}
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.log, format+"\n", args...)
}

func (h *harness) Cleanup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups = append(h.cleanups, f)
}

func (h *harness) TempDir() string {
	dir, err := os.MkdirTemp("", "ussync-bench-")
	if err != nil {
		h.Fatalf("temporary directory: %v", err)
	}
	h.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// close runs the cleanups, last registered first.
func (h *harness) close() {
	h.closing.Store(true)
	for {
		h.mu.Lock()
		if len(h.cleanups) == 0 {
			h.mu.Unlock()
			return
		}
		f := h.cleanups[len(h.cleanups)-1]
		h.cleanups = h.cleanups[:len(h.cleanups)-1]
		h.mu.Unlock()
		f()
	}
}

// withCluster runs f with a fresh harness and undoes everything f set up,
// whether it returns, fails through the harness or panics.
func withCluster(opts Options, f func(h *harness) error) (err error) {
	h := &harness{log: opts.Log}
	defer h.close()
	defer func() {
		if p := recover(); p != nil {
			fe, ok := p.(fatal)
			if !ok {
				panic(p)
			}
			err = fe.err
		}
	}()
	return f(h)
}

// newCluster makes an empty cluster whose nodes log errors only and run
// the timer set of opts.
func newCluster(h *harness, opts Options) *nodetest.Cluster {
	c := nodetest.New(h)
	c.LogLevel = slog.LevelError
	// The production default hand-off modes (nodetest offers every mode), so
	// a login mints the tickets a deployment's would.
	c.Configure = func(i int, cfg *node.Config) {
		cfg.Sync.Modes = node.DefaultConfig().Sync.Modes
		// Each node joins every member started before it, as a deployment
		// lists its sister sites, so that each learns of it by a push/pull
		// at once: under the wan timers (gossip every 500 ms) the alive
		// messages of 30 nodes joining within seconds took over 10 s to
		// reach every member (nodetest waits 10 s for full membership).
		cfg.Gossip.Join = nil
		for _, o := range c.Members[:i] {
			if o.Node != nil {
				cfg.Gossip.Join = append(cfg.Gossip.Join, o.GossipAddr())
			}
		}
	}
	c.TuneGossip = func(_ int, g *gossip.Config) { tuneTimers(opts.Timers, g) }
	h.Cleanup(c.HTTP.CloseIdleConnections)
	return c
}

// newTrackedCluster is newCluster for n members, each of which reports the
// records it applies to the tracker returned (the propagation, sites and
// wan scenarios measure with it).
func newTrackedCluster(h *harness, opts Options, n int) (*nodetest.Cluster, *tracker) {
	t := newTracker(n)
	c := newCluster(h, opts)
	modes := c.Configure
	// Configure runs for each member before its node starts: the hook is in
	// place before any message can arrive.
	c.Configure = func(i int, cfg *node.Config) {
		modes(i, cfg)
		c.Members[i].Observer = t.observer(i)
	}
	return c, t
}

// waitConverged polls nodetest.Differ(ms...) every every until ms hold the
// same records (equal digests, then equal records), ctx ends, or limit has
// passed since start; before each poll it calls tick, if not nil. It
// reports whether they converged, and the time from start to the poll that
// found it (or to the give-up). Every scenario that waits for convergence
// waits here, so they all mean the same by it.
//
// Comparing the records takes long (seconds for five stores of 200,000 on
// a loaded machine), and the stores may converge while it reads them one
// after another: a poll reports convergence only if every digest is the
// same at its end as at its start, so that the records it found equal are
// those the stores held when it began (poll's figure).
func waitConverged(ctx context.Context, ms []*nodetest.Member, start time.Time, limit, every time.Duration, tick func()) (time.Duration, bool) {
	digests := func() []session.Digest {
		out := make([]session.Digest, len(ms))
		for i, m := range ms {
			out[i] = m.Store().Digest()
		}
		return out
	}
	return poll(ctx, start, limit, every, func() bool {
		if tick != nil {
			tick()
		}
		before := digests()
		return nodetest.Differ(ms...) == "" && slices.Equal(digests(), before)
	})
}

// settleGossip brings the cluster to one state before a measurement: it
// waits a few seconds for the members to converge by themselves (the eager
// push and gossip), and while they have not, has every member run a
// push/pull (Gossip.SyncWith) with the first, which then holds what every
// one of them held, and waits again, for at most two minutes in all.
//
// Gossip alone does not promise delivery. memberlist sends a change in
// RetransmitMult × ⌈log10(N+1)⌉ packets in all (4 at N = 3), each packet
// to one peer, the least-sent changes first: in a burst (a user registered
// on every node within a millisecond, under the eager push off) a change
// may go to the same peer every time and never reach the third. The
// periodic push/pull repairs it, but memberlist's first comes a random
// stagger and then a whole PushPullInterval after start: up to two
// minutes under the WAN profile.
func settleGossip(ctx context.Context, c *nodetest.Cluster) error {
	const limit = 2 * time.Minute
	start, hub := time.Now(), c.Members[0]
	for {
		if _, ok := waitConverged(ctx, c.Members, time.Now(), 3*time.Second, 20*time.Millisecond, nil); ok {
			return nil
		}
		if err := ctx.Err(); err != nil {
			// Interrupted, not unconverged: the caller says so.
			return err
		}
		if time.Since(start) > limit {
			return fmt.Errorf("not converged %v after push/pulls through %s: %s", limit, hub.Name(), nodetest.Differ(c.Members...))
		}
		for _, m := range c.Members[1:] {
			// A push/pull lost or failed is tried again on the next pass;
			// the round it starts completes when its repairs are applied.
			_ = m.Gossip().SyncWith(hub.GossipAddr())
		}
	}
}

// poll calls cond every every until it holds, ctx ends, or limit has passed
// since start, and reports whether it held and the time from start: to the
// start of the call of cond that found it held, when it did. A long call
// is then the bench's time, not the cluster's, provided cond reports only
// a state that already held when it began (waitConverged makes sure of
// it).
func poll(ctx context.Context, start time.Time, limit, every time.Duration, cond func() bool) (time.Duration, bool) {
	for {
		at := time.Now()
		if cond() {
			return at.Sub(start), true
		}
		if time.Since(start) > limit || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(every)
	}
}
