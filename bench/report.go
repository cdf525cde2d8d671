package bench

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// The report of a run: every figure, and the tables printed for people.

// Report is every figure of a run.
type Report struct {
	Machine     Machine             `json:"machine"`
	Options     ReportOptions       `json:"options"`
	Propagation []PropagationResult `json:"propagation,omitempty"`
	Logins      *LoginsResult       `json:"logins,omitempty"`
	Check       []CheckResult       `json:"check,omitempty"`
	PushPull    *PushPullResult     `json:"pushpull,omitempty"`
	List        *ListResult         `json:"list,omitempty"`
	WAN         []WANResult         `json:"wan,omitempty"`
	Sites       []SitesResult       `json:"sites,omitempty"`
	Catchup     *CatchupResult      `json:"catchup,omitempty"`
	Heal        []HealResult        `json:"heal,omitempty"`
	Restart     []RestartResult     `json:"restart,omitempty"`
	Footprint   *FootprintResult    `json:"footprint,omitempty"`
}

// ReportOptions are the sizes a Report was taken with, named as the
// flags of `ussync bench` (--wan-nodes is wan_nodes); losses are fractions
// (0.01 is 1 %), durations seconds (split_for_seconds 0: the default,
// past the timers' dead and reconnect times).
type ReportOptions struct {
	Nodes        []int   `json:"nodes"`
	Rounds       int     `json:"rounds"`
	Duration     float64 `json:"duration_seconds"`
	Clients      int     `json:"clients"`
	CheckClients int     `json:"check_clients"`
	Sessions     int     `json:"sessions"`
	ListSessions int     `json:"list_sessions"`
	Timers       string  `json:"timers"`

	WANNodes          []int     `json:"wan_nodes"`
	WANLoss           []float64 `json:"wan_loss"`
	WANRounds         int       `json:"wan_rounds"`
	WANConcurrency    int       `json:"wan_concurrency"`
	SitesNodes        []int     `json:"sites_nodes"`
	SitesRounds       int       `json:"sites_rounds"`
	SitesLogins       int       `json:"sites_logins"`
	CatchupSessions   int       `json:"catchup_sessions"`
	CatchupUsers      int       `json:"catchup_users"`
	CatchupRate       int       `json:"catchup_rate"`
	HealChanges       int       `json:"heal_changes"`
	HealHistory       int       `json:"heal_history"`
	SplitTimers       []string  `json:"split_timers"`
	SplitFor          float64   `json:"split_for_seconds"`
	FootprintSessions int       `json:"footprint_sessions"`
}

// reportOptions are opts (with their defaults) as a Report records them.
func reportOptions(opts Options) ReportOptions {
	return ReportOptions{
		Nodes: opts.Nodes, Rounds: opts.Rounds, Duration: opts.Duration.Seconds(), Clients: opts.Clients,
		CheckClients: opts.CheckClients, Sessions: opts.Sessions, ListSessions: opts.ListSessions, Timers: opts.Timers,
		WANNodes: opts.WANNodes, WANLoss: opts.WANLoss, WANRounds: opts.WANRounds, WANConcurrency: opts.WANConcurrency,
		SitesNodes: opts.SitesNodes, SitesRounds: opts.SitesRounds, SitesLogins: opts.SitesLogins,
		CatchupSessions: opts.CatchupSessions, CatchupUsers: opts.CatchupUsers, CatchupRate: opts.CatchupRate,
		HealChanges: opts.HealChanges, HealHistory: opts.HealHistory, SplitTimers: opts.SplitTimers,
		SplitFor: opts.SplitFor.Seconds(), FootprintSessions: opts.FootprintSessions,
	}
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
	case TimersWAN:
		fmt.Fprintln(w, "gossip timers wan: memberlist WAN (probe 5s/3s, gossip 500ms, push/pull 60s)")
	case TimersTest:
		fmt.Fprintln(w, "gossip timers test: nodetest's shrunk timers (probe 100ms/50ms, gossip 20ms, push/pull 300ms)")
	}
	fmt.Fprintln(w, "              (--timers: every scenario but wan, which runs memberlist WAN's, and the long split of heal and restart, --split-timers)")
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

// sizedVerdict is verdict for a target set at a size (sessions in a store,
// changes in a split): a run below that size, the CI smoke's, is printed
// but not judged, since what is fixed overhead at a tiny size and what
// grows with it are not told apart there (a tiny heal is "met" and a tiny
// store's memory per session "MISSED", both meaning nothing).
func sizedVerdict(ok bool, size, targetSize int) string {
	if size < targetSize {
		return fmt.Sprintf("not judged (the target is for %d, run at %d)", targetSize, size)
	}
	return verdict(ok)
}

// convergedVerdict is sizedVerdict for a figure that needs the cluster to
// converge: a cluster that did not is judged at every size, since that is
// a correctness failure, not a slow run.
func convergedVerdict(converged, ok bool, size, targetSize int) string {
	if !converged {
		return "MISSED (not converged)"
	}
	return sizedVerdict(ok, size, targetSize)
}
