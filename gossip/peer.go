package gossip

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// peer is the eager-push sender for one member. Publish appends to pending
// and wakes it; the sender takes everything pending at once, so a quiet
// cluster sends each change alone and a busy one batches by itself.
//
// A push to a member that acknowledges pushes (meta.Acks) is kept until its
// acknowledgement comes back, and sent again while it does not: after a
// retransmission timeout computed as TCP's (RFC 6298: the smoothed time to
// an acknowledgement plus four times its variation, from pushes
// acknowledged at their first try, Karn's rule; three probe round trips
// before the first; within [minPushRTO, maxPushRTO]), doubled at each try,
// up to maxPushTries sends. A receiver slowed by its own load thus makes
// its senders wait longer rather than push the same records at it again. Gossip alone
// cannot be relied on for what a push lost: memberlist sends a few queued
// changes per packet and GossipInterval (500 ms under wan), so a burst of
// changes leaves the one a push lost waiting seconds in the queue (seen
// under 5 % loss: logouts that reached a member after 2 to 4 s, or not
// within 5 s). A batch that took a stream and failed is tried again the
// same way. What is still not acknowledged after the last try is left to
// gossip and anti-entropy.
type peer struct {
	g       *Gossip
	name    string
	mu      sync.Mutex
	pending [][]byte
	seq     uint64               // the last push numbered
	unacked map[uint64]*inflight // by sequence number
	held    int                  // bytes of the messages in unacked
	// srtt and rttvar estimate the time from a push to its
	// acknowledgement (zero: no sample yet). backoff is the latest
	// doubled timeout, kept for new pushes until a valid sample comes
	// (RFC 6298, 5.7): a receiver that acknowledges every push later than
	// the timeout gives no sample (Karn), and would be sent each push twice.
	srtt, rttvar, backoff time.Duration
	wake                  chan struct{}
	done                  chan struct{}
	once                  sync.Once
}

// inflight is one push awaiting its acknowledgement (or one batch whose
// stream failed, to send again).
type inflight struct {
	msg    []byte // the message, as sent
	stream bool   // sent over a stream, not packets
	sent   time.Time
	due    time.Time
	rto    time.Duration // the wait before the next try
	tries  int
}

// Retransmission of pushes (see peer).
const (
	minPushRTO   = 100 * time.Millisecond
	maxPushRTO   = 2 * time.Second
	maxPushTries = 6
	// maxUnacked and maxUnackedBytes bound one peer's pushes awaiting
	// acknowledgement or another try (a failed stream holds up to
	// MaxChunkBytes); past either the oldest is left to gossip and
	// anti-entropy.
	maxUnacked      = 4096
	maxUnackedBytes = 16 << 20
)

// maxPending bounds one peer's backlog (records); past it the oldest are
// dropped and left to gossip and anti-entropy.
const maxPending = 100_000

