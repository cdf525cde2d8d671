package node

import (
	"net/http"
)

// Liveness and readiness, for a process supervisor and a load balancer or
// an orchestrator (Kubernetes' probes, a proxy's health checks):
//
//   - GET /healthz (liveness): the process answers. 200 while it serves at
//     all; restarting a node that fails it is the cure.
//   - GET /readyz (readiness): the node is fit to answer its site, which a
//     restart would not fix: 200 {"status":"ready"}, or 503
//     {"status":"not_ready","reasons":[...]} while any of these holds
//     (gossip.Health): the node is shutting down (its store is closing);
//     it is catching up (started, or back from being cut off, and no full
//     anti-entropy round with a live member has completed yet: a session
//     logged out elsewhere meanwhile may still look active); it is
//     isolated (no other member alive though it has peers to reach: it
//     hears no logout from the other sites).
//
// /healthz also says how the node is (client.GossipHealth.Status: ok,
// catching_up, site_down, isolated, key_mismatch, storage_full) and why,
// without failing: a restart fixes none of them; and the fingerprint of its
// store's digest, to compare with another node's.
//
// Both are on the private listener, without a token, like /metrics.

// notReady lists why the node is not ready; empty when it is.
func (n *Node) notReady() []string {
	reasons := []string{}
	if n.stopping.Load() {
		return append(reasons, "shutting down: the store is closing")
	}
	return append(reasons, gossipNotReady(n.gossip)...)
}

// gossipNotReady lists why gossip makes a node unfit to answer its site:
// catching up, isolated.
func gossipNotReady(g healthSource) []string {
	var reasons []string
	if g.CatchingUp() || g.Isolated() {
		h := g.Health()
		if h.Isolated {
			reasons = append(reasons, "isolated: "+h.Reason()+" (a firewall, another cluster secret, or every peer down)")
		}
		if h.CatchingUp {
			h.Isolated, h.KeyMismatch = false, false
			reasons = append(reasons, h.Reason())
		}
	}
	return reasons
}

// publicHealth is the public listener's GET /healthz (for the site's
// proxy): the process answers, nothing more.
var publicHealth = &healthzBody{Status: "ok"}

// healthzBody is the answer of GET /healthz.
type healthzBody struct {
	Status string `json:"status"` // always "ok": the process answers
	// Gossip is client.GossipHealth.Status: ok, catching_up, site_down,
	// isolated, key_mismatch, storage_full; Reason says why when it is
	// not ok.
	Gossip string `json:"gossip,omitempty"`
	Reason string `json:"reason,omitempty"`
	// FailClosed, SiteDown and StorageFull are client.GossipHealth's.
	FailClosed  bool `json:"fail_closed,omitempty"`
	SiteDown    bool `json:"site_down,omitempty"`
	StorageFull bool `json:"storage_full,omitempty"`
	// Digest is the fingerprint of the store's anti-entropy digest
	// (session.Digest.Fingerprint, 16 hex characters): nodes that show
	// the same hold the same records, as far as the digest tells. It
	// changes with every write; a watcher of a catch-up compares it with
	// a peer's.
	Digest string `json:"digest,omitempty"`
}

// healthz is GET /healthz: 200 while the process serves, with gossip's
// health for information.
func (a *api) healthz(w http.ResponseWriter, _ *http.Request) error {
	body := healthzBody{Status: "ok"}
	if a.Fresh != nil {
		h := a.Fresh.health()
		body.Gossip, body.Reason = h.Status, h.Reason
		body.FailClosed, body.SiteDown, body.StorageFull = h.FailClosed, h.SiteDown, h.StorageFull
	} else if a.GossipHealth != nil {
		body.Gossip, body.Reason = a.GossipHealth()
	}
	if a.svc != nil && a.svc.Store != nil {
		d := a.svc.Store.Digest()
		body.Digest = d.Fingerprint()
	}
	writeJSON(w, http.StatusOK, &body)
	return nil
}

// gossipHealth is gossip's health in a word and why.
func (n *Node) gossipHealth() (status, reason string) {
	h := n.gossip.Health()
	return h.Status(), h.Reason()
}

// readyBody is the answer of GET /readyz.
type readyBody struct {
	Status  string   `json:"status"` // ready or not_ready
	Reasons []string `json:"reasons,omitempty"`
}

// readyz is GET /readyz: 200 when ready (see notReady), else 503 with the
// reasons.
func (a *api) readyz(w http.ResponseWriter, _ *http.Request) error {
	var reasons []string
	if a.NotReady != nil {
		reasons = a.NotReady()
	}
	if len(reasons) > 0 {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, &readyBody{Status: "not_ready", Reasons: reasons})
		return nil
	}
	writeJSON(w, http.StatusOK, &readyBody{Status: "ready"})
	return nil
}
