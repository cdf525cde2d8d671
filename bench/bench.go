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
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ussync/ussync/gossip"
)

// Scenario names, as --scenario takes them.
const (
	ScenarioAll         = "all"
	ScenarioPropagation = "propagation"
	ScenarioLogins      = "logins"
	ScenarioCheck       = "check"
	ScenarioPushPull    = "pushpull"
	ScenarioList        = "list"
	ScenarioWAN         = "wan"
	ScenarioSites       = "sites"
	ScenarioCatchup     = "catchup"
	ScenarioHeal        = "heal"
	ScenarioRestart     = "restart"
	ScenarioFootprint   = "footprint"
)

// Scenarios lists every scenario in the order "all" runs them.
var Scenarios = []string{ScenarioPropagation, ScenarioLogins, ScenarioCheck, ScenarioPushPull, ScenarioList,
	ScenarioWAN, ScenarioSites, ScenarioCatchup, ScenarioHeal, ScenarioRestart, ScenarioFootprint}

// Targets, printed beside the figures for the reader; never asserted.
const (
	TargetPropagationP99N10 = 5 * time.Millisecond  // propagation p99 at 10 nodes
	TargetPropagationP99N30 = 12 * time.Millisecond // propagation p99 at 30 nodes
	TargetLoginsPerSec      = 10_000                // logins/s into one node of 3, converged after
	TargetCheckP99          = time.Millisecond      // session check p99 with TargetCheckClients clients
	TargetCheckClients      = 50                    // the concurrent clients TargetCheckP99 is set for
	TargetPushPullBytes     = 16 << 10              // one in-sync push/pull at TargetPushPullSessions
	TargetPushPullSessions  = 100_000
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
	// TimersWAN are memberlist's WAN timers (probe every 5 s with a 3 s
	// timeout, gossip every 500 ms, push/pull every 60 s), as sites across
	// the internet run (the default profile). The wan scenario always runs
	// them; --timers wan runs every other scenario under them too.
	TimersWAN = "wan"
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
	// Timers is the gossip timer set of the nodes: TimersLAN (the default),
	// TimersWAN or TimersTest.
	Timers string

	// WANNodes are the cluster sizes of the wan scenario, WANLoss its loss
	// rates (0.01 is 1 %), WANRounds its rounds per cluster, rate and push
	// setting.
	WANNodes  []int
	WANLoss   []float64
	WANRounds int
	// WANConcurrency is how many operations the wan rounds keep in flight
	// at once, push on (gossip alone runs one).
	WANConcurrency int
	// WANTrace, when set, is the prefix of the files that receive the
	// execution trace of the seconds before each of the first few
	// operations of a wan run (push on) slower than its 1 % target; the
	// files of a run are named after its loss (see SlowOp).
	WANTrace string
	// WANCPUProfile, when set, is the prefix of the files that receive a
	// CPU profile of each wan run's measured rounds, push on (the start of
	// the nodes and the registration of the users left out; samples
	// labelled by node): PREFIX-loss<percent>-<nodes>.pprof. Not beside
	// --cpuprofile.
	WANCPUProfile string
	// SitesNodes are the cluster sizes of the sites scenario; SitesRounds
	// its propagation rounds and SitesLogins the logins whose bytes and CPU
	// it counts, per size.
	SitesNodes  []int
	SitesRounds int
	SitesLogins int
	// SitesTrace, when set, is the prefix of the files that receive the
	// execution trace of the seconds before each of the first few
	// propagation operations slower than TargetSitesP99N100 (a flight
	// recorder runs during the rounds; see SlowOp).
	SitesTrace string
	// CatchupSessions and CatchupUsers are what the cluster's stores hold
	// when a new node joins (catchup scenario); CatchupRate the logins per
	// second the cluster serves meanwhile.
	CatchupSessions int
	CatchupUsers    int
	CatchupRate     int
	// CatchupCPUProfile, when set, is the file that receives a CPU profile
	// of the catch-up alone (from the newcomer's start to equal digests),
	// without the fill and the start that come before it. It cannot be
	// taken beside a profile of the whole run (--cpuprofile).
	CatchupCPUProfile string
	// CatchupNewcomer is how the catchup scenario runs its newcomer:
	// NewcomerProcess (`ussync agent` in a process of its own, whose peak
	// memory is measured apart: DefaultOptions', so the command's
	// default) or NewcomerInProcess (beside the cluster's nodes in this
	// process; a CPU profile of the catch-up then holds the newcomer's
	// samples too). Empty is NewcomerInProcess, not DefaultOptions' value:
	// a caller of the package (a test binary) is not the ussync program
	// that NewcomerProcess runs unless it says so.
	CatchupNewcomer string
	// Agent is the ussync binary NewcomerProcess runs; empty: this
	// program (os.Executable), which must then be ussync itself (a test
	// binary is not, unless it runs as ussync when asked).
	Agent string
	// HealChanges is the number of changes made on each side of the heal
	// scenario's partition.
	HealChanges int
	// HealHistory is the number of sessions every store holds before the
	// heal scenario's split (with one user per five), as a cluster that ran
	// for months does; half of the logouts on each side then end one of
	// them, which the other side holds alive.
	HealHistory int
	// HealCPUProfile, when set, is the file that receives a CPU profile of
	// the heal alone (from the heal to convergence) of the split with
	// HealChanges changes. Not beside --cpuprofile.
	HealCPUProfile string
	// SplitTimers are the timer sets under which the heal and restart
	// scenarios time a long split's heal and a restart (default lan and
	// wan); SplitFor is how long that split lasts (zero: past the timer
	// set's GossipToTheDeadTime and reconnect cap, when memberlist alone
	// would never heal).
	SplitTimers []string
	SplitFor    time.Duration
	// FootprintSessions is the number of sessions in the footprint
	// scenario's store (one user per five sessions).
	FootprintSessions int
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

		WANNodes:          []int{10, 30},
		WANLoss:           []float64{0.01, 0.05},
		WANRounds:         100,
		WANConcurrency:    wanWorkers,
		SitesNodes:        []int{10, 30, 100},
		SitesRounds:       100,
		SitesLogins:       1000,
		CatchupSessions:   1_000_000,
		CatchupUsers:      200_000,
		CatchupRate:       100,
		CatchupNewcomer:   NewcomerProcess,
		HealChanges:       50_000,
		SplitTimers:       []string{TimersLAN, TimersWAN},
		FootprintSessions: 1_000_000,
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
	if len(o.WANNodes) == 0 {
		o.WANNodes = d.WANNodes
	}
	if len(o.WANLoss) == 0 {
		o.WANLoss = d.WANLoss
	}
	if o.WANRounds <= 0 {
		o.WANRounds = d.WANRounds
	}
	if o.WANConcurrency <= 0 {
		o.WANConcurrency = d.WANConcurrency
	}
	if len(o.SitesNodes) == 0 {
		o.SitesNodes = d.SitesNodes
	}
	if o.SitesRounds <= 0 {
		o.SitesRounds = d.SitesRounds
	}
	if o.SitesLogins <= 0 {
		o.SitesLogins = d.SitesLogins
	}
	if o.CatchupSessions <= 0 {
		o.CatchupSessions = d.CatchupSessions
	}
	if o.CatchupUsers <= 0 {
		o.CatchupUsers = d.CatchupUsers
	}
	if o.CatchupRate <= 0 {
		o.CatchupRate = d.CatchupRate
	}
	if o.CatchupNewcomer == "" {
		o.CatchupNewcomer = NewcomerInProcess // see Options.CatchupNewcomer
	}
	if o.HealChanges <= 0 {
		o.HealChanges = d.HealChanges
	}
	if len(o.SplitTimers) == 0 {
		o.SplitTimers = d.SplitTimers
	}
	if o.FootprintSessions <= 0 {
		o.FootprintSessions = d.FootprintSessions
	}
	return o
}

