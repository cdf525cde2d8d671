package node

import (
	"fmt"
	"time"
)

// The members' clocks as this node sees them (docs/security.md, "Records
// and clocks"): gossip estimates each live member's offset from its probes'
// round trips; a member further off than cluster.max_clock_offset is
// reported in status, on /metrics and in the log.

// clockCheckInterval is how often the node looks at its members' clocks to
// log those beyond the max offset (and those back within it).
const clockCheckInterval = 15 * time.Second

// memberClock is one member's clock as this node estimates it.
type memberClock struct {
	Name  string
	Skew  time.Duration // the member's wall clock minus this node's
	RTT   time.Duration // the round trip the estimate comes from: its error is within RTT/2
	Known bool          // a probe has measured it
}

// memberClocks estimates the clock skew of every live member probed so far.
func (n *Node) memberClocks() []memberClock {
	if n.gossip == nil {
		return nil
	}
	cs := n.gossip.Clocks()
	out := make([]memberClock, len(cs))
	for i, c := range cs {
		out[i] = memberClock{Name: c.Name, Skew: c.Offset, RTT: c.RTT, Known: true}
	}
	return out
}

// maxOffset is the cluster's max offset (cluster.max_clock_offset): the
// one the store and the hand-off refuse records and tickets by.
func (n *Node) maxOffset() time.Duration { return time.Duration(n.cfg.Cluster.MaxClockOffset) }

// skewed reports whether m's clock is beyond the max offset from this
// node's, beyond doubt: by more than the max offset plus the estimate's
// error (half the round trip).
func (n *Node) skewed(m memberClock) bool {
	return m.Known && abs(m.Skew) > n.maxOffset()+m.RTT/2
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// skewWarning says what a member's skew beyond the max offset means.
func (n *Node) skewWarning(m memberClock) string {
	off := fmt.Sprintf("%.1f s", abs(m.Skew).Seconds())
	if m.Skew > 0 {
		return fmt.Sprintf("member %s's clock is %s ahead of this node's, beyond cluster.max_clock_offset (%s): this node refuses the records %s writes (clock_ahead); "+
			"one of the two clocks is wrong: check NTP on both (docs/security.md, \"Records and clocks\")", m.Name, off, n.maxOffset(), m.Name)
	}
	return fmt.Sprintf("member %s's clock is %s behind this node's, beyond cluster.max_clock_offset (%s): %s refuses the records this node writes (clock_ahead); "+
		"one of the two clocks is wrong: check NTP on both (docs/security.md, \"Records and clocks\")", m.Name, off, n.maxOffset(), m.Name)
}

// clockWatch logs each member whose clock goes beyond the max offset, once
// when it does and once when it is back within (housekeeping's goroutine
// owns skewedNow).
func (n *Node) clockWatch(skewedNow map[string]bool) {
	seen := map[string]bool{}
	for _, m := range n.memberClocks() {
		seen[m.Name] = true
		switch bad := n.skewed(m); {
		case bad && !skewedNow[m.Name]:
			skewedNow[m.Name] = true
			n.log.Warn("a member's clock is beyond the max offset", "member", m.Name, "skew", m.Skew.Round(time.Millisecond),
				"max_offset", n.maxOffset(), "detail", n.skewWarning(m))
		case !bad && skewedNow[m.Name] && abs(m.Skew) <= n.maxOffset():
			delete(skewedNow, m.Name)
			n.log.Info("a member's clock is back within the max offset", "member", m.Name, "skew", m.Skew.Round(time.Millisecond))
		}
	}
	for name := range skewedNow {
		if !seen[name] {
			delete(skewedNow, name) // gone: logged again if it comes back skewed
		}
	}
}
