package node

import (
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
)

// gossipHealthStatus is the node's health as the status shows it
// (freshness.health: gossip's, the site's, the disk's).
func (n *Node) gossipHealthStatus() *client.GossipHealth {
	h := n.fresh.health()
	return &h
}

// gossipHealthOf is gossip's Health on the wire. A member's address that
// sent noise memberlist would not have sent (not Plausible) is no peer on
// another key: its source is listed, not as a member.
func gossipHealthOf(h gossip.Health) client.GossipHealth {
	out := client.GossipHealth{
		Status:       h.Status(),
		Reason:       h.Reason(),
		CatchingUp:   h.CatchingUp,
		CatchUpSince: utcOrNil(h.CatchUpSince),
		CaughtUpWith: h.CaughtUpWith,
		Isolated:     h.Isolated,
		KeyMismatch:  h.KeyMismatch,
	}
	out.CaughtUpAt = utcOrNil(h.CaughtUpAt)
	out.IsolatedSince = utcOrNil(h.IsolatedSince)
	for _, f := range h.Foreign {
		out.Foreign = append(out.Foreign, client.ForeignSource{Addr: f.Addr, Packets: f.Packets, Streams: f.Streams,
			Answered: f.Answered, Member: f.Member && (f.Plausible || f.Answered), Last: f.Last.UTC()})
	}
	for _, r := range h.Resyncing {
		out.Resyncing = append(out.Resyncing, client.Resync{Member: r.Member, Reason: r.Reason, Since: r.Since.UTC(), Attempts: r.Attempts})
	}
	return out
}

func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
