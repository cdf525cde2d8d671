package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// The propagation scenario: login, logout and "log out everywhere", from
// the API call's return on one node to the change applied on every other.

// PropagationResult is one operation kind at one cluster size: from the
// moment the API call returned on one node until the change was applied on
// every other node (the slowest one).
type PropagationResult struct {
	Nodes int    `json:"nodes"`
	Op    string `json:"op"` // login, logout, logout-everywhere
	// Latency counts only operations every node saw; Lost are those some
	// node had not seen after 5 s.
	Latency Latency `json:"latency"`
	Lost    int     `json:"lost"`
	// Early counts operations every node had applied before the call even
	// returned (their latency is 0).
	Early int `json:"early"`
	// CallP50 is the median duration of the API call itself.
	CallP50 float64 `json:"call_p50_ms"`
	// TargetP99 is the target for Latency.P99 (0: none at this size).
	TargetP99 float64 `json:"target_p99_ms,omitempty"`
}

// tracker records when each node applied each change a peer sent it, from
// the nodes' Observer hooks. Keys name a change: "live/<id>" a session
// alive, "end/<id>" a session ended, "revoked/<email>/<hlc>" a user's
// revocation. Many goroutines may wait at once, each for its own key.
type tracker struct {
	n     int
	mu    sync.Mutex
	seen  map[string][]time.Time // key → when each node applied it (zero: not yet)
	waits map[string]*trackWait
}

// trackWait is one goroutine waiting for every node but origin to apply a
// key.
type trackWait struct {
	origin int
	latest time.Time
	last   int       // the node that applied it last
	next   time.Time // when the node before the last applied it
	done   chan struct{}
}

func newTracker(n int) *tracker {
	return &tracker{n: n, seen: map[string][]time.Time{}, waits: map[string]*trackWait{}}
}

func changeKey(r session.Record) string {
	switch {
	case r.Session != nil && r.Session.Ended == 0:
		return "live/" + r.Session.ID
	case r.Session != nil:
		return "end/" + r.Session.ID
	case r.User != nil && r.User.RevokedBefore != 0:
		return revokedKey(r.User.Email, r.User.RevokedBefore)
	}
	return ""
}

func revokedKey(email string, at session.HLC) string {
	return "revoked/" + email + "/" + strconv.FormatUint(uint64(at), 10)
}

// observer is node i's hook: it stamps the time first, and never blocks.
func (t *tracker) observer(i int) func([]session.Record) {
	return func(recs []session.Record) {
		now := time.Now()
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, r := range recs {
			key := changeKey(r)
			if key == "" {
				continue
			}
			ts := t.seen[key]
			if ts == nil {
				ts = make([]time.Time, t.n)
				t.seen[key] = ts
			}
			if ts[i].IsZero() {
				ts[i] = now
			}
			if w := t.waits[key]; w != nil {
				t.completeLocked(key, w)
			}
		}
	}
}

// completeLocked reports whether every node but w.origin applied key; if
// so it sets w.latest, wakes w and forgets key.
func (t *tracker) completeLocked(key string, w *trackWait) bool {
	ts := t.seen[key]
	if ts == nil {
		return false
	}
	var latest, next time.Time
	last := -1
	for i := 0; i < t.n; i++ {
		switch {
		case i == w.origin:
		case ts[i].IsZero():
			return false
		case ts[i].After(latest):
			next, latest, last = latest, ts[i], i
		case ts[i].After(next):
			next = ts[i]
		}
	}
	w.latest, w.last, w.next = latest, last, next
	close(w.done)
	delete(t.seen, key)
	delete(t.waits, key)
	return true
}

// waitFor waits until every node but origin has applied key, or lostAfter
// has passed (false), and returns the wait: when the last node applied it
// (latest), which node that was, and when the one before it did.
func (t *tracker) waitFor(ctx context.Context, key string, origin int) (*trackWait, bool) {
	w := &trackWait{origin: origin, last: -1, done: make(chan struct{})}
	t.mu.Lock()
	if t.completeLocked(key, w) {
		t.mu.Unlock()
		return w, true
	}
	t.waits[key] = w
	t.mu.Unlock()
	timer := time.NewTimer(lostAfter)
	defer timer.Stop()
	select {
	case <-w.done:
		return w, true
	case <-timer.C:
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-w.done:
		return w, true
	default:
	}
	delete(t.waits, key)
	delete(t.seen, key)
	return w, false
}

