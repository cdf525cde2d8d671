package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The logins scenario: sustained logins into one node of three, then the
// time to converge.

// LoginsResult is the sustained login load into one node of three.
type LoginsResult struct {
	Nodes    int     `json:"nodes"`
	Clients  int     `json:"clients"`
	Seconds  float64 `json:"seconds"`
	Accepted int64   `json:"accepted"`
	Errors   int64   `json:"errors"`
	// FirstError is the first failure, if any.
	FirstError string  `json:"first_error,omitempty"`
	PerSec     float64 `json:"logins_per_sec"`
	// CPUPerLogin is the CPU time (user and system) this process spent
	// during the load divided by the logins accepted: the three nodes and
	// the clients together, in microseconds. Less swayed by other work on
	// the machine than PerSec, it is the figure to compare changes by.
	CPUPerLogin float64 `json:"cpu_us_per_login"`
	// Converged is whether every node held the same records (equal digests
	// and records: waitConverged) within a minute of the load stopping, and ConvergeSeconds
	// how long after the load stopped that was.
	Converged       bool    `json:"converged"`
	ConvergeSeconds float64 `json:"converge_seconds"`
	// Sessions held by each node at the end.
	Sessions []int `json:"sessions_per_node"`
	// Dropped are deltas dropped on the way (full inboxes or backlogs), and
	// Repaired the records anti-entropy had to send, summed over the nodes.
	Dropped  uint64 `json:"dropped"`
	Repaired uint64 `json:"repaired"`
	Target   int    `json:"target_per_sec"`
}

// Logins starts three nodes and has opts.Clients concurrent clients log
// verified users in on the first one for opts.Duration, then times how long
// the three take to converge.
func Logins(ctx context.Context, opts Options) (LoginsResult, error) {
	opts = opts.withDefaults()
	const nodes = 3
	res := LoginsResult{Nodes: nodes, Clients: opts.Clients, Target: TargetLoginsPerSec}
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("logins: starting %d nodes", nodes)
		c := newCluster(h, opts)
		c.Start(nodes)
		cl := newClient(h, c, opts.Clients)
		users, err := registerUsers(ctx, c, cl, loadUsers)
		if err != nil {
			return err
		}
		bodies := make([][]byte, len(users))
		for i, e := range users {
			bodies[i] = loginBody(e)
		}
		opts.progressf("logins: %d clients into n0 for %v", opts.Clients, opts.Duration)
		var accepted, failed atomic.Int64
		var firstErr error
		var errOnce sync.Once
		m := c.Members[0]
		cpu0 := processCPU()
		start := time.Now()
		deadline := start.Add(opts.Duration)
		var wg sync.WaitGroup
		for w := 0; w < opts.Clients; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i += opts.Clients {
					code, raw, err := cl.call(ctx, m, "POST", "/v1/sessions", bodies[i%len(bodies)])
					if err == nil && code == http.StatusCreated {
						accepted.Add(1)
						continue
					}
					if ctx.Err() != nil {
						return
					}
					failed.Add(1)
					errOnce.Do(func() {
						if err == nil {
							err = fmt.Errorf("%d %s", code, bytes.TrimSpace(raw))
						}
						firstErr = err
					})
				}
			}()
		}
		wg.Wait()
		stopped := time.Now()
		cpu := processCPU() - cpu0
		if err := ctx.Err(); err != nil {
			return err
		}
		elapsed := stopped.Sub(start)
		res.Seconds = elapsed.Seconds()
		res.Accepted, res.Errors = accepted.Load(), failed.Load()
		if firstErr != nil {
			res.FirstError = firstErr.Error()
		}
		res.PerSec = float64(res.Accepted) / elapsed.Seconds()
		if res.Accepted > 0 {
			res.CPUPerLogin = float64(cpu.Microseconds()) / float64(res.Accepted)
		}

		opts.progressf("logins: %d accepted; waiting for convergence", res.Accepted)
		took, ok := waitConverged(ctx, c.Members, stopped, convergeTimeout, 5*time.Millisecond, nil)
		res.Converged, res.ConvergeSeconds = ok, took.Seconds()
		for _, m := range c.Members {
			_, s := m.Store().Counts()
			res.Sessions = append(res.Sessions, s)
			st := m.Gossip().Stats()
			res.Dropped += st.Dropped
			res.Repaired += st.RecordsRepaired
		}
		return ctx.Err()
	})
	return res, err
}

// cpuPerLoginTarget is issue 11's target for the CPU a login costs, summed
// over the three nodes and the clients, in µs.
const cpuPerLoginTarget = 100

// WriteLogins writes the sustained-login table.
func WriteLogins(w io.Writer, r LoginsResult) {
	fmt.Fprintf(w, "\nLOGINS  %d clients POST /v1/sessions to n0 of %d nodes for %.1fs, then wait for convergence\n", r.Clients, r.Nodes, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET")
	fmt.Fprintf(tw, "logins accepted\t%d (%d errors)\t\n", r.Accepted, r.Errors)
	fmt.Fprintf(tw, "logins/s\t%.0f\t>= %d/s: %s\n", r.PerSec, r.Target, verdict(r.PerSec >= float64(r.Target)))
	fmt.Fprintf(tw, "CPU per login\t%.0f µs (3 nodes and clients, user+system)\t<= %d µs: %s\n", r.CPUPerLogin, cpuPerLoginTarget, verdict(r.CPUPerLogin <= cpuPerLoginTarget))
	conv := "no"
	if r.Converged {
		conv = "yes"
	}
	fmt.Fprintf(tw, "converged\t%s, %.3fs after the load stopped\tconverged: %s\n", conv, r.ConvergeSeconds, verdict(r.Converged))
	fmt.Fprintf(tw, "sessions per node\t%s\t\n", joinInts(r.Sessions))
	fmt.Fprintf(tw, "deltas dropped / records repaired\t%d / %d\t\n", r.Dropped, r.Repaired)
	if r.FirstError != "" {
		fmt.Fprintf(tw, "first error\t%s\t\n", r.FirstError)
	}
	tw.Flush()
}
