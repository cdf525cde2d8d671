package node

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/ussync/ussync/client"
)

// The private API's calls on the node itself: its status (GET /v1/status,
// `ussync status`) and its Prometheus metrics (GET /metrics). Liveness and
// readiness are in health.go.

// status is GET /v1/status.
func (a *api) status(w http.ResponseWriter, r *http.Request) error {
	var st client.Status
	if a.Status != nil {
		st = a.Status()
	} else {
		st.Node = a.svc.Name
		st.Counts.Users, st.Counts.Sessions = a.svc.Store.Counts()
	}
	return writeJSON(w, http.StatusOK, &st)
}

// metricsHandler is GET /metrics: the node's Prometheus registry.
func (a *api) metricsHandler() func(http.ResponseWriter, *http.Request) error {
	h := promhttp.HandlerFor(a.Metrics.Registry, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(a.Log.Handler(), slog.LevelError),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return func(w http.ResponseWriter, r *http.Request) error {
		h.ServeHTTP(w, r)
		return nil
	}
}
