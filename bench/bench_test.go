package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/internal/eventually"
)

// TestRun_Smoke runs every scenario at tiny sizes: each must produce its
// figures, lose nothing and leave no directory or goroutine behind. It says
// nothing about speed.
func TestRun_Smoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several clusters")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // the harness's directories go here
	before := runtime.NumGoroutine()

	opts := Options{Nodes: []int{3}, Rounds: 5, Duration: 300 * time.Millisecond,
		Clients: 4, CheckClients: 4, Sessions: 2000, ListSessions: 5000, Log: testLog{t}}
	var out bytes.Buffer
	r, err := Run(context.Background(), []string{ScenarioPropagation, ScenarioLogins, ScenarioCheck, ScenarioPushPull, ScenarioList}, opts, &out)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	// Nothing left behind: checked before any subtest adds its goroutine.
	nothingLeft(t, tmp, before)

	t.Run("propagation", func(t *testing.T) {
		if len(r.Propagation) != 3 {
			t.Fatalf("%d propagation rows, want login, logout and logout-everywhere", len(r.Propagation))
		}
		for _, p := range r.Propagation {
			if p.Nodes != 3 || p.Lost != 0 || p.Latency.Count != 5 {
				t.Errorf("%s: nodes %d, lost %d, measured %d; want 3 nodes, none lost, 5 measured", p.Op, p.Nodes, p.Lost, p.Latency.Count)
			}
			if p.CallP50 <= 0 {
				t.Errorf("%s: no API call time", p.Op)
			}
		}
	})
	t.Run("list", func(t *testing.T) {
		l := r.List
		if l == nil || l.Sessions != 5000 || len(l.Rows) != 5 {
			t.Fatalf("list %+v: want 5 rows over 5000 sessions", l)
		}
		for _, row := range l.Rows {
			if row.Latency.Count != listRounds {
				t.Errorf("%s: %d calls timed, want %d", row.Call, row.Latency.Count, listRounds)
			}
		}
	})
	t.Run("logins", func(t *testing.T) {
		l := r.Logins
		if l == nil || l.Accepted == 0 || l.Errors != 0 || l.PerSec <= 0 {
			t.Fatalf("logins %+v: want some accepted, none failed", l)
		}
		if !l.Converged || len(l.Sessions) != 3 || l.Sessions[0] != int(l.Accepted) {
			t.Errorf("not converged on every login: %+v", l)
		}
	})
	t.Run("check", func(t *testing.T) {
		if len(r.Check) != 6 {
			t.Fatalf("%d check rows, want the baseline, 4 clients, the socket, its two floors and the echo floor", len(r.Check))
		}
		for i, kind := range []string{CheckClosed, CheckClosed, CheckSocket, CheckSocketEcho, CheckSocketHTTP, CheckEcho} {
			if c := r.Check[i]; c.Kind != kind || c.Clients != []int{1, 4, 1, 1, 1, 4}[i] {
				t.Errorf("row %d: %s with %d clients", i, c.Kind, c.Clients)
			}
		}
		for _, c := range r.Check {
			if c.Requests == 0 || c.Errors != 0 || c.Latency.Count != int(c.Requests) || c.Latency.P99 <= 0 {
				t.Errorf("%s check with %d clients: %+v", c.Kind, c.Clients, c)
			}
		}
	})
	t.Run("pushpull", func(t *testing.T) {
		p := r.PushPull
		if p == nil || p.BytesInitiator <= 0 || p.BytesPeer <= 0 || p.Total != p.BytesInitiator+p.BytesPeer {
			t.Fatalf("pushpull %+v: want bytes from both sides", p)
		}
		if p.Repaired != 0 {
			t.Errorf("in-sync nodes repaired %d buckets", p.Repaired)
		}
	})
	t.Run("tables", func(t *testing.T) {
		for _, s := range []string{"machine", "PROPAGATION", "LOGINS", "CHECK", "PUSHPULL"} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("output lacks %s", s)
			}
		}
	})
}

