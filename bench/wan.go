package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node/nodetest"
)

// The wan scenario: propagation across the internet, played in process by
// the faults transport (gossip.Faults, through nodetest's SetLink): every
// link delays each packet and each stream write by 50 ms ± 20 ms and loses
// packets (and stream openings) at random, under memberlist's WAN timers.

// WAN link of the scenario, and its target: one hop, not gossip rounds.
const (
	wanDelay  = 50 * time.Millisecond
	wanJitter = 20 * time.Millisecond
	// TargetWANMargin is what the p99 may add to the largest one-way delay
	// at 1 % loss.
	TargetWANMargin = 15 * time.Millisecond
	// wanWorkers is how many users are logged in and out at once by
	// default (Options.WANConcurrency): each worker's next operation waits
	// for every node to apply its last, which under gossip alone takes
	// seconds.
	wanWorkers = 8
)

// WANResult is one operation kind on one cluster over lossy, delayed links.
type WANResult struct {
	Nodes int     `json:"nodes"`
	Loss  float64 `json:"loss"`
	// Push is whether the eager push was on; off, changes travel by
	// gossip alone (Serf's user events).
	Push bool   `json:"eager_push"`
	Op   string `json:"op"`
	// Latency: API call returned on one node → applied on every other
	// (the slowest); Lost: not applied everywhere within 5 s.
	Latency Latency `json:"latency"`
	Lost    int     `json:"lost"`
	// TargetP99 is the p99 target (0: only "nothing lost").
	TargetP99 float64 `json:"target_p99_ms,omitempty"`
	// PacketsLost counts the packets the faults dropped during the run,
	// over every node; Duplicates the push copies the receivers dropped
	// unread.
	PacketsLost uint64 `json:"packets_lost"`
	// Delayed counts the packets and stream writes the links delayed:
	// every one that crossed a link once it was set.
	Delayed    uint64 `json:"delayed"`
	Duplicates uint64 `json:"duplicates"`
	// Pushes, PushRetries and PushesGivenUp count, over every node, the
	// push messages sent, sent again (not acknowledged within the
	// retransmission timeout: lost, or answered late) and given up, while
	// the measured rounds ran (push on).
	Pushes        uint64 `json:"pushes"`
	PushRetries   uint64 `json:"push_retries"`
	PushesGivenUp uint64 `json:"pushes_given_up"`
	// ConvergedSeconds is how long after the last round every node held
	// the same records (what was lost within 5 s arrived later); -1 if
	// they did not within wanConvergeLimit.
	ConvergedSeconds float64 `json:"converged_seconds"`
	// Unconverged says what still differed when the wait for convergence
	// gave up (nodetest.Differ); empty if it converged.
	Unconverged string `json:"unconverged,omitempty"`
	// Concurrency is how many operations were in flight at once (push
	// on; gossip alone runs one). CPU is the process's CPU time (user and
	// system, every node and the clients) during the measured rounds over
	// their wall time and the machine's cores: 0.75 is three quarters of
	// every core. The rounds keep Concurrency operations in flight without
	// pause, so this is the load the propagation was measured under; a
	// figure near 1 means arrivals waited for a CPU (run with --wan-trace
	// to see the waits).
	Concurrency int     `json:"concurrency"`
	CPU         float64 `json:"cpu_share"`
	// Slow are the operations of this kind, push on, slower than the
	// target's bound (the largest one-way delay + TargetWANMargin), with
	// the garbage collections and push retries of the whole cluster while
	// each travelled (as the sites scenario's).
	Slow []SlowOp `json:"slow,omitempty"`
}

// wanPushPull is memberlist's DefaultWANConfig PushPullInterval, the
// period of the anti-entropy that repairs what gossip alone missed.
const wanPushPull = 60 * time.Second

// wanConvergeLimit bounds the wait for convergence after the rounds. With
// the eager push off, a change gossip did not bring (settleGossip says
// how that happens) waits for a push/pull: memberlist's first comes a
// random stagger and then a whole interval after start (up to two
// intervals), the next an interval later if the faults took the first.
// (It was 60 s, one interval: a change missed in the registration burst
// then stayed unrepaired past it in about one run in fifteen under -race.)
const wanConvergeLimit = 3 * wanPushPull

// WAN runs, for each cluster size of opts.WANNodes, each loss rate of
// opts.WANLoss and with the eager push on then off, opts.WANRounds rounds of
// login, logout and logout-everywhere (opts.WANConcurrency users at a time; with the
// push off, a quarter of the rounds, one operation in flight) over links
// delayed by 50 ms ± 20 ms, under the WAN profile's timers.
func WAN(ctx context.Context, opts Options) ([]WANResult, error) {
	opts = opts.withDefaults()
	var out []WANResult
	for _, n := range opts.WANNodes {
		for _, loss := range opts.WANLoss {
			for _, push := range []bool{true, false} {
				// A run that ended as ctx did (its rounds done) must not
				// be followed by the start of another cluster.
				if err := ctx.Err(); err != nil {
					return out, err
				}
				rs, err := wanRun(ctx, n, loss, push, opts)
				out = append(out, rs...)
				if err != nil {
					return out, fmt.Errorf("%d nodes, %.0f%% loss, push %v: %w", n, 100*loss, push, err)
				}
			}
		}
	}
	return out, nil
}