// Operation kinds of the propagation scenario.
const (
	OpLogin            = "login"
	OpLogout           = "logout"
	OpLogoutEverywhere = "logout-everywhere"
)

// propagation gathers one cluster's measurements; several workers may
// measure at once.
type propagation struct {
	t     *tracker
	mu    sync.Mutex
	lat   map[string][]time.Duration
	calls map[string][]time.Duration
	lost  map[string]int
	early map[string]int
	// gossipAlone: the eager push is off, and gossip promises no delivery
	// (settleGossip), so a warm-up operation some node has not seen within
	// lostAfter is not an error.
	gossipAlone bool
	// slow, when set, is told of every measured operation (sites).
	slow *slowWatch
}

func newPropagation(t *tracker) *propagation {
	return &propagation{t: t, lat: map[string][]time.Duration{}, calls: map[string][]time.Duration{},
		lost: map[string]int{}, early: map[string]int{}}
}

// measure times one operation: do calls the API and returns the key of
// the change; the latency runs from its return to the last other node.
// Unrecorded (warm-up) operations must arrive, or measure fails (unless
// p.gossipAlone).
func (p *propagation) measure(ctx context.Context, op string, origin int, record bool, do func() (string, error)) error {
	var mark slowMark
	if p.slow != nil && record {
		mark = p.slow.mark()
	}
	start := time.Now()
	key, err := do()
	returned := time.Now()
	if err != nil {
		return err
	}
	w, ok := p.t.waitFor(ctx, key, origin)
	latest := w.latest
	if err := ctx.Err(); err != nil {
		return err
	}
	if !record {
		if !ok && !p.gossipAlone {
			return fmt.Errorf("warm-up %s not seen by every node within %v", op, lostAfter)
		}
		return nil
	}
	d := latest.Sub(returned)
	p.mu.Lock()
	p.calls[op] = append(p.calls[op], returned.Sub(start))
	switch {
	case !ok:
		p.lost[op]++
	case d < 0:
		p.early[op]++
		d = 0
		fallthrough
	default:
		p.lat[op] = append(p.lat[op], d)
	}
	p.mu.Unlock()
	if ok && p.slow != nil {
		p.slow.saw(op, origin, d, mark, w.last, w.next.Sub(returned))
	}
	return nil
}

// lostOne counts an operation waited for but not timed that never arrived.
func (p *propagation) lostOne(op string) {
	p.mu.Lock()
	p.lost[op]++
	p.mu.Unlock()
}

