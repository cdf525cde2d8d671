package gossip

import (
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Clock skew between members, estimated as NTP does from memberlist's
// probes: every ack carries the sender's wall clock (memberlist's
// PingDelegate, which Serf uses the same way for its network coordinates),
// and the prober compares it with its own at the middle of the round trip:
//
//	skew = their clock at the ack − (our clock at the ack's arrival − rtt/2)
//
// A positive skew is a member whose clock is ahead of this one's. The
// error is at most half the round trip; the median of the last few probes
// keeps one slow probe from showing. Sessions, tickets and records carry
// wall times, and a node refuses what is too far ahead of its own clock
// (crypto.MaxClockSkew, session's max offset): this is how an operator sees
// it coming. Members of a version without the payload send none, and have
// no estimate.

// clockPayload is an ack's payload: a version byte and the sender's wall
// clock in Unix nanoseconds.
const (
	clockPayloadVersion = 1
	clockPayloadLen     = 9
	// clockSamples is how many probes the estimate is the median of.
	clockSamples = 5
)

// clockBook holds the last probes' skews of each member.
type clockBook struct {
	mu      sync.Mutex
	samples map[string][]time.Duration // newest last
}

// pinger is Gossip as memberlist's PingDelegate.
type pinger Gossip

// AckPayload is this member's wall clock, for the prober.
func (p *pinger) AckPayload() []byte {
	var b [clockPayloadLen]byte
	b[0] = clockPayloadVersion
	binary.BigEndian.PutUint64(b[1:], uint64((*Gossip)(p).store.Now().UnixNano()))
	return b[:]
}

// NotifyPingComplete records the skew of other from its ack. It must not
// block: memberlist calls it from its probe loop.
func (p *pinger) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	if len(payload) < clockPayloadLen || payload[0] != clockPayloadVersion || other == nil {
		return
	}
	g := (*Gossip)(p)
	theirs := time.Unix(0, int64(binary.BigEndian.Uint64(payload[1:clockPayloadLen])))
	skew := theirs.Sub(g.store.Now().Add(-rtt / 2))
	g.clocks.mu.Lock()
	defer g.clocks.mu.Unlock()
	if g.clocks.samples == nil {
		g.clocks.samples = map[string][]time.Duration{}
	}
	s := append(g.clocks.samples[other.Name], skew)
	if len(s) > clockSamples {
		s = s[len(s)-clockSamples:]
	}
	g.clocks.samples[other.Name] = s
}

// ClockSkew returns the estimated clock skew of each live member this
// member has probed since it started (other members' clock minus this
// one's: positive is ahead), the median of the last few probes. Members
// of a version that sends no clock are absent.
func (g *Gossip) ClockSkew() map[string]time.Duration {
	g.nodesMu.RLock()
	live := make(map[string]bool, len(g.nodes))
	for name := range g.nodes {
		live[name] = true
	}
	g.nodesMu.RUnlock()
	out := map[string]time.Duration{}
	g.clocks.mu.Lock()
	defer g.clocks.mu.Unlock()
	for name, s := range g.clocks.samples {
		if !live[name] {
			delete(g.clocks.samples, name) // gone: a new estimate when it is back
			continue
		}
		sorted := slices.Clone(s)
		slices.Sort(sorted)
		out[name] = sorted[len(sorted)/2]
	}
	return out
}
