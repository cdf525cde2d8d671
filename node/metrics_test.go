package node_test

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// scrape is one /metrics answer: each series' value (name with its labels
// as written, e.g. `ussync_members{state="alive"}`) and each metric's
// TYPE.
type scrape struct {
	values map[string]float64
	types  map[string]string
}

func scrapeMetrics(t *testing.T, m *nodetest.Member) scrape {
	t.Helper()
	resp, err := http.Get("http://" + m.APIAddr() + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", m.Name(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %d %s", m.Name(), resp.StatusCode, b)
	}
	s := scrape{values: map[string]float64{}, types: map[string]string{}}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			s.types[f[2]] = f[3]
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: bad line %q", m.Name(), line)
		}
		s.values[line[:i]] = v
	}
	return s
}

// TestMetrics_TypesAndValues: every *_total series is a counter, the
// cluster's figures have their types, and they move with what happens.
func TestMetrics_TypesAndValues(t *testing.T) {
	c := nodetest.NewCluster(t, 2)
	n0, n1 := c.Members[0], c.Members[1]
	s := scrapeMetrics(t, n1)
	for name, typ := range s.types {
		if strings.HasSuffix(name, "_total") && typ != "counter" {
			t.Errorf("%s is a %s, want a counter", name, typ)
		}
	}
	for name, want := range map[string]string{
		"ussync_gossip_deltas_applied_total":        "counter",
		"ussync_antientropy_rounds_total":           "counter",
		"ussync_propagation_lag_seconds":            "histogram",
		"ussync_members":                            "gauge",
		"ussync_members_alive":                      "gauge",
		"ussync_store_bytes":                        "gauge",
		"ussync_keyring_keys":                       "gauge",
		"ussync_api_tokens":                         "gauge",
		"ussync_config_last_reload_successful":      "gauge",
		"ussync_config_restart_pending":             "gauge",
		"ussync_ready":                              "gauge",
		"ussync_catching_up":                        "gauge",
		"ussync_isolated":                           "gauge",
		"ussync_key_mismatch":                       "gauge",
		"ussync_gossip_undecryptable_packets_total": "counter",
		"ussync_gossip_foreign_key_answers_total":   "counter",
		"ussync_antientropy_rounds_completed_total": "counter",
		"ussync_api_request_duration_seconds":       "histogram",
		"ussync_store_sessions":                     "gauge",
		"ussync_antientropy_records_sent_total":     "counter",
	} {
		if got := s.types[name]; got != want {
			t.Errorf("%s is a %q, want a %s", name, got, want)
		}
	}
	for series, want := range map[string]float64{
		`ussync_members{state="alive"}`:                    2,
		`ussync_members{state="dead"}`:                     0,
		`ussync_keyring_keys`:                              1,
		`ussync_api_tokens{source="config"}`:               1,
		`ussync_api_tokens{source="api"}`:                  0,
		`ussync_config_last_reload_successful`:             1,
		`ussync_store_bytes{part="lsm"}`:                   s.values[`ussync_store_bytes{part="lsm"}`], // present
		`ussync_propagation_lag_seconds_count`:             s.values[`ussync_propagation_lag_seconds_count`],
		`ussync_gossip_deltas_applied_total`:               s.values[`ussync_gossip_deltas_applied_total`],
		`ussync_propagation_lag_seconds_bucket{le="+Inf"}`: s.values[`ussync_propagation_lag_seconds_count`],
	} {
		got, ok := s.values[series]
		if !ok || got != want {
			t.Errorf("%s = %v (present %t), want %v", series, got, ok, want)
		}
	}

	// A login on n0 reaches n1: applied, and its lag observed. The user and
	// the session each come by the eager push or, when a push is lost or
	// dropped (a busy machine), by an anti-entropy repair: the lag counts
	// both ways, the push counters the first, the repaired buckets the
	// second.
	register(t, c, 0, "ann@example.com")
	a := login(t, n0, "ann@example.com")
	waitAll(t, c, a.Session.ID, http.StatusOK, "")
	c.WaitFor(10*time.Second, "n1's figures to move", func() bool {
		now := scrapeMetrics(t, n1)
		moved := func(name string) float64 { return now.values[name] - s.values[name] }
		pushed, repaired := moved("ussync_gossip_deltas_applied_total"), moved("ussync_antientropy_buckets_total")
		return moved("ussync_propagation_lag_seconds_count") >= 2 &&
			(pushed >= 2 || pushed+repaired >= 1) &&
			moved("ussync_gossip_deltas_received_total") >= pushed
	})
	now := scrapeMetrics(t, n1)
	if sum, n := now.values["ussync_propagation_lag_seconds_sum"], now.values["ussync_propagation_lag_seconds_count"]; sum < 0 || sum/n > 60 {
		t.Errorf("a mean propagation lag of %v s on loopback", sum/n)
	}

	// n1 estimates n0's clock from its probes: the same clock here.
	c.WaitFor(10*time.Second, "n0's clock skew on n1", func() bool {
		_, ok := scrapeMetrics(t, n1).values[`ussync_member_clock_skew_seconds{member="n0"}`]
		return ok
	})
	if v := scrapeMetrics(t, n1).values[`ussync_member_clock_skew_seconds{member="n0"}`]; v > 1 || v < -1 {
		t.Errorf("the skew of a clock shared in-process: %v s", v)
	}

	// A token made: counted.
	if code := n1.Call("POST", "/v1/tokens", map[string]string{"name": "prometheus"}, nil); code != http.StatusCreated {
		t.Fatal(code)
	}
	if v := scrapeMetrics(t, n1).values[`ussync_api_tokens{source="api"}`]; v != 1 {
		t.Errorf("api tokens: %v", v)
	}

	// n0 dies: n1 counts it dead, and, isolated, is not ready.
	c.WaitFor(10*time.Second, "n1 ready (caught up)", func() bool { return readyz(t, n1) == http.StatusOK })
	c.Kill(0)
	c.WaitFor(10*time.Second, "n1 to count n0 dead", func() bool {
		v := scrapeMetrics(t, n1).values
		return v[`ussync_members{state="dead"}`] == 1 && v[`ussync_members{state="alive"}`] == 1
	})
	if code := readyz(t, n1); code != http.StatusServiceUnavailable || scrapeMetrics(t, n1).values["ussync_ready"] != 0 {
		t.Errorf("n1 /readyz alone: %d", code)
	}
	if v := scrapeMetrics(t, n1).values["ussync_isolated"]; v != 1 {
		t.Errorf("n1 alone: ussync_isolated %v", v)
	}
	c.Restart(0)
	c.WaitFor(10*time.Second, "n0 and n1 ready again", func() bool {
		return readyz(t, n1) == http.StatusOK && readyz(t, n0) == http.StatusOK
	})

	// A node with another cluster secret joins: it hears the cluster's
	// answers in a key it does not hold.
	c.Configure = func(i int, cfg *node.Config) {
		if i == 2 {
			cfg.Gossip.Secrets = []string{newSecretText(t)}
		}
	}
	n2 := c.Add()
	c.WaitFor(15*time.Second, "n2 to see the key mismatch", func() bool {
		v := scrapeMetrics(t, n2).values
		return v["ussync_key_mismatch"] == 1 && v["ussync_gossip_foreign_key_answers_total"] > 0 && v["ussync_ready"] == 0
	})
	var st client.Status
	n2.Call("GET", "/v1/status", nil, &st)
	if st.Health == nil || st.Health.Status != "key_mismatch" || !st.Health.KeyMismatch || len(st.NotReady) == 0 {
		t.Errorf("n2's status: %+v %v", st.Health, st.NotReady)
	}
}

