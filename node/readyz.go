package node

import "net/http"

// readyBody is the answer of GET /readyz.
type readyBody struct {
	Status  string   `json:"status"` // ready or not_ready
	Reasons []string `json:"reasons,omitempty"`
}

// readyz is GET /readyz (readiness): 200 {"status":"ready"} while the node
// is fit to answer its site, 503 {"status":"not_ready","reasons":[…]}
// while it is catching up or isolated (freshness.notReady): its session
// checks may vouch for sessions logged out elsewhere. A restart cures
// neither; a load balancer or orchestrator holds traffic back meanwhile.
func (a *api) readyz(w http.ResponseWriter, _ *http.Request) error {
	if reasons := a.Fresh.notReady(); len(reasons) > 0 {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, &readyBody{Status: "not_ready", Reasons: reasons})
		return nil
	}
	writeJSON(w, http.StatusOK, &readyBody{Status: "ready"})
	return nil
}
