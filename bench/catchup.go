package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// The catchup scenario: a new site joins a cluster whose stores hold a
// million sessions, while the cluster keeps serving logins.

// TargetCatchup is how soon a new node must hold what the cluster holds,
// when it holds TargetCatchupSessions sessions (a smaller catch-up is not
// judged: at the CI smoke's 2,000 it is "met" in 0.1 s, meaning nothing).
const (
	TargetCatchup         = 30 * time.Second
	TargetCatchupSessions = 1_000_000
)

// catchupNodes is the cluster's size before the newcomer.
const catchupNodes = 3

// CatchupResult is one newcomer's catch-up.
type CatchupResult struct {
	Nodes    int `json:"nodes"`
	Sessions int `json:"sessions"`
	Users    int `json:"users"`
	// Newcomer is how the newcomer ran: NewcomerProcess (`ussync agent`
	// in a process of its own) or NewcomerInProcess (in the cluster's
	// process).
	Newcomer string `json:"newcomer"`
	// FillSeconds is how long writing the records into one store took
	// (the others are copies of it), StartSeconds how long the cluster's
	// nodes took to open those stores and start.
	FillSeconds  float64 `json:"fill_seconds"`
	StartSeconds float64 `json:"start_seconds"`
	// Seconds runs from the newcomer's start to the first moment its
	// digest equals n0's, the load still running; CaughtUpSeconds until
	// the newcomer itself says it caught up (in process: gossip's
	// CatchingUp false; as an agent: its GET /healthz "gossip" is "ok").
	// The agent's digest is read as the fingerprint its GET /healthz
	// shows (session.Digest.Fingerprint), every 10 ms over its API's Unix
	// socket. Converged is false if the digests did not agree within
	// convergeTimeout×5, or if, the load stopped, the nodes did not then
	// hold the same records within convergeTimeout (waitConverged; the
	// agent's records are read from its store once it has stopped).
	Seconds         float64 `json:"seconds"`
	CaughtUpSeconds float64 `json:"caught_up_seconds"`
	Converged       bool    `json:"converged"`
	// BytesCluster are the bytes the cluster's nodes sent during the
	// catch-up (to the newcomer and to each other), BytesNewcomer those
	// the newcomer sent since it started (an agent's own count, read from
	// its GET /metrics: ussync_gossip_bytes_sent_total).
	BytesCluster  int64 `json:"bytes_cluster"`
	BytesNewcomer int64 `json:"bytes_newcomer"`
	// Repairer is the node that sent the most records, Repaired how many,
	// RepairerBytes the bytes it sent; RepairedAll the records every
	// node sent, the newcomer included.
	Repairer      string `json:"repairer"`
	Repaired      uint64 `json:"repaired"`
	RepairerBytes int64  `json:"repairer_bytes"`
	RepairedAll   uint64 `json:"repaired_all"`
	// Logins served during the catch-up (into n0, at the rate asked), and
	// their latency.
	Logins      int     `json:"logins"`
	LoginErrors int     `json:"login_errors"`
	LoginRate   int     `json:"login_rate"`
	LoginP50    float64 `json:"login_p50_ms"`
	LoginP99    float64 `json:"login_p99_ms"`
	// Memory of this process, which holds the cluster's nodes (and, in
	// process mode, not the newcomer): its resident set and Go heap
	// before the newcomer started, and their peaks during the catch-up.
	// With the newcomer an agent, the growth is the cluster's side: the
	// repairer (which sends nearly every record), the two other nodes and
	// the logins; in process, the newcomer's and the repairer's together.
	RSSBefore  int64 `json:"rss_before_bytes"`
	RSSPeak    int64 `json:"rss_peak_bytes"`
	HeapBefore int64 `json:"heap_before_bytes"`
	HeapPeak   int64 `json:"heap_peak_bytes"`
	// NewcomerRSSPeak is the agent process's peak resident set over its
	// whole life (start, catch-up, the wait for convergence: VmHWM of
	// /proc/<pid>/status, read before it is stopped); 0 when not measured
	// (in process, or no /proc).
	NewcomerRSSPeak int64   `json:"newcomer_rss_peak_bytes"`
	TargetSeconds   float64 `json:"target_seconds"`
}