// TestRun_SmokeScale runs the scale scenarios (wan, sites, catchup, heal,
// restart, footprint) at tiny sizes, under nodetest's shrunk timers where a
// scenario takes the timers asked (wan always runs the WAN profile's): each
// must produce its figures, converge and lose nothing, and leave nothing
// behind. It says nothing about speed.
func TestRun_SmokeScale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts several clusters")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	before := runtime.NumGoroutine()

	opts := Options{Timers: TimersTest, Log: testLog{t},
		WANNodes: []int{3}, WANLoss: []float64{0.05}, WANRounds: 4,
		SitesNodes: []int{3}, SitesRounds: 3, SitesLogins: 20,
		CatchupSessions: 3000, CatchupUsers: 600, CatchupRate: 50,
		HealChanges: 200, HealHistory: 3000, SplitTimers: []string{TimersTest}, SplitFor: time.Second,
		FootprintSessions: 3000}
	var out bytes.Buffer
	r, err := Run(context.Background(), []string{ScenarioWAN, ScenarioSites, ScenarioCatchup, ScenarioHeal, ScenarioRestart, ScenarioFootprint}, opts, &out)
	t.Logf("\n%s", out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	nothingLeft(t, tmp, before)

	t.Run("wan", func(t *testing.T) {
		if len(r.WAN) != 6 {
			t.Fatalf("%d wan rows, want 3 operations with the push on and off", len(r.WAN))
		}
		for _, w := range r.WAN {
			// Nothing lost within 5 s is a target, printed, not asserted
			// (on a loaded machine a member may be thought dead for a
			// while, and what it missed comes by the round it is owed):
			// every operation is measured or counted lost, and every node
			// ends up with every record.
			want := map[bool]int{true: 4, false: 1}[w.Push]
			if w.Nodes != 3 || w.Latency.Count+w.Lost != want || w.ConvergedSeconds < 0 {
				t.Errorf("%s, push %v: nodes %d, measured %d, lost %d, converged after %vs (%s); want 3 nodes, %d measured or lost, converged", w.Op, w.Push, w.Nodes, w.Latency.Count, w.Lost, w.ConvergedSeconds, w.Unconverged, want)
			}
			if w.Lost > 0 {
				t.Logf("%s, push %v: %d of %d not everywhere within 5 s (arrived later: converged after %.1fs)", w.Op, w.Push, w.Lost, want, w.ConvergedSeconds)
			}
			// Delayed, not PacketsLost: with the push off a run sends a few
			// dozen packets, and 5 % loss spares all of them one time in ten.
			if w.Delayed == 0 {
				t.Errorf("%s, push %v: no packet delayed: the links were not set", w.Op, w.Push)
			}
		}
	})
	t.Run("sites", func(t *testing.T) {
		if len(r.Sites) != 1 {
			t.Fatalf("%d sites rows", len(r.Sites))
		}
		s := r.Sites[0]
		for _, p := range s.Propagation {
			if p.Lost != 0 || p.Latency.Count != 3 {
				t.Errorf("%s: lost %d, measured %d", p.Op, p.Lost, p.Latency.Count)
			}
		}
		// Twenty logins are a few profile samples and about as many bytes
		// as the shrunk timers' probes: only the origin's gross bytes and
		// the whole CPU are sure to show (net of the quiet window, even the
		// origin's may be under it on a loaded machine).
		if s.GrossOrigin <= 0 || s.CPUAll <= 0 {
			t.Errorf("no bytes or CPU counted: %+v", s)
		}
	})
	t.Run("catchup", func(t *testing.T) {
		c := r.Catchup
		if c == nil || !c.Converged || c.RepairedAll < 3000 || c.Logins == 0 || c.LoginErrors != 0 {
			t.Fatalf("catchup %+v: want converged, the records repaired, logins served", c)
		}
		// Options' zero value: the newcomer in this process (this test
		// binary is not ussync; the command's test runs it as an agent).
		if c.Newcomer != NewcomerInProcess || c.NewcomerRSSPeak != 0 {
			t.Errorf("newcomer %q with its own peak RSS %d: want in process, not measured apart", c.Newcomer, c.NewcomerRSSPeak)
		}
	})
	t.Run("heal", func(t *testing.T) {
		if len(r.Heal) != 2 {
			t.Fatalf("%d heal rows, want the split with changes and one long split", len(r.Heal))
		}
		for _, h := range r.Heal {
			// Gross, not Bytes: under test timers on a loaded machine the
			// quiet window's push/pulls may outweigh a small repair.
			if !h.Converged || h.Gross <= 0 || h.DiffBytes <= 0 {
				t.Errorf("%s: %+v: want converged, bytes exchanged and a difference", h.Kind, h)
			}
		}
		if c := r.Heal[0].Changes; c[0] != 200 || c[1] != 200 || r.Heal[0].History != 3000 {
			t.Errorf("changes %v over %d sessions, want 200 on each side over 3000", c, r.Heal[0].History)
		}
	})
	t.Run("restart", func(t *testing.T) {
		if len(r.Restart) != 1 || !r.Restart[0].Converged {
			t.Fatalf("restart %+v: want one converged row", r.Restart)
		}
	})
	t.Run("footprint", func(t *testing.T) {
		f := r.Footprint
		if f == nil || f.Disk <= 0 || f.OpenSeconds <= 0 {
			t.Fatalf("footprint %+v", f)
		}
	})
	t.Run("tables", func(t *testing.T) {
		for _, s := range []string{"WAN", "SITES", "CATCHUP", "HEAL", "RESTART", "FOOTPRINT"} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("output lacks %s", s)
			}
		}
	})
}

