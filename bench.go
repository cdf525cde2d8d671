package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ussync/ussync/bench"
)

func benchCommand() *cli.Command {
	d := bench.DefaultOptions()
	return &cli.Command{
		Name:  "bench",
		Usage: "measure propagation, throughput, checks, catch-up, heal and footprint on in-process clusters",
		Description: "Starts clusters of real nodes in this process, on loopback, and prints what it\n" +
			"measures beside the targets (printed, never asserted):\n" +
			"  propagation  login, logout and logout-everywhere: API call returned -> applied on every node\n" +
			"  logins       sustained logins/s into one node of 3, then the time to converge\n" +
			"  check        GET /v1/sessions/{id} latency under concurrent clients over TCP, and one\n" +
			"               client over TCP and over the private API's Unix socket (api.listen unix:PATH)\n" +
			"  pushpull     bytes of one push/pull between 2 in-sync nodes\n" +
			"  list         admin listing pages with a million sessions in the store\n" +
			"  wan          propagation over links of 50 ms ± 20 ms with 1 % and 5 % loss, push on and off\n" +
			"  sites        propagation, bytes and CPU per login at 10, 30 and 100 sites\n" +
			"  catchup      a new node joins stores of a million sessions while logins go on (the new\n" +
			"               node is this binary run as `ussync agent`, its memory measured apart)\n" +
			"  heal         a 3 | 2 split with many changes on each side, and long splits, healed\n" +
			"  restart      a node killed and restarted: time to converge\n" +
			"  footprint    memory and disk per session, store open time after a restart\n" +
			"Everything shares this machine's CPUs. Node logs (errors only) go to stderr.",
		OnUsageError: usageError,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "scenario", Value: bench.ScenarioAll, Usage: "`NAMES` to run: all, or a comma-separated list of " + strings.Join(bench.Scenarios, ", ")},
			&cli.StringFlag{Name: "nodes", Value: joinSizes(d.Nodes), Usage: "comma-separated cluster `SIZES` for propagation"},
			&cli.IntFlag{Name: "rounds", Value: d.Rounds, Usage: "measured operations of each kind per cluster size (propagation)"},
			&cli.DurationFlag{Name: "duration", Value: d.Duration, Usage: "how long each load runs (logins, check)"},
			&cli.IntFlag{Name: "clients", Value: d.Clients, Usage: "concurrent clients logging in (logins)"},
			&cli.IntFlag{Name: "check-clients", Value: d.CheckClients, Usage: "concurrent clients checking sessions (check)"},
			&cli.IntFlag{Name: "sessions", Value: d.Sessions, Usage: "sessions each node holds (pushpull)"},
			&cli.IntFlag{Name: "list-sessions", Value: d.ListSessions, Usage: "sessions in the store of the admin listing (list)"},
			&cli.StringFlag{Name: "timers", Value: d.Timers, Usage: "gossip `TIMERS` of the nodes: lan (memberlist's LAN profile), wan (its WAN profile, the default deployment) or test (nodetest's shrunk timers)"},
			&cli.StringFlag{Name: "wan-nodes", Value: joinSizes(d.WANNodes), Usage: "comma-separated cluster `SIZES` for wan"},
			&cli.StringFlag{Name: "wan-loss", Value: joinLosses(d.WANLoss), Usage: "comma-separated packet loss `PERCENTS` between every pair of nodes (wan)"},
			&cli.IntFlag{Name: "wan-rounds", Value: d.WANRounds, Usage: "measured rounds per size and loss with push on; gossip alone runs a quarter of them, one at a time (wan)"},
			&cli.IntFlag{Name: "wan-concurrency", Value: d.WANConcurrency, Usage: "operations kept in flight at once, each from its own user (and its own node, up to the cluster's size) (wan, push on)"},
			&cli.StringFlag{Name: "wan-cpuprofile", Usage: "write a CPU profile of each wan run's measured rounds (push on; not the nodes' start or the users' registration) to `PREFIX`-loss<percent>-<nodes>.pprof (wan)"},
			&cli.StringFlag{Name: "wan-trace", Usage: "write the execution trace of the seconds before each of the first 3 operations slower than the 1 % target (85 ms) of every wan run with push on to `PREFIX`-loss<percent>-<nodes>-<k>-<op>.trace (wan; read with go tool trace)"},
			&cli.StringFlag{Name: "sites-nodes", Value: joinSizes(d.SitesNodes), Usage: "comma-separated cluster `SIZES` for sites"},
			&cli.IntFlag{Name: "sites-rounds", Value: d.SitesRounds, Usage: "propagation rounds per size (sites)"},
			&cli.IntFlag{Name: "sites-logins", Value: d.SitesLogins, Usage: "logins whose bytes and CPU are counted, per size (sites)"},
			&cli.StringFlag{Name: "sites-trace", Usage: "write the execution trace of the seconds before each of the first 3 propagation operations slower than 30 ms to `PREFIX`-<nodes>-<k>-<op>.trace (sites; read with go tool trace)"},
			&cli.IntFlag{Name: "catchup-sessions", Value: d.CatchupSessions, Usage: "sessions in the cluster's stores when the new node joins (catchup)"},
			&cli.IntFlag{Name: "catchup-users", Value: d.CatchupUsers, Usage: "users in the cluster's stores (catchup)"},
			&cli.IntFlag{Name: "catchup-rate", Value: d.CatchupRate, Usage: "logins per second served during the catch-up (catchup)"},
			&cli.StringFlag{Name: "catchup-newcomer", Value: d.CatchupNewcomer, Usage: "how the new node runs: `MODE` process (`ussync agent`, this binary, in a process of its own: its peak memory measured apart) or inprocess (beside the cluster's nodes in this process) (catchup)"},
			&cli.StringFlag{Name: "catchup-cpuprofile", Usage: "write a CPU profile of the catch-up alone (newcomer start to equal digests, not the fill) to `FILE`: of this process, so of the newcomer too only with --catchup-newcomer inprocess (catchup)"},
			&cli.IntFlag{Name: "heal-changes", Value: d.HealChanges, Usage: "changes on each side of the split (heal)"},
			&cli.IntFlag{Name: "heal-history", Value: d.HealHistory, Usage: "sessions every store holds before the split, half of the logouts ending one of them (heal)"},
			&cli.StringFlag{Name: "heal-cpuprofile", Usage: "write a CPU profile of the heal alone (the heal to convergence, of the split with --heal-changes) to `FILE` (heal)"},
			&cli.StringFlag{Name: "split-timers", Value: strings.Join(d.SplitTimers, ","), Usage: "comma-separated timer `SETS` of the long split (heal) and of restart"},
			&cli.DurationFlag{Name: "split-for", Usage: "how long the long split lasts at the least: it lasts while its changes are made (heal; default: past the timers' GossipToTheDeadTime and reconnect cap)"},
			&cli.IntFlag{Name: "footprint-sessions", Value: d.FootprintSessions, Usage: "sessions in the store (footprint)"},
			&cli.BoolFlag{Name: "json", Usage: "print the figures as JSON on stdout too (the tables then go to stderr)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run (nodes and clients) to `FILE`"},
			&cli.StringFlag{Name: "memprofile", Usage: "write an allocation profile of the whole run (nodes and clients) to `FILE` at the end"},
		},
		Action: runBench,
	}
}