// Catchup fills one store with opts.CatchupSessions sessions and
// opts.CatchupUsers users, starts catchupNodes nodes on copies of it, and
// while n0 serves opts.CatchupRate logins a second, starts a new node that
// joins them (opts.CatchupNewcomer: an agent process, or in this process),
// and times until it holds what they hold.
// It is long on purpose: one scenario's steps in the order they run,
// sharing the figures they measure; split, the story would be spread out.
func Catchup(ctx context.Context, opts Options) (CatchupResult, error) {
	opts = opts.withDefaults()
	res := CatchupResult{Nodes: catchupNodes, Sessions: opts.CatchupSessions, Users: opts.CatchupUsers,
		Newcomer: opts.CatchupNewcomer, LoginRate: opts.CatchupRate, TargetSeconds: TargetCatchup.Seconds()}
	if err := ParseNewcomer(opts.CatchupNewcomer); err != nil {
		return res, err
	}
	err := withCluster(opts, func(h *harness) error {
		tmpl := h.TempDir()
		opts.progressf("catchup: writing %d sessions and %d users into a store", res.Sessions, res.Users)
		start := time.Now()
		if err := fillStore(ctx, tmpl, res.Users, res.Sessions, time.Now(), slog.New(slog.DiscardHandler)); err != nil {
			return err
		}
		res.FillSeconds = time.Since(start).Seconds()

		opts.progressf("catchup: starting %d nodes on copies of it", catchupNodes)
		start = time.Now()
		c := newCluster(h, opts)
		c.Prepare = func(i int, dir string) {
			if i >= catchupNodes {
				return // the newcomer starts empty
			}
			if err := copyDir(tmpl, dir); err != nil {
				h.Fatalf("copy the filled store: %v", err)
			}
		}
		c.Start(catchupNodes)
		res.StartSeconds = time.Since(start).Seconds()
		cl := newClient(h, c, 2)
		users, err := registerUsers(ctx, c, cl, loadUsers)
		if err != nil {
			return err
		}
		if err := quietGossip(ctx, c.Members, 30*time.Second); err != nil {
			return err
		}
		cluster := c.Members[:catchupNodes:catchupNodes] // c.Add appends the in-process newcomer
		origin := cluster[0]

		res.HeapBefore, res.RSSBefore = settledHeap()
		resetPeakRSS()
		before := make([]int64, catchupNodes)
		repaired := make([]uint64, catchupNodes)
		for i, m := range cluster {
			st := m.Gossip().Stats()
			before[i], repaired[i] = int64(st.BytesSent), st.RecordsRepaired
		}
		heap := watchHeap(100 * time.Millisecond)
		heapOnce := sync.OnceValue(heap.end)
		defer heapOnce()

		// The load: logins into n0 at the rate asked, until the newcomer is
		// converged.
		loadCtx, stopLoad := context.WithCancel(ctx)
		var (
			loadWG sync.WaitGroup
			lats   []time.Duration
			fails  int
		)
		endLoad := sync.OnceFunc(func() { stopLoad(); loadWG.Wait() })
		defer endLoad()
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			tick := time.NewTicker(time.Second / time.Duration(opts.CatchupRate))
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				t0 := time.Now()
				if _, err := cl.expect(loadCtx, origin, http.StatusCreated, "POST", "/v1/sessions", loginBody(users[i%len(users)])); err != nil {
					if loadCtx.Err() == nil {
						fails++
					}
					continue
				}
				lats = append(lats, time.Since(t0))
			}
		}()

		opts.progressf("catchup: a new node joins (%s) while n0 serves %d logins/s", res.Newcomer, opts.CatchupRate)
		stopProfile, err := startFileProfile(opts.CatchupCPUProfile)
		if err != nil {
			return err
		}
		start = time.Now()
		// state reads the newcomer's digest fingerprint and whether it says
		// it has caught up.
		var (
			nc    *nodetest.Member // in process
			agent *agentProc       // as an agent
			state func() (string, bool, error)
		)
		if res.Newcomer == NewcomerInProcess {
			nc = c.Add()
			state = func() (string, bool, error) {
				d := nc.Store().Digest()
				return d.Fingerprint(), !nc.Gossip().CatchingUp(), nil
			}
		} else {
			if agent, err = startAgent(ctx, h, c, opts, fmt.Sprintf("n%d", catchupNodes)); err != nil {
				stopProfile()
				return err
			}
			state = func() (string, bool, error) {
				d, caughtUp, err := agent.state(ctx)
				if err != nil {
					// A slow answer is a poll missed; an exit is the end.
					return "", false, agent.exited()
				}
				return d, caughtUp, nil
			}
		}
		equal := func() (bool, error) {
			d, caughtUp, err := state()
			if err != nil {
				return false, err
			}
			if res.CaughtUpSeconds == 0 && caughtUp {
				res.CaughtUpSeconds = time.Since(start).Seconds()
			}
			o := origin.Store().Digest()
			return d == o.Fingerprint(), nil
		}
		// Under load, the time to equal digests only: comparing a million
		// records takes longer than the next login does to arrive. The
		// records are compared once the load has stopped (below).
		var stateErr error
		took, ok := poll(ctx, start, 5*convergeTimeout, 10*time.Millisecond, func() bool {
			eq, err := equal()
			stateErr = err
			return eq || err != nil
		})
		res.Seconds = took.Seconds()
		if err := stopProfile(); err != nil {
			h.Logf("catchup: %v", err)
		}
		endLoad()
		if stateErr != nil {
			if ctx.Err() != nil {
				return ctx.Err() // interrupted: the agent's answer was cut short
			}
			return fmt.Errorf("watch the newcomer: %w", stateErr)
		}
		if nc != nil {
			// In process (as the bench always did): the records of every
			// node compared, then the peaks read.
			if ok {
				_, res.Converged = waitConverged(ctx, c.Members, time.Now(), convergeTimeout, 10*time.Millisecond, nil)
			}
			res.HeapPeak = heapOnce()
			res.RSSPeak = peakRSS()
		} else if ok {
			// The load stopped, every digest equal to n0's (the newcomer may
			// still be taking the last logins); the peaks are read then,
			// before the records are compared (below).
			_, ok = poll(ctx, time.Now(), convergeTimeout, 10*time.Millisecond, func() bool {
				o := origin.Store().Digest()
				for _, m := range cluster[1:] {
					if d := m.Store().Digest(); d != o {
						return false
					}
				}
				eq, err := equal()
				stateErr = err
				return eq || err != nil
			})
			if stateErr != nil {
				return fmt.Errorf("watch the newcomer: %w", stateErr)
			}
			res.Converged = ok
		}
		if agent != nil {
			res.HeapPeak = heapOnce()
			res.RSSPeak = peakRSS()
			res.NewcomerRSSPeak, _ = agent.peakRSS()
		}
		res.Logins, res.LoginErrors = len(lats), fails
		l := summarize(lats)
		res.LoginP50, res.LoginP99 = l.P50, l.P99
		for i, m := range cluster {
			st := m.Gossip().Stats()
			b := int64(st.BytesSent) - before[i]
			res.BytesCluster += b
			r := st.RecordsRepaired - repaired[i]
			res.RepairedAll += r
			if r > res.Repaired || res.Repairer == "" {
				res.Repairer, res.Repaired, res.RepairerBytes = m.Name(), r, b
			}
		}
		if nc != nil {
			st := nc.Gossip().Stats()
			res.BytesNewcomer = int64(st.BytesSent)
			res.RepairedAll += st.RecordsRepaired
			return ctx.Err()
		}
		b, r, err := agent.sent(ctx)
		if err != nil {
			return fmt.Errorf("read the newcomer's metrics: %w", err)
		}
		res.BytesNewcomer = b
		res.RepairedAll += r
		// Its records: read from its store, once it has left and closed it
		// (or, killed, left it for Badger to recover from its log).
		if _, err := agent.stop(); err != nil {
			h.Logf("catchup: %v", err)
		}
		if res.Converged {
			st, err := agent.openStore()
			if err != nil {
				return err
			}
			defer st.Close()
			names, stores := []string{agent.name}, []*session.Store{st}
			for _, m := range cluster {
				names, stores = append(names, m.Name()), append(stores, m.Store())
			}
			var diff string
			_, res.Converged = poll(ctx, time.Now(), convergeTimeout, 10*time.Millisecond, func() bool {
				diff = session.Differ(names, stores)
				return diff == ""
			})
			if !res.Converged {
				h.Logf("catchup: the newcomer's records differ from the cluster's: %s", diff)
			}
		}
		return ctx.Err()
	})
	return res, err
}

