package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ussync/ussync/session"
)

// bestEffortMax is the largest eager push sent as one UDP packet; larger
// batches go over TCP. It stays under memberlist's 1400-byte UDP buffer
// with room for the encryption and compression headers.
const bestEffortMax = 1100

// inboxDepth bounds the messages waiting for the apply loop. A full inbox
// drops (and counts) rather than block memberlist; anti-entropy repairs.
const inboxDepth = 8192

// Member is one cluster member as this node sees it.
type Member struct {
	Name    string
	Addr    string // host:port
	State   string // alive, suspect, dead, left
	SiteURL string
	Version string
	// Site is what the member last reported of its own website: SiteUp,
	// SiteDown, or "" (it reports nothing). SiteFresh: that report arrived
	// within three of its periods, by this member's clock (sitehealth.go).
	Site      string
	SiteFresh bool
	// Queries: the member answers queries (Query); older versions do not.
	Queries bool
	// Handoff is the browser hand-off protocol version the member's site
	// speaks (Config.Handoff); 0 for a member that advertises none (a
	// version before the field). It is a capability, like Queries: the
	// member is a full gossip member whatever it is.
	Handoff int
}

// Stats are counters since the node started.
type Stats struct {
	DeltasSent      uint64 // eager-push messages sent (one per peer per batch)
	RecordsPushed   uint64 // records handed to Publish
	DeltasReceived  uint64 // records received in delta messages
	DeltasApplied   uint64 // received records that changed the store
	Rebroadcasts    uint64 // records re-queued for gossip
	BadMessages     uint64 // malformed or oversized messages dropped, and answers to this member's rounds by leaves refused
	Dropped         uint64 // messages or anti-entropy work dropped because a queue was full
	AERounds        uint64 // push/pull digests compared
	BucketsRepaired uint64 // differing buckets pulled from a peer
	BucketsByLeaf   uint64 // of those, the buckets pulled by their leaves (kindLeaves, aeProto 4)
	PairsSent       uint64 // (key hash, record hash) pairs sent: in pulls, and in answers to pulls by leaves
	RecordsRepaired uint64 // records sent by anti-entropy
	LastAERound     time.Time
	BytesSent       uint64 // all gossip bytes written (packets and streams)
	Reconnects      uint64 // successful re-joins of failed members, join addresses, remembered members
	Duplicates      uint64 // delta messages dropped unread: a copy of one taken moments before
	PushRetries     uint64 // pushes sent again: not acknowledged in time, or their stream failed
	PushesGivenUp   uint64 // pushes never acknowledged after every try, or held when their member failed or left; left to gossip and anti-entropy

	// Anti-entropy rounds (doc.go, "Anti-entropy rounds").
	RoundsCompleted uint64 // rounds this node completed: repairs applied, or digests equal
	RoundsFailed    uint64 // rounds given up (no answer in time, a step not sent or dropped); each is retried
	Resyncs         uint64 // push/pulls started to hold a round owed (member back, moved, catch-up, retry)
	CatchUps        uint64 // catch-ups completed (see Health)

	// Traffic without the cluster key (guard.go).
	ForeignPackets  uint64 // inbound packets no installed key decrypts, dropped
	ForeignStreams  uint64 // inbound streams not encrypted, undecryptable or over the size limit
	ForeignAnswers  uint64 // answers, on streams this node opened, sealed in another key
	StreamsRefused  uint64 // inbound streams closed at once: over MaxInboundStreams or MaxStrangerStreams
	StreamsTooLarge uint64 // streams whose first message was over the size limit
	NameReclaims    uint64 // members followed to a new address (reclaim.go)

	// Containment and clocks.
	RevokedAlive   uint64 // alive messages about a member whose site is revoked, ignored (delegate.go)
	RecordsRefused uint64 // records from peers the store refused (RefusedFrom has them by peer)
}

// meta is what a node advertises in memberlist's metadata (≤ 512 bytes).
type meta struct {
	SiteURL string `json:"site"`
	Version string `json:"ver"`
	// Leaving is set just before a graceful leave: memberlist's NotifyLeave
	// does not say whether a member left or died (Node.State is not filled
	// in), so the departing node says it in its metadata.
	Leaving bool `json:"leaving,omitempty"`
	// Site, Beat and Every are the site's health (sitehealth.go): its
	// state, a counter that changes at every report, and the period
	// between reports in milliseconds.
	Site  string `json:"ss,omitempty"`
	Beat  uint64 `json:"hb,omitempty"`
	Every int64  `json:"ev,omitempty"`
	// Queries: this member answers queries (query.go).
	Queries bool `json:"q,omitempty"`
	// Handoff is Config.Handoff: the hand-off protocol version of the
	// member's site.
	Handoff int `json:"ho,omitempty"`
	// Acks: this member acknowledges pushes (kindPush, kindAck); a member
	// that does not say so gets kindDelta pushes, unacknowledged.
	Acks bool `json:"pa,omitempty"`
}