// ParseTimers checks a timer set name.
func ParseTimers(s string) error {
	if s != TimersLAN && s != TimersTest && s != TimersWAN {
		return fmt.Errorf("timers %q: want %s, %s or %s", s, TimersLAN, TimersWAN, TimersTest)
	}
	return nil
}

// tuneTimers sets g's timers to the set named (g arrives shrunk by
// nodetest, which is TimersTest).
func tuneTimers(set string, g *gossip.Config) {
	var p gossip.Profile
	switch set {
	case TimersLAN:
		p = gossip.ProfileLAN
	case TimersWAN:
		p = gossip.ProfileWAN
	default:
		return
	}
	// Zero takes the profile's value: memberlist's DefaultLANConfig or
	// DefaultWANConfig.
	g.Profile = p
	g.ProbeInterval, g.ProbeTimeout, g.GossipInterval, g.PushPullInterval = 0, 0, 0, 0
	g.GossipToTheDeadTime, g.TCPTimeout, g.SuspicionMult = 0, 0, 0
	d := gossip.DefaultConfig(p)
	g.ReconnectInterval, g.ReconnectMaxBackoff = d.ReconnectInterval, d.ReconnectMaxBackoff
	g.ResyncInterval, g.ResyncMaxBackoff = d.ResyncInterval, d.ResyncMaxBackoff
	g.PacketCopies = d.PacketCopies
}

