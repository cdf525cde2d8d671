package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ussync/ussync/internal/eventually"
)

func testProber(ttl time.Duration) (*siteProber, *prometheus.CounterVec) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "probes"}, []string{"result"})
	return newSiteProber(nodeProbeTimeout, ttl, c), c
}

// counted is c's count of label value v.
func counted(t *testing.T, c *prometheus.CounterVec, v string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == v {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func siteAt(t *testing.T, name, raw string) site {
	t.Helper()
	s, ok := parseSite(name, raw)
	if !ok {
		t.Fatalf("site url %q", raw)
	}
	return s
}

// TestSiteProber_OneProbeForABurst: a burst of steps to one site waits
// for one probe, and its answer serves the steps of the next ttl; the
// probe is a GET of the health URL under the site's own path, without
// cookies, and a redirect is an answer (not 2xx), never followed.
func TestSiteProber_OneProbeForABurst(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.Header.Get("Cookie") != "" {
			t.Errorf("a probe sent cookies %q", r.Header.Get("Cookie"))
		}
		switch r.URL.Path {
		case "/blog/ussync/v1/healthz":
			<-release
			w.WriteHeader(http.StatusOK)
		case "/moved/ussync/v1/healthz":
			http.Redirect(w, r, "/blog/ussync/v1/healthz", http.StatusFound)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	p, probes := testProber(time.Hour)
	defer p.close()
	blog := siteAt(t, "blog", srv.URL+"/blog/")

	t.Run("a burst shares one probe", func(t *testing.T) {
		const n = 20
		var wg sync.WaitGroup
		var up atomic.Int32
		for range n {
			wg.Go(func() {
				if p.answers(context.Background(), blog) {
					up.Add(1)
				}
			})
		}
		// Every caller is in: one probe in flight, the others waiting.
		eventually.True(t, 10*time.Second, "the probe to start", func() bool { return hits.Load() > 0 })
		close(release)
		wg.Wait()
		if up.Load() != n || hits.Load() != 1 {
			t.Fatalf("%d of %d callers saw the site up, after %d probes", up.Load(), n, hits.Load())
		}
		if !p.answers(context.Background(), blog) || hits.Load() != 1 {
			t.Errorf("the answer was not kept: %d probes", hits.Load())
		}
		if got := counted(t, probes, probedUp); got != 1 {
			t.Errorf("counted %v probes up", got)
		}
	})

	t.Run("a redirect is not followed", func(t *testing.T) {
		before := hits.Load()
		if p.answers(context.Background(), siteAt(t, "moved", srv.URL+"/moved/")) {
			t.Error("a site that redirects its health URL is up")
		}
		if hits.Load() != before+1 {
			t.Errorf("%d requests for one probe", hits.Load()-before)
		}
		if got := counted(t, probes, probedDown); got != 1 {
			t.Errorf("counted %v probes down", got)
		}
	})

	mu.Lock()
	defer mu.Unlock()
	for _, path := range paths {
		if path != "/blog/ussync/v1/healthz" && path != "/moved/ussync/v1/healthz" {
			t.Errorf("probed %q", path)
		}
	}
}

// TestSiteProber_WaiterLeaves: a step whose browser goes away stops
// waiting for the probe of another (it answers false: the page, which
// it will not read); the probe goes on for the others, and a new one
// is made once the answer is older than ttl.
func TestSiteProber_WaiterLeaves(t *testing.T) {
	var hits atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			<-release
		}
	}))
	defer srv.Close()
	p, _ := testProber(0) // every answer is already old
	defer p.close()
	s := siteAt(t, "s", srv.URL+"/")
	first := make(chan bool)
	go func() { first <- p.answers(context.Background(), s) }()
	eventually.True(t, 10*time.Second, "the probe to start", func() bool { return hits.Load() > 0 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p.answers(ctx, s) {
		t.Error("a caller gone away was told the site is up")
	}
	close(release)
	if !<-first {
		t.Error("the probe's own caller was told the site is down")
	}
	if !p.answers(context.Background(), s) || hits.Load() != 2 {
		t.Errorf("%d probes, want a new one after the ttl", hits.Load())
	}
}
