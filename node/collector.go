package node

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports, at each scrape, the node's figures that carry labels
// and are read from their owners: the records the store refused, the
// members' clock skew, the HTTP listeners' connections (README, Metrics;
// docs/security.md).
type collector struct {
	n *Node

	refused    *prometheus.Desc // ussync_records_refused_total{reason}
	skew       *prometheus.Desc // ussync_member_clock_skew_seconds{member}
	conns      *prometheus.Desc // ussync_http_connections{listener}
	connsTaken *prometheus.Desc // ussync_http_connections_refused_total{listener}
}

func newCollector(n *Node) *collector {
	return &collector{
		n: n,
		refused: prometheus.NewDesc("ussync_records_refused_total",
			"Records this node refused to merge since it started (from gossip, anti-entropy, tickets or its own writes), by reason: "+
				"invalid, clock_ahead (stamped more than cluster.max_clock_offset ahead of this node's clock), lifetime.",
			[]string{"reason"}, nil),
		skew: prometheus.NewDesc("ussync_member_clock_skew_seconds",
			"Estimated offset of each live member's wall clock from this node's (positive: the member is ahead), "+
				"from the gossip probes' round trips; absent until a probe has measured it.",
			[]string{"member"}, nil),
		conns: prometheus.NewDesc("ussync_http_connections",
			"Connections the HTTP listener holds open now (api: the private listener; public).",
			[]string{"listener"}, nil),
		connsTaken: prometheus.NewDesc("ussync_http_connections_refused_total",
			"Connections the HTTP listener turned away (503) because it held max_connections already.",
			[]string{"listener"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.refused
	ch <- c.skew
	ch <- c.conns
	ch <- c.connsTaken
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	refused := c.n.store.Refused()
	reasons := make([]string, 0, len(refused))
	for r := range refused {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(refused[r]), r)
	}
	for _, m := range c.n.memberClocks() {
		if m.Known {
			ch <- prometheus.MustNewConstMetric(c.skew, prometheus.GaugeValue, m.Skew.Seconds(), m.Name)
		}
	}
	for _, l := range []struct {
		name string
		ln   *limitListener
	}{{"api", c.n.apiLn}, {"public", c.n.pubLn}} {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(l.ln.Open()), l.name)
		ch <- prometheus.MustNewConstMetric(c.connsTaken, prometheus.CounterValue, float64(l.ln.Refused()), l.name)
	}
}
