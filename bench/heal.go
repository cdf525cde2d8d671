package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// The heal and restart scenarios: a cluster split in two for long, then
// whole again; a node killed and restarted.

// Targets of the heal and restart scenarios.
const (
	// TargetHealChanges: converged this soon after a long split with many
	// changes on both sides heals.
	TargetHealChanges = 10 * time.Second
	// TargetHealRatio: the bytes exchanged to heal, over the size of what
	// differed.
	TargetHealRatio = 2.0
	// TargetHealChangeCount is the changes on each side of the split the
	// two targets above are set for.
	TargetHealChangeCount = 50_000
	// TargetHealLong: converged this soon after the network heals,
	// whatever the split's length (issue 13).
	TargetHealLong = 30 * time.Second
)

const (
	healNodes   = 5
	healWorkers = 8 // clients making changes on each side
	// healSmall is the changes on each side of a long split (the long-split
	// rows time the heal, not the repair).
	healSmall = 100
)

// HealKind names a row of the heal scenario.
const (
	HealChanges = "changes"
	HealLong    = "long split"
)

// HealResult is one partition of 3 | 2 nodes and its heal.
type HealResult struct {
	Kind   string `json:"kind"`
	Timers string `json:"timers"`
	// SplitSeconds is how long the partition lasted; Changes the API
	// writes made on each side meanwhile.
	SplitSeconds float64 `json:"split_seconds"`
	Changes      [2]int  `json:"changes"`
	// History is the sessions every store held before the split.
	History int `json:"history_sessions,omitempty"`
	// Seconds runs from the heal to every node holding the same records.
	Seconds   float64 `json:"seconds"`
	Converged bool    `json:"converged"`
	// Gross is what every node sent from the heal to convergence; Bytes
	// the same less Background, what they sent in a quiet window of the
	// same length after it (the heal's own traffic; 0 or less when the
	// background outweighs it, as under test timers on a loaded machine,
	// where push/pulls every 300 ms dwarf a small repair and run more
	// often once the CPU is free again); DiffBytes the size of what
	// differed: the encoded records each node lacked or held in another
	// state, summed over the nodes (what the heal had to carry at least);
	// DiffRecords their number.
	Gross       int64 `json:"gross_bytes"`
	Bytes       int64 `json:"bytes"`
	DiffBytes   int64 `json:"diff_bytes"`
	DiffRecords int   `json:"diff_records"`
	Background  int64 `json:"background_bytes"`
	// Differ says what still differed when the nodes did not converge
	// (nodetest.Differ); Refused counts the records the nodes' stores
	// refused from peers (gossip Stats.RecordsRefused), which never
	// converge.
	Differ      string  `json:"differ,omitempty"`
	Refused     uint64  `json:"refused"`
	Target      float64 `json:"target_seconds"`
	TargetRatio float64 `json:"target_ratio,omitempty"`
}

// timerTimes are the durations of a timer set that a split must outlast to
// be long: memberlist's GossipToTheDeadTime (past it, memberlist alone
// never heals) and the reconnect backoff's cap.
func timerTimes(set string) (deadTime, reconnectCap time.Duration) {
	switch set {
	case TimersLAN:
		return 30 * time.Second, gossip.DefaultConfig(gossip.ProfileLAN).ReconnectMaxBackoff
	case TimersWAN:
		return 60 * time.Second, gossip.DefaultConfig(gossip.ProfileWAN).ReconnectMaxBackoff
	}
	g := gossip.DefaultConfig(gossip.ProfileLocal)
	g.Shrink()
	return g.GossipToTheDeadTime, g.ReconnectMaxBackoff
}

