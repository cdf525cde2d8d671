package gossip

import (
	"encoding/json"
	"errors"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ussync/ussync/session"
)

// failedMember is a member that died (or left) and when to try it again.
type failedMember struct {
	member  Member
	left    bool
	since   time.Time
	next    time.Time
	backoff time.Duration
	trying  bool
	pinged  time.Time // last ping sent (see pingAhead)
	pinging bool
}

// probe is a join address, or a member remembered from the last run, that
// the reconnect loop tries while no live member answers at it.
type probe struct {
	addr    string
	name    string // remembered member's name; "" for a join address
	next    time.Time
	backoff time.Duration
	trying  bool
	pinged  time.Time
	pinging bool
}

// maxReconnects bounds the re-joins in flight at once; maxPings the pings.
const (
	maxReconnects = 8
	maxPings      = 32
)

// reconnectLoop keeps trying, each with its own capped and jittered
// backoff (Config.ReconnectInterval doubling up to ReconnectMaxBackoff,
// each wait drawn from [backoff/2, backoff]):
//
//   - failed members, until ReconnectTimeout after they failed (Serf's
//     reconnect), and forgets members that left after TombstoneTimeout
//     (Serf's tombstone): memberlist gives up on a member once it is dead, and after
//     GossipToTheDeadTime stops gossiping to it;
//   - the join addresses at which no live member answers, whether or not
//     this node is alone, so that two sides that forgot each other (after
//     ReconnectTimeout, or restarts during the split) still find each other;
//   - the members this node remembers from its last run, until one answers
//     at that address or ReconnectTimeout after it was last seen.
//
// Each try is one push/pull; an answer heals the link and starts a round.
// Between tries, each is pinged (one UDP packet, memberlist's ping, which
// only a holder of the cluster key answers) every ReconnectInterval,
// jittered: an answer makes it due at once. So a partition heals within
// about ReconnectInterval (2 s under lan, 5 s under wan) of the network
// coming back, whatever its length, while a member that stays away costs a
// ping per interval, not a TCP push/pull.
func (g *Gossip) reconnectLoop() {
	defer g.wg.Done()
	// The tick bounds how late a try due now starts (a join address or a
	// remembered member is first tried at once).
	tick := min(max(g.cfg.ReconnectInterval/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	slots := make(chan struct{}, maxReconnects)
	pings := make(chan struct{}, maxPings)
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-t.C:
		}
		now := g.store.Now()
		g.pingAhead(now, pings)
		for _, f := range g.dueFailed(now) {
			select {
			case slots <- struct{}{}:
			default:
				g.untry(f.member.Name, "") // no slot: the next tick's turn
				continue
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer func() { <-slots }()
				err := g.pushPull(f.member.Addr)
				g.failedRetry(f.member.Name, g.store.Now(), err != nil)
				if err == nil {
					g.stats.reconnects.Add(1)
					g.log.Info("rejoined failed member", "peer", f.member.Name, "addr", f.member.Addr)
				}
			}()
		}
		for _, p := range g.dueProbes(now) {
			select {
			case slots <- struct{}{}:
			default:
				g.untry("", p.addr)
				continue
			}
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer func() { <-slots }()
				err := g.pushPull(p.addr)
				g.probeRetry(p.addr, g.store.Now(), err != nil)
				if err == nil {
					g.stats.reconnects.Add(1)
					if p.name != "" {
						g.log.Info("rejoined a member remembered from the last run", "peer", p.name, "addr", p.addr)
					} else {
						g.log.Info("joined cluster", "addr", p.addr)
					}
				} else {
					g.log.Debug("join retry failed", "addr", p.addr, "err", err)
				}
			}()
		}
		g.snapshotMembers()
	}
}

// pingTarget is a failed member or probe to ping.
type pingTarget struct{ name, addr string }

// pingAhead pings the failed members and probes waiting out a backoff whose
// last ping is ReconnectInterval old (jittered); one that answers is made
// due at once, its backoff reset.
func (g *Gossip) pingAhead(now time.Time, slots chan struct{}) {
	every := g.cfg.ReconnectInterval
	var due []pingTarget
	g.failedMu.Lock()
	for _, f := range g.failed {
		if !f.left && !f.trying && !f.pinging && now.Before(f.next) && now.Sub(f.pinged) >= every {
			f.pinging, f.pinged = true, now.Add(jitter(every)-every)
			due = append(due, pingTarget{f.member.Name, f.member.Addr})
		}
	}
	for _, p := range g.probes {
		if !p.trying && !p.pinging && now.Before(p.next) && now.Sub(p.pinged) >= every {
			p.pinging, p.pinged = true, now.Add(jitter(every)-every)
			due = append(due, pingTarget{p.name, p.addr})
		}
	}
	g.failedMu.Unlock()
	for _, d := range due {
		select {
		case slots <- struct{}{}:
		default:
			g.pinged(d, false) // no slot: the next interval's turn
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer func() { <-slots }()
			g.pinged(d, g.pingAddr(d.name, d.addr))
		}()
	}
}

