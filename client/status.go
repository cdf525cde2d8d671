package client

// Status is the answer of GET /v1/status: the node's view of the cluster.
// It never holds a secret: keys appear only as fingerprints.
type Status struct {
	Node    string `json:"node"`
	SiteURL string `json:"site_url"`
	Version string `json:"version"`
	Profile string `json:"profile"`
	// Health is the node's freshness and reach: catching up, isolated, a
	// key mismatch, failing closed (GET /healthz answers the same).
	Health      NodeHealth     `json:"health"`
	Members     []MemberStatus `json:"members"`
	Counts      Counts         `json:"counts"`
	Keyring     []KeyStatus    `json:"keyring"`
	AntiEntropy AntiEntropy    `json:"anti_entropy"`
	Sync        SyncStats      `json:"sync"`
}

// MemberStatus is one cluster member as this node sees it.
type MemberStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"` // alive, suspect, dead, left
	SiteURL string `json:"site_url"`
	Version string `json:"version"`
	// SiteState is what the member last reported of its site: "up",
	// "down", "stale" (its reports stopped: its node may have crashed), or
	// "" (it reports nothing: checks off, or an older version).
	SiteState string `json:"site_state,omitempty"`
	// Handoff: this node hands browsers to the member (alive, and its
	// site up or not reported).
	Handoff bool `json:"handoff"`
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