// ownMeta is the metadata this member advertises, before its site state
// (SetSite) or its leaving (Leave) is added.
func (c *Config) ownMeta() meta {
	return meta{SiteURL: c.SiteURL, Version: c.Version, Queries: true, Handoff: c.Handoff, Acks: !c.noAcks}
}

// Gossip is one running member. It is safe for concurrent use.
type Gossip struct {
	cfg   Config
	store *session.Store
	log   *slog.Logger
	list  *memberlist.Memberlist
	trans *transport
	guard *guard
	queue *memberlist.TransmitLimitedQueue
	meta  atomic.Pointer[[]byte]
	// metaMu serializes changes of meta; beat counts site reports.
	metaMu sync.Mutex
	beat   uint64
	// keyring is memberlist's: changing it changes the keys in use.
	keyring *memberlist.Keyring

	inbox      chan []byte
	repairs    chan repairBatch // from the apply loop to the repair loop
	recent     *recentMessages  // the apply loop's
	aeq        *aeQueue
	rounds     *roundBook
	resyncs    *resyncBook
	ready      readiness
	foreign    *foreignLog
	clocks     *clockBook
	refusals   *refusalBook
	conflictCh chan conflict
	addr       string // this member's advertised host:port

	// answerRefusals counts and logs, by peer, the answers to this
	// member's rounds by leaves that were refused (refuseAnswer).
	answerRefusals *refusalBook

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	peersMu sync.Mutex
	peers   map[string]*peer

	// nodes are copies of the live members, taken inside memberlist's event
	// callbacks (which hold its lock): the *Node values memberlist hands out
	// elsewhere are updated under its lock and cannot be read safely. moved
	// names the members followed to a new address before memberlist agrees
	// (reclaim.go).
	nodesMu sync.RWMutex
	nodes   map[string]memberlist.Node
	// membersVer moves at every change of nodes, after it (MembersVersion).
	membersVer atomic.Uint64
	moved      map[string]string
	beats      map[string]beatSeen // by name: when each member's site report last changed (sitehealth.go)
	acking     map[string]bool     // by name: the member acknowledges pushes (meta.Acks)

	// failed are the members that died or left; remembered those read from
	// the last run's snapshot and not seen yet, with when they were last
	// seen; probes the reconnect state of join addresses and remembered
	// members.
	failedMu       sync.Mutex
	failed         map[string]*failedMember
	remembered     map[string]string
	rememberedSeen map[string]time.Time
	probes         map[string]*probe
	resolver       resolver
	snapshotDirty  atomic.Bool
	// storageOwed counts the applies the store refused for a full disk
	// since it last accepted writes; the maintain loop zeroes it once the
	// store accepts writes again (resync.go, storageBack).
	storageOwed atomic.Uint64

	queries *queryBook // queries asked and to answer (query.go)

	// Acknowledgements of pushes wait ackDelay to go out together
	// (queueAcks).
	acksMu    sync.Mutex
	acksDue   map[string][]uint64 // by sender
	acksArmed bool

	logMu  sync.Mutex
	logged map[string]time.Time

	// proto is the anti-entropy protocol this member announces: aeProto,
	// or 1 in tests that play a member of an older version.
	proto atomic.Uint32

	stats struct {
		deltasSent, recordsPushed, deltasReceived, deltasApplied, rebroadcasts atomic.Uint64
		bad, dropped, aeRounds, bucketsRepaired, recordsRepaired, reconnects   atomic.Uint64
		roundsCompleted, roundsFailed, resyncs, catchUps, reclaims             atomic.Uint64
		revokedAlive, recordsRefused, duplicates                               atomic.Uint64
		pushRetries, pushesGivenUp, bucketsByLeaf, pairsSent                   atomic.Uint64
		lastAE, lastPull                                                       atomic.Int64
	}
	closeOnce sync.Once
	left      atomic.Bool
	closing   atomic.Bool
}