func joinSizes(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func joinLosses(v []float64) string {
	s := make([]string, len(v))
	for i, l := range v {
		s[i] = strconv.FormatFloat(l*100, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}

// parseLosses reads percents ("1,5") as fractions.
func parseLosses(flag, s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "%")), 64)
		// Written so that NaN, which every comparison fails, is refused.
		if err != nil || !(p >= 0 && p < 100) {
			return nil, fmt.Errorf("--%s: %q is not a list of percents from 0 to below 100 (e.g. \"1,5\")", flag, s)
		}
		out = append(out, p/100)
	}
	return out, nil
}

func parseSizes(flag, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 || n > 200 {
			return nil, fmt.Errorf("--%s: %q is not a list of cluster sizes between 2 and 200 (e.g. \"3,10,30\")", flag, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func runBench(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	scenarios, err := bench.ParseScenario(c.String("scenario"))
	if err != nil {
		return fmt.Errorf("--scenario: %w", err)
	}
	opts, err := benchOptions(c)
	if err != nil {
		return err
	}
	if err := checkBenchOutputs(c); err != nil {
		return err
	}

	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	if path := c.String("memprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("create allocation profile: %w", err)
		}
		defer func() {
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "write allocation profile: %v\n", err)
			}
			f.Close()
		}()
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	tables := c.App.Writer
	if c.Bool("json") {
		tables = c.App.ErrWriter
	}
	report, err := bench.Run(ctx, scenarios, opts, tables)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = errors.New("interrupted")
	}
	if c.Bool("json") && report != nil {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(report); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// parseTimerSets reads the comma-separated timer sets of flag name.
func parseTimerSets(name, v string) ([]string, error) {
	var sets []string
	for _, t := range strings.Split(v, ",") {
		t = strings.TrimSpace(t)
		if err := bench.ParseTimers(t); err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
		sets = append(sets, t)
	}
	return sets, nil
}

// benchOptions reads the bench's options from its flags, and refuses what
// checkBenchOptions does.
func benchOptions(c *cli.Context) (bench.Options, error) {
	var none bench.Options
	nodes, err := parseSizes("nodes", c.String("nodes"))
	if err != nil {
		return none, err
	}
	wanNodes, err := parseSizes("wan-nodes", c.String("wan-nodes"))
	if err != nil {
		return none, err
	}
	wanLoss, err := parseLosses("wan-loss", c.String("wan-loss"))
	if err != nil {
		return none, err
	}
	sitesNodes, err := parseSizes("sites-nodes", c.String("sites-nodes"))
	if err != nil {
		return none, err
	}
	splitTimers, err := parseTimerSets("split-timers", c.String("split-timers"))
	if err != nil {
		return none, err
	}
	opts := bench.Options{
		Nodes:        nodes,
		Rounds:       c.Int("rounds"),
		Duration:     c.Duration("duration"),
		Clients:      c.Int("clients"),
		CheckClients: c.Int("check-clients"),
		Sessions:     c.Int("sessions"),
		ListSessions: c.Int("list-sessions"),
		Timers:       c.String("timers"),

		WANNodes:          wanNodes,
		WANLoss:           wanLoss,
		WANRounds:         c.Int("wan-rounds"),
		WANConcurrency:    c.Int("wan-concurrency"),
		WANTrace:          c.String("wan-trace"),
		WANCPUProfile:     c.String("wan-cpuprofile"),
		SitesNodes:        sitesNodes,
		SitesRounds:       c.Int("sites-rounds"),
		SitesLogins:       c.Int("sites-logins"),
		SitesTrace:        c.String("sites-trace"),
		CatchupSessions:   c.Int("catchup-sessions"),
		CatchupUsers:      c.Int("catchup-users"),
		CatchupRate:       c.Int("catchup-rate"),
		CatchupCPUProfile: c.String("catchup-cpuprofile"),
		CatchupNewcomer:   c.String("catchup-newcomer"),
		HealChanges:       c.Int("heal-changes"),
		HealHistory:       c.Int("heal-history"),
		HealCPUProfile:    c.String("heal-cpuprofile"),
		SplitTimers:       splitTimers,
		SplitFor:          c.Duration("split-for"),
		FootprintSessions: c.Int("footprint-sessions"),
		Log:               c.App.ErrWriter,
		Progress:          c.App.ErrWriter,
	}
	if err := checkBenchOptions(opts); err != nil {
		return none, err
	}
	return opts, nil
}

// checkBenchOptions refuses a timer set or a newcomer mode the bench does
// not know, and a size or a count that is not above 0 (a history below
// 0), naming the flag. The profile and trace paths are checkBenchOutputs'.
func checkBenchOptions(opts bench.Options) error {
	if err := bench.ParseTimers(opts.Timers); err != nil {
		return fmt.Errorf("--timers: %w", err)
	}
	if err := bench.ParseNewcomer(opts.CatchupNewcomer); err != nil {
		return fmt.Errorf("--catchup-newcomer: %w", err)
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"rounds", opts.Rounds >= 1},
		{"duration", opts.Duration > 0},
		{"clients", opts.Clients >= 1},
		{"check-clients", opts.CheckClients >= 1},
		{"sessions", opts.Sessions >= 1},
		{"list-sessions", opts.ListSessions >= 1},
		{"wan-rounds", opts.WANRounds >= 1},
		{"wan-concurrency", opts.WANConcurrency >= 1},
		{"sites-rounds", opts.SitesRounds >= 1},
		{"sites-logins", opts.SitesLogins >= 1},
		{"catchup-sessions", opts.CatchupSessions >= 1},
		{"catchup-users", opts.CatchupUsers >= 1},
		{"catchup-rate", opts.CatchupRate >= 1},
		{"heal-changes", opts.HealChanges >= 1},
		{"footprint-sessions", opts.FootprintSessions >= 1},
	} {
		if !f.ok {
			return fmt.Errorf("--%s must be above 0", f.name)
		}
	}
	if opts.HealHistory < 0 {
		return errors.New("--heal-history must be 0 or more")
	}
	if opts.SplitFor < 0 {
		return errors.New("--split-for must be 0 (the default: past the timers' dead and reconnect times) or more")
	}
	return nil
}

// checkBenchOutputs refuses, before anything runs, a profile or trace the
// bench could not write: most are written after minutes of work (the
// catch-up's profile after the fill, the heal's after the split's
// changes, a trace at the first slow operation), where a bad path would
// cost the run. A file option's directory must take a new file and the
// path must not be a directory; a prefix option's directory must take a
// new file. The profiles of a part of a run cannot be taken beside
// --cpuprofile: the process has one CPU profiler.
func checkBenchOutputs(c *cli.Context) error {
	for _, o := range []struct {
		name   string
		prefix bool
	}{
		{"cpuprofile", false}, {"memprofile", false}, {"catchup-cpuprofile", false}, {"heal-cpuprofile", false},
		{"wan-cpuprofile", true}, {"wan-trace", true}, {"sites-trace", true},
	} {
		path := c.String(o.name)
		if path == "" {
			continue
		}
		if err := bench.CheckOutput(path, o.prefix); err != nil {
			return fmt.Errorf("--%s: %w", o.name, err)
		}
	}
	if c.String("cpuprofile") != "" {
		for _, name := range []string{"catchup-cpuprofile", "heal-cpuprofile", "wan-cpuprofile"} {
			if c.String(name) != "" {
				return fmt.Errorf("--%s cannot be taken beside --cpuprofile (the process has one CPU profiler)", name)
			}
		}
	}
	return nil
}
