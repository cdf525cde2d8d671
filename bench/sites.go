package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/node/nodetest"
)

// The sites scenario: many sites in one process, on loopback. What grows
// with the number of sites: the time for a change to reach the slowest
// one, the bytes each node sends per login, and the CPU the origin spends
// per login.

// TargetSitesP99N100 is the propagation p99 target at 100 sites, and at
// 10 and 30 (sitesTargetP99).
const TargetSitesP99N100 = 30 * time.Millisecond

// sitesWorkers is how many clients log in at once during the cost phase.
const sitesWorkers = 4

// SitesResult is one cluster size of the sites scenario.
type SitesResult struct {
	Nodes int `json:"nodes"`
	// Propagation, one operation in flight (as the propagation scenario).
	Propagation []PropagationResult `json:"propagation"`
	// Logins is the number of logins of the cost phase, all into n0.
	Logins int `json:"logins"`
	// BytesOrigin is what n0 sent per login; BytesOther what each other
	// node sent per login (their mean); BytesAll all nodes together. The
	// background (probes, gossip of a quiet cluster, measured in a window
	// of the same length) is subtracted.
	BytesOrigin float64 `json:"bytes_origin_per_login"`
	BytesOther  float64 `json:"bytes_other_per_login"`
	BytesAll    float64 `json:"bytes_all_per_login"`
	Background  int64   `json:"background_bytes"`
	// GrossOrigin is what n0 sent during the logins, background included
	// (the net figures are 0 or less when a loaded machine's background
	// outweighs a few logins).
	GrossOrigin int64 `json:"gross_origin_bytes"`
	// CPUOrigin is n0's CPU per login (its goroutines, from a CPU profile
	// labelled per node), in µs; CPUOther a receiving node's (their mean);
	// CPUAll the whole process's (every node and the clients). Zero when
	// --cpuprofile runs (one CPU profile at a time).
	CPUOrigin float64 `json:"cpu_origin_us_per_login"`
	CPUOther  float64 `json:"cpu_other_us_per_login"`
	CPUAll    float64 `json:"cpu_all_us_per_login"`
	// TargetP99 is the propagation p99 target at this size (0: none).
	TargetP99 float64 `json:"target_p99_ms,omitempty"`
	// Slow are the propagation's operations slower than
	// TargetSitesP99N100, whatever the size, with what the process did
	// meanwhile (the tail explained).
	Slow []SlowOp `json:"slow,omitempty"`
	Note string   `json:"note,omitempty"`
}

