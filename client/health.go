package client

import "time"

// GossipHealth is a node's own view of its freshness and reach (the
// gossip package's Health), in its status.
type GossipHealth struct {
	// Status is the most severe of "key_mismatch", "isolated",
	// "catching_up", or "ok"; Reason says why in one line when not ok.
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// CatchingUp: the node may lack changes made while it was away; set
	// from start (when it has peers to ask) until a full anti-entropy round
	// with a live member completes. CaughtUpAt and CaughtUpWith are the
	// last catch-up's end and the member it completed with.
	CatchingUp   bool       `json:"catching_up"`
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
