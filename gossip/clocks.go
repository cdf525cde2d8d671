package gossip

import (
	"encoding/binary"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Clock skew between members, estimated from memberlist's own probes, as
// Consul's network coordinates ride on them (memberlist.PingDelegate): a
// member acknowledging a probe adds its wall clock to the ack; the prober,
// which knows the round trip, estimates the member's offset as NTP does
// (Mills, RFC 5905): offset = remote − (local − rtt/2), within ±rtt/2. Of
// the last clockWindow samples of a member, the one with the shortest round
// trip gives the estimate (NTP's clock filter: queueing delays only ever
// lengthen a trip and widen the error). No message is added: the probes go
// on anyway, so the estimate is free and as fresh as the probe interval
// times the number of members.

// ackClockVersion is the first byte of an ack payload holding a wall clock:
// then 8 bytes, Unix nanoseconds, big endian. Other payloads are ignored.
const ackClockVersion = 1

// clockWindow is how many recent samples of a member are kept.
const clockWindow = 8

// MemberClock is the estimated offset of one member's wall clock from this
// node's.
type MemberClock struct {
	Name string
	// Offset is the member's wall clock minus this node's (positive: the
	// member is ahead), estimated within ±RTT/2.
	Offset time.Duration
	// RTT is the round trip of the probe the estimate comes from.
	RTT time.Duration
	// At is when that probe completed, by this node's wall clock.
	At time.Time
	// Samples is how many probes of the member measured its clock.
	Samples uint64
}

type clockSample struct {
	offset, rtt time.Duration
	at          time.Time
}

// clockBook keeps the recent clock samples of each member. Safe for
// concurrent use; its methods never block for long (memberlist calls them
// on its probe goroutine).
type clockBook struct {
	mu      sync.Mutex
	members map[string]*memberSamples
}

type memberSamples struct {
	ring  [clockWindow]clockSample
	n     uint64 // samples taken; ring[(n-1)%clockWindow] is the newest
	valid int
}

func newClockBook() *clockBook { return &clockBook{members: map[string]*memberSamples{}} }

func (b *clockBook) add(name string, s clockSample) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.members[name]
	if m == nil {
		m = &memberSamples{}
		b.members[name] = m
	}
	m.ring[m.n%clockWindow] = s
	m.n++
	m.valid = min(m.valid+1, clockWindow)
}

func (b *clockBook) forget(name string) {
	b.mu.Lock()
	delete(b.members, name)
	b.mu.Unlock()
}

// estimate is the member's offset from its sample of shortest round trip.
func (b *clockBook) estimate(name string) (MemberClock, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := b.members[name]
	if m == nil || m.valid == 0 {
		return MemberClock{}, false
	}
	best := m.ring[0]
	for _, s := range m.ring[1:m.valid] {
		if s.rtt < best.rtt {
			best = s
		}
	}
	return MemberClock{Name: name, Offset: best.offset, RTT: best.rtt, At: best.at, Samples: m.n}, true
}

// pinger is memberlist's PingDelegate.
type pinger Gossip

// AckPayload adds this node's wall clock to the acks it sends.
func (p *pinger) AckPayload() []byte {
	b := make([]byte, 9)
	b[0] = ackClockVersion
	binary.BigEndian.PutUint64(b[1:], uint64(p.store.Now().UnixNano()))
	return b
}

// NotifyPingComplete takes a clock sample from a probe's ack.
func (p *pinger) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if other == nil || other.Name == p.cfg.Name || len(payload) < 9 || payload[0] != ackClockVersion || rtt < 0 {
		return
	}
	now := p.store.Now()
	remote := time.Unix(0, int64(binary.BigEndian.Uint64(payload[1:])))
	offset := remote.Sub(now.Add(-rtt / 2))
	p.clocks.add(other.Name, clockSample{offset: offset, rtt: rtt, at: now})
}

// Clocks estimates the clock offset of every live member probed so far
// (this node excluded), by name.
func (g *Gossip) Clocks() []MemberClock {
	var out []MemberClock
	for _, m := range g.LiveMembers() {
		if m.Name == g.cfg.Name {
			continue
		}
		if c, ok := g.clocks.estimate(m.Name); ok {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
