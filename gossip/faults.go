package gossip

import (
	"errors"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
)

// Faults injects network faults into one member's traffic, for tests and
// benchmarks: it is the project's one fault-injecting layer (nodetest and
// `ussync bench` configure it; the member's transport and its senders apply
// it). Every fault acts on what this member sends, so a link between two
// members is set on both ends: a one-way fault is set on one end only.
//
//   - Cuts (Block): nothing is sent to the address, neither packets nor
//     streams (a dial fails at once), and packets from it are dropped on
//     arrival. Blocking on both ends makes a partition; Heal removes every
//     cut.
//   - Delay and jitter (SetLink): each packet to the address leaves Delay ±
//     Jitter (uniform, never below zero) after it was sent, from a timer: the
//     sender never waits, so memberlist's probes see the delay a real
//     network would add and nothing more. A stream this member opens takes
//     one round trip (2 × Delay) to connect, as a TCP handshake does, and
//     then each direction of it is delayed by Delay ± Jitter per write, in
//     order (the member accounts for both directions of the streams it
//     opens; streams it accepts are not delayed again).
//   - Loss (SetLink): each packet is lost with probability PacketLoss; each
//     stream this member opens fails with probability StreamLoss (after its
//     handshake time), as a connection whose SYNs are all lost would.
//   - Drops of chosen messages (DropNext): the next n messages of a Kind, to
//     one address or to any. Packet and Stream rules match what the
//     transport sends; PushPull, Delta, Pull and Repair rules match the
//     exchanges and messages this member starts itself (its own push/pulls:
//     join, resync, reconnect, SyncWith; not memberlist's periodic ones,
//     which are encrypted before the transport sees them). A dropped
//     message fails as a cut link would: a stream's sender gets an error, a
//     packet is silently lost.
//
// Random decisions come from one generator per destination address, seeded
// from the Faults' seed (SetSeed; 0 by default) and the address, so a seed
// reproduces the same decisions for the same sequence of messages on each
// link. The zero value injects nothing. Faults is safe for concurrent use
// and may be changed while the member runs.
type Faults struct {
	mu      sync.Mutex
	seed    uint64
	blocked map[string]bool
	all     Link
	links   map[string]Link
	rngs    map[string]*rand.Rand
	rules   []*dropRule
	stats   FaultStats
}

// Link is the faults of what this member sends to one address (or to every
// address, see SetLink). The zero Link is a perfect link.
type Link struct {
	// Delay is the one-way delay added to each packet and to each direction
	// of each stream this member opens.
	Delay time.Duration
	// Jitter spreads each delay uniformly over [Delay-Jitter, Delay+Jitter]
	// (never below zero). Packets may then arrive out of order, as on a real
	// network; a stream's bytes never do.
	Jitter time.Duration
	// PacketLoss is the probability, in [0, 1], that a packet is lost.
	PacketLoss float64
	// StreamLoss is the probability, in [0, 1], that opening a stream fails.
	StreamLoss float64
}

// Kind names what a DropNext rule matches.
type Kind uint8

// Kinds of traffic a DropNext rule can match.
const (
	// KindAny matches any packet or stream the transport sends.
	KindAny Kind = iota
	// KindPacket matches any UDP packet (memberlist's probes and gossip, and
	// small eager pushes).
	KindPacket
	// KindStream matches any TCP stream this member opens.
	KindStream
	// KindPushPull matches a push/pull exchange this member starts itself:
	// Join, SyncWith, a resync with a member back from failure, a reconnect.
	KindPushPull
	// KindDelta matches an eager push message.
	KindDelta
	// KindPull matches an anti-entropy pull (this member's hashes of the
	// buckets that differ, asking the peer for what it lacks).
	KindPull
	// KindRepair matches anti-entropy records sent in answer to a pull.
	KindRepair
	// KindAck matches an acknowledgement of eager pushes (each copy of a
	// push is a KindDelta).
	KindAck
)

func (k Kind) String() string {
	switch k {
	case KindAny:
		return "any"
	case KindPacket:
		return "packet"
	case KindStream:
		return "stream"
	case KindPushPull:
		return "push/pull"
	case KindDelta:
		return "delta"
	case KindPull:
		return "pull"
	case KindRepair:
		return "repair"
	case KindAck:
		return "ack"
	}
	return "unknown"
}

// FaultStats counts what Faults did, since the member started.
type FaultStats struct {
	PacketsLost     uint64 // packets not sent: cut, lost at random, or dropped by a rule
	PacketsRefused  uint64 // packets from a blocked address dropped on arrival
	StreamsLost     uint64 // streams not opened: cut, lost at random, or dropped by a rule
	MessagesDropped uint64 // push/pulls, deltas, pulls and repairs dropped by a rule
	Delayed         uint64 // packets and stream writes delivered late
}

// dropRule drops the next n messages of kind to addr ("" for any).
type dropRule struct {
	kind Kind
	to   string
	n    int
}

// errFault is the error a send or dial cut by Faults returns.
var errFault = errors.New("dropped by fault injection")

// SetSeed seeds the random decisions (delays, jitter, loss). It restarts
// every link's sequence.
func (f *Faults) SetSeed(seed uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seed = seed
	f.rngs = nil
}