// runRounds runs rounds measured rounds (after warmup unmeasured ones) on
// c, workers at a time: each worker logs its own user in and out, so its
// operations follow one another while the workers' overlap. Round r runs
// on node r mod n: login (measured), logout of that session (measured), a
// second login (waited for, not measured), logout-everywhere (measured,
// ending the second session).
func runRounds(ctx context.Context, c *nodetest.Cluster, cl *client, p *propagation, users []string, warmup, rounds, workers int) error {
	n := len(c.Members)
	workers = max(1, min(workers, len(users)))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			email := users[w]
			for r := -warmup + w; r < rounds && ctx.Err() == nil; r += workers {
				if errs[w] = oneRound(ctx, c.Members[(r+warmup)%n], (r+warmup)%n, email, cl, p, r >= 0); errs[w] != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

func oneRound(ctx context.Context, m *nodetest.Member, i int, email string, cl *client, p *propagation, record bool) error {
	var id string
	if err := p.measure(ctx, OpLogin, i, record, func() (string, error) {
		var err error
		id, err = cl.login(ctx, m, email)
		return "live/" + id, err
	}); err != nil {
		return err
	}
	if err := p.measure(ctx, OpLogout, i, record, func() (string, error) {
		_, err := cl.expect(ctx, m, http.StatusOK, "DELETE", "/v1/sessions/"+id, nil)
		return "end/" + id, err
	}); err != nil {
		return err
	}
	id2, err := cl.login(ctx, m, email)
	if err != nil {
		return err
	}
	if _, ok := p.t.waitFor(ctx, "live/"+id2, i); !ok && ctx.Err() == nil && record {
		// Not timed, but a login some node never saw is still lost.
		p.lostOne(OpLogin)
	}
	return p.measure(ctx, OpLogoutEverywhere, i, record, func() (string, error) {
		if _, err := cl.expect(ctx, m, http.StatusOK, "POST", "/v1/users/"+email+"/logout-everywhere", nil); err != nil {
			return "", err
		}
		// A worker's operations follow one another: the origin's revocation
		// of this user is the one this call wrote.
		u, err := m.Store().User(email)
		if err != nil {
			return "", fmt.Errorf("read user on %s: %w", m.Name(), err)
		}
		return revokedKey(email, u.RevokedBefore), nil
	})
}

// results turns p into one row per operation kind.
func (p *propagation) results(n int) []PropagationResult {
	var out []PropagationResult
	for _, op := range []string{OpLogin, OpLogout, OpLogoutEverywhere} {
		calls := summarize(p.calls[op])
		out = append(out, PropagationResult{Nodes: n, Op: op, Latency: summarize(p.lat[op]), Lost: p.lost[op],
			Early: p.early[op], CallP50: calls.P50})
	}
	return out
}

// Propagation starts n nodes and times, one operation in flight at a time,
// how long a login, a logout and a logout-everywhere made through one
// node's API take to be applied on every node. Each round runs on the next
// node in turn: login (measured), logout of that session (measured), a
// second login (waited for, not measured), logout-everywhere (measured,
// ending the second session). A few warm-up rounds come first.
func Propagation(ctx context.Context, n int, opts Options) ([]PropagationResult, error) {
	opts = opts.withDefaults()
	if n < 2 {
		return nil, fmt.Errorf("propagation needs at least 2 nodes, not %d", n)
	}
	var out []PropagationResult
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("propagation: starting %d nodes", n)
		c, t := newTrackedCluster(h, opts, n)
		c.Start(n)
		cl := newClient(h, c, 2)
		users, err := registerUsers(ctx, c, cl, propUsers)
		if err != nil {
			return err
		}
		p := newPropagation(t)
		warmup := max(2, min(20, opts.Rounds/10))
		opts.progressf("propagation: %d nodes, %d warm-up and %d measured rounds", n, warmup, opts.Rounds)
		if err := runRounds(ctx, c, cl, p, users, warmup, opts.Rounds, 1); err != nil {
			return err
		}
		for _, res := range p.results(n) {
			switch n {
			case 10:
				res.TargetP99 = ms(TargetPropagationP99N10)
			case 30:
				res.TargetP99 = ms(TargetPropagationP99N30)
			}
			out = append(out, res)
		}
		return nil
	})
	return out, err
}

// WritePropagation writes the propagation table.
func WritePropagation(w io.Writer, rs []PropagationResult, rounds int) {
	fmt.Fprintf(w, "\nPROPAGATION  API call returned on one node -> change applied on every other node (slowest); one operation in flight, %d rounds per size\n", rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "NODES\tOP\tCOUNT\tLOST\tEARLY\tP50\tP99\tMAX\tCALL P50\t TARGET\t")
	for _, r := range rs {
		target := "-"
		if r.TargetP99 > 0 {
			ok := r.Latency.P99 <= r.TargetP99 && r.Lost == 0
			target = fmt.Sprintf("p99 <= %g ms: %s", r.TargetP99, verdict(ok))
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t %s\t\n", r.Nodes, r.Op, r.Latency.Count, r.Lost, r.Early,
			fmtMs(r.Latency.P50), fmtMs(r.Latency.P99), fmtMs(r.Latency.Max), fmtMs(r.CallP50), target)
	}
	tw.Flush()
	fmt.Fprintln(w, "  LOST: not applied on every node within 5s (should be 0). EARLY: applied everywhere before the call returned (counted as 0).")
}
