package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"

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
		if len(b) > 1 && (kind(b[1]) == kindRepair || kind(b[1]) == kindDiffer) {
			// One of this node's rounds cannot complete now: retry them
			// rather than wait for their timeout.
			g := (*Gossip)(d)
			for _, r := range d.rounds.lost() {
				g.failRound(r, "a repair was dropped: the inbox was full")
			}
		}
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState is this node's push/pull state: its name and digest, never the
// records themselves.
func (d *delegate) LocalState(join bool) []byte {
	dg := d.store.Digest()
	proto, flags := uint8(d.proto.Load()), uint8(0)
	if proto >= 3 {
		flags = (*Gossip)(d).digestFlags()
	}
	return encodeDigestProto(d.cfg.Name, d.addr, &dg, proto, flags)
}

// MergeRemoteState hands a peer's digest to anti-entropy. A newer digest
// from the same peer replaces one not compared yet.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	m, err := decodeMessage(buf)
	if err != nil || m.kind != kindDigest {
		d.stats.bad.Add(1)
		return
	}
	if !d.aeq.add(m) {
		d.stats.dropped.Add(1)
		// Owe the peer a round rather than wait for the next push/pull.
		(*Gossip)(d).resyncLater(m.from, m.addr, resyncRetry)
	}
}

// events tracks members that fail, so the reconnect loop can retry them,
// and stops eager-push senders for members that are gone.
type events Gossip

// copyNode records a member's node; memberlist calls the event delegate
// with its lock held, so n is read safely here. While this member follows
// n's name to another address (reclaim.go), memberlist's older view of it
// is not recorded; once memberlist names that address too, it agrees.
func (g *Gossip) copyNode(n *memberlist.Node) {
	c := copyOf(n)
	g.nodesMu.Lock()
	defer g.nodesMu.Unlock()
	if to, ok := g.moved[n.Name]; ok {
		if addrOf(&c) != to {
			return
		}
		delete(g.moved, n.Name)
	}
	g.nodes[n.Name] = c
	g.membersVer.Add(1)
	var md meta
	_ = json.Unmarshal(c.Meta, &md) // unreadable metadata: no acknowledgements, no site report
	g.acking[n.Name] = md.Acks
	g.noteBeatLocked(n.Name, md)
}

func (e *events) NotifyJoin(n *memberlist.Node) {
	g := (*Gossip)(e)
	g.copyNode(n)
	g.failedMu.Lock()
	_, wasFailed := g.failed[n.Name]
	delete(g.failed, n.Name)
	_, remembered := g.remembered[n.Name]
	delete(g.remembered, n.Name)
	delete(g.rememberedSeen, n.Name)
	g.failedMu.Unlock()
	g.membersChanged(true)
	if n.Name == g.cfg.Name {
		return
	}
	if wasFailed || remembered {
		// Back from a crash or a partition: hold a round with it now, and
		// until one completes, rather than wait for the next push/pull.
		g.log.Debug("member back from failure: holding a round with it", "peer", n.Name, "addr", addrOf(n), "remembered", remembered)
		g.resyncNow(n.Name, addrOf(n), resyncReturned)
		return
	}
	g.log.Debug("member joined", "peer", n.Name, "addr", addrOf(n))
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	g := (*Gossip)(e)
	g.nodesMu.Lock()
	if to, ok := g.moved[n.Name]; ok && to != addrOf(n) {
		// memberlist gave up the old address of a member this node already
		// follows elsewhere: a push/pull with the new one now lets
		// memberlist take it (DeadNodeReclaimTime).
		g.nodesMu.Unlock()
		g.resyncNow(n.Name, to, resyncMoved)
		return
	}
	delete(g.nodes, n.Name)
	g.membersVer.Add(1)
	delete(g.moved, n.Name)
	delete(g.beats, n.Name)
	delete(g.acking, n.Name)
	g.nodesMu.Unlock()
	g.dropPeer(n.Name)
	g.clocks.forget(n.Name)
	g.resyncs.done(n.Name) // a dead peer owes nothing; the reconnect loop takes over
	g.failedMu.Lock()
	var md meta
	_ = json.Unmarshal(n.Meta, &md)
	now := g.store.Now()
	g.log.Debug("member gone", "peer", n.Name, "addr", addrOf(n), "left", md.Leaving)
	if md.Leaving {
		// It said goodbye: remember it as left, but do not chase it;
		// forget it after TombstoneTimeout (dueFailed).
		g.failed[n.Name] = &failedMember{member: memberOf(n, "left"), left: true, since: now}
	} else {
		g.failed[n.Name] = &failedMember{member: memberOf(n, "dead"), since: now, next: now.Add(jitter(g.cfg.ReconnectInterval)), backoff: g.cfg.ReconnectInterval}
	}
	g.failedMu.Unlock()
	g.membersChanged(false)
}

func (e *events) NotifyUpdate(n *memberlist.Node) { (*Gossip)(e).copyNode(n) }

// aliveFilter is memberlist's AliveDelegate: it refuses every alive message
// about a member whose site an administrator revoked (session.Site), so that
// a revoked site cannot join, come back after it failed or left, or refute
// a suspicion of itself while it stays revoked. memberlist cannot remove a
// member that still answers its probes: a revoked node already alive stays
// listed until it fails or leaves, and its own node refuses every change
// meanwhile (node's service). Once the revocation is taken back, its alive
// messages are accepted again.
type aliveFilter Gossip

// errSiteRevoked is why an alive message is ignored (memberlist logs it).
var errSiteRevoked = errors.New("its site is revoked (ussync sites revoke)")

func (a *aliveFilter) NotifyAlive(n *memberlist.Node) error {
	if n != nil && n.Name != a.cfg.Name && a.log.Enabled(context.Background(), slog.LevelDebug) {
		// Every alive message, heard by gossip or in a push/pull, before
		// memberlist compares incarnations: with "member joined" (or not)
		// after it, the story of a member that came back.
		a.log.Debug("alive message", "peer", n.Name, "addr", addrOf(n))
	}
	if n == nil || n.Name == a.cfg.Name || !a.store.Site(n.Name).IsRevoked() {
		return nil
	}
	a.stats.revokedAlive.Add(1)
	return errSiteRevoked
}