// Sites runs, for each size of opts.SitesNodes, opts.SitesRounds
// propagation rounds (one operation in flight), then opts.SitesLogins
// logins into n0 (sitesWorkers at a time) whose bytes and CPU it counts.
func Sites(ctx context.Context, opts Options) ([]SitesResult, error) {
	opts = opts.withDefaults()
	var out []SitesResult
	for _, n := range opts.SitesNodes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := sitesRun(ctx, n, opts)
		if err != nil {
			return out, fmt.Errorf("%d sites: %w", n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// sitesTargetP99 is the propagation p99 target at n sites, in ms: the
// issue sets 30 ms on loopback at 10, 30 and 100 sites, so every size from
// 10 up is judged (the README's "N = 10 and 30 met" had no verdict in the
// table, which judged 100 alone); below 10, the smoke's 3, none.
func sitesTargetP99(n int) float64 {
	if n < 10 {
		return 0
	}
	return ms(TargetSitesP99N100)
}

// sitesRun measures the sites scenario at n nodes.
// It is long on purpose: one scenario's steps in the order they run,
// sharing the figures they measure; split, the story would be spread out.
func sitesRun(ctx context.Context, n int, opts Options) (SitesResult, error) {
	res := SitesResult{Nodes: n, Logins: opts.SitesLogins, TargetP99: sitesTargetP99(n)}
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("sites: starting %d nodes", n)
		c, t := newTrackedCluster(h, opts, n)
		c.Start(n)
		cl := newClient(h, c, sitesWorkers)
		users, err := registerUsers(ctx, c, cl, 2*sitesWorkers)
		if err != nil {
			return err
		}
		opts.progressf("sites: %d nodes, %d propagation rounds", n, opts.SitesRounds)
		p := newPropagation(t)
		if p.slow, err = newSlowWatch(c, TargetSitesP99N100, opts.SitesTrace); err != nil {
			return err
		}
		err = runRounds(ctx, c, cl, p, users, 5, opts.SitesRounds, 1)
		slow, serr := p.slow.stop()
		if err = errors.Join(err, serr); err != nil {
			return err
		}
		res.Propagation, res.Slow = p.results(n), slow

		opts.progressf("sites: %d nodes, %d logins into n0", n, opts.SitesLogins)
		if err := quietGossip(ctx, c.Members, 30*time.Second); err != nil {
			return err
		}
		bytes := func() []int64 {
			out := make([]int64, n)
			for i, m := range c.Members {
				out[i] = int64(m.Gossip().Stats().BytesSent)
			}
			return out
		}
		_, base := c.Members[0].Store().Counts()
		b0 := bytes()
		prof, perr := startCPUProfile()
		cpu0 := processCPU()
		start := time.Now()
		var next sync.Mutex
		left := opts.SitesLogins
		errs := make([]error, sitesWorkers)
		var wg sync.WaitGroup
		for w := range sitesWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					next.Lock()
					if left == 0 {
						next.Unlock()
						return
					}
					left--
					next.Unlock()
					if _, err := cl.expect(ctx, c.Members[0], http.StatusCreated, "POST", "/v1/sessions", loginBody(users[sitesWorkers+w])); err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(append(errs, ctx.Err())...); err != nil {
			if prof != nil {
				prof.stop("")
			}
			return err
		}
		want := base + opts.SitesLogins
		c.WaitFor(time.Minute, "every node to hold every login", func() bool {
			for _, m := range c.Members {
				if _, s := m.Store().Counts(); s < want {
					return false
				}
			}
			return true
		})
		window := time.Since(start)
		cpu := processCPU() - cpu0
		b1 := bytes()
		var byNode map[string]time.Duration
		if prof != nil {
			if byNode, perr = prof.stop("node"); perr != nil {
				return perr
			}
		}
		// The background: the same window, no logins.
		select {
		case <-time.After(window):
		case <-ctx.Done():
			return ctx.Err()
		}
		b2 := bytes()
		k := float64(opts.SitesLogins)
		var other float64
		for i := range c.Members {
			bg := b2[i] - b1[i]
			res.Background += bg
			d := float64(b1[i] - b0[i] - bg)
			res.BytesAll += d / k
			if i == 0 {
				res.BytesOrigin = d / k
				res.GrossOrigin = b1[i] - b0[i]
			} else {
				other += d
			}
		}
		res.BytesOther = other / float64(n-1) / k
		res.CPUAll = float64(cpu.Microseconds()) / k
		if perr != nil {
			res.Note = "CPU per node: " + perr.Error()
		} else {
			res.CPUOrigin = float64(byNode["n0"].Microseconds()) / k
			var rest time.Duration
			for name, d := range byNode {
				if name != "n0" && name != "" {
					rest += d
				}
			}
			res.CPUOther = float64(rest.Microseconds()) / float64(n-1) / k
		}
		return nil
	})
	return res, err
}

// cpuSamplePeriod is the period of runtime/pprof's CPU samples (100 Hz).
const cpuSamplePeriod = 10 * time.Millisecond

// profiledCPU prints a per-login CPU figure summed from the samples of a
// CPU profile over logins logins and nodes nodes: no sample at all is
// under one period for them all, not no CPU (20 logins of the smoke
// printed "0 µs" on the origin); a note (no profile) prints "-".
func profiledCPU(us float64, logins, nodes int, note string) string {
	switch {
	case note != "":
		return "-"
	case us == 0 && logins > 0 && nodes > 0:
		return fmt.Sprintf("< %.0f µs", float64(cpuSamplePeriod.Microseconds())/float64(logins*nodes))
	}
	return fmt.Sprintf("%.0f µs", us)
}

// netBytes prints a per-login byte count net of the background, or says
// that the background outweighed it (0 or less is no figure).
func netBytes(v float64) string {
	if v <= 0 {
		return "under bg"
	}
	return fmt.Sprintf("%.0f", v)
}

// quietGossip waits until the cluster carries no records: no member has
// sent, received or repaired one for quietFor, and no gossip queue holds
// one. (Bytes never stop: memberlist's probes and push/pulls run always.)
// A cluster still busy after limit is measured anyway.
func quietGossip(ctx context.Context, ms []*nodetest.Member, limit time.Duration) error {
	busy := func() (uint64, bool) {
		var s uint64
		queued := false
		for _, m := range ms {
			g := m.Gossip()
			st := g.Stats()
			s += st.DeltasSent + st.DeltasReceived + st.Rebroadcasts + st.RecordsRepaired + st.BucketsRepaired
			queued = queued || g.QueuedBroadcasts() > 0
		}
		return s, queued
	}
	deadline := time.Now().Add(limit)
	last, _ := busy()
	since := time.Now()
	for {
		s, queued := busy()
		if s != last || queued {
			last, since = s, time.Now()
		}
		if time.Since(since) >= quietFor || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WriteSites writes the sites table.
func WriteSites(w io.Writer, rs []SitesResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nSITES  many sites in one process on loopback: propagation with one operation in flight, then %d logins into n0 (%d clients)\n", rs[0].Logins, sitesWorkers)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "NODES\tLOGIN P50\tLOGIN P99\tLOGOUT P99\tEVERYWHERE P99\tLOST\tB/LOGIN ORIGIN\tB/LOGIN OTHER\tB/LOGIN ALL\tCPU/LOGIN ORIGIN\tCPU/LOGIN OTHER\tCPU/LOGIN ALL\t TARGET\t")
	for _, r := range rs {
		var p99 float64
		lost := 0
		row := map[string]PropagationResult{}
		for _, p := range r.Propagation {
			row[p.Op] = p
			p99 = max(p99, p.Latency.P99)
			lost += p.Lost
		}
		target := "-"
		if r.TargetP99 > 0 {
			target = fmt.Sprintf("p99 <= %g ms: %s", r.TargetP99, verdict(p99 <= r.TargetP99 && lost == 0))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f µs\t %s\t\n", r.Nodes,
			fmtMs(row[OpLogin].Latency.P50), fmtMs(row[OpLogin].Latency.P99), fmtMs(row[OpLogout].Latency.P99),
			fmtMs(row[OpLogoutEverywhere].Latency.P99), lost, netBytes(r.BytesOrigin), netBytes(r.BytesOther), netBytes(r.BytesAll),
			profiledCPU(r.CPUOrigin, r.Logins, 1, r.Note), profiledCPU(r.CPUOther, r.Logins, r.Nodes-1, r.Note), r.CPUAll, target)
	}
	tw.Flush()
	fmt.Fprintln(w, "  bytes: gossip bytes sent (packets and streams) during the logins, less a quiet window of the same length (\"under bg\": the window")
	fmt.Fprintln(w, "  sent as much, the logins' share is lost in the probes and push/pulls of a loaded machine); CPU: from a CPU profile")
	fmt.Fprintln(w, "  whose samples carry each node's name (ORIGIN n0, OTHER the mean receiver), ALL the whole process (every node and the clients).")
	fmt.Fprintln(w, "  Nothing is shrunk but the machine: every node runs the timers above, its own Badger store and HTTP listeners, on the same CPUs.")
	for _, r := range rs {
		if r.Note != "" {
			fmt.Fprintf(w, "  %d nodes: %s\n", r.Nodes, r.Note)
		}
		for _, s := range r.Slow {
			fmt.Fprintf(w, "  %d nodes: slow %s from %s: %.1f ms (last applied on %s; the node before it at %.1f ms); garbage collections ended meanwhile %d, pushes sent again %d",
				r.Nodes, s.Op, s.Origin, s.Ms, s.Last, s.NextMs, s.GCCycles, s.PushRetries)
			if s.Trace != "" {
				fmt.Fprintf(w, "; trace %s", s.Trace)
			}
			fmt.Fprintln(w)
		}
	}
}
