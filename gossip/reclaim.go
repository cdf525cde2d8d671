package gossip

import (
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// A member restarted under its name at a new address (a site moved to
// another host or container) is refused by memberlist ("conflicting
// address") while the old address is alive or suspect in its view, and,
// without DeadNodeReclaimTime, until the dead entry is forgotten
// (GossipToTheDeadTime later): minutes under the wan profile, during which
// the eager pushes and anti-entropy of its peers go to the old address.
//
// Two things reclaim the name at once:
//
//   - DeadNodeReclaimTime is set (deadNodeReclaimTime): once the old address
//     is dead, the next alive message from the new one takes the name.
//   - When memberlist reports a conflict for a peer's name, this member asks
//     both addresses (memberlist's Ping, which only a member holding the
//     cluster key and answering to that name acknowledges). If the new one
//     answers and the old one does not, this member follows the name to the
//     new address at once: eager pushes, anti-entropy and the member list
//     use it, and a round is owed to it (resyncMoved). memberlist catches up
//     when it declares the old address dead: the member's next push/pull
//     (started then, see events.NotifyLeave) carries the new address, which
//     reclaims the name. If both answer, two live nodes claim one name: that
//     is logged as an error (at most once a minute per name) and nothing
//     moves.
//
// The restarted member itself sees the same conflict the other way round
// (its peers' state names its old address): it then holds a round with
// every live member (resyncAnnounce), whose push/pull carries its new
// address to each of them, so that none depends on memberlist's gossip of
// its one alive message to hear of it.
const deadNodeReclaimTime = time.Millisecond

// conflicts is memberlist's conflict delegate.
type conflicts Gossip

// conflict is one name claimed at two addresses.
type conflict struct {
	existing, other memberlist.Node
}

// NotifyConflict runs with memberlist's lock held: it copies and hands off.
func (c *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	g := (*Gossip)(c)
	cf := conflict{existing: copyOf(existing), other: copyOf(other)}
	select {
	case g.conflictCh <- cf:
	default: // a burst of alive messages: one check is enough
	}
}

func copyOf(n *memberlist.Node) memberlist.Node {
	c := *n
	c.Addr = append(net.IP(nil), n.Addr...)
	c.Meta = append([]byte(nil), n.Meta...)
	return c
}

// reclaimLoop checks the conflicts memberlist reports.
func (g *Gossip) reclaimLoop() {
	defer g.wg.Done()
	var (
		mu      sync.Mutex
		running = map[string]bool{} // one check per name at a time
	)
	for {
		select {
		case <-g.ctx.Done():
			return
		case cf := <-g.conflictCh:
			name := cf.existing.Name
			if name == g.cfg.Name {
				g.logOnce("moved:"+name, func() {
					g.log.Info("the cluster knew this node at another address; telling every member where it is now",
						"old", addrOf(&cf.other), "new", addrOf(&cf.existing))
				})
				g.announceMove()
				continue
			}
			mu.Lock()
			busy := running[name]
			running[name] = true
			mu.Unlock()
			if busy {
				continue
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				g.checkConflict(cf)
				mu.Lock()
				delete(running, name)
				mu.Unlock()
			}()
		}
	}
}

// checkConflict pings both addresses of a name and follows it to the new
// one if only that one answers.
func (g *Gossip) checkConflict(cf conflict) {
	name := cf.existing.Name
	oldAddr, newAddr := addrOf(&cf.existing), addrOf(&cf.other)
	if g.movedTo(name) == newAddr {
		return // already followed
	}
	newOK := false
	for try := 0; try < 3 && !newOK; try++ {
		newOK = g.ping(name, &cf.other) // a loaded member may miss one probe timeout
	}
	if !newOK {
		g.logOnce("claim:"+name, func() {
			g.log.Warn("an address claims a member's name but does not answer there", "peer", name, "addr", oldAddr, "claimed", newAddr)
		})
		return
	}
	if g.ping(name, &cf.existing) {
		g.logOnce("twice:"+name, func() {
			g.log.Error("two live nodes claim one name: give each node its own node.name", "peer", name, "addr", oldAddr, "other", newAddr)
		})
		return
	}
	g.follow(cf.other)
	g.log.Info("member came back at a new address; following it there", "peer", name, "old", oldAddr, "new", newAddr)
}

// announceMove holds a round with every live member: each push/pull
// carries this member's new address, which makes the peer see the conflict
// and follow it (memberlist sends its own alive message to only a few).
func (g *Gossip) announceMove() {
	g.nodesMu.RLock()
	var peers []memberlist.Node
	for _, n := range g.nodes {
		if n.Name != g.cfg.Name {
			peers = append(peers, n)
		}
	}
	g.nodesMu.RUnlock()
	for _, n := range peers {
		g.resyncNow(n.Name, addrOf(&n), resyncAnnounce)
	}
}

// ping asks the member named name at n's address; only a member holding
// the cluster key and answering to that name acknowledges.
func (g *Gossip) ping(name string, n *memberlist.Node) bool {
	if g.ctx.Err() != nil {
		return false
	}
	_, err := g.list.Ping(name, &net.UDPAddr{IP: n.Addr, Port: int(n.Port)})
	return err == nil
}

// follow makes n (a member back at a new address) the node this member uses
// for its name, until memberlist agrees.
func (g *Gossip) follow(n memberlist.Node) {
	g.nodesMu.Lock()
	g.nodes[n.Name] = n
	g.membersVer.Add(1)
	g.moved[n.Name] = addrOf(&n)
	g.nodesMu.Unlock()
	g.dropPeer(n.Name) // its eager-push sender restarts at the new address
	g.failedMu.Lock()
	delete(g.failed, n.Name)
	g.failedMu.Unlock()
	g.stats.reclaims.Add(1)
	g.membersChanged(true)
	g.resyncNow(n.Name, addrOf(&n), resyncMoved)
}

// movedTo returns the address this member follows name to, or "".
func (g *Gossip) movedTo(name string) string {
	g.nodesMu.RLock()
	defer g.nodesMu.RUnlock()
	return g.moved[name]
}

// logOnce runs log at most once a minute per key.
func (g *Gossip) logOnce(key string, log func()) {
	now := time.Now()
	g.logMu.Lock()
	last, ok := g.logged[key]
	if ok && now.Sub(last) < time.Minute {
		g.logMu.Unlock()
		return
	}
	if len(g.logged) > 1024 {
		clear(g.logged)
	}
	g.logged[key] = now
	g.logMu.Unlock()
	log()
}
