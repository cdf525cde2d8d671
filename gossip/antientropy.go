package gossip

import (
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// antiEntropyLoop answers each peer digest that push/pull brings: for every
// bucket that differs, it sends the peer this node's records of that bucket
// (the peer does the same with ours, so both end with the union).
func (g *Gossip) antiEntropyLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case m := <-g.aeCh:
			g.repair(m)
		case addr := <-g.resync:
			if err := g.SyncWith(addr); err != nil {
				g.log.Debug("resync with returning member", "peer", addr, "err", err)
			}
		}
	}
}

func (g *Gossip) repair(m message) {
	from, remote := m.from, m.digest
	g.stats.aeRounds.Add(1)
	g.stats.lastAE.Store(time.Now().UnixMilli())
	if from == g.cfg.Name {
		return
	}
	local := g.store.Digest()
	diff := local.Diff(remote)
	if len(diff) == 0 {
		return
	}
	node := g.member(from)
	if node == nil {
		// A member this node has not (re)admitted yet, typically one back
		// from a crash whose join is this very push/pull: reach it at the
		// address its digest gives.
		if node = nodeAt(from, m.addr); node == nil {
			return
		}
	}
	var encs [][]byte
	for _, b := range diff {
		recs, err := g.store.BucketRecords(b)
		if err != nil {
			g.log.Error("read bucket for repair", "bucket", b, "err", err)
			return
		}
		for _, r := range recs {
			encs = append(encs, encodeRecord(r))
		}
	}
	g.stats.bucketsRepaired.Add(uint64(len(diff)))
	for _, msg := range chunkRecords(kindRepair, encs) {
		if g.ctx.Err() != nil {
			return
		}
		if err := g.list.SendReliable(node, msg); err != nil {
			g.log.Debug("send repair", "peer", from, "err", err)
			return
		}
	}
	g.stats.recordsRepaired.Add(uint64(len(encs)))
	g.log.Debug("anti-entropy repair sent", "peer", from, "buckets", len(diff), "records", len(encs))
}

// nodeAt builds a node to send to from a name and a host:port.
func nodeAt(name, addr string) *memberlist.Node {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil
	}
	return &memberlist.Node{Name: name, Addr: net.IP(ap.Addr().AsSlice()), Port: ap.Port()}
}
