package node

import (
	"time"

	"github.com/ussync/ussync/client"
)

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
	st.Sync = client.SyncStats{
		DeltasSent:     gs.DeltasSent,
		DeltasReceived: gs.DeltasReceived,
		DeltasApplied:  gs.DeltasApplied,
		Rebroadcasts:   gs.Rebroadcasts,
		BadMessages:    gs.BadMessages,
	}
	return st
}

// registerMetrics exports the gossip and store figures on /metrics.
func (n *Node) registerMetrics() {
	g := n.gossip
	for name, f := range map[string]func() float64{
		"ussync_members_alive":                  func() float64 { return float64(len(g.LiveMembers())) },
		"ussync_gossip_deltas_sent_total":       func() float64 { return float64(g.Stats().DeltasSent) },
		"ussync_gossip_deltas_received_total":   func() float64 { return float64(g.Stats().DeltasReceived) },
		"ussync_gossip_deltas_applied_total":    func() float64 { return float64(g.Stats().DeltasApplied) },
		"ussync_gossip_bad_messages_total":      func() float64 { return float64(g.Stats().BadMessages) },
		"ussync_gossip_dropped_total":           func() float64 { return float64(g.Stats().Dropped) },
		"ussync_gossip_bytes_sent_total":        func() float64 { return float64(g.Stats().BytesSent) },
		"ussync_antientropy_rounds_total":       func() float64 { return float64(g.Stats().AERounds) },
		"ussync_antientropy_records_sent_total": func() float64 { return float64(g.Stats().RecordsRepaired) },
		"ussync_store_users":                    func() float64 { u, _ := n.store.Counts(); return float64(u) },
		"ussync_store_sessions":                 func() float64 { _, s := n.store.Counts(); return float64(s) },
	} {
		n.metrics.RegisterFunc(name, metricHelp(name), f)
	}
	n.metrics.Registry.MustRegister(newCollector(n))
}

func metricHelp(name string) string {
	return "ussync figure " + name + " (see README, Metrics)."
}