func wanRun(ctx context.Context, n int, loss float64, push bool, opts Options) ([]WANResult, error) {
	var out []WANResult
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("wan: %d nodes, %.0f%% loss, eager push %v", n, 100*loss, push)
		c, t := newTrackedCluster(h, opts, n)
		c.Seed = uint64(n)*1000 + uint64(loss*1000)
		c.TuneGossip = func(_ int, g *gossip.Config) {
			tuneTimers(TimersWAN, g)
			g.NoEagerPush = !push
		}
		c.Start(n)
		cl := newClient(h, c, opts.WANConcurrency)
		// The links are the internet's from the start, as a deployment's
		// are: registered over a loopback-fast link and only then delayed,
		// every member learnt a retransmission timeout of the 100 ms floor
		// for round trips of 100 ms ± 40 ms, and half the pushes were sent
		// again (README, "WAN at N = 30"): a route change, not this
		// scenario.
		c.SetLink(gossip.Link{Delay: wanDelay, Jitter: wanJitter, PacketLoss: loss, StreamLoss: loss})
		users, err := registerUsers(ctx, c, cl, opts.WANConcurrency)
		if err != nil {
			return err
		}
		p := newPropagation(t)
		p.gossipAlone = !push
		workers, rounds := opts.WANConcurrency, opts.WANRounds
		if !push {
			// Gossip alone carries a few records per packet and gossip
			// interval: with several users at once its queue, not the link,
			// would be measured. One operation in flight, fewer rounds.
			workers, rounds = 1, max(1, opts.WANRounds/4)
		}
		stopProfile := func() error { return nil }
		if push {
			if stopProfile, err = watchWANRounds(c, p, n, loss, opts); err != nil {
				return err
			}
		}
		before := pushStats(c)
		cpu0, wall0 := processCPU(), time.Now()
		err = runRounds(ctx, c, cl, p, users, workers, rounds, workers)
		cpuShare := (processCPU() - cpu0).Seconds() / time.Since(wall0).Seconds() / float64(runtime.NumCPU())
		after := pushStats(c)
		err = errors.Join(err, stopProfile())
		var slow []SlowOp
		if p.slow != nil {
			var serr error
			slow, serr = p.slow.stop()
			err = errors.Join(err, serr)
		}
		if err != nil {
			return err
		}
		conv, unconverged := wanConverged(ctx, c)
		lost, delayed, dups := linkStats(c)
		for _, r := range p.results(n) {
			w := WANResult{Nodes: n, Loss: loss, Push: push, Op: r.Op, Latency: r.Latency, Lost: r.Lost,
				PacketsLost: lost, Delayed: delayed, Duplicates: dups, ConvergedSeconds: conv, Unconverged: unconverged,
				Concurrency: workers, CPU: cpuShare,
				Pushes: after.DeltasSent - before.DeltasSent, PushRetries: after.PushRetries - before.PushRetries,
				PushesGivenUp: after.PushesGivenUp - before.PushesGivenUp}
			if push && loss <= 0.01 {
				w.TargetP99 = ms(wanDelay + wanJitter + TargetWANMargin)
			}
			for _, op := range slow {
				if op.Op == r.Op {
					w.Slow = append(w.Slow, op)
				}
			}
			out = append(out, w)
		}
		return nil
	})
	return out, err
}

// wanConverged waits for c's members to hold the same records after the
// rounds (what was lost within 5 s must still arrive: by gossip, or by the
// anti-entropy round owed to a member that was thought dead) and returns
// how long that took in seconds, or -1 and what still differed.
func wanConverged(ctx context.Context, c *nodetest.Cluster) (seconds float64, unconverged string) {
	if d, ok := waitConverged(ctx, c.Members, time.Now(), wanConvergeLimit, 20*time.Millisecond, nil); ok {
		return d.Seconds(), ""
	}
	return -1, nodetest.Differ(c.Members...)
}

// linkStats sums, over c's members, the packets the faults lost, the
// packets and stream writes they delayed, and the push copies dropped
// unread.
func linkStats(c *nodetest.Cluster) (lost, delayed, dups uint64) {
	for _, m := range c.Members {
		fs := m.Faults.Stats()
		lost, delayed = lost+fs.PacketsLost, delayed+fs.Delayed
		dups += m.Gossip().Stats().Duplicates
	}
	return lost, delayed, dups
}

