package node

import (
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
)

// statusActivity is how many of the latest changes the status shows.
const statusActivity = 10

// Status builds the node's view of the cluster for GET /v1/status.
func (n *Node) Status() client.Status {
	users, sessions := n.store.Counts()
	active, err := n.store.ActiveSessions()
	if err != nil {
		n.log.Warn("count active sessions", "err", err)
	}
	st := client.Status{
		Node:    n.cfg.Node.Name,
		SiteURL: n.cfg.Site.URL,
		Version: n.cfg.Version,
		Profile: n.cfg.Node.Profile,
		Counts:  client.Counts{Users: users, Sessions: sessions, ActiveSessions: active},
		Members: []client.MemberStatus{},
	}
	clocks := map[string]memberClock{}
	for _, c := range n.memberClocks() {
		clocks[c.Name] = c
	}
	refusedFrom := n.gossip.RefusedFrom()
	for _, m := range n.gossip.Members() {
		ms := client.MemberStatus{Name: m.Name, Address: m.Addr, State: m.State, SiteURL: m.SiteURL, Version: m.Version,
			SiteState: memberSiteState(m), Handoff: n.handsOffTo(m), HandoffSkipped: n.handoffSkipped(m),
			RecordsRefused: refusedFrom[m.Name], Revoked: n.store.Site(m.Name).IsRevoked()}
		if c, ok := clocks[m.Name]; ok {
			skew := c.Skew.Seconds()
			ms.ClockSkew = &skew
			if ms.ClockSkewed = n.skewed(c); ms.ClockSkewed {
				st.Warnings = append(st.Warnings, n.skewWarning(c))
			}
		}
		st.Members = append(st.Members, ms)
	}
	st.MaxOffset = n.maxOffset().Seconds()
	st.RecordsRefused = n.store.Refused()
	if n.store.Site(n.cfg.Node.Name).IsRevoked() {
		st.Warnings = append(st.Warnings, "this node's site is revoked by an administrator: its sessions are not active anywhere and it changes nothing; "+
			"take the revocation back from another node (ussync sites unrevoke "+n.cfg.Node.Name+")")
	}
	for _, k := range n.keyring.Keys() {
		st.Keyring = append(st.Keyring, client.KeyStatus{Fingerprint: k.Fingerprint, Primary: k.Primary})
	}
	gs := n.gossip.Stats()
	st.AntiEntropy = client.AntiEntropy{Rounds: gs.AERounds, BucketsRepaired: gs.BucketsRepaired, RecordsSent: gs.RecordsRepaired}
	if !gs.LastAERound.IsZero() {
		st.AntiEntropy.LastRound = gs.LastAERound.Format(time.RFC3339)
	}
	st.Tokens = n.tokens.infos()
	if act, err := n.activity.recent(statusActivity); err != nil {
		n.log.Warn("read activity", "err", err)
	} else if len(act) > 0 {
		st.Activity = act
	}
	st.Reload = n.reloadStatus()
	st.Health = n.gossipHealthStatus()
	if r := n.notReady(); len(r) > 0 {
		st.NotReady = r
	}
	st.Sync = client.SyncStats{
		DeltasSent:     gs.DeltasSent,
		DeltasReceived: gs.DeltasReceived,
		DeltasApplied:  gs.DeltasApplied,
		Rebroadcasts:   gs.Rebroadcasts,
		BadMessages:    gs.BadMessages,
	}
	return st
}

// registerMetrics exports the gossip and store figures on /metrics (the
// others are in metrics_cluster.go; docs/metrics.md lists them all).
// Figures that only grow are counters, so that rate() and resets work.
func (n *Node) registerMetrics() {
	g := n.gossip
	for name, f := range map[string]func() float64{
		"ussync_members_alive":  func() float64 { return float64(len(g.LiveMembers())) },
		"ussync_store_users":    func() float64 { u, _ := n.store.Counts(); return float64(u) },
		"ussync_store_sessions": func() float64 { _, s := n.store.Counts(); return float64(s) },
	} {
		n.metrics.RegisterFunc(name, metricHelp[name], f)
	}
	for name, f := range map[string]func() float64{
		"ussync_gossip_deltas_sent_total":           func() float64 { return float64(g.Stats().DeltasSent) },
		"ussync_gossip_push_retries_total":          func() float64 { return float64(g.Stats().PushRetries) },
		"ussync_gossip_pushes_given_up_total":       func() float64 { return float64(g.Stats().PushesGivenUp) },
		"ussync_gossip_deltas_received_total":       func() float64 { return float64(g.Stats().DeltasReceived) },
		"ussync_gossip_deltas_applied_total":        func() float64 { return float64(g.Stats().DeltasApplied) },
		"ussync_gossip_rebroadcasts_total":          func() float64 { return float64(g.Stats().Rebroadcasts) },
		"ussync_gossip_bad_messages_total":          func() float64 { return float64(g.Stats().BadMessages) },
		"ussync_gossip_dropped_total":               func() float64 { return float64(g.Stats().Dropped) },
		"ussync_gossip_bytes_sent_total":            func() float64 { return float64(g.Stats().BytesSent) },
		"ussync_gossip_reconnects_total":            func() float64 { return float64(g.Stats().Reconnects) },
		"ussync_antientropy_rounds_total":           func() float64 { return float64(g.Stats().AERounds) },
		"ussync_antientropy_buckets_total":          func() float64 { return float64(g.Stats().BucketsRepaired) },
		"ussync_antientropy_records_sent_total":     func() float64 { return float64(g.Stats().RecordsRepaired) },
		"ussync_antientropy_rounds_completed_total": func() float64 { return float64(g.Stats().RoundsCompleted) },
		"ussync_antientropy_rounds_failed_total":    func() float64 { return float64(g.Stats().RoundsFailed) },
		"ussync_antientropy_resyncs_total":          func() float64 { return float64(g.Stats().Resyncs) },
		"ussync_catchups_total":                     func() float64 { return float64(g.Stats().CatchUps) },
		"ussync_gossip_undecryptable_packets_total": func() float64 { return float64(g.Stats().ForeignPackets) },
		"ussync_gossip_undecryptable_streams_total": func() float64 { return float64(g.Stats().ForeignStreams) },
		"ussync_gossip_foreign_key_answers_total":   func() float64 { return float64(g.Stats().ForeignAnswers) },
		"ussync_gossip_streams_refused_total":       func() float64 { return float64(g.Stats().StreamsRefused) },
		"ussync_gossip_name_reclaims_total":         func() float64 { return float64(g.Stats().NameReclaims) },
	} {
		n.metrics.RegisterCounterFunc(name, metricHelp[name], f)
	}
	n.registerClusterMetrics()
	n.metrics.Registry.MustRegister(newCollector(n))
}

