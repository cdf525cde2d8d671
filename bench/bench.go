// Package bench measures ussync on in-process clusters of real nodes on
// loopback (package nodetest): how long login, logout and "log out
// everywhere" take to reach every node, how many logins one node of three
// accepts per second, how fast the session check answers under load, and
// how many bytes one push/pull between two in-sync nodes sends.
//
// It reports figures and the targets beside them; it asserts nothing about
// time. Operations that never arrive are counted (lost), because that is a
// correctness failure, not a slow run. Every scenario stops its nodes,
// removes its directories and closes its connections before it returns.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// Scenario names, as --scenario takes them.
const (
	ScenarioAll         = "all"
	ScenarioPropagation = "propagation"
	ScenarioLogins      = "logins"
	ScenarioCheck       = "check"
	ScenarioPushPull    = "pushpull"
	ScenarioList        = "list"
)

// Scenarios lists every scenario in the order "all" runs them.
var Scenarios = []string{ScenarioPropagation, ScenarioLogins, ScenarioCheck, ScenarioPushPull, ScenarioList}

// Targets, printed beside the figures for the reader; never asserted.
const (
	TargetPropagationP99N10 = 5 * time.Millisecond  // propagation p99 at 10 nodes
	TargetPropagationP99N30 = 12 * time.Millisecond // propagation p99 at 30 nodes
	TargetLoginsPerSec      = 10_000                // logins/s into one node of 3, converged after
	TargetCheckP99          = time.Millisecond      // session check p99 with 50 clients
	TargetPushPullBytes     = 16 << 10              // one in-sync push/pull at 100,000 sessions
)

const (
	// lostAfter is how long an operation may take to reach every node
	// before it counts as lost.
	lostAfter = 5 * time.Second
	// convergeTimeout bounds the wait for convergence after the login load.
	convergeTimeout = time.Minute
	// checkPool is the number of active sessions the check scenario reads.
	checkPool = 1000
	// loadUsers is the number of verified users the load scenarios log in.
	loadUsers = 100
	// propUsers is the number of users the propagation rounds rotate over.
	propUsers = 8
	// fillBatch is the number of records per store.Apply when filling.
	fillBatch = 1000
	// quietFor is how long gossip must send nothing to count as quiet.
	quietFor = 500 * time.Millisecond
	// slowTimer is the probe and push/pull interval of the push/pull
	// scenario: long enough that neither runs during the measurement.
	slowTimer = time.Hour
)

// Gossip timer sets the nodes run with (Options.Timers).
const (
	// TimersLAN are memberlist's LAN timers (probe every 1 s with a 500 ms
	// timeout, gossip every 200 ms, push/pull every 30 s), as a site
	// cluster in one data centre runs: what a deployment would see.
	TimersLAN = "lan"
	// TimersTest are nodetest's shrunk timers (probe every 100 ms with a
	// 50 ms timeout, gossip every 20 ms, push/pull every 300 ms): made for
	// fast tests, they run anti-entropy 100 times as often as LAN and, on a
	// loaded machine, suspect live members.
	TimersTest = "test"
)

// Options are the sizes of the scenarios. The zero value of a field takes
// its DefaultOptions value.
type Options struct {
	// Nodes are the cluster sizes of the propagation scenario.
	Nodes []int
	// Rounds is the number of measured operations of each kind (login,
	// logout, logout-everywhere) per cluster size.
	Rounds int
	// Duration is how long each load (logins, check) runs.
	Duration time.Duration
	// Clients is the number of concurrent clients logging in.
	Clients int
	// CheckClients is the number of concurrent clients checking sessions.
	CheckClients int
	// Sessions is the number of sessions each node of the push/pull
	// scenario holds.
	Sessions int
	// ListSessions is the number of sessions the list scenario's store
	// holds.
	ListSessions int
	// Timers is the gossip timer set of the nodes: TimersLAN (the default)
	// or TimersTest.
	Timers string
	// Log receives the nodes' error logs; nil discards them.
	Log io.Writer
	// Progress receives one line per step; nil is silent.
	Progress io.Writer
}

