// Package node is one running ussync node: its configuration, the wiring of
// its store (package session), its gossip member (package gossip) and its
// keyring (package crypto), its lifecycle, the service that performs the
// cluster's operations, and the two HTTP listeners that call it.
//
// # Shape
//
// New builds a Node from a validated Config (cluster.yaml, config*.go);
// Start opens everything and serves; Close leaves the cluster, drains the
// listeners and closes the store, and is idempotent. A Node is usable as a
// library and in tests without the CLI (package node/nodetest runs
// clusters of them).
//
// One service (service.go) performs every operation that changes a
// replicated record: log in, end a session, log a user out everywhere,
// update a user, mark one verified, move one to a new address, accept the
// records a hand-off ticket carries, bind this site to an address, revoke a
// site or take it back, reset a damaged user (service_sites.go). It builds
// each change with session's record changes (session/change.go) and
// applies it in one place (service.apply): merged into the store, then
// published to gossip, never the other way round. Two writes are the
// deliberate exceptions: Node.unrevokeSelf (node.go) applies and publishes
// this site's own un-revocation itself, because service.apply refuses
// every change on a revoked site; and service.acceptHandoff merges the
// records a ticket carries with Store.ApplyChecked (revocation checked
// before, in handoff.mayRedeem) and publishes nothing: they came from the
// cluster.
// Three faces translate HTTP to it, and none reaches another's type:
//
//   - the private API (api.go, routes.go, api_users.go, api_sessions.go,
//     api_handoff.go, api_sites.go, api_tokens.go, api_activity.go,
//     api_keys.go, api_status.go, verify_api.go, backup.go, health.go) for
//     the site's backend, bearer
//     token required (except /healthz, /readyz and /metrics), on loopback
//     or a Unix socket (apisocket.go); its Go client and wire types are
//     package client;
//   - the public endpoints (public.go, browser.go, browser_bind.go,
//     browser_hop.go, verify_page.go, step_page.go) that browsers reach
//     through the site: the hand-off's steps, whoami, logout, forward-auth,
//     verification links, the page of a refused step;
//   - the admin page (admin.go, admin_login.go, admin_limit.go,
//     admin_pages.go, admin_sites.go, admin_activity.go) on the private
//     listener.
//
// Both listeners hold a bounded number of connections and cut off slow
// requests; the private one answers only its own host names (listener.go).
// The node keeps its data dir private and checks its secret files
// (files.go), watches its members' clocks (clocks.go) and exports what
// carries labels on /metrics (collector.go).
//
// The browser hand-off (handoff.go, sites.go; browser.go, browser_bind.go,
// browser_hop.go: its steps, each bound to the browser that logged in;
// tickets.go, redeem.go; sitecheck.go: the sites whose check says they are
// down are skipped) and e-mail
// verification (verifier.go, mail.go) keep their own node-local state (the
// replay cache, each site's cookie aliases in aliases.go, pending codes)
// and go through the service for every replicated change. The public
// listener serves the hand-off's steps over HTTP, and POST /v1/handoff runs
// the same steps for a site that answers them itself.
//
// The operator's pieces: named API tokens and the activity each records
// (tokens.go, activity.go, api_tokens.go, api_activity.go); the keyring at run time, asked
// of every member through a gossip query and kept in the data dir
// (keys.go, keyring.go, api_keys.go); the site check advertised in gossip
// metadata (sitecheck.go); freshness, the Ussync-Node-State header and
// failing closed under sync.fail_closed_after (freshness.go), and a fresh
// store's refusal of older tickets (freshstore.go); liveness and readiness
// (health.go); reloading the live config keys on SIGHUP (reload.go);
// backup and restore (backup.go); the private API on a Unix socket
// (apisocket.go).
//
// Shared by the faces: the wire views of sessions and users (views.go,
// with service.view); strict JSON request bodies (decode.go); who sent a
// public request, behind the site's proxies (clientip.go); the policies a
// reload changes (policy.go); the one-time migration of an earlier
// version's node-local known-user marks (migrate_known.go); the status,
// built (status_build.go) and its health part (status_health.go); the
// Prometheus metrics (metrics.go, metrics_cluster.go). E-mail verification
// is verifier.go (codes, sending, Node.SendVerification) and
// verifier_link.go (the one-click link).
//
// # Errors
//
// Below the handlers, refusals are values (errors.go): sentinels such as
// ErrUserMoved or ErrInvalidCode, session's and crypto's, often inside a
// refusal that carries a message for people. The HTTP edge chooses a
// status and an API code for each in one table (answers, httperr.go);
// exported functions name the sentinels they return.
//
// # Guarantees
//
// A change the private API acknowledges is in the store's write-ahead log
// and has been handed to gossip. A node whose own site is revoked changes
// no replicated record and answers only its status and the sites. The
// session check (GET /v1/sessions/{id}, on every page view of every site)
// reads the store twice (and an alias map in memory) and writes no log
// line. No answer, log line or metric holds a token, a secret, a
// verification code or a password; secrets are compared in constant time.
// Handlers never panic the server: a panic is logged and answered 500.
//
// docs/architecture.md draws the package map and follows one login from
// the API through the store and gossip to another site's check.
package node
