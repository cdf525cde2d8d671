package gossip

import (
	"math/rand/v2"
	"slices"
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
// an acknowledgement plus four times its variation; three probe round
// trips before the first sample; within [minPushRTO, maxPushRTO]), doubled
// at each try, up to maxPushTries sends. A receiver slowed by its own load
// thus makes its senders wait longer rather than push the same records at
// it again. Gossip alone cannot be relied on for what a push lost:
// memberlist sends a few queued changes per packet and GossipInterval
// (500 ms under wan), so a burst of changes leaves the one a push lost
// waiting seconds in the queue (seen under 5 % loss: logouts that reached
// a member after 2 to 4 s, or not within 5 s). A batch that took a stream
// and failed is tried again the same way (a stream is not acknowledged:
// its number only keys it). What is still not acknowledged after the last
// try is left to gossip and anti-entropy.
//
// Each try of a push goes under a number of its own, never reused, as QUIC
// numbers its packets (RFC 9002, sections 2 and 5): an acknowledgement
// names the try it answers, so every one times a round trip, from that
// try's send. TCP cannot tell which send of a segment an acknowledgement
// answers, and by Karn's rule takes no sample from one sent again; here
// that would drop exactly the late acknowledgements, those of the pushes
// sent again, and the estimate would follow the fastest round trips only:
// a member whose round trips vary (100 ms ± 40) or rise would be sent its
// pushes again spuriously. A push is held under every number it went
// under: an acknowledgement of any try forgets it (one of the first try
// may come after the second was sent), and those of its other tries, when
// they come, find nothing. The receiver takes a try sent again for a copy
// of the one it took (recentMessages), and acknowledges it under its own
// number.
type peer struct {
	g       *Gossip
	name    string
	mu      sync.Mutex
	pending [][]byte
	seq     uint64               // the last number given to a try
	unacked map[uint64]*inflight // by the number of its first try
	retried map[uint64]*inflight // by the number of each later try
	held    int                  // bytes of the messages in unacked
	// srtt and rttvar estimate the time from a push to its
	// acknowledgement (zero: no sample yet). backoff is the latest
	// doubled timeout, kept for new pushes until a sample comes (RFC
	// 6298, 5.7): until then the timeout learnt may be far too short.
	srtt, rttvar, backoff time.Duration
	wake                  chan struct{}
	done                  chan struct{}
	once                  sync.Once
}

// inflight is one push awaiting its acknowledgement (or one batch whose
// stream failed, to send again).
type inflight struct {
	msg    []byte // the message, as last sent
	stream bool   // sent over a stream, not packets
	seq    uint64 // its key in unacked
	// sends are a packet push's tries, oldest first: the number each went
	// under and when (at most maxPushTries). A stream has none.
	sends []pushSend
	due   time.Time
	rto   time.Duration // the wait before the next try
	tries int
}

// pushSend is one try of a packet push.
type pushSend struct {
	seq uint64
	at  time.Time
}

// Retransmission of pushes (see peer).
const (
	minPushRTO   = 100 * time.Millisecond
	maxPushRTO   = 2 * time.Second
	maxPushTries = 6
	// maxUnacked and maxUnackedBytes bound one peer's pushes awaiting
	// acknowledgement or another try (a failed stream holds up to
	// MaxChunkBytes; a push is counted once, whatever its tries); past
	// either the oldest is left to gossip and anti-entropy. A push is held
	// under at most maxPushTries numbers.
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
		p = &peer{g: g, name: name, seq: rand.Uint64(), unacked: map[uint64]*inflight{}, retried: map[uint64]*inflight{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
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
	clear(p.retried)
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
				msg = p.track(msg, false, time.Now())
			}
			p.sendPackets(node, msg)
			p.g.stats.deltasSent.Add(1)
		}
		return false
	}
	for _, msg := range chunkRecords(kindDelta, p.g.cfg.Name, batch) {
		if err := p.g.sendReliable(KindDelta, node, msg); err != nil {
			p.g.log.Debug("eager push failed; tried again", "peer", p.name, "err", err)
			p.track(msg, true, time.Now())
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

// track keeps msg, sent at now, until it is acknowledged (packets: it is
// numbered and returned as the kindPush to send) or sent again (a stream
// that failed).
func (p *peer) track(msg []byte, stream bool, now time.Time) []byte {
	probeRTT := time.Duration(0)
	if c, ok := p.g.clocks.estimate(p.name); ok {
		probeRTT = c.RTT
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rto := 3 * probeRTT
	if p.srtt > 0 {
		rto = p.srtt + 4*p.rttvar
	}
	rto = min(max(rto, minPushRTO, p.backoff), maxPushRTO)
	p.seq++
	f := &inflight{msg: msg, stream: stream, due: now.Add(rto), rto: rto, tries: 1}
	if !stream {
		f.msg = encodePush(p.seq, p.g.cfg.Name, msg)
		f.sends = []pushSend{{p.seq, now}}
	}
	p.holdLocked(p.seq, f)
	select {
	case p.wake <- struct{}{}: // the run loop arms its timer
	default:
	}
	return f.msg
}

// holdLocked keeps f under seq, and gives up the oldest pushes held while
// there are too many.
func (p *peer) holdLocked(seq uint64, f *inflight) {
	f.seq = seq
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

// lookupLocked returns the push held under seq, the number of any of its
// tries, if any.
func (p *peer) lookupLocked(seq uint64) *inflight {
	if f := p.unacked[seq]; f != nil {
		return f
	}
	return p.retried[seq]
}

// forgetLocked drops the push held under seq (the number of any of its
// tries), if any, under every number, and returns it.
func (p *peer) forgetLocked(seq uint64) *inflight {
	f := p.lookupLocked(seq)
	if f != nil {
		delete(p.unacked, f.seq)
		for _, s := range f.sends[min(1, len(f.sends)):] {
			delete(p.retried, s.seq)
		}
		p.held -= len(f.msg)
	}
	return f
}

// acked forgets the pushes seqs acknowledge (each the number of one try;
// those of pushes no longer held are ignored), and learns the time to an
// acknowledgement, now, from the send of the try each names.
func (p *peer) acked(seqs []uint64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range seqs {
		f := p.forgetLocked(s)
		if f == nil {
			continue
		}
		i := slices.IndexFunc(f.sends, func(t pushSend) bool { return t.seq == s })
		if i < 0 {
			continue // a stream: never acknowledged by a member that follows the protocol
		}
		p.backoff = 0
		r := max(now.Sub(f.sends[i].at), 0)
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

// resendDue sends again, as sent at now, every push whose try is due at
// now (a packet push under a new number), and gives up those sent
// maxPushTries times.
func (p *peer) resendDue(now time.Time) {
	var again []*inflight
	var msgs [][]byte // the message of each try in again, as it is sent
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
			if f.stream {
				p.forgetLocked(s) // held again if it fails again
			} else {
				p.seq++
				f.msg = renumberPush(f.msg, p.seq)
				f.sends = append(f.sends, pushSend{p.seq, now})
				p.retried[p.seq] = f
			}
			again = append(again, f)
			msgs = append(msgs, f.msg)
		}
	}
	p.mu.Unlock()
	node := p.g.member(p.name)
	if node == nil {
		return // gone: gossip and anti-entropy take over
	}
	for i, f := range again {
		p.g.stats.pushRetries.Add(1)
		if !f.stream {
			p.sendPackets(node, msgs[i])
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
