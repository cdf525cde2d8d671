package client

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
	// MaxOffset is the cluster's max clock offset (session.max_offset), in
	// seconds.
	MaxOffset float64 `json:"max_offset_seconds"`
	// RecordsRefused counts the records this node refused to merge since
	// it started, by reason: invalid, clock_ahead, lifetime.
	RecordsRefused map[string]uint64 `json:"records_refused"`
	// Warnings are what an operator should act on: a member's clock beyond
	// the max offset, this node's site revoked. Empty when all is well.
	Warnings []string `json:"warnings,omitempty"`
}

// MemberStatus is one cluster member as this node sees it.
type MemberStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	State   string `json:"state"` // alive, suspect, dead, left
	SiteURL string `json:"site_url"`
	Version string `json:"version"`
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
