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
