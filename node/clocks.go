package node

import "time"

// memberClock is one member's clock as this node estimates it.
type memberClock struct {
	Name  string
	Skew  time.Duration // the member's wall clock minus this node's
	Known bool          // a probe has measured it
}

// memberClocks estimates every live member's clock skew.
func (n *Node) memberClocks() []memberClock { return nil }
