package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
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
	c.Configure = func(_ int, cfg *node.Config) { cfg.Sync.Modes = node.DefaultConfig().Sync.Modes }
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
func waitConverged(ctx context.Context, ms []*nodetest.Member, start time.Time, limit, every time.Duration, tick func()) (time.Duration, bool) {
	return poll(ctx, start, limit, every, func() bool {
		if tick != nil {
			tick()
		}
		return nodetest.Differ(ms...) == ""
	})
}

// settleGossip brings the cluster to one state before a measurement: it waits
// until every member's gossip queue is empty (gossip has sent all it
// will), then, if the members still differ, has each run a push/pull
// (Gossip.SyncWith) with every other and waits for them to converge.
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
	if _, ok := poll(ctx, time.Now(), 30*time.Second, 10*time.Millisecond, func() bool {
		for _, m := range c.Members {
			if m.Gossip().QueuedBroadcasts() > 0 {
				return false
			}
		}
		return true
	}); !ok {
		return errors.New("the gossip queues did not empty within 30s")
	}
	if nodetest.Differ(c.Members...) == "" {
		return nil
	}
	for _, m := range c.Members {
		for _, o := range c.Members {
			if o != m {
				// A push/pull lost to the faults is retried by the round
				// book; the wait below says if it was not.
				_ = m.Gossip().SyncWith(o.GossipAddr())
			}
		}
	}
	if _, ok := waitConverged(ctx, c.Members, time.Now(), 30*time.Second, 10*time.Millisecond, nil); !ok {
		return fmt.Errorf("not converged 30s after a push/pull between every pair: %s", nodetest.Differ(c.Members...))
	}
	return nil
}

// poll calls cond every every until it holds, ctx ends, or limit has passed
// since start, and reports whether it held and the time from start.
func poll(ctx context.Context, start time.Time, limit, every time.Duration, cond func() bool) (time.Duration, bool) {
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > limit || ctx.Err() != nil {
			return time.Since(start), false
		}
		time.Sleep(every)
	}
}