// CheckOutput returns an error if no file can be created at path (prefix
// false: path is the file, and must not be a directory) or beside it
// (prefix true: path is a prefix the file names start with), found by
// creating and removing a temporary file in its directory. The profiles
// and traces are written after minutes of work (the catch-up's profile
// after the fill, a trace at the first slow operation): a bad path is
// refused before any.
func CheckOutput(path string, prefix bool) error {
	if !prefix {
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".ussync-bench-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot write in %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// startFileProfile starts a CPU profile of the process into the file at
// path and returns what stops it and closes the file; with no path, it does
// nothing.
func startFileProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start CPU profile %s: %w", path, errProfiling)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("write CPU profile: %w", err)
		}
		return nil
	}, nil
}

// copyDir copies the regular files of directory src into dst (a closed
// Badger store: no subdirectories).
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		// cp --reflink=auto shares the blocks where the file system can.
		if out, err := exec.Command("cp", "--reflink=auto", src+"/"+e.Name(), dst+"/"+e.Name()).CombinedOutput(); err != nil {
			return fmt.Errorf("cp %s: %v: %s", e.Name(), err, out)
		}
	}
	return nil
}

// WriteCatchup writes the catchup table.
func WriteCatchup(w io.Writer, r CatchupResult) {
	how := "in this process"
	if r.Newcomer == NewcomerProcess {
		how = "an agent process"
	}
	fmt.Fprintf(w, "\nCATCHUP  a new node (%s) joins %d nodes whose stores hold %d sessions and %d users, while n0 serves %d logins/s\n",
		how, r.Nodes, r.Sessions, r.Users, r.LoginRate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET")
	conv := fmt.Sprintf("%.1fs", r.Seconds)
	if !r.Converged {
		conv = fmt.Sprintf("not after %.0fs", r.Seconds)
	}
	fmt.Fprintf(tw, "newcomer start -> digest equal to n0's\t%s\t<= %.0fs: %s\n", conv, r.TargetSeconds, convergedVerdict(r.Converged, r.Seconds <= r.TargetSeconds, r.Sessions, TargetCatchupSessions))
	fmt.Fprintf(tw, "newcomer says it caught up\t%.1fs\t\n", r.CaughtUpSeconds)
	fmt.Fprintf(tw, "records sent by anti-entropy\t%d (%s the most: %d, %s sent)\t\n", r.RepairedAll, r.Repairer, r.Repaired, mib(r.RepairerBytes))
	fmt.Fprintf(tw, "bytes sent\tcluster %s, newcomer %s\t\n", mib(r.BytesCluster), mib(r.BytesNewcomer))
	fmt.Fprintf(tw, "logins during the catch-up\t%d (%d errors), p50 %s, p99 %s\t\n", r.Logins, r.LoginErrors, fmtMs(r.LoginP50), fmtMs(r.LoginP99))
	mem := fmt.Sprintf("RSS %s before, peak %s (+%s); Go heap %s before, peak %s (+%s)",
		mib(r.RSSBefore), mib(r.RSSPeak), mib(r.RSSPeak-r.RSSBefore), mib(r.HeapBefore), mib(r.HeapPeak), mib(r.HeapPeak-r.HeapBefore))
	if r.Newcomer == NewcomerProcess {
		fmt.Fprintf(tw, "memory of the cluster's process (repairer side)\t%s\t\n", mem)
		peak := "not measured (no /proc/<pid>/status)"
		if r.NewcomerRSSPeak > 0 {
			peak = "peak RSS " + mib(r.NewcomerRSSPeak) + " (VmHWM, start to convergence)"
		}
		fmt.Fprintf(tw, "memory of the newcomer's process\t%s\t\n", peak)
	} else {
		fmt.Fprintf(tw, "process memory (every node)\t%s\t\n", mem)
	}
	fmt.Fprintf(tw, "setup\tfill %.1fs, %d nodes started on copies in %.1fs\t\n", r.FillSeconds, r.Nodes, r.StartSeconds)
	tw.Flush()
	if r.Newcomer == NewcomerProcess {
		fmt.Fprintf(w, "  the newcomer runs as `ussync agent` in a process of its own: its peak is its own. The cluster's process holds the %d nodes:\n"+
			"  its growth is the repairer's side (%s sent %d of %d records), with the other nodes and the logins beside it;\n"+
			"  the newcomer's bytes are its own count (GET /metrics)\n", r.Nodes, r.Repairer, r.Repaired, r.RepairedAll)
		return
	}
	fmt.Fprintln(w, "  the nodes share this process: the memory growth is the newcomer's and the repairer's together, beside the cluster's steady state")
}