func (g *Gossip) peer(name string) *peer {
	g.peersMu.Lock()
	defer g.peersMu.Unlock()
	p := g.peers[name]
	if p == nil {
		// Numbering starts at random: acknowledgements still on their way
		// to an earlier sender for this member (one dropped when the member
		// failed) must not match this one's pushes.
		p = &peer{g: g, name: name, seq: rand.Uint64(), unacked: map[uint64]*inflight{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
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
		p.abandon()
	}
}

// abandon forgets what p still holds for its member, which has failed or
// left: the pushes awaiting an acknowledgement or another try are counted
// given up, the records not yet sent dropped. The member's resync when it
// returns, or anti-entropy, carries them.
func (p *peer) abandon() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.g.stats.pushesGivenUp.Add(uint64(len(p.unacked)))
	p.g.stats.dropped.Add(uint64(len(p.pending)))
	clear(p.unacked)
	p.held, p.pending = 0, nil
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
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-p.g.ctx.Done():
			return
		case <-p.wake:
		case <-retry.C:
		}
		p.resendDue(time.Now())
		if next, ok := p.nextDue(); ok {
			retry.Reset(max(time.Until(next), time.Millisecond))
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
// larger batch (a node under load) goes over TCP in chunks. Ten packets
// (about 11 KB) is what TCP itself sends in its first round trip (an
// initial window of ten segments, RFC 6928), without the handshake's
// round trip first: at 4, a log out everywhere of a user with a dozen
// sessions took a stream, 150 ms across a 50 ms link where its packets
// take 70.
const maxPushPackets = 10

// send sends batch to the peer and reports whether it took a stream. A
// batch that fits in a few packets goes as packets (PacketCopies of each),
// whatever its size: a stream costs a TCP handshake, a round trip that a
// login across the internet cannot afford. A larger one goes over TCP.
func (p *peer) send(batch [][]byte) (streamed bool) {
	node, acks := p.g.memberAcks(p.name)
	if node == nil {
		return false // gone: gossip and anti-entropy take over
	}
	if msgs := packRecords(kindDelta, p.g.cfg.Name, batch, bestEffortMax-pushHeaderRoom, maxPushPackets); msgs != nil {
		for _, msg := range msgs {
			if acks {
				msg = p.track(msg, false)
			}
			p.sendPackets(node, msg)
			p.g.stats.deltasSent.Add(1)
		}
		return false
	}
	for _, msg := range chunkRecords(kindDelta, p.g.cfg.Name, batch) {
		if err := p.g.sendReliable(KindDelta, node, msg); err != nil {
			p.g.log.Debug("eager push failed; tried again", "peer", p.name, "err", err)
			p.track(msg, true)
			continue
		}
		p.g.stats.deltasSent.Add(1)
	}
	return true
}

// pushHeaderRoom is what a kindPush adds to a kindDelta: a sequence number
// and the sender's name.
const pushHeaderRoom = 9 + fromRoom

func (p *peer) sendPackets(node *memberlist.Node, msg []byte) {
	for range p.g.cfg.PacketCopies {
		if err := p.g.sendBestEffort(KindDelta, node, msg); err != nil {
			p.g.log.Debug("eager push failed", "peer", p.name, "err", err)
		}
	}
}

// track keeps msg until it is acknowledged (packets: it is numbered and
// returned as the kindPush to send) or sent again (a stream that failed).
func (p *peer) track(msg []byte, stream bool) []byte {
	probeRTT := time.Duration(0)
	if c, ok := p.g.clocks.estimate(p.name); ok {
		probeRTT = c.RTT
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	rto := 3 * probeRTT
	if p.srtt > 0 {
		rto = p.srtt + 4*p.rttvar
	}
	rto = min(max(rto, minPushRTO, p.backoff), maxPushRTO)
	p.seq++
	if !stream {
		msg = encodePush(p.seq, p.g.cfg.Name, msg)
	}
	p.holdLocked(p.seq, &inflight{msg: msg, stream: stream, sent: now, due: now.Add(rto), rto: rto, tries: 1})
	select {
	case p.wake <- struct{}{}: // the run loop arms its timer
	default:
	}
	return msg
}

// holdLocked keeps f under seq, and gives up the oldest pushes held while
// there are too many.
func (p *peer) holdLocked(seq uint64, f *inflight) {
	p.unacked[seq] = f
	p.held += len(f.msg)
	for len(p.unacked) > maxUnacked || p.held > maxUnackedBytes {
		oldest := seq
		for s := range p.unacked {
			oldest = min(oldest, s)
		}
		p.forgetLocked(oldest)
		p.g.stats.pushesGivenUp.Add(1)
	}
}

// forgetLocked drops the push held under seq, if any, and returns it.
func (p *peer) forgetLocked(seq uint64) *inflight {
	f := p.unacked[seq]
	if f != nil {
		delete(p.unacked, seq)
		p.held -= len(f.msg)
	}
	return f
}

// acked forgets the pushes seqs acknowledge, and learns the time to an
// acknowledgement from those acknowledged at their first send.
func (p *peer) acked(seqs []uint64) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range seqs {
		f := p.forgetLocked(s)
		if f == nil {
			continue
		}
		if f.tries != 1 {
			continue // which send it answers is not known (Karn)
		}
		p.backoff = 0
		r := now.Sub(f.sent)
		if p.srtt == 0 {
			p.srtt, p.rttvar = r, r/2
			continue
		}
		p.rttvar = (3*p.rttvar + (p.srtt - r).Abs()) / 4
		p.srtt = (7*p.srtt + r) / 8
	}
}

// nextDue is when the earliest try is due, if any push awaits one.
func (p *peer) nextDue() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var next time.Time
	for _, f := range p.unacked {
		if next.IsZero() || f.due.Before(next) {
			next = f.due
		}
	}
	return next, !next.IsZero()
}

// resendDue sends again every push whose try is due at now, and gives up
// those sent maxPushTries times.
func (p *peer) resendDue(now time.Time) {
	var again []*inflight
	p.mu.Lock()
	for s, f := range p.unacked {
		switch {
		case f.due.After(now):
		case f.tries >= maxPushTries:
			p.forgetLocked(s)
			p.g.stats.pushesGivenUp.Add(1)
		default:
			f.tries++
			f.rto = min(2*f.rto, maxPushRTO)
			f.due = now.Add(f.rto)
			p.backoff = max(p.backoff, f.rto)
			again = append(again, f)
			if f.stream {
				p.forgetLocked(s) // held again if it fails again
			}
		}
	}
	p.mu.Unlock()
	node := p.g.member(p.name)
	if node == nil {
		return // gone: gossip and anti-entropy take over
	}
	for _, f := range again {
		p.g.stats.pushRetries.Add(1)
		if !f.stream {
			p.sendPackets(node, f.msg)
			continue
		}
		if err := p.g.sendReliable(KindDelta, node, f.msg); err != nil {
			p.g.log.Debug("eager push failed again", "peer", p.name, "err", err, "tries", f.tries)
			p.mu.Lock()
			if f.tries < maxPushTries {
				f.due = time.Now().Add(f.rto) // the send may have blocked for long
				p.seq++
				p.holdLocked(p.seq, f)
			} else {
				p.g.stats.pushesGivenUp.Add(1)
			}
			p.mu.Unlock()
		}
	}
}

// member returns a copy of a live member's node, or nil.
func (g *Gossip) member(name string) *memberlist.Node {
	n, _ := g.memberAcks(name)
	return n
}

// memberAcks is member, and whether it acknowledges pushes (meta.Acks), in
// one look: every push asks both.
func (g *Gossip) memberAcks(name string) (*memberlist.Node, bool) {
	g.nodesMu.RLock()
	defer g.nodesMu.RUnlock()
	n, ok := g.nodes[name]
	if !ok {
		return nil, false
	}
	return &n, g.acking[name]
}
