package bench

import (
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/trace"
	"sync"
	"time"

	"github.com/ussync/ussync/node/nodetest"
)

// SlowOp is one measured operation of the sites or wan scenario slower
// than its target (sites: TargetSitesP99N100; wan: the 1 % target), with
// what the process did while it travelled: the tail of a propagation table
// explained (issue 11).
type SlowOp struct {
	Op     string  `json:"op"`
	Origin string  `json:"origin"`
	Ms     float64 `json:"ms"`
	// GCCycles is how many garbage collections ended while it travelled
	// (runtime/metrics /gc/cycles/total:gc-cycles; one that began before
	// it and ended after counts, one still running when it arrived does
	// not: the trace shows those).
	GCCycles uint64 `json:"gc_cycles"`
	// PushRetries are the eager pushes sent again meanwhile, every node
	// together (Stats.PushRetries): a push not acknowledged within its
	// retransmission timeout, lost or answered late.
	PushRetries uint64 `json:"push_retries"`
	// Last is the node that applied it last, and NextMs when the node
	// before it did: a last node far behind the others (one node's stall:
	// its store, its receive loop) or all of them late (the origin, the
	// links, the process).
	Last   string  `json:"last"`
	NextMs float64 `json:"next_ms"`
	// Trace is the file that received the execution trace of the last
	// seconds up to its arrival (--sites-trace, --wan-trace), "" when none
	// was written.
	Trace string `json:"trace,omitempty"`
}

// maxSlowTraces bounds the traces one sites run writes: each is up to
// slowTraceBytes.
const (
	maxSlowTraces  = 3
	slowTraceBytes = 64 << 20
)

// slowWatch notes the measured operations of a propagation slower than
// over. It reads the cluster's push retries and the runtime's GC count
// before each operation, and after a slow one; with a trace prefix, a
// flight recorder (runtime/trace.FlightRecorder) keeps the last seconds
// of the execution trace, written out after the first maxSlowTraces slow
// operations: `go tool trace -pprof=sched FILE` then shows where
// goroutines waited for a CPU, `go tool trace FILE` the timeline.
type slowWatch struct {
	over   time.Duration
	c      *nodetest.Cluster
	prefix string // trace files: prefix-<n>-<k>-<op>.trace
	fr     *trace.FlightRecorder

	mu   sync.Mutex
	ops  []SlowOp
	errs []error
}

// slowMark is what slowWatch reads before an operation.
type slowMark struct {
	retries, gc uint64
}

func newSlowWatch(c *nodetest.Cluster, over time.Duration, prefix string) (*slowWatch, error) {
	w := &slowWatch{over: over, c: c, prefix: prefix}
	if prefix != "" {
		w.fr = trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 2 * time.Second, MaxBytes: slowTraceBytes})
		if err := w.fr.Start(); err != nil {
			return nil, fmt.Errorf("start the flight recorder: %w", err)
		}
	}
	return w, nil
}

// stop ends the flight recorder, if any, and returns the slow operations
// and any error writing their traces.
func (w *slowWatch) stop() ([]SlowOp, error) {
	if w.fr != nil {
		w.fr.Stop()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		return w.ops, w.errs[0]
	}
	return w.ops, nil
}

func (w *slowWatch) mark() slowMark {
	var m slowMark
	for _, mem := range w.c.Members {
		m.retries += mem.Gossip().Stats().PushRetries
	}
	m.gc = gcCycles()
	return m
}

// saw is told of an operation that took d; before is the mark read before
// it started.
func (w *slowWatch) saw(op string, origin int, d time.Duration, before slowMark, last int, next time.Duration) {
	if d <= w.over {
		return
	}
	after := w.mark()
	s := SlowOp{Op: op, Origin: w.c.Members[origin].Name(), Ms: ms(d), GCCycles: after.gc - before.gc,
		PushRetries: after.retries - before.retries, NextMs: ms(max(next, 0))}
	if last >= 0 {
		s.Last = w.c.Members[last].Name()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fr != nil && len(w.ops) < maxSlowTraces {
		s.Trace = fmt.Sprintf("%s-%d-%d-%s.trace", w.prefix, len(w.c.Members), len(w.ops)+1, op)
		if err := w.writeTrace(s.Trace); err != nil {
			w.errs = append(w.errs, err)
			s.Trace = ""
		}
	}
	w.ops = append(w.ops, s)
}

func (w *slowWatch) writeTrace(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write the trace of a slow operation: %w", err)
	}
	if _, err := w.fr.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write the trace of a slow operation: %w", err)
	}
	return f.Close()
}

// gcCycles returns the garbage collections the process completed so far.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
