package gossip

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// Site health: each node checks that its own website answers (the node
// does the checking; see node's sitecheck.go) and advertises the result in
// its metadata, with a beat that changes at every report and the period
// between reports. A peer notes, by its own clock, when each member's beat
// last changed: a member whose last report says its site is up and is no
// older than three periods (plus a gossip delay) is known-good
// (Member.Good). A member whose site is down, or whose reports stopped (its
// node crashed: memberlist keeps it alive for up to ~40 s under the wan
// profile), is not; the hand-off skips it. A member of an older version
// reports nothing and is taken as good, as before.

// Site states a member advertises (Member.Site).
const (
	SiteUp   = "up"   // its site answered its last check
	SiteDown = "down" // it did not (refused, timed out, or answered an error)
)

// siteStaleSlack is added to three report periods before a report is
// stale: the time an update takes to spread (a few gossip intervals).
const siteStaleSlack = 3 * time.Second

// beatSeen is when this member last saw another's beat change.
type beatSeen struct {
	beat uint64
	at   time.Time
}

// SetSite advertises this member's site state (SiteUp or SiteDown) and the
// period between reports, with a new beat, and waits up to timeout for the
// update to go out. Call it once per period: a member whose reports stop
// is no longer known-good to its peers.
func (g *Gossip) SetSite(state string, every time.Duration, timeout time.Duration) error {
	g.metaMu.Lock()
	if g.left.Load() || g.ctx.Err() != nil {
		g.metaMu.Unlock()
		return nil // leaving: its metadata says so, and stays
	}
	g.beat++
	m := g.cfg.ownMeta()
	m.Site, m.Beat, m.Every = state, g.beat, every.Milliseconds()
	md, err := json.Marshal(m)
	if err != nil || len(md) > memberlist.MetaMaxSize {
		g.metaMu.Unlock()
		return fmt.Errorf("node metadata of %d bytes, over %d", len(md), memberlist.MetaMaxSize)
	}
	g.meta.Store(&md)
	g.metaMu.Unlock()
	if err := g.list.UpdateNode(timeout); err != nil {
		return fmt.Errorf("advertise the site's state: %w", err)
	}
	return nil
}

// noteBeat records when member n's beat changed (nodesMu held).
func (g *Gossip) noteBeatLocked(name string, md meta) {
	if md.Beat == 0 {
		return
	}
	if b, ok := g.beats[name]; !ok || b.beat != md.Beat {
		g.beats[name] = beatSeen{beat: md.Beat, at: time.Now()}
	}
}

// siteFreshLocked reports whether member name's last report is recent
// enough to be believed (nodesMu held).
func (g *Gossip) siteFreshLocked(name string, every time.Duration) bool {
	b, ok := g.beats[name]
	return ok && time.Since(b.at) <= 3*every+siteStaleSlack
}

// Good reports whether m is known-good for the hand-off: its site answered
// its last check and that report is fresh, or it reports nothing (a node
// of an older version, or one whose checks are off).
func (m Member) Good() bool {
	switch m.Site {
	case "":
		return true
	case SiteUp:
		return m.SiteFresh
	}
	return false
}
