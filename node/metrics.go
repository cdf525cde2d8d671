package node

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ussync/ussync/session"
)

// Metrics are one node's Prometheus metrics, served on GET /metrics of the
// private listener. Each node has its own Registry (never the global one), so
// tests can run many nodes in one process. Safe for concurrent use.
type Metrics struct {
	// Registry holds every metric of the node; add more with RegisterFunc or
	// Registry.MustRegister.
	Registry *prometheus.Registry

	requests        *prometheus.CounterVec   // ussync_api_requests_total{route,code}
	duration        *prometheus.HistogramVec // ussync_api_request_duration_seconds{route}
	sessionsCreated [2]prometheus.Counter    // ussync_sessions_created_total{synced="false"|"true"}
	sessionsEnded   *prometheus.CounterVec   // ussync_sessions_ended_total{reason}
}

// NewMetrics returns the node's metrics on a new registry that also holds the
// Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ussync_api_requests_total",
			Help: "Private API requests answered, by route pattern and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ussync_api_request_duration_seconds",
			Help: "Time to answer a private API request, by route pattern.",
			// A session check answers in well under a millisecond on
			// loopback; the upper buckets catch a store in trouble.
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ussync_sessions_ended_total",
			Help: "Sessions ended by this node's API, by end reason.",
		}, []string{"reason"}),
	}
	created := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ussync_sessions_created_total",
		Help: `Sessions created by this node's API; synced="false" for sessions kept on this site (e-mail not verified).`,
	}, []string{"synced"})
	m.sessionsCreated[0] = created.WithLabelValues("false")
	m.sessionsCreated[1] = created.WithLabelValues("true")
	// Pre-create the usual reasons so they read 0 rather than being absent.
	m.sessionsEnded.WithLabelValues(session.EndLogout)
	m.sessionsEnded.WithLabelValues(session.EndLogoutEverywhere)
	m.Registry.MustRegister(
		m.requests, m.duration, created, m.sessionsEnded,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// RegisterFunc registers a gauge named name whose value is f(), read at each
// scrape (f must be safe for concurrent use and quick). It panics if the name
// is invalid or already registered: a wiring bug, found at start.
func (m *Metrics) RegisterFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// RegisterCounterFunc is RegisterFunc for a value that only grows (name it
// *_total): scrapers then treat resets and rates correctly.
func (m *Metrics) RegisterCounterFunc(name, help string, f func() float64) {
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
}

func (m *Metrics) sessionCreated(synced bool) {
	if synced {
		m.sessionsCreated[1].Inc()
	} else {
		m.sessionsCreated[0].Inc()
	}
}

func (m *Metrics) sessionsEndedAdd(reason string, n int) {
	if n > 0 {
		m.sessionsEnded.WithLabelValues(reason).Add(float64(n))
	}
}

// route returns the request metrics of one route label. Build them all
// before serving: the per-request path then only reads.
func (m *Metrics) route(label string) *routeMetrics {
	return &routeMetrics{label: label, requests: m.requests, duration: m.duration.WithLabelValues(label)}
}

// routeMetrics are the request metrics of one route, with its per-status
// counters cached so that counting a request takes no map lookup and no
// allocation once a status has been seen.
type routeMetrics struct {
	label    string
	requests *prometheus.CounterVec
	duration prometheus.Observer
	codes    atomic.Pointer[[]codeCounter] // copy-on-write; a handful of entries
	mu       sync.Mutex                    // serializes additions to codes
}

type codeCounter struct {
	code int
	c    prometheus.Counter
}

func (rm *routeMetrics) observe(code int, elapsed time.Duration) {
	rm.duration.Observe(elapsed.Seconds())
	rm.counter(code).Inc()
}

func (rm *routeMetrics) counter(code int) prometheus.Counter {
	if p := rm.codes.Load(); p != nil {
		for _, cc := range *p {
			if cc.code == code {
				return cc.c
			}
		}
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	var old []codeCounter
	if p := rm.codes.Load(); p != nil {
		old = *p
		for _, cc := range old {
			if cc.code == code {
				return cc.c
			}
		}
	}
	c := rm.requests.WithLabelValues(rm.label, strconv.Itoa(code))
	codes := append(append(make([]codeCounter, 0, len(old)+1), old...), codeCounter{code, c})
	rm.codes.Store(&codes)
	return c
}