// pingAddr sends memberlist's ping to addr for the member name ("" is
// answered by anyone holding the key) and waits up to the probe timeout for
// the ack.
func (g *Gossip) pingAddr(name, addr string) bool {
	n := nodeAt(name, addr)
	if n == nil {
		ua, err := net.ResolveUDPAddr("udp", addr) // a join address with a host name
		if err != nil {
			return false
		}
		n = &memberlist.Node{Name: name, Addr: ua.IP, Port: uint16(ua.Port)}
	}
	return g.ping(name, n)
}

// pinged records a ping's outcome: an answer makes the member or probe due
// now, with its first backoff.
func (g *Gossip) pinged(d pingTarget, answered bool) {
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	now := g.store.Now()
	if f := g.failed[d.name]; d.name != "" && f != nil && f.member.Addr == d.addr {
		f.pinging = false
		if answered && !f.trying {
			f.next, f.backoff = now, g.cfg.ReconnectInterval
		}
	}
	if p := g.probes[d.addr]; p != nil {
		p.pinging = false
		if answered && !p.trying {
			p.next, p.backoff = now, g.cfg.ReconnectInterval
		}
	}
}

// dueFailed returns the failed members due for a retry now, marked as being
// tried, forgetting those past ReconnectTimeout, and those that left past
// TombstoneTimeout.
func (g *Gossip) dueFailed(now time.Time) []failedMember {
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	var due []failedMember
	for name, f := range g.failed {
		switch {
		case f.left && now.Sub(f.since) > g.cfg.TombstoneTimeout:
			delete(g.failed, name)
			g.log.Info("forgot a member that left", "peer", name, "left_at", f.since.UTC().Format(time.RFC3339), "after", g.cfg.TombstoneTimeout.String())
		case f.left:
		case g.store.Site(name).IsRevoked(): // it would be refused: not chased while revoked
		case now.Sub(f.since) > g.cfg.ReconnectTimeout:
			delete(g.failed, name)
			g.snapshotDirty.Store(true)
		case !f.trying && !now.Before(f.next):
			f.trying = true
			due = append(due, *f)
		}
	}
	return due
}

// failedRetry schedules a failed member's next try: after its backoff when
// the try failed (the backoff then doubles), or at the next tick when it
// was skipped. A member that answered is removed by NotifyJoin; until then
// it is tried again after the backoff, in case the answer did not bring it
// back.
func (g *Gossip) failedRetry(name string, now time.Time, failed bool) {
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	f := g.failed[name]
	if f == nil {
		return
	}
	f.trying = false
	if !failed && f.next.After(now) {
		return
	}
	f.next = now.Add(jitter(f.backoff))
	if failed {
		f.backoff = min(2*f.backoff, g.cfg.ReconnectMaxBackoff)
	}
}

// untry puts back a failed member (by name) or a probe (by address) that
// was due but not tried, to be tried at the next tick.
func (g *Gossip) untry(name, addr string) {
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	if f := g.failed[name]; f != nil {
		f.trying = false
	}
	if p := g.probes[addr]; p != nil {
		p.trying = false
	}
}

// dueProbes returns the join addresses and remembered members due for a
// try now, marked as being tried: those at which no live member answers.
func (g *Gossip) dueProbes(now time.Time) []probe {
	joins := make(map[string]string, len(g.cfg.Join)) // as given → as resolved
	for _, a := range g.cfg.Join {
		joins[a] = g.resolver.resolve(a, now)
	}
	live := map[string]bool{}
	g.nodesMu.RLock()
	for _, n := range g.nodes {
		live[addrOf(&n)] = true
		live[n.Name] = true
	}
	g.nodesMu.RUnlock()
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	for name, at := range g.rememberedSeen {
		if live[name] || now.Sub(at) > g.cfg.ReconnectTimeout {
			delete(g.remembered, name)
			delete(g.rememberedSeen, name)
		}
	}
	failedAt := map[string]bool{} // tried as failed members already
	for _, f := range g.failed {
		failedAt[f.member.Addr] = !f.left
	}
	want := map[string]string{}
	for a, r := range joins {
		if a != g.addr && r != g.addr && !live[a] && !live[r] && !failedAt[a] && !failedAt[r] {
			want[a] = ""
		}
	}
	for name, a := range g.remembered {
		if _, failed := g.failed[name]; !failed {
			want[a] = name
		}
	}
	for a := range g.probes {
		if _, ok := want[a]; !ok {
			delete(g.probes, a)
		}
	}
	var due []probe
	for a, name := range want {
		p := g.probes[a]
		if p == nil {
			p = &probe{addr: a, name: name, next: now, backoff: g.cfg.ReconnectInterval}
			g.probes[a] = p
		}
		if !p.trying && !now.Before(p.next) {
			p.trying = true
			due = append(due, *p)
		}
	}
	return due
}

