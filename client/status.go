package client

import "time"

// Status is the answer of GET /v1/status: the node's view of the cluster.
// It never holds a secret: keys appear only as fingerprints.
type Status struct {
	Node        string         `json:"node"`
	SiteURL     string         `json:"site_url"`
	Version     string         `json:"version"`
	Profile     string         `json:"profile"`
	Members     []MemberStatus `json:"members"`
	Counts      Counts         `json:"counts"`
	Keyring     []KeyStatus    `json:"keyring"`
	AntiEntropy AntiEntropy    `json:"anti_entropy"`
	Sync        SyncStats      `json:"sync"`
	// Tokens are the node's API tokens (never the tokens themselves).
	Tokens []TokenInfo `json:"tokens,omitempty"`
	// Activity are the node's latest changes, newest first, with the name
	// of the token that made each (GET /v1/activity has more).
	Activity []ActivityEntry `json:"activity,omitempty"`
	// Health is the node's own view of its freshness and reach (catching
	// up, isolated, key mismatch, failing closed), of its site and of its
	// disk.
	Health *GossipHealth `json:"health,omitempty"`
	// NotReady lists why the node is not ready (GET /readyz answers 503);
	// empty when it is.
	NotReady []string `json:"not_ready,omitempty"`
	// Reload is the last configuration reload (SIGHUP); absent before the
	// first.
	Reload *ReloadStatus `json:"reload,omitempty"`
	// MaxOffset is the cluster's max clock offset
	// (cluster.max_clock_offset), in seconds.
	MaxOffset float64 `json:"max_offset_seconds"`
	// RecordsRefused counts the records this node refused to merge since
	// it started, by reason: invalid, clock_ahead, lifetime.
	RecordsRefused map[string]uint64 `json:"records_refused"`
	// Warnings are what an operator should act on: a member's clock beyond
	// the max offset, this node's site revoked. Empty when all is well.
	Warnings []string `json:"warnings,omitempty"`
}

// ReloadStatus is the outcome of a node's last configuration reload.
type ReloadStatus struct {
	At time.Time `json:"at"`
	// Applied are the keys whose new value took effect ("log.level",
	// "gossip.secret_file (content)").
	Applied []string `json:"applied"`
	// Restart are the keys whose value differs from the one the node runs
	// with, which take effect at its next start.
	Restart []string `json:"restart"`
	// Error, when set, says why the reload was refused: the node runs on
	// unchanged.
	Error string `json:"error,omitempty"`
}

// Values of MemberStatus.State: memberlist's (and Serf's) member states.
const (
	// MemberAlive: the member answers the failure detector's probes.
	MemberAlive = "alive"
	// MemberSuspect: a probe went unanswered; the member has the
	// suspicion timeout to refute it before it is declared dead.
	MemberSuspect = "suspect"
	// MemberDead: declared failed; the node keeps trying to reconnect.
	MemberDead = "dead"
	// MemberLeft: the member left the cluster on purpose. It is listed
	// for 24 hours after it left, then forgotten (Serf's tombstone).
	MemberLeft = "left"
)

// MemberStatus is one cluster member as this node sees it.
type MemberStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"` // MemberAlive, MemberSuspect, MemberDead, MemberLeft
	SiteURL string `json:"site_url"`
	Version string `json:"version"`
	// SiteState is what the member last reported of its site: "up",
	// "down", "stale" (its reports stopped: its node may have crashed), or
	// "" (it reports nothing: checks off, or an older version).
	SiteState string `json:"site_state,omitempty"`
	// Handoff: this node hands browsers to the member (alive, speaking
	// this node's hand-off, and its site up or not reported).
	Handoff bool `json:"handoff"`
	// HandoffSkipped says why a live member is not handed browsers:
	// "site_down", "site_stale", or "older_version" (its node speaks an
	// older hand-off, or advertises none: a rolling upgrade under way).
	// Empty when Handoff is true, for this node, and for members that are
	// not alive. The values are ussync_handoff_sites_skipped_total's.
	HandoffSkipped string `json:"handoff_skipped,omitempty"`
	// ClockSkew is the member's wall clock minus this node's, in seconds
	// (positive: the member is ahead), estimated from the gossip probes
	// within half their round trip. Absent for this node, and until a probe
	// has measured it.
	ClockSkew *float64 `json:"clock_skew_seconds,omitempty"`
	// ClockSkewed: the skew is beyond the max offset (see Status.Warnings).
	ClockSkewed bool `json:"clock_skewed,omitempty"`
	// RecordsRefused counts the records from this member this node refused.
	RecordsRefused uint64 `json:"records_refused,omitempty"`
	// Revoked: an administrator revoked this site (ussync sites revoke).
	Revoked bool `json:"revoked,omitempty"`
}

// Counts are the store's record counts.
type Counts struct {
	Users          int `json:"users"`
	Sessions       int `json:"sessions"`
	ActiveSessions int `json:"active_sessions"`
}

// KeyStatus names one keyring secret by its fingerprint.
type KeyStatus struct {
	Fingerprint string `json:"fingerprint"`
	Primary     bool   `json:"primary"`
}

// AntiEntropy are the push/pull figures since start.
type AntiEntropy struct {
	Rounds          uint64 `json:"rounds"`
	BucketsRepaired uint64 `json:"buckets_repaired"`
	RecordsSent     uint64 `json:"records_sent"`
	LastRound       string `json:"last_round,omitempty"` // RFC 3339, empty before the first
}

// SyncStats are the dissemination figures since start.
type SyncStats struct {
	DeltasSent     uint64 `json:"deltas_sent"`
	DeltasReceived uint64 `json:"deltas_received"`
	DeltasApplied  uint64 `json:"deltas_applied"`
	Rebroadcasts   uint64 `json:"rebroadcasts"`
	BadMessages    uint64 `json:"bad_messages"`
}
