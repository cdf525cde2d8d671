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
//     {"status":"not_ready","reasons":[...]} while any of these holds:
//     the node is shutting down (its store is closing); it has peers to
//     reach (gossip.join) and sees none alive (alone: it hears no logout
//     from the other sites).
//
// Both are on the private listener, without a token, like /metrics.

// notReady lists why the node is not ready; empty when it is.
func (n *Node) notReady() []string {
	reasons := []string{}
	if n.stopping.Load() {
		return append(reasons, "shutting down: the store is closing")
	}
	if len(n.cfg.Gossip.Join) > 0 && len(n.gossip.LiveMembers()) < 2 {
		reasons = append(reasons, "alone: no other member is alive, though gossip.join names some (firewall, another cluster secret, or every peer down)")
	}
	return reasons
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