func (g *Gossip) probeRetry(addr string, now time.Time, failed bool) {
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	p := g.probes[addr]
	if p == nil {
		return
	}
	p.trying = false
	if !failed && p.next.After(now) {
		return
	}
	p.next = now.Add(jitter(p.backoff))
	if failed {
		p.backoff = min(2*p.backoff, g.cfg.ReconnectMaxBackoff)
	}
}

// resolver turns join addresses with a host name into host:port with the
// name's first address, so that they can be matched against live members.
// Answers are kept for a minute; an address holding an IP, or a name that
// does not resolve, is returned as given. Only the reconnect loop uses it.
type resolver struct {
	mu    sync.Mutex
	cache map[string]resolvedAddr
}

type resolvedAddr struct {
	addr string
	at   time.Time
}

func (r *resolver) resolve(addr string, now time.Time) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || net.ParseIP(host) != nil {
		return addr
	}
	r.mu.Lock()
	c, ok := r.cache[addr]
	r.mu.Unlock()
	if ok && now.Sub(c.at) < time.Minute {
		return c.addr
	}
	out := addr
	if ips, err := net.LookupIP(host); err == nil && len(ips) > 0 {
		out = net.JoinHostPort(ips[0].String(), port)
	}
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]resolvedAddr{}
	}
	r.cache[addr] = resolvedAddr{addr: out, at: now}
	r.mu.Unlock()
	return out
}

// cached returns what resolve last returned for addr, without a lookup
// (addr itself if never resolved).
func (r *resolver) cached(addr string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cache[addr]; ok {
		return c.addr
	}
	return addr
}

// Members remembered across restarts (like Serf's snapshot): the live and
// failed members, written to the store's node-local keys when membership
// changes (at most once per reconnect tick), read at start. A node that
// restarts thereby knows whom to rejoin even without join addresses (the
// first node of a cluster), and that it has peers to catch up from.
const snapshotKey = "gossip/members"

type snapshot struct {
	Members []snapshotMember `json:"members"`
}

type snapshotMember struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	Seen int64  `json:"seen"` // Unix ms when last known alive
}

// loadSnapshot fills remembered from the store.
func (g *Gossip) loadSnapshot() {
	b, err := g.store.LocalGet(snapshotKey)
	if errors.Is(err, session.ErrNotFound) {
		return
	}
	var s snapshot
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		g.log.Warn("read the remembered members; starting without them", "err", err)
		return
	}
	now := g.store.Now()
	// The transport is already accepting streams, and its guard reads
	// remembered (knownAddr): write under the lock it reads with.
	g.failedMu.Lock()
	defer g.failedMu.Unlock()
	for _, m := range s.Members {
		seen := time.UnixMilli(m.Seen)
		if m.Name == "" || m.Name == g.cfg.Name || m.Addr == "" || now.Sub(seen) > g.cfg.ReconnectTimeout {
			continue
		}
		g.remembered[m.Name] = m.Addr
		g.rememberedSeen[m.Name] = seen
	}
}

// snapshotMembers writes the members if they changed.
func (g *Gossip) snapshotMembers() {
	if !g.snapshotDirty.Swap(false) {
		return
	}
	now := g.store.Now().UnixMilli()
	var s snapshot
	g.nodesMu.RLock()
	for _, n := range g.nodes {
		if n.Name != g.cfg.Name {
			s.Members = append(s.Members, snapshotMember{Name: n.Name, Addr: addrOf(&n), Seen: now})
		}
	}
	g.nodesMu.RUnlock()
	g.failedMu.Lock()
	for name, f := range g.failed {
		if !f.left {
			s.Members = append(s.Members, snapshotMember{Name: name, Addr: f.member.Addr, Seen: f.since.UnixMilli()})
		}
	}
	for name, a := range g.remembered {
		if _, failed := g.failed[name]; !failed {
			s.Members = append(s.Members, snapshotMember{Name: name, Addr: a, Seen: g.rememberedSeen[name].UnixMilli()})
		}
	}
	g.failedMu.Unlock()
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].Name < s.Members[j].Name })
	b, err := json.Marshal(s)
	if err == nil {
		err = g.store.LocalPut(snapshotKey, b, 0)
	}
	if err != nil && !errors.Is(err, session.ErrClosed) {
		g.snapshotDirty.Store(true)
		if errors.Is(err, session.ErrStorageFull) {
			g.logOnce("storage full: snapshot", func() { g.log.Warn("remember the members: the store is full (logged once a minute)", "err", err) })
		} else {
			g.log.Warn("remember the members", "err", err)
		}
	}
}
