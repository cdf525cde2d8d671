package gossip

import (
	"time"
)

// failedMember is a member that died (or left) and when to try it again.
type failedMember struct {
	member  Member
	left    bool
	since   time.Time
	next    time.Time
	backoff time.Duration
}

// reconnectLoop re-joins failed members with exponential backoff, and the
// configured join addresses while this node is alone, so that a partition
// longer than memberlist's GossipToTheDeadTime still heals (Serf's
// reconnect).
func (g *Gossip) reconnectLoop() {
	defer g.wg.Done()
	tick := g.cfg.ReconnectInterval / 4
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	joinNext, joinBackoff := time.Time{}, g.cfg.ReconnectInterval
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		now := g.store.Now()
		for _, f := range g.dueFailed(now) {
			if g.ctx.Err() != nil {
				return
			}
			_, err := g.list.Join([]string{f.member.Addr})
			g.failedMu.Lock()
			if cur := g.failed[f.member.Name]; cur != nil && err != nil {
				cur.backoff = min(cur.backoff*2, g.cfg.ReconnectMaxBackoff)
				cur.next = now.Add(cur.backoff)
			}
			g.failedMu.Unlock()
			if err == nil {
				g.stats.reconnects.Add(1)
				g.log.Info("rejoined failed member", "peer", f.member.Name)
			}
		}
		if len(g.cfg.Join) > 0 && g.list.NumMembers() <= 1 && !now.Before(joinNext) {
			if _, err := g.list.Join(g.cfg.Join); err != nil {
				joinBackoff = min(joinBackoff*2, g.cfg.ReconnectMaxBackoff)
				joinNext = now.Add(joinBackoff)
				g.log.Debug("join retry failed", "err", err)
			} else {
				joinBackoff = g.cfg.ReconnectInterval
				g.log.Info("joined cluster", "addrs", g.cfg.Join)
			}
		}
	}
}

// dueFailed returns the failed members due for a retry now, forgetting
// those past ReconnectTimeout.
func (g *Gossip) dueFailed(now time.Time) []failedMember {
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	var due []failedMember
	for name, f := range g.failed {
		switch {
		case f.left:
		case now.Sub(f.since) > g.cfg.ReconnectTimeout:
			delete(g.failed, name)
		case !now.Before(f.next):
			due = append(due, *f)
			f.next = now.Add(f.backoff) // not again until this try is judged
		}
	}
	return due
}