// DefaultOptions are the sizes `ussync bench` runs by default.
func DefaultOptions() Options {
	return Options{
		Nodes:        []int{3, 10, 30},
		Rounds:       200,
		Duration:     5 * time.Second,
		Clients:      32,
		CheckClients: 50,
		Sessions:     100_000,
		ListSessions: 1_000_000,
		Timers:       TimersLAN,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if len(o.Nodes) == 0 {
		o.Nodes = d.Nodes
	}
	if o.Rounds <= 0 {
		o.Rounds = d.Rounds
	}
	if o.Duration <= 0 {
		o.Duration = d.Duration
	}
	if o.Clients <= 0 {
		o.Clients = d.Clients
	}
	if o.CheckClients <= 0 {
		o.CheckClients = d.CheckClients
	}
	if o.Sessions <= 0 {
		o.Sessions = d.Sessions
	}
	if o.ListSessions <= 0 {
		o.ListSessions = d.ListSessions
	}
	if o.Timers == "" {
		o.Timers = d.Timers
	}
	return o
}

// ParseTimers checks a timer set name.
func ParseTimers(s string) error {
	if s != TimersLAN && s != TimersTest {
		return fmt.Errorf("timers %q: want %s or %s", s, TimersLAN, TimersTest)
	}
	return nil
}

// tuneTimers sets g's timers to the set named (g arrives shrunk by
// nodetest, which is TimersTest).
func tuneTimers(set string, g *gossip.Config) {
	if set != TimersLAN {
		return
	}
	// Zero takes the profile's value: memberlist's DefaultLANConfig.
	g.Profile = gossip.ProfileLAN
	g.ProbeInterval, g.ProbeTimeout, g.GossipInterval, g.PushPullInterval = 0, 0, 0, 0
	g.GossipToTheDeadTime, g.TCPTimeout, g.SuspicionMult = 0, 0, 0
	lan := gossip.DefaultConfig(gossip.ProfileLAN)
	g.ReconnectInterval, g.ReconnectMaxBackoff = lan.ReconnectInterval, lan.ReconnectMaxBackoff
}

func (o Options) progressf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...)
	}
}

// Machine describes where the figures were taken.
type Machine struct {
	Date   time.Time `json:"date"`
	CPUs   int       `json:"cpus"`
	CPU    string    `json:"cpu"`
	OS     string    `json:"os"`
	Arch   string    `json:"arch"`
	Go     string    `json:"go"`
	Procs  int       `json:"gomaxprocs"`
	Kernel string    `json:"kernel,omitempty"`
	// Load is /proc/loadavg's 1, 5 and 15 minute load averages when the
	// run started: figures taken on a busy machine are not comparable.
	Load string `json:"load_average,omitempty"`
}

// ThisMachine describes the machine the process runs on.
func ThisMachine() Machine {
	m := Machine{
		Date:  time.Now().UTC().Truncate(time.Second),
		CPUs:  runtime.NumCPU(),
		CPU:   cpuModel(),
		OS:    runtime.GOOS,
		Arch:  runtime.GOARCH,
		Go:    runtime.Version(),
		Procs: runtime.GOMAXPROCS(0),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	return m
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// Latency summarizes a set of durations (nearest-rank percentiles).
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(ds []time.Duration) Latency {
	l := Latency{Count: len(ds)}
	if len(ds) == 0 {
		return l
	}
	slices.Sort(ds)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(ds)))) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	l.P50, l.P99, l.Max = ms(rank(0.50)), ms(rank(0.99)), ms(ds[len(ds)-1])
	return l
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

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
	// and counts) within a minute of the load stopping, and ConvergeSeconds
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

// CheckResult is the session check (GET /v1/sessions/{id}) under a closed
// loop of Clients concurrent clients, each over a pool of active sessions.
type CheckResult struct {
	// Kind is CheckClosed or CheckEcho.
	Kind     string  `json:"kind"`
	Clients  int     `json:"clients"`
	Pool     int     `json:"pool"`
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	// FirstError is the first failure, if any.
	FirstError string  `json:"first_error,omitempty"`
	PerSec     float64 `json:"requests_per_sec"`
	Latency    Latency `json:"latency"`
	// TargetP99 is the target for Latency.P99 (0: this row is a baseline).
	TargetP99 float64 `json:"target_p99_ms,omitempty"`
}

// PushPullResult is one push/pull between two in-sync nodes.
type PushPullResult struct {
	Sessions int `json:"sessions"`
	Users    int `json:"users"`
	// FillSeconds is how long writing the records into both stores took.
	FillSeconds float64 `json:"fill_seconds"`
	// Seconds is the measured window: from SyncWith until both sides had
	// compared digests and gossip was quiet again.
	Seconds float64 `json:"seconds"`
	// BytesInitiator and BytesPeer are what each side sent in the window,
	// background subtracted; Total is their sum.
	BytesInitiator int64 `json:"bytes_initiator"`
	BytesPeer      int64 `json:"bytes_peer"`
	Total          int64 `json:"bytes_total"`
	// Background is what both sent in a quiet window of the same length
	// without a push/pull (subtracted above; probes are off, so it should
	// be 0).
	Background int64 `json:"background_bytes"`
	// Repaired is the number of buckets anti-entropy found different (0 when
	// the nodes really were in sync).
	Repaired uint64 `json:"buckets_repaired"`
	Target   int64  `json:"target_bytes"`
}

