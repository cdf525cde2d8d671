package client

import "time"

// HeaderNodeState is the header every answer of the session check (GET
// /v1/sessions/{id}) carries: how fresh the answering node's data is, one
// of the NodeState* values. A site may fail closed on anything but
// NodeStateOK (docs/operations.md, "Partial failures").
const HeaderNodeState = "Ussync-Node-State"

// Values of HeaderNodeState and NodeState.State.
const (
	// NodeStateOK: the node holds what the cluster told it, up to gossip's
	// delay.
	NodeStateOK = "ok"
	// NodeStateCatchingUp: the node started or came back after being cut off
	// from every member, and has not yet completed an anti-entropy round
	// with a live member: a session logged out elsewhere meanwhile may
	// still look active here.
	NodeStateCatchingUp = "catching-up"
	// NodeStateIsolated: the node sees no other member alive though it has
	// some to reach (a partition, its network, or another cluster key): it
	// hears no logout from the other sites.
	NodeStateIsolated = "isolated"
)

// NodeState is SessionCheck.Node: set while the answering node may answer
// from stale data (it is catching up or isolated), absent otherwise.
type NodeState struct {
	// State is NodeStateCatchingUp or NodeStateIsolated (isolated wins when
	// both hold).
	State      string `json:"state"`
	CatchingUp bool   `json:"catching_up"`
	Isolated   bool   `json:"isolated"`
	// Since is when the node's data stopped being known fresh: the start of
	// the isolation or of the catch-up, the earliest when one led to the
	// other.
	Since *time.Time `json:"since,omitempty"`
}

// Health statuses (NodeHealth.Status): the word of GET /healthz.
const (
	HealthOK       = "ok"       // 200
	HealthDegraded = "degraded" // 429: isolated, a peer uses another cluster key, the site does not answer, or the disk is full
)

// NodeHealth is the answer of GET /healthz and Status.Health: what the node
// knows of its own freshness and reach (docs/operations.md, "Partial
// failures"). Times are RFC 3339 in UTC.
type NodeHealth struct {
	// Status is HealthOK or HealthDegraded. GET /healthz answers 200 with
	// "ok" and 429 Too Many Requests with "degraded" (the code Consul's HTTP
	// checks read as a warning): degraded is isolated, key mismatch or
	// storage full.
	Status string `json:"status"`
	// State is one word, the most severe first: "storage_full",
	// "key_mismatch", "isolated", "site_down", "catching_up" or "ok".
	State string `json:"state"`
	// Reason says in one line what State names, for people; "" when ok.
	Reason string `json:"reason,omitempty"`

	// CatchingUp: no full anti-entropy round with a live member since the
	// node started or came back (NodeStateCatchingUp).
	CatchingUp   bool       `json:"catching_up"`
	CatchUpSince *time.Time `json:"catch_up_since,omitempty"`
	// CaughtUpAt and CaughtUpWith are when the last catch-up ended, and the
	// member whose round ended it.
	CaughtUpAt   *time.Time `json:"caught_up_at,omitempty"`
	CaughtUpWith string     `json:"caught_up_with,omitempty"`
	// Isolated: no other member alive though the node has some to reach.
	Isolated      bool       `json:"isolated"`
	IsolatedSince *time.Time `json:"isolated_since,omitempty"`
	// KeyMismatch: within the last five minutes a peer answered, or a
	// member's address sent gossip, in a cluster key this node does not
	// hold. ForeignPeers are those addresses, most recent first.
	KeyMismatch  bool     `json:"key_mismatch"`
	ForeignPeers []string `json:"foreign_peers,omitempty"`
	// FailClosed: the node has been catching up or isolated for longer than
	// sync.fail_closed_after, so its session checks answer 503
	// node_isolated instead of 200.
	FailClosed bool `json:"fail_closed"`
	// SiteDown: this node's site did not answer its last health check
	// (site.health_url): the other sites leave it out of their hand-offs.
	// SiteCheck says what the check got.
	SiteDown  bool   `json:"site_down"`
	SiteCheck string `json:"site_check,omitempty"`
	// StorageFull: the data dir's filesystem has less free space than the
	// store keeps in reserve (ReserveBytes): every write is refused (503
	// storage_full), reads go on. FreeBytes is what it has.
	StorageFull  bool   `json:"storage_full"`
	FreeBytes    uint64 `json:"free_bytes,omitempty"`
	ReserveBytes uint64 `json:"reserve_bytes,omitempty"`
	// FreshStore: the node started on an empty data dir. Until
	// TicketsRefusedUntil it refuses the hand-off tickets that may predate
	// it (its replay cache was lost with the old data).
	FreshStore          bool       `json:"fresh_store,omitempty"`
	TicketsRefusedUntil *time.Time `json:"tickets_refused_until,omitempty"`
}
