package client

import "time"

// HeaderNodeState is the header every answer of the session check (GET
// /v1/sessions/{id}) carries: how fresh the answering node's data is, one
// of the NodeState* values. A site may fail closed on anything but
// NodeStateOK (docs/operations.md, "Partial failures").
const HeaderNodeState = "Ussync-Node-State"

// Values of HeaderNodeState and NodeState.State. Their spelling is the
// wire contract of the session check, kept as it is: catching-up with a
// hyphen. GossipHealth.Status (in status and on GET /healthz) is another
// field with its own values, spelled catching_up with an underscore like
// its JSON fields; a site reading both must not compare one with the other.
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

// GossipHealth is a node's own view of its freshness and reach (the
// gossip package's Health), of its site and of its disk, in its status
// (Status.Health) and, in short, on GET /healthz (docs/operations.md,
// "Partial failures"). Times are RFC 3339 in UTC.
type GossipHealth struct {
	// Status is the most severe of "storage_full", "key_mismatch",
	// "isolated", "site_down", "catching_up", or "ok"; Reason says why in
	// one line when not ok.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// CatchingUp: the node may lack changes made while it was away; set
	// from start (when it has peers to ask) until a full anti-entropy round
	// with a live member completes. CaughtUpAt and CaughtUpWith are the
	// last catch-up's end and the member it completed with.
	CatchingUp   bool       `json:"catching_up"`
	CatchUpSince *time.Time `json:"catch_up_since,omitempty"`
	CaughtUpAt   *time.Time `json:"caught_up_at,omitempty"`
	CaughtUpWith string     `json:"caught_up_with,omitempty"`
	// Isolated: no other member is alive though the node has peers to
	// reach, since IsolatedSince.
	Isolated      bool       `json:"isolated"`
	IsolatedSince *time.Time `json:"isolated_since,omitempty"`
	// KeyMismatch: a peer answered, or a member's address sent gossip, in
	// a cluster key this node does not hold, within the last five minutes
	// (a missed key rotation, here or there). Foreign lists the sources.
	KeyMismatch bool            `json:"key_mismatch"`
	Foreign     []ForeignSource `json:"foreign,omitempty"`
	// Resyncing are the anti-entropy rounds the node owes other members
	// and keeps retrying.
	Resyncing []Resync `json:"resyncing,omitempty"`
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

// ForeignPeers are the addresses of Foreign that are members or join
// addresses (a missed key rotation), not strangers' noise.
func (h *GossipHealth) ForeignPeers() []string {
	var out []string
	for _, f := range h.Foreign {
		if f.Member || f.Answered {
			out = append(out, f.Addr)
		}
	}
	return out
}

// ForeignSource is an address undecryptable gossip came from lately.
type ForeignSource struct {
	Addr    string `json:"addr"`
	Packets uint64 `json:"packets"`
	Streams uint64 `json:"streams"`
	// Answered: the node dialled Addr and the answer was in another key.
	Answered bool `json:"answered"`
	// Member: Addr is a member's or a join address, not a stranger's.
	Member bool      `json:"member"`
	Last   time.Time `json:"last"`
}

// Resync is an anti-entropy round owed to a member.
type Resync struct {
	Member   string    `json:"member"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	Attempts int       `json:"attempts"`
}