// watchWANRounds sets up what watches the measured rounds of a wan run
// with the push on: p's slow watch (with a flight recorder under
// opts.WANTrace) and the CPU profile of opts.WANCPUProfile, named after the
// run's loss and size. It returns what stops the profile.
func watchWANRounds(c *nodetest.Cluster, p *propagation, n int, loss float64, opts Options) (stopProfile func() error, err error) {
	prefix := ""
	if opts.WANTrace != "" {
		prefix = fmt.Sprintf("%s-loss%g", opts.WANTrace, 100*loss)
	}
	if p.slow, err = newSlowWatch(c, wanDelay+wanJitter+TargetWANMargin, prefix); err != nil {
		return nil, err
	}
	profile := ""
	if opts.WANCPUProfile != "" {
		profile = fmt.Sprintf("%s-loss%g-%d.pprof", opts.WANCPUProfile, 100*loss, n)
	}
	stopProfile, err = startFileProfile(profile)
	if err != nil {
		p.slow.stop()
		return nil, err
	}
	return stopProfile, nil
}

// pushStats sums the push counters of c's members.
func pushStats(c *nodetest.Cluster) gossip.Stats {
	var sum gossip.Stats
	for _, m := range c.Members {
		st := m.Gossip().Stats()
		sum.DeltasSent += st.DeltasSent
		sum.PushRetries += st.PushRetries
		sum.PushesGivenUp += st.PushesGivenUp
	}
	return sum
}

// WriteWAN writes the wan table.
func WriteWAN(w io.Writer, rs []WANResult, rounds int) {
	fmt.Fprintf(w, "\nWAN  links of %v ± %v one way, packets and stream openings lost at random (the faults transport, in process), memberlist WAN timers;\n"+
		"     API call returned on one node -> applied on every other (slowest); push on: %d rounds; off: %d rounds, one at a time\n",
		wanDelay, wanJitter, rounds, max(1, rounds/4))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "NODES\tLOSS\tPUSH\tAT ONCE\tCPU\tOP\tCOUNT\tLOST\tP50\tP99\tMAX\tCONVERGED\t TARGET\t")
	for _, r := range rs {
		pushed := "on"
		if !r.Push {
			pushed = "off (gossip alone)"
		}
		target := fmt.Sprintf("nothing lost: %s", verdict(r.Lost == 0))
		if r.TargetP99 > 0 {
			target = fmt.Sprintf("p99 <= %g ms, nothing lost: %s", r.TargetP99, verdict(r.Latency.P99 <= r.TargetP99 && r.Lost == 0))
		} else if !r.Push {
			target = "- (what the push buys)"
		}
		conv := "no"
		if r.ConvergedSeconds >= 0 {
			conv = fmt.Sprintf("%.1fs", r.ConvergedSeconds)
		}
		fmt.Fprintf(tw, "%d\t%.0f%%\t%s\t%d\t%.0f%%\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t %s\t\n", r.Nodes, 100*r.Loss, pushed, r.Concurrency, 100*r.CPU, r.Op, r.Latency.Count, r.Lost,
			fmtMs(r.Latency.P50), fmtMs(r.Latency.P99), fmtMs(r.Latency.Max), conv, target)
	}
	tw.Flush()
	fmt.Fprintf(w, "  target at 1%% loss: the largest one-way delay (%v) + %v, one hop; at 5%%: nothing lost. LOST: not everywhere within 5s;\n"+
		"  CONVERGED: every node holding the same records this long after the last round (what was lost arrived later);\n"+
		"  AT ONCE: operations kept in flight (--wan-concurrency); CPU: the process's CPU while the rounds ran, as a share of every core\n"+
		"  (every node shares this machine: near 100%%, arrivals wait for a CPU and the tail is the machine's, not the links').\n",
		wanDelay+wanJitter, TargetWANMargin)
	for i, r := range rs {
		if r.Push && (i == 0 || rs[i-1].Nodes != r.Nodes || rs[i-1].Loss != r.Loss || !rs[i-1].Push) {
			fmt.Fprintf(w, "  %d nodes, %.0f%% loss: during the rounds, %d pushes, %d sent again, %d given up (every node)\n",
				r.Nodes, 100*r.Loss, r.Pushes, r.PushRetries, r.PushesGivenUp)
		}
	}
	for _, r := range rs {
		for _, s := range r.Slow {
			fmt.Fprintf(w, "  %d nodes, %.0f%% loss: slow %s from %s: %.1f ms (last applied on %s; the node before it at %.1f ms); garbage collections ended meanwhile %d, pushes sent again (every node) %d",
				r.Nodes, 100*r.Loss, s.Op, s.Origin, s.Ms, s.Last, s.NextMs, s.GCCycles, s.PushRetries)
			if s.Trace != "" {
				fmt.Fprintf(w, "; trace %s", s.Trace)
			}
			fmt.Fprintln(w)
		}
	}
}