func (o Options) progressf(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "bench: "+format+"\n", args...)
	}
}

// ParseScenario checks a --scenario value (all, or names separated by
// commas) and returns the scenarios it names, in run order: all runs them
// in the order of Scenarios, a list in its own order. An empty value is
// refused, not taken as all: `--scenario "$S"` with S unset would
// otherwise start every scenario at the sizes, hours of work.
func ParseScenario(s string) ([]string, error) {
	if s == ScenarioAll {
		return slices.Clone(Scenarios), nil
	}
	var out []string
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(Scenarios, name) {
			return nil, fmt.Errorf("scenario %q: want %s, or one or more of %s separated by commas", name, ScenarioAll, strings.Join(Scenarios, ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// Run runs the named scenarios in order and writes the header and each
// scenario's table to w (nil writes nothing) as soon as it is measured. It
// stops at the first error or when ctx ends, returning what it measured.
// It is long on purpose: one case per scenario, each a few lines.
func Run(ctx context.Context, scenarios []string, opts Options, w io.Writer) (*Report, error) {
	opts = opts.withDefaults()
	if w == nil {
		w = io.Discard
	}
	r := &Report{Machine: ThisMachine(), Options: reportOptions(opts)}
	if err := ParseTimers(opts.Timers); err != nil {
		return r, err
	}
	if err := ParseNewcomer(opts.CatchupNewcomer); err != nil {
		return r, err
	}
	// The profiles and traces are written after minutes of work: a bad
	// path fails now (CheckOutput).
	for _, o := range []struct {
		name, path string
		prefix     bool
	}{
		{"catchup CPU profile", opts.CatchupCPUProfile, false}, {"heal CPU profile", opts.HealCPUProfile, false},
		{"wan CPU profiles", opts.WANCPUProfile, true}, {"wan traces", opts.WANTrace, true}, {"sites traces", opts.SitesTrace, true},
	} {
		if o.path == "" {
			continue
		}
		if err := CheckOutput(o.path, o.prefix); err != nil {
			return r, fmt.Errorf("%s: %w", o.name, err)
		}
	}
	WriteHeader(w, r.Machine, opts.Timers)
	for _, s := range scenarios {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		switch s {
		case ScenarioPropagation:
			for _, n := range opts.Nodes {
				if err := ctx.Err(); err != nil {
					return r, err
				}
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
		case ScenarioWAN:
			res, err := WAN(ctx, opts)
			r.WAN = res
			if err != nil {
				return r, fmt.Errorf("wan: %w", err)
			}
			WriteWAN(w, res, opts.WANRounds)
		case ScenarioSites:
			res, err := Sites(ctx, opts)
			r.Sites = res
			if err != nil {
				return r, fmt.Errorf("sites: %w", err)
			}
			WriteSites(w, res)
		case ScenarioCatchup:
			res, err := Catchup(ctx, opts)
			if err != nil {
				return r, fmt.Errorf("catchup: %w", err)
			}
			r.Catchup = &res
			WriteCatchup(w, res)
		case ScenarioHeal:
			res, err := Heal(ctx, opts)
			r.Heal = res
			if err != nil {
				return r, fmt.Errorf("heal: %w", err)
			}
			WriteHeal(w, res)
		case ScenarioRestart:
			res, err := Restart(ctx, opts)
			r.Restart = res
			if err != nil {
				return r, fmt.Errorf("restart: %w", err)
			}
			WriteRestart(w, res)
		case ScenarioFootprint:
			res, err := Footprint(ctx, opts)
			if err != nil {
				return r, fmt.Errorf("footprint: %w", err)
			}
			r.Footprint = &res
			WriteFootprint(w, res)
		default:
			return r, fmt.Errorf("unknown scenario %q", s)
		}
	}
	return r, nil
}
