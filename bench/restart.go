package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"
)

// The restart scenario (issue 13): a node killed, changes made while it is
// down (one of them logs out everywhere a user it holds a session of), the
// node restarted on its data: how long until it holds what the others hold.

// restartNodes is the cluster's size; restartChanges the logins made on
// n0 while n2 is down.
const (
	restartNodes   = 3
	restartChanges = 200
)

// RestartResult is one kill and restart under one timer set.
type RestartResult struct {
	Timers string `json:"timers"`
	// Down is how long the node was down (until its peers saw it fail and
	// the changes were made).
	Down float64 `json:"down_seconds"`
	// Seconds runs from the restart's start to every node holding the same
	// records; Ready until the restarted node said it had caught up.
	Seconds   float64 `json:"seconds"`
	Ready     float64 `json:"ready_seconds"`
	Converged bool    `json:"converged"`
	// Stale is whether the restarted node still answered 200 for the
	// session logged out everywhere when it started (it must not, once
	// converged).
	Stale bool `json:"stale_at_start"`
}

// Restart kills and restarts a node once per timer set of
// opts.SplitTimers.
func Restart(ctx context.Context, opts Options) ([]RestartResult, error) {
	opts = opts.withDefaults()
	var out []RestartResult
	for _, set := range opts.SplitTimers {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := restartRun(ctx, opts, set)
		out = append(out, r)
		if err != nil {
			return out, fmt.Errorf("%s timers: %w", set, err)
		}
	}
	return out, nil
}

func restartRun(ctx context.Context, opts Options, timers string) (RestartResult, error) {
	res := RestartResult{Timers: timers}
	opts.Timers = timers
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("restart (%s timers): starting %d nodes", timers, restartNodes)
		c := newCluster(h, opts)
		c.Start(restartNodes)
		cl := newClient(h, c, 2)
		users, err := registerUsers(ctx, c, cl, 2)
		if err != nil {
			return err
		}
		victim := c.Members[restartNodes-1]
		id, err := cl.login(ctx, victim, users[0])
		if err != nil {
			return err
		}
		c.WaitFor(time.Minute, "the login on every node", func() bool {
			for _, m := range c.Members {
				if _, err := m.Store().Session(id); err != nil {
					return false
				}
			}
			return true
		})
		down := time.Now()
		c.Kill(restartNodes - 1)
		c.WaitFor(2*time.Minute, "n0 to see the node fail", func() bool {
			return len(c.Members[0].Gossip().LiveMembers()) == restartNodes-1
		})
		if _, err := cl.expect(ctx, c.Members[0], http.StatusOK, "POST", "/v1/users/"+users[0]+"/logout-everywhere", nil); err != nil {
			return err
		}
		for i := range restartChanges {
			if _, err := cl.login(ctx, c.Members[i%(restartNodes-1)], users[1]); err != nil {
				return err
			}
		}
		res.Down = time.Since(down).Seconds()
		opts.progressf("restart (%s timers): restarting the node", timers)
		start := time.Now()
		c.Restart(restartNodes - 1)
		if code, _, err := cl.call(ctx, victim, "GET", "/v1/sessions/"+id, nil); err == nil && code == http.StatusOK {
			res.Stale = true
		}
		_, res.Converged = waitConverged(ctx, c.Members, start, 3*time.Minute, 10*time.Millisecond, func() {
			if res.Ready == 0 && !victim.Gossip().CatchingUp() {
				res.Ready = time.Since(start).Seconds()
			}
		})
		res.Seconds = time.Since(start).Seconds()
		return ctx.Err()
	})
	return res, err
}

// WriteRestart writes the restart table.
func WriteRestart(w io.Writer, rs []RestartResult) {
	fmt.Fprintf(w, "\nRESTART  one of %d nodes killed; while it is down a user it holds a session of is logged out everywhere and %d logins are made; restarted on its data\n",
		restartNodes, restartChanges)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TIMERS\tDOWN\tRESTART -> CONVERGED\tRESTART -> SAYS CAUGHT UP\tSTALE SESSION ANSWERED AT START\t")
	for _, r := range rs {
		conv := fmt.Sprintf("%.2fs", r.Seconds)
		if !r.Converged {
			conv = fmt.Sprintf("not after %.0fs", r.Seconds)
		}
		stale := "no"
		if r.Stale {
			stale = "yes (200 before the first round completes)"
		}
		fmt.Fprintf(tw, "%s\t%.1fs\t%s\t%.2fs\t%s\t\n", r.Timers, r.Down, conv, r.Ready, stale)
	}
	tw.Flush()
}