// TestSummarize checks the nearest-rank percentiles.
func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := summarize(ds)
	if want := (Latency{Count: 100, P50: 50, P99: 99, Max: 100}); got != want {
		t.Errorf("summarize(1..100 ms) = %+v, want %+v", got, want)
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

// testLog routes node logs into the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestCPUByLabel: a CPU profile of labelled work is summed by label.
func TestCPUByLabel(t *testing.T) {
	p, err := startCPUProfile()
	if err != nil {
		t.Skip(err)
	}
	// Spin for so much CPU time, not wall time: on a loaded machine the
	// process may get a fraction of a core.
	spin := func(d time.Duration) {
		for end := processCPU() + d; processCPU() < end; {
		}
	}
	pprof.Do(context.Background(), pprof.Labels("node", "busy"), func(context.Context) { spin(300 * time.Millisecond) })
	spin(100 * time.Millisecond)
	byNode, err := p.stop("node")
	if err != nil {
		t.Fatal(err)
	}
	if byNode["busy"] < 100*time.Millisecond || byNode["busy"] <= byNode[""] {
		t.Errorf("CPU by label %v: want most of 300 ms of CPU on busy", byNode)
	}
}

// nothingLeft checks that a run left no temporary entry in tmp and, within
// 10 s (memberlist's goroutines end a moment after Shutdown returns), no
// more goroutines than it started with (before).
func nothingLeft(t *testing.T, tmp string, before int) {
	t.Helper()
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("%d temporary entries left, first %s", len(left), left[0].Name())
	}
	err := eventually.Err(10*time.Second, 20*time.Millisecond, "the run's goroutines to end", func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines left running (%d before)", n-before, before)
		}
		return nil
	})
	if err != nil {
		buf := make([]byte, 1<<20)
		t.Errorf("%v:\n%s", err, buf[:runtime.Stack(buf, true)])
	}
}

// TestWriteFootprint_MemoryNotMeasured: a resident-memory figure the
// process's other scenarios made negative (their memory returned to the OS
// while the store opened) is not judged against the target: "met" for a
// negative figure misled a reader of the CI smoke.
func TestWriteFootprint_MemoryNotMeasured(t *testing.T) {
	for _, c := range []struct {
		rss, heap int64
		want      string
	}{
		{-15 << 20, 3 << 20, "NOT MEASURED"},
		{4 << 20, -1 << 20, "NOT MEASURED"},
		{2 << 30, 1 << 30, "<= 1024 B: MISSED"},
		{100 << 20, 80 << 20, "<= 1024 B: met"},
	} {
		var b strings.Builder
		WriteFootprint(&b, FootprintResult{Sessions: TargetFootprintSessions, RSS: c.rss, Heap: c.heap, RSSAfter: 3 << 30})
		line := ""
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, "resident memory") {
				line = l
			}
		}
		if !strings.Contains(line, c.want) {
			t.Errorf("rss %d, heap %d: %q, want %q", c.rss, c.heap, line, c.want)
		}
	}
}

// TestSizedVerdict: a figure whose target is set at a size is judged from
// that size up, never below it (the CI smoke's tiny stores read "met" and
// "MISSED" by chance); the footprint table says so on its three lines.
func TestSizedVerdict(t *testing.T) {
	for _, c := range []struct {
		ok         bool
		size, at   int
		want, deny string
	}{
		{true, 2000, 1_000_000, "not judged (the target is for 1000000, run at 2000)", "met"},
		{false, 2000, 1_000_000, "not judged", "MISSED"},
		{true, 1_000_000, 1_000_000, "met", "not judged"},
		{false, 2_000_000, 1_000_000, "MISSED", "not judged"},
	} {
		got := sizedVerdict(c.ok, c.size, c.at)
		if !strings.Contains(got, c.want) || strings.Contains(got, c.deny) {
			t.Errorf("sizedVerdict(%v, %d, %d) = %q, want %q without %q", c.ok, c.size, c.at, got, c.want, c.deny)
		}
	}
	var b strings.Builder
	WriteFootprint(&b, FootprintResult{Sessions: 2000, Disk: 100 << 10, RSS: 100 << 10, Heap: 80 << 10, RSSAfter: 64 << 20, OpenSeconds: 0.1})
	if n := strings.Count(b.String(), "not judged"); n != 3 {
		t.Errorf("footprint at 2000 sessions: %d figures not judged, want 3:\n%s", n, b.String())
	}
}