// New creates the member: it binds the gossip port (an error if it is in
// use) and starts its loops, but joins nobody; call Join. A member that has
// peers to ask (join addresses, or members remembered in store from its
// last run) starts catching up (see Health).
func New(cfg Config, store *session.Store) (*Gossip, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	mc, err := cfg.memberlistConfig()
	if err != nil {
		return nil, err
	}
	cfg.fill(mc)
	md, err := json.Marshal(cfg.ownMeta())
	if err != nil || len(md) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, over %d: shorten the site URL", len(md), memberlist.MetaMaxSize)
	}
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: memberlistLog(cfg.Logger, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("listen for gossip on %s: %w", cfg.BindAddr, err)
	}
	if mc.BindPort == 0 {
		mc.BindPort = nt.GetAutoBindPort()
		if mc.AdvertisePort == 0 {
			mc.AdvertisePort = mc.BindPort
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gossip{
		cfg: cfg, store: store, log: cfg.Logger,
		inbox:    make(chan []byte, inboxDepth),
		repairs:  make(chan repairBatch, repairDepth),
		recent:   newRecentMessages(),
		aeq:      newAEQueue(),
		rounds:   newRoundBook(),
		resyncs:  newResyncBook(cfg.ResyncInterval, cfg.ResyncMaxBackoff),
		foreign:  newForeignLog(cfg.Logger, time.Now),
		clocks:   newClockBook(),
		refusals: newRefusalBook(recordsRefused),
		ctx:      ctx, cancel: cancel,
		answerRefusals: newRefusalBook(answersRefused),
		conflictCh:     make(chan conflict, 16),
		peers:          map[string]*peer{},
		failed:         map[string]*failedMember{},
		remembered:     map[string]string{},
		rememberedSeen: map[string]time.Time{},
		probes:         map[string]*probe{},
		nodes:          map[string]memberlist.Node{},
		beats:          map[string]beatSeen{},
		acking:         map[string]bool{},
		moved:          map[string]string{},
		logged:         map[string]time.Time{},
		queries:        newQueryBook(),
	}
	if g.guard, err = newGuard(cfg.Keys, cfg.MaxInboundStreams, cfg.MaxStrangerStreams, mc.TCPTimeout, g.knownIP, g.foreign); err != nil {
		cancel()
		nt.Shutdown()
		return nil, err
	}
	g.trans = newTransport(nt, cfg.Faults, g.guard)
	g.meta.Store(&md)
	g.proto.Store(aeProto)
	g.keyring = mc.Keyring
	mc.Transport = g.trans
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Conflict = (*conflicts)(g)
	mc.Ping = (*pinger)(g)
	mc.Alive = (*aliveFilter)(g)
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.Logger = memberlistLog(cfg.Logger, g.closing.Load)
	// memberlist calls the queue's NumNodes, and LocalState reads g.addr, from
	// its listeners and its gossip ticker, which memberlist.Create starts
	// before it returns: both are set here, before it, or read atomically.
	var created atomic.Pointer[memberlist.Memberlist]
	g.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult, NumNodes: func() int {
		if l := created.Load(); l != nil {
			return l.NumMembers()
		}
		return 1
	}}
	// The address memberlist advertises for this node (its setAlive asks the
	// transport the same question).
	ip, port, err := g.trans.FinalAdvertiseAddr(mc.AdvertiseAddr, mc.AdvertisePort)
	if err != nil {
		cancel()
		g.trans.Shutdown()
		return nil, fmt.Errorf("gossip advertise address: %w", err)
	}
	g.addr = net.JoinHostPort(ip.String(), strconv.Itoa(port))
	g.loadSnapshot()
	g.ready.aloneSince = time.Now()
	list, err := memberlist.Create(mc)
	if err != nil {
		cancel()
		g.trans.Shutdown()
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	g.list = list
	created.Store(list)
	for _, a := range cfg.Join {
		g.resolver.resolve(a, time.Now()) // a join list may name this node itself
	}
	if g.peersToReach() {
		g.startCatchUp(CatchUpStarting)
	}
	g.wg.Add(6 + aeWorkers)
	go g.queryLoop()
	go g.applyLoop()
	go g.repairLoop()
	go g.maintainLoop()
	go g.reconnectLoop()
	go g.reclaimLoop()
	for range aeWorkers {
		go g.aeWorker()
	}
	return g, nil
}

// Addr is the host:port this member advertises (it does not change).
func (g *Gossip) Addr() string { return g.addr }

// Join contacts the given members and returns how many answered. An error
// means none did; the reconnect loop keeps trying the configured addresses
// while this node is alone.
func (g *Gossip) Join(addrs []string) (int, error) {
	if len(addrs) == 0 {
		return 0, nil
	}
	var to []string
	for _, a := range addrs {
		if !g.cfg.Faults.message(KindPushPull, a) {
			to = append(to, a)
		}
	}
	if len(to) == 0 {
		return 0, fmt.Errorf("join %v: %w", addrs, errFault)
	}
	n, err := g.list.Join(to)
	if err != nil && n == 0 {
		return 0, fmt.Errorf("join %v: %w", addrs, err)
	}
	return n, nil
}

// Publish sends locally changed records to every live member at once and
// queues them for gossip. It never blocks on the network; it is a no-op
// after Close. Records that must not travel (local sessions) are skipped.
func (g *Gossip) Publish(recs []session.Record) { g.publish(recs, nil) }

// PublishWithDeltas is Publish of whole, and of deltas, delta states (e.g.
// session.RevocationDelta): records that join into a replica's state like
// the change they carry but lack the rest of the record. Both go in one
// push to each member, deltas first. In gossip's queue a delta neither
// replaces a queued state of its record nor is replaced by one (a newer
// delta of the record replaces it): a delta does not hold what an earlier
// state still queued carries.
func (g *Gossip) PublishWithDeltas(whole, deltas []session.Record) { g.publish(whole, deltas) }

// deltaKey ends the gossip-queue key of a delta state (PublishWithDeltas).
const deltaKey = "\x00delta"

// publish pushes deltas then whole, in one batch, and queues each for
// gossip.
func (g *Gossip) publish(whole, deltas []session.Record) {
	if g.ctx.Err() != nil {
		return
	}
	encs := make([][]byte, 0, len(whole)+len(deltas))
	for i, r := range slices.Concat(deltas, whole) {
		if !r.Replicated() {
			continue
		}
		enc := encodeRecord(r)
		encs = append(encs, enc)
		key := r.Key()
		if i < len(deltas) {
			key += deltaKey
		}
		g.queueBroadcast(key, enc)
	}
	if len(encs) == 0 {
		return
	}
	g.stats.recordsPushed.Add(uint64(len(encs)))
	if g.cfg.NoEagerPush {
		return // gossip alone (benchmarks)
	}
	g.nodesMu.RLock()
	names := make([]string, 0, len(g.nodes))
	for name := range g.nodes {
		if name != g.cfg.Name {
			names = append(names, name)
		}
	}
	g.nodesMu.RUnlock()
	for _, name := range names {
		g.peer(name).push(encs)
	}
}

// smallReceived returns the encoding of the latest state of key among
// recs that fits in a packet, if any. memberlist never gossips a broadcast
// larger than a packet, and a user many sites know outgrows one (about 55
// bytes a site); a state a member pushed, often a delta
// (PublishWithDeltas), may still fit, and any state received joins safely
// wherever it is sent on.
func smallReceived(recs []session.Record, key string) ([]byte, bool) {
	for i := len(recs) - 1; i >= 0; i-- { // the last received first: likely the latest
		if r := recs[i]; r.Key() == key {
			if enc := encodeRecord(r); len(enc) <= bestEffortMax {
				return enc, true
			}
		}
	}
	return nil, false
}

// queueBroadcast puts one record into memberlist's gossip; a newer state of
// the same record replaces a queued older one.
func (g *Gossip) queueBroadcast(key string, enc []byte) {
	g.queue.QueueBroadcast(&broadcast{key: key, msg: encodeRecords(kindDelta, g.cfg.Name, [][]byte{enc})})
	if g.cfg.MaxQueueDepth > 0 && g.queue.NumQueued() > g.cfg.MaxQueueDepth {
		g.queue.Prune(g.cfg.MaxQueueDepth)
	}
}

// Members lists every member this node knows, itself included: the live ones
// from memberlist and the failed or departed ones it remembers.
func (g *Gossip) Members() []Member {
	out := g.LiveMembers()
	seen := map[string]bool{}
	for _, m := range out {
		seen[m.Name] = true
	}
	g.failedMu.Lock()
	for name, f := range g.failed {
		if !seen[name] {
			out = append(out, f.member)
		}
	}
	g.failedMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LiveMembers lists the members that are alive (or suspect: memberlist
// reports no change until it declares a member dead), this node included.
func (g *Gossip) LiveMembers() []Member {
	g.nodesMu.RLock()
	out := make([]Member, 0, len(g.nodes))
	for _, n := range g.nodes {
		m := memberOf(&n, "alive")
		if m.Site != "" {
			var md meta
			_ = json.Unmarshal(n.Meta, &md)
			m.SiteFresh = n.Name == g.cfg.Name || g.siteFreshLocked(n.Name, time.Duration(md.Every)*time.Millisecond)
		}
		out = append(out, m)
	}
	g.nodesMu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func memberOf(n *memberlist.Node, state string) Member {
	var md meta
	_ = json.Unmarshal(n.Meta, &md) // a peer's bad metadata shows as empty fields
	return Member{Name: n.Name, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), State: state, SiteURL: md.SiteURL, Version: md.Version, Site: md.Site, Queries: md.Queries, Handoff: md.Handoff}
}

// MembersVersion is a number that changes whenever the live members or
// their metadata (site URL, version, site state) change: a copy of
// LiveMembers taken after reading it is current while it has not moved.
// Only what depends on time (Member.SiteFresh) may go stale without it
// moving.
func (g *Gossip) MembersVersion() uint64 { return g.membersVer.Load() }

// QueuedBroadcasts is the number of records waiting in memberlist's gossip
// queue (each is sent a few more times before it leaves the queue).
func (g *Gossip) QueuedBroadcasts() int { return g.queue.NumQueued() }

// Stats returns the counters.
func (g *Gossip) Stats() Stats {
	s := Stats{
		DeltasSent:      g.stats.deltasSent.Load(),
		RecordsPushed:   g.stats.recordsPushed.Load(),
		DeltasReceived:  g.stats.deltasReceived.Load(),
		DeltasApplied:   g.stats.deltasApplied.Load(),
		Rebroadcasts:    g.stats.rebroadcasts.Load(),
		BadMessages:     g.stats.bad.Load(),
		Dropped:         g.stats.dropped.Load(),
		AERounds:        g.stats.aeRounds.Load(),
		BucketsRepaired: g.stats.bucketsRepaired.Load(),
		BucketsByLeaf:   g.stats.bucketsByLeaf.Load(),
		PairsSent:       g.stats.pairsSent.Load(),
		RecordsRepaired: g.stats.recordsRepaired.Load(),
		BytesSent:       g.trans.sent.Load(),
		Reconnects:      g.stats.reconnects.Load(),
		Duplicates:      g.stats.duplicates.Load(),
		PushRetries:     g.stats.pushRetries.Load(),
		PushesGivenUp:   g.stats.pushesGivenUp.Load(),
		RoundsCompleted: g.stats.roundsCompleted.Load(),
		RoundsFailed:    g.stats.roundsFailed.Load(),
		Resyncs:         g.stats.resyncs.Load(),
		CatchUps:        g.stats.catchUps.Load(),
		ForeignPackets:  g.foreign.packets.Load(),
		ForeignStreams:  g.foreign.streams.Load(),
		ForeignAnswers:  g.foreign.answers.Load(),
		StreamsRefused:  g.guard.streamsBusy.Load(),
		StreamsTooLarge: g.guard.streamsTooLarge.Load(),
		NameReclaims:    g.stats.reclaims.Load(),
		RevokedAlive:    g.stats.revokedAlive.Load(),
		RecordsRefused:  g.stats.recordsRefused.Load(),
	}
	if ms := g.stats.lastAE.Load(); ms != 0 {
		s.LastAERound = time.UnixMilli(ms).UTC()
	}
	return s
}

// SyncWith runs one push/pull exchange with the member at addr now, as the
// periodic anti-entropy would (the join handshake is a push/pull). The
// round it starts completes later, when its repairs are applied.
func (g *Gossip) SyncWith(addr string) error {
	if err := g.pushPull(addr); err != nil {
		return fmt.Errorf("sync with %s: %w", addr, err)
	}
	return nil
}

// UpdateKeys installs a new set of gossip keys, primary first (key rotation).
func (g *Gossip) UpdateKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return errors.New("update keys: none given")
	}
	kr := g.keyring // shared with memberlist, which reads it per message
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return fmt.Errorf("update keys: %w", err)
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return fmt.Errorf("update keys: %w", err)
	}
	// The guard accepts the new keys before the old ones go.
	if err := g.guard.keys.set(kr.GetKeys()); err != nil {
		return fmt.Errorf("update keys: %w", err)
	}
	keep := map[string]bool{}
	for _, k := range keys {
		keep[string(k)] = true
	}
	for _, k := range kr.GetKeys() {
		if !keep[string(k)] {
			if err := kr.RemoveKey(k); err != nil {
				return fmt.Errorf("update keys: %w", err)
			}
		}
	}
	if err := g.guard.keys.set(kr.GetKeys()); err != nil {
		return fmt.Errorf("update keys: %w", err)
	}
	return nil
}