// Heal runs a 3 | 2 split under opts.Timers with opts.HealChanges changes
// on each side, then, for each timer set of opts.SplitTimers, a split that
// outlasts memberlist's own healing (opts.SplitFor), and times each heal.
func Heal(ctx context.Context, opts Options) ([]HealResult, error) {
	opts = opts.withDefaults()
	var out []HealResult
	// Long enough that memberlist has stopped gossiping to the other side.
	dead, _ := timerTimes(opts.Timers)
	r, err := healRun(ctx, opts, opts.Timers, HealChanges, opts.HealChanges, opts.HealHistory, dead+dead/4+time.Second)
	out = append(out, r)
	if err != nil {
		return out, err
	}
	for _, set := range opts.SplitTimers {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		split := opts.SplitFor
		if split <= 0 {
			dead, cap := timerTimes(set)
			split = dead + cap + 10*time.Second
		}
		r, err := healRun(ctx, opts, set, HealLong, healSmall, 0, split)
		out = append(out, r)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// healRun measures one heal of a split cluster (kind, timers) at the
// given number of changes, every store holding history sessions before
// the split.
// It is long on purpose: one scenario's steps in the order they run,
// sharing the figures they measure; split, the story would be spread out.
func healRun(ctx context.Context, opts Options, timers, kind string, changes, history int, split time.Duration) (HealResult, error) {
	res := HealResult{Kind: kind, Timers: timers, Target: TargetHealLong.Seconds(), History: history}
	if kind == HealChanges {
		res.Target, res.TargetRatio = TargetHealChanges.Seconds(), TargetHealRatio
	}
	opts.Timers = timers
	err := withCluster(opts, func(h *harness) error {
		c := newCluster(h, opts)
		if history > 0 {
			opts.progressf("heal (%s, %s timers): writing %d sessions and %d users into a store", kind, timers, history, historyUsers(history))
			tmpl := h.TempDir()
			if err := fillStore(ctx, tmpl, historyUsers(history), history, time.Now(), slog.New(slog.DiscardHandler)); err != nil {
				return err
			}
			c.Prepare = func(_ int, dir string) {
				if err := copyDir(tmpl, dir); err != nil {
					h.Fatalf("copy the filled store: %v", err)
				}
			}
		}
		opts.progressf("heal (%s, %s timers): starting %d nodes", kind, timers, healNodes)
		c.Start(healNodes)
		cl := newClient(h, c, 2*healWorkers)
		users, err := registerUsers(ctx, c, cl, healWorkers)
		if err != nil {
			return err
		}
		sides := [2][]int{{0, 1, 2}, {3, 4}}
		c.Partition(sides[0], sides[1])
		splitAt := time.Now()
		c.WaitFor(2*time.Minute, "each side to see the other gone", func() bool {
			for s, side := range sides {
				for _, i := range side {
					if len(c.Members[i].Gossip().LiveMembers()) != len(sides[s]) {
						return false
					}
				}
			}
			return true
		})
		opts.progressf("heal (%s, %s timers): %d changes on each side", kind, timers, changes)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for s, side := range sides {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var old func() string
				if history > 0 {
					old = historySessions(s, history)
				}
				n, err := makeChanges(ctx, c, cl, side, users, changes, old)
				res.Changes[s], errs[s] = n, err
			}()
		}
		wg.Wait()
		if err := errors.Join(append(errs, ctx.Err())...); err != nil {
			return err
		}
		if wait := time.Until(splitAt.Add(split)); wait > 0 {
			opts.progressf("heal (%s, %s timers): keeping the split %v more", kind, timers, wait.Round(time.Second))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		pre := make([]map[string]uint64, healNodes)
		for i, m := range c.Members {
			if pre[i], err = m.Store().RecordHashes(); err != nil {
				return err
			}
		}
		bytes := func() int64 {
			var b int64
			for _, m := range c.Members {
				b += int64(m.Gossip().Stats().BytesSent)
			}
			return b
		}
		opts.progressf("heal (%s, %s timers): healing", kind, timers)
		profile := ""
		if kind == HealChanges {
			profile = opts.HealCPUProfile
		}
		stopProfile, err := startFileProfile(profile)
		if err != nil {
			return err
		}
		b0 := bytes()
		res.SplitSeconds = time.Since(splitAt).Seconds()
		c.Heal()
		healed := time.Now()
		// The time to convergence ends where the poll that found it began
		// (comparing the records of five stores is the bench's time); the
		// bytes are counted to the end of the wait.
		took, converged := waitConverged(ctx, c.Members, healed, 3*time.Minute, 20*time.Millisecond, nil)
		res.Converged = converged
		window := time.Since(healed)
		if err := stopProfile(); err != nil {
			return err
		}
		if !res.Converged {
			res.Differ = nodetest.Differ(c.Members...)
			for _, m := range c.Members {
				// Exact while anti-entropy still runs: a bucket at a time
				// under the store's writers' lock.
				if err := m.Store().VerifyDigest(); err != nil {
					res.Differ += fmt.Sprintf("; %s: %v", m.Name(), err)
				}
			}
		}
		for _, m := range c.Members {
			res.Refused += m.Gossip().Stats().RecordsRefused
		}
		res.Seconds = took.Seconds()
		b1 := bytes()
		if err := ctx.Err(); err != nil {
			return err
		}
		final, err := storeEntries(c.Members[0].Store())
		if err != nil {
			return err
		}
		for i := range c.Members {
			for k, e := range final {
				if pre[i][k] != e.hash {
					res.DiffBytes += int64(e.size)
					res.DiffRecords++
				}
			}
		}
		select {
		case <-time.After(window):
		case <-ctx.Done():
			return ctx.Err()
		}
		res.Background = bytes() - b1
		res.Gross = b1 - b0
		res.Bytes = res.Gross - res.Background
		return nil
	})
	return res, err
}

// historyUsers is the users of a history of n sessions.
func historyUsers(n int) int { return max(1, n/5) }

// historySessions returns the ids of the history sessions side s ends, one
// per call: every other one (side 0 the even ones, side 1 the odd ones, so
// that the two sides end different sessions), and "" once none is left.
func historySessions(s, history int) func() string {
	var next atomic.Int64
	return func() string {
		i := s + 2*int(next.Add(1)-1)
		if i >= history {
			return ""
		}
		return syntheticSessionID(i)
	}
}

// makeChanges makes n changes through the API of the nodes of side,
// healWorkers at a time, each worker on its own user: logins, logouts of
// every other one, and a logout-everywhere every tenth. With old set, every
// other logout ends the session old names instead (one made before the
// split, which the other side holds alive). It returns how many it made.
func makeChanges(ctx context.Context, c *nodetest.Cluster, cl *client, side []int, users []string, n int, old func() string) (int, error) {
	var made atomic.Int64
	errs := make([]error, healWorkers)
	var wg sync.WaitGroup
	for w := range healWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := users[w%len(users)]
			for k := 0; ctx.Err() == nil; k++ {
				if made.Add(1) > int64(n) {
					return
				}
				m := c.Members[side[k%len(side)]]
				id, err := cl.login(ctx, m, email)
				if err != nil {
					errs[w] = err
					return
				}
				switch {
				case k%10 == 9:
					if made.Add(1) <= int64(n) {
						_, errs[w] = cl.expect(ctx, m, http.StatusOK, "POST", "/v1/users/"+email+"/logout-everywhere", nil)
					}
				case k%2 == 1:
					if old != nil && k%4 == 1 {
						if o := old(); o != "" {
							id = o
						}
					}
					if made.Add(1) <= int64(n) {
						_, errs[w] = cl.expect(ctx, m, http.StatusOK, "DELETE", "/v1/sessions/"+id, nil)
					}
				}
				if errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return int(min(made.Load(), int64(n))), errors.Join(errs...)
}

type entryShape struct {
	hash uint64
	size int
}

// storeEntries maps each replicated record's key to its hash and size.
func storeEntries(s *session.Store) (map[string]entryShape, error) {
	out := map[string]entryShape{}
	for b := 0; b < session.Buckets; b++ {
		entries, err := s.BucketEntries(uint8(b))
		if err != nil {
			return nil, fmt.Errorf("read bucket %d: %w", b, err)
		}
		for _, e := range entries {
			out[e.Key] = entryShape{e.Hash, len(e.Enc)}
		}
	}
	return out, nil
}

// WriteHeal writes the heal table.
func WriteHeal(w io.Writer, rs []HealResult) {
	fmt.Fprintf(w, "\nHEAL  %d nodes split 3 | 2 (every link between the sides cut in the faults transport), changes on both sides, then healed\n", healNodes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SPLIT\tTIMERS\tLASTED\tHISTORY\tCHANGES\tHEAL -> CONVERGED\tBYTES\tWHAT DIFFERED\tRATIO\t TARGET\t")
	for _, r := range rs {
		conv := fmt.Sprintf("%.2fs", r.Seconds)
		if !r.Converged {
			conv = fmt.Sprintf("not after %.0fs", r.Seconds)
		}
		// Bytes at or under 0: the quiet window sent as much as the heal,
		// and the ratio says nothing.
		bytes, ratio, measured := "under the background", "-", r.Bytes > 0 && r.DiffBytes > 0
		if measured {
			bytes, ratio = mib(r.Bytes), fmt.Sprintf("%.2f", float64(r.Bytes)/float64(r.DiffBytes))
		}
		ok := r.Converged && r.Seconds <= r.Target
		target := fmt.Sprintf("<= %.0fs: %s", r.Target, verdict(ok))
		if r.TargetRatio > 0 {
			v := "not measured"
			if measured || !r.Converged {
				v = convergedVerdict(r.Converged, ok && float64(r.Bytes) <= r.TargetRatio*float64(r.DiffBytes), min(r.Changes[0], r.Changes[1]), TargetHealChangeCount)
			}
			target = fmt.Sprintf("<= %.0fs and ratio <= %g: %s", r.Target, r.TargetRatio, v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0fs\t%d\t%d | %d\t%s\t%s\t%s (%d records)\t%s\t %s\t\n", r.Kind, r.Timers, r.SplitSeconds,
			r.History, r.Changes[0], r.Changes[1], conv, bytes, mib(r.DiffBytes), r.DiffRecords, ratio, target)
	}
	tw.Flush()
	for _, r := range rs {
		if r.Differ != "" || r.Refused > 0 {
			fmt.Fprintf(w, "  %s, %s timers: %d records refused by the stores; not converged: %s\n", r.Kind, r.Timers, r.Refused, r.Differ)
		}
	}
	fmt.Fprintln(w, "  HISTORY: sessions every store held before the split; half of the logouts on each side end one of them.")
	fmt.Fprintln(w, "  BYTES: every node's gossip bytes from the heal to convergence, less a quiet window of the same length. WHAT DIFFERED: the")
	fmt.Fprintln(w, "  encoded records each node lacked or held in another state before the heal, summed over the nodes (the least a heal carries).")
	fmt.Fprintln(w, "  A long split outlasts memberlist's GossipToTheDeadTime and the reconnect backoff's cap: only the reconnect loop heals it.")
}