// readyz returns the status of member's GET /readyz.
func readyz(t *testing.T, m *nodetest.Member) int {
	t.Helper()
	resp, err := http.Get("http://" + m.APIAddr() + "/readyz")
	if err != nil {
		t.Fatalf("readyz %s: %v", m.Name(), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestMetrics_Documented: docs/metrics.md lists every ussync_* series a
// live node serves, with its type, and nothing else.
func TestMetrics_Documented(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(ussync_[a-z_]+)` \\| ([a-z]+) \\|").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = m[2]
	}
	if len(documented) < 30 {
		t.Fatalf("found %d series in docs/metrics.md: the table format changed?", len(documented))
	}
	c := nodetest.NewCluster(t, 2)
	m := c.Members[0]
	m.Call("GET", "/v1/status", nil, nil) // an API request
	var s scrape
	c.WaitFor(10*time.Second, "every series present (the clock skew after a probe)", func() bool {
		s = scrapeMetrics(t, m)
		return s.types["ussync_member_clock_skew_seconds"] != "" && s.types["ussync_api_requests_total"] != ""
	})
	for name, typ := range s.types {
		if !strings.HasPrefix(name, "ussync_") {
			continue
		}
		if documented[name] != typ {
			t.Errorf("%s, a %s, is documented as %q in docs/metrics.md", name, typ, documented[name])
		}
	}
	for name := range documented {
		if _, ok := s.types[name]; !ok {
			t.Errorf("docs/metrics.md lists %s, which the node does not serve", name)
		}
	}
}