// Leave tells the cluster this node is going, waiting up to timeout for the
// message to go out. It is idempotent.
func (g *Gossip) Leave(timeout time.Duration) error {
	if g.left.Swap(true) {
		return nil
	}
	g.metaMu.Lock()
	m := g.cfg.ownMeta()
	m.Leaving = true
	md, err := json.Marshal(m)
	if err == nil {
		g.meta.Store(&md)
	}
	g.metaMu.Unlock()
	if err == nil {
		if err := g.list.UpdateNode(timeout); err != nil {
			g.log.Debug("announce leaving", "err", err)
		}
		g.pushLeaving(timeout)
	}
	if err := g.list.Leave(timeout); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// pushLeaving pushes this member's state, its metadata saying it leaves,
// to every live member over TCP (a push/pull each, at once), waiting for
// them at most timeout. Peers tell a departure from a failure by that
// metadata alone: memberlist marks a member that sent its own dead message
// left, but never says so (NotifyLeave's Node carries no state), and the
// alive message that carries the metadata (UpdateNode) is gossiped by UDP
// with no delivery guarantee. A peer that heard the dead message first
// took the departure for a failure and chased the member (seen under load:
// TestGossip_LeaveIsNotFailure).
func (g *Gossip) pushLeaving(timeout time.Duration) {
	var wg sync.WaitGroup
	for _, m := range g.LiveMembers() {
		if m.Name == g.cfg.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.pushPull(m.Addr); err != nil {
				g.log.Debug("announce leaving", "peer", m.Name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// Close stops the loops and memberlist. It does not leave: a node that
// closes without Leave is seen as failed and retried. It is idempotent.
func (g *Gossip) Close() error {
	var err error
	g.closeOnce.Do(func() {
		g.closing.Store(true)
		g.cancel()
		g.aeq.close()
		g.peersMu.Lock()
		for _, p := range g.peers {
			p.stop()
		}
		g.peersMu.Unlock()
		err = g.list.Shutdown()
		g.wg.Wait()
		g.snapshotDirty.Store(true)
		g.snapshotMembers()
	})
	return err
}

// applyLoop applies what peers send, in batches: one store transaction for
// everything waiting.
func (g *Gossip) applyLoop() {
	defer g.wg.Done()
	var batch [][]byte
	for {
		select {
		case <-g.ctx.Done():
			return
		case b := <-g.inbox:
			batch = append(batch[:0], b)
		}
	drain:
		for len(batch) < 512 {
			select {
			case b := <-g.inbox:
				batch = append(batch, b)
			default:
				break drain
			}
		}
		g.applyBatch(batch)
	}
}

func (g *Gossip) applyBatch(batch [][]byte) {
	var deltas, repairs []session.Record
	var deltaFrom, repairFrom []string // the sender of each record
	var tags []repairTag
	var acks map[string][]uint64 // pushes to acknowledge, by sender
	var taken [][]byte           // the delta messages remembered as seen
	ack := func(b []byte) {
		if seq, from, _, ok := pushHeader(b); ok {
			if acks == nil {
				acks = map[string][]uint64{}
			}
			acks[from] = append(acks[from], seq)
		}
	}
	for _, b := range batch {
		if g.cfg.noAcks && len(b) > 1 && (kind(b[1]) == kindPush || kind(b[1]) == kindAck) {
			g.stats.bad.Add(1) // an older version knows neither kind: dropped, counted
			continue
		}
		if len(b) > 1 && (kind(b[1]) == kindDelta || kind(b[1]) == kindPush) {
			if g.recent.seen(b) {
				// A copy of a packet already taken (PacketCopies), or the
				// same message gossiped again by its sender (messages name
				// their sender, so another member's copy is decoded):
				// nothing to learn. A push is acknowledged again, under
				// this copy's number (a try sent again has a new one): the
				// sender may have lost the first acknowledgement.
				g.stats.duplicates.Add(1)
				ack(b)
				continue
			}
			taken = append(taken, b)
		}
		m, err := decodeMessage(b)
		if err != nil {
			g.stats.bad.Add(1)
			g.log.Warn("drop bad gossip message", "err", err, "bytes", len(b))
			continue // never acknowledged
		}
		ack(b)
		switch m.kind {
		case kindDelta, kindPush:
			deltas = append(deltas, m.records...)
			for range m.records {
				deltaFrom = append(deltaFrom, m.from)
			}
		case kindRepair:
			repairs = append(repairs, m.records...)
			for range m.records {
				repairFrom = append(repairFrom, m.from)
			}
			if m.tag != nil {
				tags = append(tags, *m.tag)
			}
		case kindHashes, kindPull, kindLeaves, kindLeafPull:
			if !g.aeq.add(m) {
				g.stats.dropped.Add(1) // the peer's round times out, and it retries
			}
		case kindDiffer:
			if !g.aeq.add(m) {
				// A round of this member's own cannot complete: retry it now
				// rather than wait for its timeout.
				g.stats.dropped.Add(1)
				if r := g.rounds.removeWith(m.tag.Round, m.from); r != nil {
					g.failRound(r, "a peer's answer was dropped: the anti-entropy queue was full")
				}
			}
		case kindQuery:
			g.receiveQuery(*m.query)
		case kindAnswer:
			g.receiveAnswer(*m.answer)
		case kindAck:
			g.peersMu.Lock()
			p := g.peers[m.from]
			g.peersMu.Unlock()
			if p != nil {
				p.acked(m.acks, time.Now())
			}
		default:
			g.stats.bad.Add(1)
		}
	}
	applied := true
	g.stats.deltasReceived.Add(uint64(len(deltas)))
	if len(deltas) > 0 {
		// The store's encoding of what changed is the wire's (encodeRecord
		// is json.Marshal too): rebroadcast it without encoding it again.
		changed, encs, refused, err := g.store.ApplyEncoded(deltas...)
		if err != nil {
			g.applyFailed("apply gossip", err)
			// Not acknowledged, and forgotten as seen: the senders' next
			// copies are applied, not dropped as duplicates (and then
			// acknowledged unapplied).
			applied = false
			for _, b := range taken {
				g.recent.forget(b)
			}
		}
		g.noteRefusals(deltaFrom, refused)
		g.stats.deltasApplied.Add(uint64(len(changed)))
		for i, r := range changed {
			if len(encs[i]) > bestEffortMax {
				if d, ok := smallReceived(deltas, r.Key()); ok {
					g.queueBroadcast(r.Key()+deltaKey, d)
					continue
				}
			}
			g.queueBroadcast(r.Key(), encs[i])
		}
		g.stats.rebroadcasts.Add(uint64(len(changed)))
		if g.cfg.Observer != nil && len(changed) > 0 {
			g.cfg.Observer(changed)
		}
	}
	if applied {
		g.queueAcks(acks)
	}
	if len(repairs) > 0 || len(tags) > 0 {
		select {
		case g.repairs <- repairBatch{recs: repairs, from: repairFrom, tags: tags}:
		case <-g.ctx.Done():
		}
	}
}

// repairDepth is how many decoded batches of repairs wait for the repair
// loop: one, so that the apply loop decodes the next batch (a tenth of a
// catch-up's CPU) while the store merges this one, and pushes and gossip
// are applied meanwhile instead of waiting behind tens of thousands of
// repaired records. Past it the apply loop waits: a catch-up holds at most
// this batch, the one being applied and the one being decoded in memory.
const repairDepth = 1

// repairBatch is the repairs of one batch of messages, decoded: the
// records, the sender of each, and the round tags of their chunks.
type repairBatch struct {
	recs []session.Record
	from []string
	tags []repairTag
}

// repairLoop applies the repairs the apply loop decoded, in order, and
// counts each chunk applied to its round once its records are in the store.
func (g *Gossip) repairLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case b := <-g.repairs:
			g.applyRepairs(b)
		}
	}
}

func (g *Gossip) applyRepairs(b repairBatch) {
	// ApplyRepairs leaves them out of the store's record cache: a
	// catch-up's hundreds of thousands of records would evict the sessions
	// checks are reading, for records nobody reads yet.
	changed, refused, err := g.store.ApplyRepairs(b.recs...)
	if err != nil {
		// Nothing of the batch was applied, so none of its rounds can
		// complete: each is failed now and owed again (rather than left
		// to time out), once space returns for a full disk.
		g.applyFailed("apply repair", err)
		for _, t := range b.tags {
			g.roundFailed(t.Round, "the store refused its repairs")
		}
		return
	}
	g.noteRefusals(b.from, refused)
	if g.cfg.Observer != nil && len(changed) > 0 {
		g.cfg.Observer(changed)
	}
	for _, t := range b.tags {
		g.repairApplied(t)
	}
}

// applyFailed logs a store's refusal of received records: at once, but
// once a minute for a full disk (every message would say it; the store
// logs it too). A full disk also makes this member catch up: it owes itself
// a round with a live member, started as soon as the store accepts writes
// again and retried until one completes (resync.go, storageBack), so what
// it refused comes back at once rather than with the next periodic
// push/pull.
func (g *Gossip) applyFailed(what string, err error) {
	if errors.Is(err, session.ErrStorageFull) {
		g.storageOwed.Add(1)
		g.startCatchUp(CatchUpStorageFull)
		g.logOnce("storage full", func() {
			g.log.Warn(what+": the store is full; this node catches up by anti-entropy once space is freed (logged once a minute)", "err", err)
		})
		return
	}
	g.log.Error(what, "err", err)
}

// noteRefusals counts and logs, by sender, the records the store refused
// (never merged, never rebroadcast: a refused record stops here). from is
// the sender of each record applied, in order.
func (g *Gossip) noteRefusals(from []string, refused []session.Refusal) {
	if len(refused) == 0 {
		return
	}
	g.stats.recordsRefused.Add(uint64(len(refused)))
	bySender := map[string][]session.Refusal{}
	for _, r := range refused {
		name := ""
		if r.Index < len(from) {
			name = from[r.Index]
		}
		bySender[name] = append(bySender[name], r)
	}
	now := g.store.Now()
	for name, rs := range bySender {
		g.refusals.add(g.log, name, rs, now)
	}
}

// ackDelay is how long a push's acknowledgement waits for others to the
// same sender, as TCP delays its ACKs: a member that pushes a login to 99
// others otherwise receives 99 packets per login (at N = 100 that tripled
// the origin's CPU per login in the sites bench), and under a burst each
// receiver sends one acknowledgement per ackDelay instead of one per push.
// It stays far below minPushRTO, and the sender's timeout learns it.
const ackDelay = 10 * time.Millisecond

// queueAcks adds acks to those waiting, and sends them all ackDelay after
// the first arrived.
func (g *Gossip) queueAcks(acks map[string][]uint64) {
	if len(acks) == 0 {
		return
	}
	g.acksMu.Lock()
	if g.acksDue == nil {
		g.acksDue = map[string][]uint64{}
	}
	for from, seqs := range acks {
		g.acksDue[from] = append(g.acksDue[from], seqs...)
	}
	arm := !g.acksArmed
	g.acksArmed = true
	g.acksMu.Unlock()
	if arm {
		time.AfterFunc(ackDelay, g.flushAcks)
	}
}

// flushAcks sends the acknowledgements waiting.
func (g *Gossip) flushAcks() {
	g.acksMu.Lock()
	due := g.acksDue
	g.acksDue, g.acksArmed = nil, false
	g.acksMu.Unlock()
	if g.ctx.Err() != nil {
		return
	}
	g.sendAcks(due)
}

// sendAcks acknowledges, in one packet per sender (and per maxAcks), the
// pushes applied; a sender that is not a live member gets none.
func (g *Gossip) sendAcks(acks map[string][]uint64) {
	for from, seqs := range acks {
		node := g.member(from)
		if node == nil || from == g.cfg.Name || len(from) > 255 {
			continue
		}
		for len(seqs) > 0 {
			n := min(len(seqs), maxAcks)
			if err := g.sendBestEffort(KindAck, node, encodeAck(g.cfg.Name, seqs[:n])); err != nil {
				g.log.Debug("acknowledge pushes", "peer", from, "err", err)
			}
			seqs = seqs[n:]
		}
	}
}

// broadcast is one record in memberlist's gossip queue.
type broadcast struct {
	key string
	msg []byte
}

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*broadcast)
	return ok && ob.key == b.key
}
func (b *broadcast) Message() []byte { return b.msg }

// Name makes broadcast a memberlist.NamedBroadcast: queueing a newer state
// of a record replaces the older one by a map lookup instead of a scan of
// the whole queue under its lock (which serialized every login).
func (b *broadcast) Name() string { return b.key }
func (b *broadcast) Finished()    {}