// metricHelp is the HELP text of the figures registered above.
var metricHelp = map[string]string{
	"ussync_members_alive":                      "Members this node sees alive (or suspect), itself included.",
	"ussync_store_users":                        "Users in this node's store.",
	"ussync_store_sessions":                     "Sessions in this node's store, history included.",
	"ussync_gossip_deltas_sent_total":           "Eager-push messages sent (one per peer per batch).",
	"ussync_gossip_push_retries_total":          "Eager pushes sent again: not acknowledged in time, or their stream failed.",
	"ussync_gossip_pushes_given_up_total":       "Eager pushes never acknowledged after every try, left to gossip and anti-entropy.",
	"ussync_gossip_deltas_received_total":       "Records received in pushed or gossiped messages.",
	"ussync_gossip_deltas_applied_total":        "Received records that changed this node's store.",
	"ussync_gossip_rebroadcasts_total":          "Records this node learnt from a peer and queued for gossip again.",
	"ussync_gossip_bad_messages_total":          "Gossip messages dropped as malformed, oversized, or of an unknown kind or version.",
	"ussync_gossip_dropped_total":               "Gossip messages or anti-entropy work dropped because a queue was full (anti-entropy repairs them).",
	"ussync_gossip_bytes_sent_total":            "Bytes of gossip written (packets and streams).",
	"ussync_gossip_reconnects_total":            "Successful re-joins of failed members and join addresses.",
	"ussync_antientropy_rounds_total":           "Push/pull digests compared with a peer.",
	"ussync_antientropy_buckets_total":          "Differing digest buckets repaired.",
	"ussync_antientropy_records_sent_total":     "Records sent to peers by anti-entropy.",
	"ussync_antientropy_rounds_completed_total": "Anti-entropy rounds this node completed (repairs applied, or digests equal).",
	"ussync_antientropy_rounds_failed_total":    "Anti-entropy rounds given up (no answer in time, a step not sent or dropped); each is retried.",
	"ussync_antientropy_resyncs_total":          "Push/pulls started to hold a round owed to a member (back from failure, moved, catching up, retrying).",
	"ussync_catchups_total":                     "Catch-ups completed: this node caught up after a start or after being cut off.",
	"ussync_gossip_undecryptable_packets_total": "Inbound gossip packets no installed key decrypts (another cluster key, or noise), dropped.",
	"ussync_gossip_undecryptable_streams_total": "Inbound gossip streams not encrypted, undecryptable or over the size limit, closed.",
	"ussync_gossip_foreign_key_answers_total":   "Answers, on gossip streams this node opened, sealed in a key it does not hold: key mismatches.",
	"ussync_gossip_streams_refused_total":       "Inbound gossip streams closed at once: too many open.",
	"ussync_gossip_name_reclaims_total":         "Members followed to a new address.",
}

// handsOffTo reports whether this node's hand-offs send browsers to member
// m now: as the hand-off itself sees it (its member list, at most a second
// old), so that a status saying yes means the next login's links include
// m. This node itself: alive and its site answering.
func (n *Node) handsOffTo(m gossip.Member) bool {
	if m.Name == n.cfg.Node.Name || n.handoff == nil {
		return m.State == "alive" && m.Good()
	}
	return n.handoff.goodSite(m.Name)
}

// handoffSkipped is why this node's hand-offs leave member m out, as the
// hand-off itself sees it (client.MemberStatus.HandoffSkipped).
func (n *Node) handoffSkipped(m gossip.Member) string {
	if m.Name == n.cfg.Node.Name || n.handoff == nil {
		return ""
	}
	return n.handoff.skipReason(m.Name)
}