// Report is every figure of a run.
type Report struct {
	Machine     Machine             `json:"machine"`
	Options     ReportOptions       `json:"options"`
	Propagation []PropagationResult `json:"propagation,omitempty"`
	Logins      *LoginsResult       `json:"logins,omitempty"`
	Check       []CheckResult       `json:"check,omitempty"`
	PushPull    *PushPullResult     `json:"pushpull,omitempty"`
	List        *ListResult         `json:"list,omitempty"`
}

// ReportOptions are the sizes a Report was taken with.
type ReportOptions struct {
	Nodes        []int   `json:"nodes"`
	Rounds       int     `json:"rounds"`
	Duration     float64 `json:"duration_seconds"`
	Clients      int     `json:"clients"`
	CheckClients int     `json:"check_clients"`
	Sessions     int     `json:"sessions"`
	Timers       string  `json:"timers"`
}

// ParseScenario checks a --scenario value and returns the scenarios it
// names, in run order.
func ParseScenario(s string) ([]string, error) {
	if s == ScenarioAll || s == "" {
		return slices.Clone(Scenarios), nil
	}
	if slices.Contains(Scenarios, s) {
		return []string{s}, nil
	}
	return nil, fmt.Errorf("scenario %q: want %s or %s", s, ScenarioAll, strings.Join(Scenarios, ", "))
}

// Run runs the named scenarios in order and writes the header and each
// scenario's table to w (nil writes nothing) as soon as it is measured. It
// stops at the first error or when ctx ends, returning what it measured.
func Run(ctx context.Context, scenarios []string, opts Options, w io.Writer) (*Report, error) {
	opts = opts.withDefaults()
	if w == nil {
		w = io.Discard
	}
	r := &Report{Machine: ThisMachine(), Options: ReportOptions{
		Nodes: opts.Nodes, Rounds: opts.Rounds, Duration: opts.Duration.Seconds(),
		Clients: opts.Clients, CheckClients: opts.CheckClients, Sessions: opts.Sessions, Timers: opts.Timers,
	}}
	if err := ParseTimers(opts.Timers); err != nil {
		return r, err
	}
	WriteHeader(w, r.Machine, opts.Timers)
	for _, s := range scenarios {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		switch s {
		case ScenarioPropagation:
			for _, n := range opts.Nodes {
				res, err := Propagation(ctx, n, opts)
				r.Propagation = append(r.Propagation, res...)
				if err != nil {
					return r, fmt.Errorf("propagation at %d nodes: %w", n, err)
				}
			}
			WritePropagation(w, r.Propagation, opts.Rounds)
		case ScenarioLogins:
			res, err := Logins(ctx, opts)
			if err != nil {
				return r, fmt.Errorf("logins: %w", err)
			}
			r.Logins = &res
			WriteLogins(w, res)
		case ScenarioCheck:
			res, err := Check(ctx, opts)
			r.Check = res
			if err != nil {
				return r, fmt.Errorf("check: %w", err)
			}
			WriteCheck(w, res)
		case ScenarioPushPull:
			res, err := PushPull(ctx, opts)
			if err != nil {
				return r, fmt.Errorf("pushpull: %w", err)
			}
			r.PushPull = &res
			WritePushPull(w, res)
		case ScenarioList:
			res, err := List(ctx, opts)
			if err != nil {
				return r, fmt.Errorf("list: %w", err)
			}
			r.List = &res
			WriteList(w, res)
		default:
			return r, fmt.Errorf("unknown scenario %q", s)
		}
	}
	return r, nil
}

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

// expect is call that wants one status code.
func (cl *client) expect(ctx context.Context, m *nodetest.Member, want int, method, path string, body []byte) ([]byte, error) {
	code, raw, err := cl.call(ctx, m, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s on %s: %w", method, path, m.Name(), err)
	}
	if code != want {
		return raw, fmt.Errorf("%s %s on %s: %d %s", method, path, m.Name(), code, bytes.TrimSpace(raw))
	}
	return raw, nil
}

