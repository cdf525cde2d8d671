package node

import (
	"net/http"
)

// route is one call of the private API.
type route struct {
	pattern string // a net/http ServeMux pattern; also the metrics label
	auth    bool   // the bearer token is required
	serve   func(http.ResponseWriter, *http.Request) error
	// audit is the action a successful call is recorded under in the
	// activity history (activity.go), with its token's name and the
	// path's subject; auditSelf: the handler records it (it knows more
	// than the path); "": not recorded (everyday traffic, and reads).
	audit string
}

// auditSelf marks a route whose handler records its own activity.
const auditSelf = "self"

// routeTable is every call of the private API, in one place (README "The
// private API", docs/users.md, docs/verification.md, docs/handoff.md,
// docs/security.md). The handlers are in api_users.go, api_sessions.go,
// api_handoff.go (hand-off steps and ticket redemption), api_sites.go,
// api_tokens.go, api_activity.go, api_keys.go, api_status.go (status and
// metrics), verify_api.go, backup.go and health.go.
func (a *api) routeTable() []route {
	return []route{
		{"PUT /v1/users/{email}", true, a.putUser, "user.update"},
		{"GET /v1/users/{email}", true, a.getUser, ""},
		{"GET /v1/users", true, a.listUsers, ""},
		{"POST /v1/users/{email}/logout-everywhere", true, a.logoutEverywhere, "user.logout_everywhere"},
		{"GET /v1/users/{email}/sessions", true, a.userSessions, ""},
		{"POST /v1/users/{email}/rename", true, a.renameUser, "user.rename"},
		{"POST /v1/users/{email}/verification", true, a.requestVerification, ""},
		{"POST /v1/users/{email}/verify", true, a.verifyCode, ""},
		{"POST /v1/users/{email}/reset", true, a.resetUser, "user.reset"},

		{"POST /v1/sessions", true, a.createSession, ""},
		{"GET /v1/sessions", true, a.listSessions, ""},
		{"GET /v1/sessions/{id}", true, a.checkSession, ""},
		{"DELETE /v1/sessions/{id}", true, a.endSession, ""},
		{"POST /v1/sessions/{id}/revoke", true, a.revokeSession, "session.revoke"},

		{"GET /v1/sites", true, a.listSites, ""},
		{"POST /v1/sites/{name}/revoke", true, a.revokeSite, "site.revoke"},
		{"POST /v1/sites/{name}/unrevoke", true, a.unrevokeSite, "site.unrevoke"},

		{"POST /v1/tickets/redeem", true, a.redeemTicket, ""},
		{"POST /v1/handoff", true, a.handoffStep, ""},
		{"GET /v1/status", true, a.status, ""},

		{"GET /v1/tokens", true, a.listTokens, ""},
		{"POST /v1/tokens", true, a.createToken, auditSelf},
		{"DELETE /v1/tokens/{name}", true, a.revokeToken, auditSelf},
		{"GET /v1/activity", true, a.listActivity, ""},
		{"GET /v1/keys", true, a.listKeys, auditSelf},
		{"POST /v1/keys", true, a.installKey, auditSelf},
		{"POST /v1/keys/{fingerprint}/use", true, a.useKey, auditSelf},
		{"DELETE /v1/keys/{fingerprint}", true, a.removeKey, auditSelf},
		{"GET /v1/backup", true, a.backup, "store.backup"},

		{"GET /healthz", false, a.healthz, ""},
		{"GET /readyz", false, a.readyz, ""},
		{"GET /metrics", false, a.metricsHandler(), ""},
	}
}
