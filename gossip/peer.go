package gossip

import (
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// peer is the eager-push sender for one member. Publish appends to pending
// and wakes it; the sender takes everything pending at once, so a quiet
// cluster sends each change alone and a busy one batches by itself.
type peer struct {
	g       *Gossip
	name    string
	mu      sync.Mutex
	pending [][]byte
	wake    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// maxPending bounds one peer's backlog (records); past it the oldest are
// dropped and left to gossip and anti-entropy.
const maxPending = 100_000

func (g *Gossip) peer(name string) *peer {
	g.peersMu.Lock()
	defer g.peersMu.Unlock()
	p := g.peers[name]
	if p == nil {
		p = &peer{g: g, name: name, wake: make(chan struct{}, 1), done: make(chan struct{})}
		g.peers[name] = p
		g.wg.Add(1)
		go p.run()
	}
	return p
}

func (g *Gossip) dropPeer(name string) {
	g.peersMu.Lock()
	p := g.peers[name]
	delete(g.peers, name)
	g.peersMu.Unlock()
	if p != nil {
		p.stop()
	}
}

func (p *peer) stop() { p.once.Do(func() { close(p.done) }) }

func (p *peer) push(encs [][]byte) {
	p.mu.Lock()
	p.pending = append(p.pending, encs...)
	if over := len(p.pending) - maxPending; over > 0 {
		p.pending = p.pending[over:]
		p.g.stats.dropped.Add(uint64(over))
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peer) run() {
	defer p.g.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.g.ctx.Done():
			return
		case <-p.wake:
		}
		p.mu.Lock()
		batch := p.pending
		p.pending = nil
		p.mu.Unlock()
		if len(batch) > 0 && p.send(batch) {
			// Busy: let the next batch grow for a moment. Each stream is a
			// TCP connection (memberlist dials one per message), which costs
			// both sides far more than the records in it.
			select {
			case <-p.done:
				return
			case <-p.g.ctx.Done():
				return
			case <-time.After(busyLinger):
			}
		}
	}
}

// busyLinger is how long a peer's sender waits after a stream before it
// takes the next batch. A quiet cluster never waits: its changes travel
// alone, in packets.
const busyLinger = 2 * time.Millisecond

// maxPushPackets is the most packets one eager push is split into; a
// larger batch (a node under load) goes over TCP in chunks.
const maxPushPackets = 4

// send sends batch to the peer and reports whether it took a stream. A
// batch that fits in a few packets goes as packets (PacketCopies of each),
// whatever its size: a stream costs a TCP handshake, a round trip that a
// login across the internet cannot afford. A larger one goes over TCP.
func (p *peer) send(batch [][]byte) (streamed bool) {
	node := p.g.member(p.name)
	if node == nil {
		return false // gone: gossip and anti-entropy take over
	}
	if msgs := packRecords(kindDelta, p.g.cfg.Name, batch, bestEffortMax, maxPushPackets); msgs != nil {
		for _, msg := range msgs {
			for range p.g.cfg.PacketCopies {
				if err := p.g.sendBestEffort(KindDelta, node, msg); err != nil {
					p.g.log.Debug("eager push failed", "peer", p.name, "err", err)
				}
			}
			p.g.stats.deltasSent.Add(1)
		}
		return false
	}
	for _, msg := range chunkRecords(kindDelta, p.g.cfg.Name, batch) {
		if err := p.g.sendReliable(KindDelta, node, msg); err != nil {
			p.g.log.Debug("eager push failed", "peer", p.name, "err", err)
			continue
		}
		p.g.stats.deltasSent.Add(1)
	}
	return true
}

// member returns a copy of a live member's node, or nil.
func (g *Gossip) member(name string) *memberlist.Node {
	g.nodesMu.RLock()
	defer g.nodesMu.RUnlock()
	n, ok := g.nodes[name]
	if !ok {
		return nil
	}
	return &n
}
