package bench

import (
	"bufio"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where the figures were taken, and how a set of durations is summarized.

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

// Memory of this process, from /proc/self/status (Linux; 0 elsewhere).
func procStatus(field string) int64 { return procStatusOf("/proc/self/status", field) }

// procStatusOf reads a field counted in kB from a /proc/<pid>/status file
// at path, in bytes; 0 if there is none.
func procStatusOf(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n << 10 // kB
	}
	return 0
}

// rss is this process's resident set; peakRSS its high-water mark since
// start or resetPeakRSS.
func rss() int64     { return procStatus("VmRSS") }
func peakRSS() int64 { return procStatus("VmHWM") }

// resetPeakRSS resets the high-water mark to the current resident set.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// heapWatch samples the Go heap's live objects every interval until
// stopped, keeping the peak.
type heapWatch struct {
	stop chan struct{}
	done chan struct{}
	peak int64
}

func watchHeap(interval time.Duration) *heapWatch {
	w := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.peak = max(w.peak, heapBytes())
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// end stops the watch and returns the peak.
func (w *heapWatch) end() int64 {
	close(w.stop)
	<-w.done
	return w.peak
}

// heapBytes is the Go heap's bytes in live and not yet swept objects.
func heapBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// settledHeap collects garbage and returns memory to the OS, then reads
// the heap and the resident set: a baseline.
func settledHeap() (heap, resident int64) {
	runtime.GC()
	debug.FreeOSMemory()
	return heapBytes(), rss()
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }
