package gossip

import (
	"hash/fnv"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// antiEntropyLoop runs anti-entropy in two steps. A peer's digest (from
// push/pull) names the buckets that differ; this node answers with its
// (key hash, record hash) pairs for those buckets. A peer's pairs name what
// it lacks or holds in another state; this node sends exactly those records.
// The peer does the same with this node's digest, so both end with the
// union, and an in-sync bucket costs nothing, a busy one a few bytes a record.
func (g *Gossip) antiEntropyLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case m := <-g.aeCh:
			if m.kind == kindHashes {
				g.sendMissing(m)
			} else {
				g.sendHashes(m)
			}
		case addr := <-g.resync:
			if err := g.SyncWith(addr); err != nil {
				g.log.Debug("resync with returning member", "peer", addr, "err", err)
			}
		}
	}
}

// peerNode finds the member a message came from: a live member, or, for one
// this node has not (re)admitted yet (typically back from a crash, whose
// join is this very push/pull), the address the message gives.
func (g *Gossip) peerNode(m message) *memberlist.Node {
	if node := g.member(m.from); node != nil {
		return node
	}
	return nodeAt(m.from, m.addr)
}

// sendHashes answers a peer's digest with this node's hashes of the buckets
// that differ.
func (g *Gossip) sendHashes(m message) {
	g.stats.aeRounds.Add(1)
	g.stats.lastAE.Store(time.Now().UnixMilli())
	if m.from == g.cfg.Name {
		return
	}
	local := g.store.Digest()
	diff := local.Diff(m.digest)
	node := g.peerNode(m)
	if len(diff) == 0 || node == nil {
		return
	}
	groups := make([]bucketHashes, 0, len(diff))
	for _, b := range diff {
		entries, err := g.store.BucketEntries(b)
		if err != nil {
			g.log.Error("read bucket for anti-entropy", "bucket", b, "err", err)
			return
		}
		hb := bucketHashes{bucket: b, hashes: make(map[uint64]uint64, len(entries))}
		for _, e := range entries {
			hb.hashes[keyHash(e.Key)] = e.Hash
		}
		groups = append(groups, hb)
	}
	g.stats.bucketsRepaired.Add(uint64(len(diff)))
	g.send(node, encodeHashes(g.cfg.Name, g.addr, groups))
}

// sendMissing answers a peer's hashes with the records it lacks or holds in
// another state.
func (g *Gossip) sendMissing(m message) {
	node := g.peerNode(m)
	if node == nil || m.from == g.cfg.Name {
		return
	}
	var encs [][]byte
	for _, hb := range m.buckets {
		entries, err := g.store.BucketEntries(hb.bucket)
		if err != nil {
			g.log.Error("read bucket for repair", "bucket", hb.bucket, "err", err)
			return
		}
		for _, e := range entries {
			if h, ok := hb.hashes[keyHash(e.Key)]; !ok || h != e.Hash {
				encs = append(encs, e.Enc)
			}
		}
	}
	if len(encs) == 0 {
		return
	}
	if g.send(node, chunkRecords(kindRepair, encs)) {
		g.stats.recordsRepaired.Add(uint64(len(encs)))
		g.log.Debug("anti-entropy repair sent", "peer", m.from, "records", len(encs))
	}
}

// send delivers messages to node over TCP, stopping at the first failure.
func (g *Gossip) send(node *memberlist.Node, msgs [][]byte) bool {
	for _, msg := range msgs {
		if g.ctx.Err() != nil {
			return false
		}
		if err := g.list.SendReliable(node, msg); err != nil {
			g.log.Debug("anti-entropy send", "peer", node.Name, "err", err)
			return false
		}
	}
	return true
}

// keyHash names a record key in 64 bits on the wire.
func keyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64()
}

// nodeAt builds a node to send to from a name and a host:port.
func nodeAt(name, addr string) *memberlist.Node {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil
	}
	return &memberlist.Node{Name: name, Addr: net.IP(ap.Addr().AsSlice()), Port: ap.Port()}
}
