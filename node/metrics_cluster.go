package node

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ussync/ussync/session"
)

// The node's cluster-wide figures on /metrics beyond the counters of
// registerMetrics: members by state, propagation lag, the store's size on
// disk, the keyring, the tokens and the last reload. docs/metrics.md lists
// every series.

var (
	descMembers = prometheus.NewDesc("ussync_members",
		"Members this node knows, by state: alive, suspect, dead (failed, retried), left.", []string{"state"}, nil)
	descStoreBytes = prometheus.NewDesc("ussync_store_bytes",
		"Bytes of this node's store on disk, by part: lsm (keys, small values) and vlog (value log), as Badger last measured them (once a minute).", []string{"part"}, nil)
	descKeys = prometheus.NewDesc("ussync_keyring_keys",
		"Cluster secrets in this node's keyring (2 during a rotation).", nil, nil)
	descTokens = prometheus.NewDesc("ussync_api_tokens",
		"API tokens this node accepts, by source: config or api.", []string{"source"}, nil)
	descReloadOK = prometheus.NewDesc("ussync_config_last_reload_successful",
		"1 if the last configuration reload (SIGHUP) was applied, 0 if it was refused; 1 before the first.", nil, nil)
	descRestart = prometheus.NewDesc("ussync_config_restart_pending",
		"Configuration keys changed and reloaded that take effect only at the next start.", nil, nil)
	descReady = prometheus.NewDesc("ussync_ready",
		"1 if the node is ready (GET /readyz answers 200), else 0.", nil, nil)
	descCatchingUp = prometheus.NewDesc("ussync_catching_up",
		"1 while this node catches up (after a start or being cut off, until a full anti-entropy round with a live member completes), else 0.", nil, nil)
	descIsolated = prometheus.NewDesc("ussync_isolated",
		"1 while no other member is alive though this node has peers to reach, else 0.", nil, nil)
	descKeyMismatch = prometheus.NewDesc("ussync_key_mismatch",
		"1 if, within the last five minutes, a peer answered or a member's address sent gossip in a cluster key this node does not hold (a missed key rotation), else 0.", nil, nil)
	descForeign = prometheus.NewDesc("ussync_gossip_foreign_sources",
		"Addresses that sent this node undecryptable gossip within the last five minutes (members' and strangers').", nil, nil)
)

// memberStates are the states ussync_members always has a series for.
var memberStates = []string{"alive", "suspect", "dead", "left"}

// lagBuckets are the bounds of ussync_propagation_lag_seconds: from a push
// on a LAN (milliseconds) to an anti-entropy repair after an outage
// (hours).
var lagBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600}

// newLagHistogram is ussync_propagation_lag_seconds.
func newLagHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "ussync_propagation_lag_seconds",
		Help: "Time from a change on its node (the wall time of its record's latest HLC) to its application here, for every record a peer's message changed (pushes, gossip and anti-entropy repairs; a node back from an outage observes long lags for what it missed).",
		// The histogram is observed from gossip's apply and repair loops.
		Buckets: lagBuckets,
	})
}

// observeApplied is gossip's Observer: it records the propagation lag of
// the records a peer's message changed. It never blocks.
func (n *Node) observeApplied(changed []session.Record) {
	if n.lag == nil {
		return
	}
	now := n.now().UnixMilli()
	for _, r := range changed {
		lag := now - r.MaxHLC().WallMs()
		if lag < 0 {
			lag = 0 // the writer's clock is ahead of ours: no lag to speak of
		}
		n.lag.Observe(float64(lag) / 1000)
	}
}

// clusterCollector reads the figures that are read from the node at each
// scrape.
type clusterCollector struct{ n *Node }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descStoreBytes, descKeys, descTokens, descReloadOK, descRestart, descReady, descCatchingUp, descIsolated, descKeyMismatch, descForeign} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	byState := map[string]int{}
	for _, m := range n.gossip.Members() {
		byState[m.State]++
	}
	for _, s := range memberStates {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(byState[s]), s)
	}
	lsm, vlog := n.store.DiskSize()
	ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(lsm), "lsm")
	ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(vlog), "vlog")
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(len(n.keyring.Keys())))
	bySource := map[string]int{}
	for _, t := range n.tokens.infos() {
		bySource[t.Source]++
	}
	for _, s := range []string{"config", "api"} {
		ch <- prometheus.MustNewConstMetric(descTokens, prometheus.GaugeValue, float64(bySource[s]), s)
	}
	ok, pending := 1.0, 0.0
	if st := n.reloadStatus(); st != nil {
		if st.Error != "" {
			ok = 0
		}
		pending = float64(len(st.Restart))
	}
	ch <- prometheus.MustNewConstMetric(descReloadOK, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(descRestart, prometheus.GaugeValue, pending)
	ready := 1.0
	if len(n.notReady()) > 0 {
		ready = 0
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	h := n.gossip.Health()
	ch <- prometheus.MustNewConstMetric(descCatchingUp, prometheus.GaugeValue, bit(h.CatchingUp))
	ch <- prometheus.MustNewConstMetric(descIsolated, prometheus.GaugeValue, bit(h.Isolated))
	ch <- prometheus.MustNewConstMetric(descKeyMismatch, prometheus.GaugeValue, bit(h.KeyMismatch))
	ch <- prometheus.MustNewConstMetric(descForeign, prometheus.GaugeValue, float64(len(h.Foreign)))
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// registerClusterMetrics registers the figures of this file.
func (n *Node) registerClusterMetrics() {
	n.metrics.Registry.MustRegister(clusterCollector{n})
	if n.lag != nil {
		n.metrics.Registry.MustRegister(n.lag)
	}
}