func loginBody(email string) []byte {
	b, _ := json.Marshal(map[string]string{"email": email, "ip": "192.0.2.1", "user_agent": "ussync-bench"})
	return b
}

// login logs email in on m and returns the new session's id.
func (cl *client) login(ctx context.Context, m *nodetest.Member, email string) (string, error) {
	raw, err := cl.expect(ctx, m, http.StatusCreated, "POST", "/v1/sessions", loginBody(email))
	if err != nil {
		return "", err
	}
	var a struct {
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
		Synced bool   `json:"synced"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return "", fmt.Errorf("login answer %q: %w", raw, err)
	}
	if !a.Synced {
		return "", fmt.Errorf("login on %s not synced (%s)", m.Name(), a.Reason)
	}
	return a.Session.ID, nil
}

func userEmail(i int) string { return fmt.Sprintf("user%06d@bench.example", i) }

// registerUsers creates n verified users on the first member and waits
// until every member knows them verified (a login elsewhere before that
// would rightly stay local).
func registerUsers(ctx context.Context, c *nodetest.Cluster, cl *client, n int) ([]string, error) {
	body := []byte(`{"login":"bench","display_name":"Bench","verified_via":"registration"}`)
	emails := make([]string, n)
	for i := range emails {
		emails[i] = userEmail(i)
		if _, err := cl.expect(ctx, c.Members[0], http.StatusOK, "PUT", "/v1/users/"+emails[i], body); err != nil {
			return nil, err
		}
	}
	c.WaitFor(30*time.Second, "the users verified on every node", func() bool {
		for _, m := range c.Members {
			for _, e := range emails {
				if u, err := m.Store().User(e); err != nil || !u.Verified.V.OK {
					return false
				}
			}
		}
		return true
	})
	return emails, nil
}

// tracker records when each node applied each change a peer sent it, from
// the nodes' Observer hooks. Keys name a change: "live/<id>" a session
// alive, "end/<id>" a session ended, "revoked/<email>/<hlc>" a user's
// revocation.
type tracker struct {
	n    int
	mu   sync.Mutex
	seen map[string][]time.Time // key → when each node applied it (zero: not yet)
	wake chan struct{}
}

func newTracker(n int) *tracker {
	return &tracker{n: n, seen: map[string][]time.Time{}, wake: make(chan struct{}, 1)}
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
		}
		t.mu.Unlock()
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// wait waits until every node but origin has applied key and returns the
// latest of those times, or false after lostAfter. One waiter at a time.
func (t *tracker) wait(ctx context.Context, key string, origin int) (time.Time, bool) {
	timer := time.NewTimer(lostAfter)
	defer timer.Stop()
	for {
		t.mu.Lock()
		ts := t.seen[key]
		var latest time.Time
		all := ts != nil
		for i := 0; all && i < t.n; i++ {
			switch {
			case i == origin:
			case ts[i].IsZero():
				all = false
			case ts[i].After(latest):
				latest = ts[i]
			}
		}
		if all {
			delete(t.seen, key)
		}
		t.mu.Unlock()
		if all {
			return latest, true
		}
		select {
		case <-t.wake:
		case <-timer.C:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}

// Operation kinds of the propagation scenario.
const (
	OpLogin            = "login"
	OpLogout           = "logout"
	OpLogoutEverywhere = "logout-everywhere"
)

// propagation gathers one cluster size's measurements.
type propagation struct {
	t      *tracker
	lat    map[string][]time.Duration
	calls  map[string][]time.Duration
	lost   map[string]int
	early  map[string]int
	record bool
}

// measure times one operation: do calls the API and returns the key of
// the change; the latency runs from its return to the last other node.
func (p *propagation) measure(ctx context.Context, op string, origin int, do func() (string, error)) error {
	start := time.Now()
	key, err := do()
	returned := time.Now()
	if err != nil {
		return err
	}
	latest, ok := p.t.wait(ctx, key, origin)
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.record {
		if !ok {
			return fmt.Errorf("warm-up %s not seen by every node within %v", op, lostAfter)
		}
		return nil
	}
	p.calls[op] = append(p.calls[op], returned.Sub(start))
	if !ok {
		p.lost[op]++
		return nil
	}
	d := latest.Sub(returned)
	if d < 0 {
		p.early[op]++
		d = 0
	}
	p.lat[op] = append(p.lat[op], d)
	return nil
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
		t := newTracker(n)
		c := newCluster(h, opts)
		// Configure runs for each member before its node starts: the hook is
		// in place before any message can arrive.
		c.Configure = func(i int, cfg *node.Config) {
			cfg.Sync.Modes = node.DefaultConfig().Sync.Modes
			c.Members[i].Observer = t.observer(i)
		}
		c.Start(n)
		cl := newClient(h, c, 2)
		users, err := registerUsers(ctx, c, cl, propUsers)
		if err != nil {
			return err
		}
		p := &propagation{t: t, lat: map[string][]time.Duration{}, calls: map[string][]time.Duration{},
			lost: map[string]int{}, early: map[string]int{}}
		warmup := max(2, min(20, opts.Rounds/10))
		opts.progressf("propagation: %d nodes, %d warm-up and %d measured rounds", n, warmup, opts.Rounds)
		for r := -warmup; r < opts.Rounds; r++ {
			p.record = r >= 0
			i := (r + warmup) % n
			m := c.Members[i]
			email := users[(r+warmup)%len(users)]
			var id string
			if err := p.measure(ctx, OpLogin, i, func() (string, error) {
				var err error
				id, err = cl.login(ctx, m, email)
				return "live/" + id, err
			}); err != nil {
				return err
			}
			if err := p.measure(ctx, OpLogout, i, func() (string, error) {
				_, err := cl.expect(ctx, m, http.StatusOK, "DELETE", "/v1/sessions/"+id, nil)
				return "end/" + id, err
			}); err != nil {
				return err
			}
			id2, err := cl.login(ctx, m, email)
			if err != nil {
				return err
			}
			if _, ok := t.wait(ctx, "live/"+id2, i); !ok && ctx.Err() == nil {
				// Not timed, but a login some node never saw is still lost.
				if p.record {
					p.lost[OpLogin]++
				}
			}
			if err := p.measure(ctx, OpLogoutEverywhere, i, func() (string, error) {
				if _, err := cl.expect(ctx, m, http.StatusOK, "POST", "/v1/users/"+email+"/logout-everywhere", nil); err != nil {
					return "", err
				}
				// Operations are sequential: the origin's revocation is the one
				// this call wrote.
				u, err := m.Store().User(email)
				if err != nil {
					return "", fmt.Errorf("read user on %s: %w", m.Name(), err)
				}
				return revokedKey(email, u.RevokedBefore), nil
			}); err != nil {
				return err
			}
		}
		for _, op := range []string{OpLogin, OpLogout, OpLogoutEverywhere} {
			calls := summarize(p.calls[op])
			res := PropagationResult{Nodes: n, Op: op, Latency: summarize(p.lat[op]), Lost: p.lost[op],
				Early: p.early[op], CallP50: calls.P50}
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
		converged := func() bool {
			if !c.Converged() {
				return false
			}
			_, s0 := c.Members[0].Store().Counts()
			for _, m := range c.Members[1:] {
				if _, s := m.Store().Counts(); s != s0 {
					return false
				}
			}
			return true
		}
		for {
			if converged() {
				res.Converged = true
				res.ConvergeSeconds = time.Since(stopped).Seconds()
				break
			}
			if time.Since(stopped) > convergeTimeout || ctx.Err() != nil {
				res.ConvergeSeconds = time.Since(stopped).Seconds()
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
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

// Check starts three nodes, logs in a pool of 1000 sessions on the first,
// waits for convergence, then runs the session check on the first node in
// a closed loop: first with one client (the baseline: the cost of one
// check), then with opts.CheckClients concurrent clients, each for
// opts.Duration.
func Check(ctx context.Context, opts Options) ([]CheckResult, error) {
	opts = opts.withDefaults()
	const nodes = 3
	var out []CheckResult
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("check: starting %d nodes", nodes)
		c := newCluster(h, opts)
		c.Start(nodes)
		cl := newClient(h, c, opts.CheckClients)
		users, err := registerUsers(ctx, c, cl, loadUsers)
		if err != nil {
			return err
		}
		opts.progressf("check: logging in %d sessions", checkPool)
		m := c.Members[0]
		ids := make([]string, checkPool)
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for w := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(ids) && errs[w] == nil; i += len(errs) {
					ids[i], errs[w] = cl.login(ctx, m, users[i%len(users)])
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		c.WaitConverged(30 * time.Second)
		paths := make([]string, len(ids))
		for i, id := range ids {
			paths[i] = "/v1/sessions/" + id
		}
		levels := []int{1}
		if opts.CheckClients != 1 {
			levels = append(levels, opts.CheckClients)
		}
		for _, k := range levels {
			opts.progressf("check: %d clients on n0 for %v", k, opts.Duration)
			res, err := checkLoad(ctx, cl, m, paths, k, opts.Duration)
			if err != nil {
				return err
			}
			if k == opts.CheckClients {
				res.TargetP99 = ms(TargetCheckP99)
			}
			out = append(out, res)
		}
		opts.progressf("check: bare TCP echo, %d clients, for %v", opts.CheckClients, opts.Duration)
		floor, err := echoFloor(ctx, opts.CheckClients, opts.Duration)
		if err != nil {
			return err
		}
		out = append(out, floor)
		return nil
	})
	return out, err
}

// checkLoad runs k clients checking sessions on m for d.
func checkLoad(ctx context.Context, cl *client, m *nodetest.Member, paths []string, k int, d time.Duration) (CheckResult, error) {
	const warmup = 20 // requests per client before measuring: connections are up
	res := CheckResult{Kind: CheckClosed, Clients: k, Pool: len(paths)}
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	all, elapsed, _ := closedLoop(ctx, k, d, func(w int) func() (bool, error) {
		get := func(path string) bool {
			code, raw, err := cl.call(ctx, m, "GET", path, nil)
			if err == nil && code == http.StatusOK {
				return true
			}
			if ctx.Err() == nil {
				failed.Add(1)
				errOnce.Do(func() {
					if err == nil {
						err = fmt.Errorf("%d %s", code, bytes.TrimSpace(raw))
					}
					firstErr = err
				})
			}
			return false
		}
		i := w * (len(paths) / k)
		for j := 0; j < warmup; j++ {
			get(paths[(i+j)%len(paths)])
		}
		return func() (bool, error) {
			i++
			return get(paths[i%len(paths)]), nil
		}
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Seconds = elapsed.Seconds()
	res.Requests = int64(len(all))
	res.Errors = failed.Load()
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	res.PerSec = float64(len(all)) / elapsed.Seconds()
	res.Latency = summarize(all)
	return res, nil
}

// PushPull starts two nodes with probes and periodic push/pull slowed to
// once an hour, writes the same opts.Sessions sessions (and one user per
// ten sessions) straight into both stores, checks their digests are equal,
// waits for gossip to go quiet, then triggers exactly one push/pull and
// counts the gossip bytes each side sent for it. A quiet window of the same
// length without a push/pull is measured too and subtracted.
func PushPull(ctx context.Context, opts Options) (PushPullResult, error) {
	opts = opts.withDefaults()
	res := PushPullResult{Sessions: opts.Sessions, Users: max(1, opts.Sessions/10), Target: TargetPushPullBytes}
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("pushpull: starting 2 nodes")
		c := newCluster(h, opts)
		c.TuneGossip = func(_ int, g *gossip.Config) {
			tuneTimers(opts.Timers, g)
			g.ProbeInterval = slowTimer
			g.PushPullInterval = slowTimer
		}
		c.Start(2)
		a, b := c.Members[0], c.Members[1]

		opts.progressf("pushpull: writing %d sessions and %d users into both stores", res.Sessions, res.Users)
		start := time.Now()
		recs := syntheticRecords(res.Users, res.Sessions, time.Now())
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, m := range []*nodetest.Member{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for lo := 0; lo < len(recs) && ctx.Err() == nil; lo += fillBatch {
					if _, err := m.Store().Apply(recs[lo:min(lo+fillBatch, len(recs))]...); err != nil {
						errs[i] = fmt.Errorf("fill the store of %s: %w", m.Name(), err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(append(errs, ctx.Err())...); err != nil {
			return err
		}
		res.FillSeconds = time.Since(start).Seconds()
		if a.Store().Digest() != b.Store().Digest() {
			return errors.New("the two stores hold the same records but their digests differ")
		}
		for _, m := range c.Members {
			if _, s := m.Store().Counts(); s != res.Sessions {
				return fmt.Errorf("%s holds %d sessions, not %d", m.Name(), s, res.Sessions)
			}
		}

		opts.progressf("pushpull: waiting for gossip to go quiet")
		bytesSent := func() (int64, int64) {
			return int64(a.Gossip().Stats().BytesSent), int64(b.Gossip().Stats().BytesSent)
		}
		quiet := func(limit time.Duration) error {
			deadline := time.Now().Add(limit)
			la, lb := bytesSent()
			since := time.Now()
			for time.Since(since) < quietFor {
				if time.Now().After(deadline) {
					return fmt.Errorf("gossip still sending after %v", limit)
				}
				time.Sleep(10 * time.Millisecond)
				if na, nb := bytesSent(); na != la || nb != lb {
					la, lb, since = na, nb, time.Now()
				}
			}
			return nil
		}
		if err := quiet(30 * time.Second); err != nil {
			return err
		}

		opts.progressf("pushpull: one push/pull from %s to %s", a.Name(), b.Name())
		sa, sb := a.Gossip().Stats(), b.Gossip().Stats()
		t0 := time.Now()
		if err := a.Gossip().SyncWith(b.GossipAddr()); err != nil {
			return fmt.Errorf("push/pull: %w", err)
		}
		c.WaitFor(10*time.Second, "both sides to compare digests", func() bool {
			return a.Gossip().Stats().AERounds > sa.AERounds && b.Gossip().Stats().AERounds > sb.AERounds
		})
		// Whatever the exchange caused (a repair, if the digests differed)
		// is over when gossip is quiet again; quietFor of silence is in the
		// window, and so in the background window too.
		if err := quiet(30 * time.Second); err != nil {
			return err
		}
		window := time.Since(t0)
		ea, eb := a.Gossip().Stats(), b.Gossip().Stats()
		res.Seconds = window.Seconds()
		res.Repaired = ea.BucketsRepaired - sa.BucketsRepaired + eb.BucketsRepaired - sb.BucketsRepaired

		opts.progressf("pushpull: quiet window of %v", window.Round(time.Millisecond))
		qa, qb := bytesSent()
		select {
		case <-time.After(window):
		case <-ctx.Done():
			return ctx.Err()
		}
		qa2, qb2 := bytesSent()
		res.Background = qa2 - qa + qb2 - qb
		// The background is split evenly: it is 0 unless something other
		// than the push/pull ran, and then it is an estimate anyway.
		res.BytesInitiator = int64(ea.BytesSent-sa.BytesSent) - res.Background/2
		res.BytesPeer = int64(eb.BytesSent-sb.BytesSent) - (res.Background - res.Background/2)
		res.Total = res.BytesInitiator + res.BytesPeer
		return nil
	})
	return res, err
}

// syntheticRecords returns users users and sessions sessions, alive and
// replicated, spread over the users; the same arguments give the same
// records.
func syntheticRecords(users, sessions int, now time.Time) []session.Record {
	base := now.UnixMilli() - int64(sessions) - 1000
	expires := now.Add(30 * 24 * time.Hour).UnixMilli()
	recs := make([]session.Record, 0, users+sessions)
	for i := 0; i < users; i++ {
		at := session.MakeHLC(base, uint16(i%1000))
		recs = append(recs, session.Record{User: &session.User{
			Email:       userEmail(i),
			Login:       session.Set(fmt.Sprintf("user%d", i), at, "n0"),
			DisplayName: session.Set(fmt.Sprintf("User %d", i), at, "n0"),
			Verified:    session.Set(session.Verification{OK: true, Method: session.VerifiedRegistration}, at, "n0"),
			Created:     at,
		}})
	}
	for i := 0; i < sessions; i++ {
		sum := sha256.Sum256([]byte("ussync-bench-session-" + strconv.Itoa(i)))
		recs = append(recs, session.Record{Session: &session.Session{
			ID:        hex.EncodeToString(sum[:]),
			Email:     userEmail(i % users),
			Site:      fmt.Sprintf("n%d", i%2),
			IP:        fmt.Sprintf("192.0.2.%d", 1+i%250),
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64) ussync-bench",
			Created:   session.MakeHLC(base+int64(i), 0),
			ExpiresAt: expires,
		}})
	}
	return recs
}

// WriteHeader writes where and when the figures were taken.
func WriteHeader(w io.Writer, m Machine, timers string) {
	fmt.Fprintf(w, "ussync bench  %s\n", m.Date.Format(time.RFC3339))
	fmt.Fprintf(w, "machine       %d CPUs (%s), GOMAXPROCS %d, %s/%s", m.CPUs, m.CPU, m.Procs, m.OS, m.Arch)
	if m.Kernel != "" {
		fmt.Fprintf(w, ", kernel %s", m.Kernel)
	}
	fmt.Fprintf(w, ", %s\n", m.Go)
	if m.Load != "" {
		fmt.Fprintf(w, "load average  %s at the start (other work on this machine skews every figure)\n", m.Load)
	}
	switch timers {
	case TimersLAN:
		fmt.Fprintln(w, "gossip timers lan: memberlist LAN (probe 1s/500ms, gossip 200ms, push/pull 30s)")
	case TimersTest:
		fmt.Fprintln(w, "gossip timers test: nodetest's shrunk timers (probe 100ms/50ms, gossip 20ms, push/pull 300ms)")
	}
	fmt.Fprintln(w, "note          every node, client and load generator shares these CPUs; targets are printed, not asserted")
}

func fmtMs(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) + " ms" }

// verdict compares a figure with its target, for the reader.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
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

// WriteLogins writes the sustained-login table.
func WriteLogins(w io.Writer, r LoginsResult) {
	fmt.Fprintf(w, "\nLOGINS  %d clients POST /v1/sessions to n0 of %d nodes for %.1fs, then wait for convergence\n", r.Clients, r.Nodes, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET")
	fmt.Fprintf(tw, "logins accepted\t%d (%d errors)\t\n", r.Accepted, r.Errors)
	fmt.Fprintf(tw, "logins/s\t%.0f\t>= %d/s: %s\n", r.PerSec, r.Target, verdict(r.PerSec >= float64(r.Target)))
	fmt.Fprintf(tw, "CPU per login\t%.0f µs (3 nodes and clients, user+system)\t\n", r.CPUPerLogin)
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

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " ")
}

// WriteCheck writes the session-check table.
func WriteCheck(w io.Writer, rs []CheckResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCHECK  GET /v1/sessions/{id} on n0 of 3 nodes over %d active sessions, keep-alive, %.1fs per row\n", rs[0].Pool, rs[0].Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LOAD\tCLIENTS\tREQUESTS\tERRORS\tREQ/S\tP50\tP99\tMAX\t TARGET\t")
	var closed *CheckResult
	for i, r := range rs {
		load, target := "closed loop", "- (baseline: one request at a time)"
		switch r.Kind {
		case CheckEcho:
			load, target = "bare TCP echo, closed loop", "- (this machine's floor: no HTTP, no node)"
		default:
			closed = &rs[i]
		}
		if r.TargetP99 > 0 {
			target = fmt.Sprintf("p99 <= %g ms: %s", r.TargetP99, verdict(r.Latency.P99 <= r.TargetP99 && r.Errors == 0))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t %s\t\n", load, r.Clients, r.Requests, r.Errors, r.PerSec,
			fmtMs(r.Latency.P50), fmtMs(r.Latency.P99), fmtMs(r.Latency.Max), target)
	}
	tw.Flush()
	if closed != nil && closed.PerSec > 0 {
		fmt.Fprintf(w, "  closed loop: mean latency = clients / req/s (Little's law); %d / %.0f = %.3f ms here, whatever the node does\n",
			closed.Clients, closed.PerSec, 1000*float64(closed.Clients)/closed.PerSec)
	}
	for _, r := range rs {
		if r.Kind == CheckEcho && closed != nil && r.PerSec > 0 {
			fmt.Fprintf(w, "  the echo is the floor: the same %d clients around a bare TCP echo of the check's sizes reach p99 %s at %.0f/s;\n"+
				"  an HTTP server in this process cannot go under it\n", r.Clients, fmtMs(r.Latency.P99), r.PerSec)
		}
	}
	for _, r := range rs {
		if r.FirstError != "" {
			fmt.Fprintf(w, "  first error (%s, %d clients): %s\n", r.Kind, r.Clients, r.FirstError)
		}
	}
}

// WritePushPull writes the push/pull table.
func WritePushPull(w io.Writer, r PushPullResult) {
	fmt.Fprintf(w, "\nPUSHPULL  one push/pull between 2 in-sync nodes holding %d sessions and %d users each\n", r.Sessions, r.Users)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET")
	fmt.Fprintf(tw, "bytes sent by n0 (initiator)\t%d\t\n", r.BytesInitiator)
	fmt.Fprintf(tw, "bytes sent by n1\t%d\t\n", r.BytesPeer)
	fmt.Fprintf(tw, "total\t%d B (%.1f KB)\t<= %d KB: %s\n", r.Total, float64(r.Total)/1024, r.Target>>10, verdict(r.Total <= r.Target))
	fmt.Fprintf(tw, "buckets repaired\t%d\t0 (in sync)\n", r.Repaired)
	fmt.Fprintf(tw, "background\t%d B in a quiet window of the same length (%.3fs), subtracted\t\n", r.Background, r.Seconds)
	fmt.Fprintf(tw, "probes\toff: probe and push/pull intervals set to %v for this scenario\t\n", slowTimer)
	fmt.Fprintf(tw, "filling both stores took\t%.1fs\t\n", r.FillSeconds)
	tw.Flush()
}