// Block cuts the links to the given gossip addresses (host:port).
func (f *Faults) Block(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked == nil {
		f.blocked = map[string]bool{}
	}
	for _, a := range addrs {
		f.blocked[a] = true
	}
}

// Unblock restores the links to the given addresses.
func (f *Faults) Unblock(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		delete(f.blocked, a)
	}
}

// Heal removes every cut. Delays, losses and drop rules stay (Reset removes
// everything).
func (f *Faults) Heal() {
	f.mu.Lock()
	f.blocked = nil
	f.mu.Unlock()
}

// SetLink sets the faults of what this member sends to addr; addr "" sets
// them for every address that has no link of its own.
func (f *Faults) SetLink(addr string, l Link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if addr == "" {
		f.all = l
		return
	}
	if f.links == nil {
		f.links = map[string]Link{}
	}
	f.links[addr] = l
}

// DropNext drops the next n messages of kind k sent to addr (any address
// when addr is ""). Rules add up; each message is counted by the first rule
// it matches.
func (f *Faults) DropNext(n int, k Kind, addr string) {
	if n <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &dropRule{kind: k, to: addr, n: n})
}

// Pending reports how many messages the DropNext rules still have to drop.
func (f *Faults) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.rules {
		n += r.n
	}
	return n
}

// Reset removes every fault: cuts, links, rules. The seed and the counters
// stay.
func (f *Faults) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocked, f.links, f.rules, f.all = nil, nil, nil, Link{}
}

// Stats returns the counters.
func (f *Faults) Stats() FaultStats {
	if f == nil {
		return FaultStats{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// linkLocked returns the link to addr.
func (f *Faults) linkLocked(addr string) Link {
	if l, ok := f.links[addr]; ok {
		return l
	}
	return f.all
}

// rngLocked returns addr's generator.
func (f *Faults) rngLocked(addr string) *rand.Rand {
	r := f.rngs[addr]
	if r == nil {
		h := fnv.New64a()
		h.Write([]byte(addr))
		r = rand.New(rand.NewPCG(f.seed, h.Sum64()))
		if f.rngs == nil {
			f.rngs = map[string]*rand.Rand{}
		}
		f.rngs[addr] = r
	}
	return r
}

// drawLocked draws one delay of link l on addr.
func (f *Faults) drawLocked(addr string, l Link) time.Duration {
	d := l.Delay
	if l.Jitter > 0 {
		d += time.Duration(f.rngLocked(addr).Int64N(int64(2*l.Jitter)+1)) - l.Jitter
	}
	return max(d, 0)
}

// ruleLocked consumes one message of the first rule matching kind (or, with
// any set, KindAny) to addr.
func (f *Faults) ruleLocked(k Kind, addr string, orAny bool) bool {
	for i, r := range f.rules {
		if (r.kind == k || orAny && r.kind == KindAny) && (r.to == "" || r.to == addr) {
			if r.n--; r.n <= 0 {
				f.rules = append(f.rules[:i], f.rules[i+1:]...)
			}
			return true
		}
	}
	return false
}

// packet decides the fate of a packet to addr: lost, or sent after delay.
func (f *Faults) packet(addr string) (lost bool, delay time.Duration) {
	if f == nil {
		return false, 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.linkLocked(addr)
	if f.blocked[addr] || f.ruleLocked(KindPacket, addr, true) || l.PacketLoss > 0 && f.rngLocked(addr).Float64() < l.PacketLoss {
		f.stats.PacketsLost++
		return true, 0
	}
	if delay = f.drawLocked(addr, l); delay > 0 {
		f.stats.Delayed++
	}
	return false, delay
}

// streamPlan is what becomes of a stream this member opens.
type streamPlan struct {
	// connect is how long the handshake takes.
	connect time.Duration
	// fail, when set, is why the stream is not opened (after connect, unless
	// the link is cut).
	fail error
	// delay draws each direction's delay per write; nil for none.
	delay func() time.Duration
}

// stream decides the fate of a stream this member opens to addr.
func (f *Faults) stream(addr string) streamPlan {
	if f == nil {
		return streamPlan{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked[addr] || f.ruleLocked(KindStream, addr, true) {
		f.stats.StreamsLost++
		return streamPlan{fail: errFault}
	}
	l := f.linkLocked(addr)
	p := streamPlan{connect: f.drawLocked(addr, l) + f.drawLocked(addr, l)}
	if l.StreamLoss > 0 && f.rngLocked(addr).Float64() < l.StreamLoss {
		f.stats.StreamsLost++
		p.fail = errFault
		return p
	}
	if l.Delay > 0 || l.Jitter > 0 {
		p.delay = func() time.Duration {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.stats.Delayed++
			return f.drawLocked(addr, l)
		}
	}
	return p
}

// message reports whether a message of kind k to addr is dropped by a rule.
func (f *Faults) message(k Kind, addr string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ruleLocked(k, addr, false) {
		f.stats.MessagesDropped++
		return true
	}
	return false
}

// refuse reports whether a packet from addr is dropped on arrival (a cut
// link).
func (f *Faults) refuse(addr string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked[addr] {
		f.stats.PacketsRefused++
		return true
	}
	return false
}