// TestWriteWAN_Slow: the wan table names its operations slower than the
// target's bound, as the sites table does.
func TestWriteWAN_Slow(t *testing.T) {
	var b strings.Builder
	WriteWAN(&b, []WANResult{{Nodes: 30, Loss: 0.01, Push: true, Op: "login", TargetP99: 85, Pushes: 5000, PushRetries: 300, PushesGivenUp: 2,
		Slow: []SlowOp{{Op: "login", Origin: "n9", Ms: 113.8, PushRetries: 146, Last: "n4", NextMs: 61.5}}},
		{Nodes: 30, Loss: 0.01, Push: true, Op: "logout", Pushes: 5000, PushRetries: 300, PushesGivenUp: 2}}, 40)
	for _, want := range []string{
		"30 nodes, 1% loss: slow login from n9: 113.8 ms (last applied on n4; the node before it at 61.5 ms); garbage collections ended meanwhile 0, pushes sent again (every node) 146",
		"30 nodes, 1% loss: during the rounds, 5000 pushes, 300 sent again, 2 given up (every node)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Fatalf("the table lacks %q:\n%s", want, b.String())
		}
	}
	if n := strings.Count(b.String(), "during the rounds"); n != 1 {
		t.Fatalf("the pushes of one run written %d times, want once:\n%s", n, b.String())
	}
}

// TestParseScenario_Empty: an empty --scenario is refused, not taken as
// all (every scenario at the sizes, hours of work); so is an empty
// name in a list.
func TestParseScenario_Empty(t *testing.T) {
	for _, s := range []string{"", " ", "wan,", ",sites", "wan,,sites"} {
		if got, err := ParseScenario(s); err == nil {
			t.Errorf("ParseScenario(%q) = %v, nil; want an error", s, got)
		}
	}
	if got, err := ParseScenario("all"); err != nil || len(got) != len(Scenarios) {
		t.Errorf("ParseScenario(all) = %v, %v; want every scenario", got, err)
	}
}

// TestInterrupted_NoNewCluster: a scenario of several runs whose ctx has
// ended starts no further cluster (no progress line) and says it was
// interrupted: after a Ctrl-C in a wan run's last round, the next run's
// nodes were started, and registered, before the bench noticed.
func TestInterrupted_NoNewCluster(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var progress bytes.Buffer
	opts := Options{Timers: TimersTest, WANNodes: []int{2}, WANLoss: []float64{0.05}, WANRounds: 1,
		SitesNodes: []int{2}, SitesRounds: 1, SitesLogins: 1, SplitTimers: []string{TimersTest}, Progress: &progress}
	for name, run := range map[string]func() error{
		"wan":     func() error { _, err := WAN(ctx, opts); return err },
		"sites":   func() error { _, err := Sites(ctx, opts); return err },
		"restart": func() error { _, err := Restart(ctx, opts); return err },
	} {
		if err := run(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", name, err)
		}
	}
	if progress.Len() > 0 {
		t.Errorf("clusters started after the interruption:\n%s", progress.String())
	}
}

// TestSettleGossip_Interrupted: an interruption while the cluster settles
// is reported as one (the command then says "interrupted"), not as a
// cluster that did not converge in 2 minutes.
func TestSettleGossip_Interrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	t.Setenv("TMPDIR", t.TempDir())
	err := withCluster(Options{Timers: TimersTest, Log: testLog{t}}, func(h *harness) error {
		c := newCluster(h, Options{Timers: TimersTest})
		c.Start(2)
		c.Partition([]int{0}, []int{1})
		cl := newClient(h, c, 1)
		if _, err := cl.expect(context.Background(), c.Members[0], http.StatusOK, "PUT", "/v1/users/"+userEmail(0),
			[]byte(`{"login":"bench","display_name":"Bench","verified_via":"registration"}`)); err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return settleGossip(ctx, c)
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("settleGossip interrupted: %v, want context.Canceled", err)
	}
}

