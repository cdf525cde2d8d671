package gossip

import (
	"encoding/json"
	"net"
	"strconv"

	"github.com/hashicorp/memberlist"
)

// delegate is memberlist's view of a Gossip. Its methods run on memberlist's
// goroutines: they never block and never keep the buffers they are handed.
type delegate Gossip

func (d *delegate) NodeMeta(limit int) []byte {
	md := *d.meta.Load()
	if len(md) > limit {
		return nil
	}
	return md
}

// NotifyMsg receives a user message (eager push, broadcast or repair).
func (d *delegate) NotifyMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	if len(b) > MaxMessageBytes {
		d.stats.bad.Add(1)
		return
	}
	cp := make([]byte, len(b))
	copy(cp, b)
	select {
	case d.inbox <- cp:
	default:
		d.stats.dropped.Add(1)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState is this node's push/pull state: its name and digest, never the
// records themselves.
func (d *delegate) LocalState(join bool) []byte {
	dg := d.store.Digest()
	return encodeDigest(d.cfg.Name, d.addr, &dg)
}

// MergeRemoteState hands a peer's digest to the anti-entropy loop.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	m, err := decodeMessage(buf)
	if err != nil || m.kind != kindDigest {
		d.stats.bad.Add(1)
		return
	}
	select {
	case d.aeCh <- m:
	default:
		d.stats.dropped.Add(1) // a round is already waiting; the next one will do
	}
}

// events tracks members that fail, so the reconnect loop can retry them,
// and stops eager-push senders for members that are gone.
type events Gossip

// copyNode records a member's node; memberlist calls the event delegate
// with its lock held, so n is read safely here.
func (g *Gossip) copyNode(n *memberlist.Node) {
	c := *n
	c.Addr = append([]byte(nil), n.Addr...)
	c.Meta = append([]byte(nil), n.Meta...)
	g.nodesMu.Lock()
	g.nodes[n.Name] = c
	g.nodesMu.Unlock()
}

func (e *events) NotifyJoin(n *memberlist.Node) {
	g := (*Gossip)(e)
	g.copyNode(n)
	g.failedMu.Lock()
	_, wasFailed := g.failed[n.Name]
	delete(g.failed, n.Name)
	g.failedMu.Unlock()
	if wasFailed && n.Name != g.cfg.Name {
		// Back from a crash or a partition: compare digests now rather
		// than at the next push/pull period.
		select {
		case g.resync <- net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))):
		default:
		}
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	g := (*Gossip)(e)
	g.nodesMu.Lock()
	delete(g.nodes, n.Name)
	g.nodesMu.Unlock()
	g.dropPeer(n.Name)
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	var md meta
	_ = json.Unmarshal(n.Meta, &md)
	if md.Leaving {
		// It said goodbye: remember it as left, but do not chase it.
		g.failed[n.Name] = &failedMember{member: memberOf(n, "left"), left: true}
		return
	}
	g.failed[n.Name] = &failedMember{member: memberOf(n, "dead"), since: g.store.Now(), next: g.store.Now().Add(g.cfg.ReconnectInterval), backoff: g.cfg.ReconnectInterval}
}

func (e *events) NotifyUpdate(n *memberlist.Node) { (*Gossip)(e).copyNode(n) }
