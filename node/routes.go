package node

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// route is one call of the private API.
type route struct {
	pattern string // a net/http ServeMux pattern; also the metrics label
	auth    bool   // the bearer token is required
	serve   func(http.ResponseWriter, *http.Request) error
}

// routeTable is every call of the private API, in one place (README "The
// private API", docs/users.md, docs/verification.md, docs/handoff.md,
// docs/security.md). The handlers are in api_users.go, api_sessions.go,
// api_sites.go and verify_api.go.
func (a *api) routeTable() []route {
	return []route{
		{"PUT /v1/users/{email}", true, a.putUser},
		{"GET /v1/users/{email}", true, a.getUser},
		{"GET /v1/users", true, a.listUsers},
		{"POST /v1/users/{email}/logout-everywhere", true, a.logoutEverywhere},
		{"GET /v1/users/{email}/sessions", true, a.userSessions},
		{"POST /v1/users/{email}/rename", true, a.renameUser},
		{"POST /v1/users/{email}/verification", true, a.requestVerification},
		{"POST /v1/users/{email}/verify", true, a.verifyCode},
		{"POST /v1/users/{email}/reset", true, a.resetUser},

		{"POST /v1/sessions", true, a.createSession},
		{"GET /v1/sessions", true, a.listSessions},
		{"GET /v1/sessions/{id}", true, a.checkSession},
		{"DELETE /v1/sessions/{id}", true, a.endSession},
		{"POST /v1/sessions/{id}/revoke", true, a.revokeSession},

		{"GET /v1/sites", true, a.listSites},
		{"POST /v1/sites/{name}/revoke", true, a.revokeSite},
		{"POST /v1/sites/{name}/unrevoke", true, a.unrevokeSite},

		{"POST /v1/tickets/redeem", true, a.redeemTicket},
		{"POST /v1/handoff", true, a.handoffStep},
		{"GET /v1/status", true, a.status},

		{"GET /healthz", false, health},
		{"GET /metrics", false, a.metricsHandler()},
	}
}

var healthBody = &struct {
	Status string `json:"status"`
}{"ok"}

// health is GET /healthz: the node answers.
func health(w http.ResponseWriter, _ *http.Request) error {
	return writeJSON(w, http.StatusOK, healthBody)
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