// TestConvergedVerdict_Tiny: a catch-up or heal below its target's size is
// not judged when it converged ("met" in 0.1 s at the smoke's 2,000
// sessions meant nothing), and MISSED at any size when it did not.
func TestConvergedVerdict_Tiny(t *testing.T) {
	var b strings.Builder
	WriteCatchup(&b, CatchupResult{Nodes: 3, Sessions: 2000, Users: 400, Seconds: 0.1, Converged: true, TargetSeconds: 30})
	if !strings.Contains(b.String(), "not judged") || strings.Contains(b.String(), "met") {
		t.Errorf("catch-up of 2000 sessions, converged: want not judged:\n%s", b.String())
	}
	b.Reset()
	WriteCatchup(&b, CatchupResult{Nodes: 3, Sessions: 2000, Users: 400, Seconds: 300, TargetSeconds: 30})
	if !strings.Contains(b.String(), "MISSED (not converged)") {
		t.Errorf("catch-up of 2000 sessions, not converged: want MISSED:\n%s", b.String())
	}
	b.Reset()
	WriteHeal(&b, []HealResult{{Kind: HealChanges, Timers: TimersTest, Changes: [2]int{100, 100}, Seconds: 180, Target: 10, TargetRatio: 2}})
	if !strings.Contains(b.String(), "MISSED (not converged)") {
		t.Errorf("heal of 100 changes, not converged: want MISSED:\n%s", b.String())
	}
}

// TestWriteSites_NoSample: a node with no CPU sample over the logins is
// printed as under one sample period a login, not as "0 µs" (the smoke's
// 20 logins at 3 sites took under 10 ms in all).
func TestWriteSites_NoSample(t *testing.T) {
	var b strings.Builder
	WriteSites(&b, []SitesResult{{Nodes: 3, Logins: 20, CPUAll: 400}})
	if !strings.Contains(b.String(), "< 500 µs") || !strings.Contains(b.String(), "< 250 µs") || strings.Contains(b.String(), " 0 µs") {
		t.Errorf("no samples on the origin or the receivers: want < 500 µs and < 250 µs, no 0 µs:\n%s", b.String())
	}
}

// TestSitesTarget: the sites table judges 30 ms at each of the issue's
// sizes (10, 30, 100), not at 100 alone, and none at the smoke's 3.
func TestSitesTarget(t *testing.T) {
	for n, want := range map[int]float64{3: 0, 10: 30, 30: 30, 100: 30, 150: 30} {
		if got := sitesTargetP99(n); got != want {
			t.Errorf("sitesTargetP99(%d) = %g ms, want %g", n, got, want)
		}
	}
}

// TestReportOptions_Scale: the JSON report records the scale scenarios'
// sizes, named as their flags: a report of the catch-up said the
// propagation's sizes and not how many sessions it caught up on.
func TestReportOptions_Scale(t *testing.T) {
	r, err := Run(context.Background(), nil, Options{CatchupSessions: 2000, WANLoss: []float64{0.05}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(r.Options)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"catchup_sessions":2000`, `"wan_loss":[0.05]`, `"footprint_sessions":1000000`, `"sites_nodes":[10,30,100]`, `"split_timers":["lan","wan"]`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("options %s: no %s", raw, want)
		}
	}
}

// TestWriteCheck_FewClients: the 1 ms p99 set for 50 clients is not judged
// at the smoke's 2 ("met" meant nothing), and is at 50.
func TestWriteCheck_FewClients(t *testing.T) {
	for _, c := range []struct {
		clients int
		want    string
	}{{2, "not judged"}, {50, "p99 <= 1 ms: met"}} {
		var b strings.Builder
		WriteCheck(&b, []CheckResult{{Kind: CheckClosed, Clients: c.clients, PerSec: 1000, TargetP99: 1, Latency: Latency{Count: 10, P50: 0.1, P99: 0.5}}})
		if !strings.Contains(b.String(), c.want) {
			t.Errorf("%d clients: want %q:\n%s", c.clients, c.want, b.String())
		}
	}
}

// TestRun_BadOutputFirst: Run refuses a profile or trace path it could not
// write before it prints or starts anything (the CLI checks the same with
// CheckOutput; a caller of the package gets the same refusal).
func TestRun_BadOutputFirst(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing", "x")
	for _, opts := range []Options{
		{CatchupCPUProfile: missing}, {HealCPUProfile: missing}, {WANCPUProfile: missing}, {WANTrace: missing}, {SitesTrace: missing},
	} {
		var out strings.Builder
		_, err := Run(context.Background(), []string{ScenarioWAN}, opts, &out)
		if err == nil || !strings.Contains(err.Error(), "cannot write in") || out.Len() != 0 {
			t.Errorf("%+v: err %v, output %q; want a refusal and nothing written", opts, err, out.String())
		}
	}
	if err := CheckOutput(t.TempDir(), false); err == nil {
		t.Error("a directory taken as a profile file")
	}
	if err := CheckOutput(filepath.Join(t.TempDir(), "p"), true); err != nil {
		t.Errorf("a prefix in a writable directory: %v", err)
	}
}
