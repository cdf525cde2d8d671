package node

import (
	"time"

	"github.com/ussync/ussync/client"
)

// gossipHealthStatus is gossip's Health as the status shows it.
func (n *Node) gossipHealthStatus() *client.GossipHealth {
	h := n.gossip.Health()
	out := &client.GossipHealth{
		Status:       h.Status(),
		Reason:       h.Reason(),
		CatchingUp:   h.CatchingUp,
		CaughtUpWith: h.CaughtUpWith,
		Isolated:     h.Isolated,
		KeyMismatch:  h.KeyMismatch,
	}
	out.CaughtUpAt = utcOrNil(h.CaughtUpAt)
	out.IsolatedSince = utcOrNil(h.IsolatedSince)
	for _, f := range h.Foreign {
		out.Foreign = append(out.Foreign, client.ForeignSource{Addr: f.Addr, Packets: f.Packets, Streams: f.Streams,
			Answered: f.Answered, Member: f.Member, Last: f.Last.UTC()})
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
