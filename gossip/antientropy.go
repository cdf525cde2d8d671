package gossip

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ussync/ussync/session"
)

// Anti-entropy runs in rounds; see doc.go ("Anti-entropy rounds") for what
// a round is and when it is complete. The work arrives from memberlist's
// goroutines (a peer's digest, from push/pull) and from the apply loop (a
// peer's pull); it waits per peer, and aeWorkers goroutines take one peer
// at a time, so a slow or dead peer holds one worker, not the others.
const (
	aeWorkers = 4
	// maxAEPeers bounds the peers with work waiting; maxPeerPulls the pulls
	// waiting for one peer (each up to MaxChunkBytes: 256 of them are the
	// pull of four million records). Past either, work is dropped and
	// counted, and the peer's puller retries its round.
	maxAEPeers   = 1024
	maxPeerPulls = 256
)

// aePeer is the anti-entropy work waiting for one peer.
type aePeer struct {
	// answers are the peer's answers to this member's own round
	// (kindDiffer), taken first: behind the peer's pulls, which a worker
	// reads buckets for one after another, a heavy two-way heal would
	// time the round out (and a newer digest, next, is moot while a round
	// with the peer is in flight).
	answers []message
	digest  *message  // the newest digest from the peer: older ones are moot
	pulls   []message // pulls (and legacy hashes) from the peer, in order
	busy    bool      // a worker holds it
	queued  bool      // it is in aeQueue.ready
}

// aeQueue holds the work of every peer.
type aeQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	peers  map[string]*aePeer
	ready  []string
	closed bool
}

func newAEQueue() *aeQueue {
	q := &aeQueue{peers: map[string]*aePeer{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add queues m (a digest, a pull or legacy hashes) from m.from; it reports
// false if the work was dropped.
func (q *aeQueue) add(m message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	p := q.peers[m.from]
	if p == nil {
		if len(q.peers) >= maxAEPeers {
			return false
		}
		p = &aePeer{}
		q.peers[m.from] = p
	}
	switch {
	case m.kind == kindDigest:
		p.digest = &m
	case m.kind == kindDiffer:
		if len(p.answers) >= maxPeerPulls {
			return false
		}
		p.answers = append(p.answers, m)
	default:
		if len(p.pulls) >= maxPeerPulls {
			return false
		}
		p.pulls = append(p.pulls, m)
	}
	if !p.busy && !p.queued {
		p.queued = true
		q.ready = append(q.ready, m.from)
		q.cond.Signal()
	}
	return true
}

// take waits for a peer with work and hands it to the caller, which must
// call done(name) when it has no more. It returns "" once closed.
func (q *aeQueue) take() (string, *aePeer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ready) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return "", nil
	}
	name := q.ready[0]
	q.ready = q.ready[1:]
	p := q.peers[name]
	p.queued, p.busy = false, true
	return name, p
}

// next pops the peer's next piece of work (its answers to this member's
// round first, then its digest, then its pulls), or reports that there is
// none, releasing the peer.
func (q *aeQueue) next(name string, p *aePeer) (message, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case len(p.answers) > 0:
		m := p.answers[0]
		p.answers = p.answers[1:]
		return m, true
	case p.digest != nil:
		m := *p.digest
		p.digest = nil
		return m, true
	case len(p.pulls) > 0:
		m := p.pulls[0]
		p.pulls = p.pulls[1:]
		return m, true
	}
	p.busy = false
	delete(q.peers, name)
	return message{}, false
}

func (q *aeQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// aeWorker runs anti-entropy work, one peer at a time.
func (g *Gossip) aeWorker() {
	defer g.wg.Done()
	for {
		name, p := g.aeq.take()
		if p == nil {
			return
		}
		for {
			m, ok := g.aeq.next(name, p)
			if !ok {
				break
			}
			if g.ctx.Err() != nil {
				continue // drain, release
			}
			switch m.kind {
			case kindDigest:
				g.compare(m)
			case kindPull:
				g.answerPull(m)
			case kindHashes:
				g.answerHashes(m)
			case kindLeaves:
				g.answerLeaves(m)
			case kindDiffer:
				g.receiveDiffer(m)
			case kindLeafPull:
				g.answerLeafPull(m)
			}
		}
	}
}

// peerNode finds where to answer a message: at the address the sender gave
// (it may be a member this node has not re-admitted yet, back from a crash
// whose join is this very push/pull, or one that came back at a new
// address), else where this node knows it.
func (g *Gossip) peerNode(m message) *memberlist.Node {
	if n := nodeAt(m.from, m.addr); n != nil {
		return n
	}
	return g.member(m.from)
}

// compare is the first step of a round: a peer's digest names the buckets
// that differ, and this node pulls them (sends its (key hash, record hash)
// pairs for them, asking for what it lacks; or, for a bucket of many
// records and a peer of aeProto 4, the bucket's leaves: see doc.go, "Pulls
// by leaves"). Equal digests complete the round at once.
func (g *Gossip) compare(m message) {
	g.stats.aeRounds.Add(1)
	g.stats.lastAE.Store(time.Now().UnixMilli())
	if m.from == g.cfg.Name {
		return
	}
	local := g.store.Digest()
	diff := local.Diff(m.digest)
	if len(diff) == 0 {
		g.rounds.drop(m.from)
		g.roundDone(m.from, "digests equal")
		return
	}
	if m.fresh && g.proto.Load() >= 3 && !g.CatchingUp() {
		// The peer started on an empty store and is catching up: it holds
		// nothing this member lacks but what it pushed (digestFlags).
		// Pulling would list every record of every bucket it has begun to
		// fill and have it read them all back, while it is busiest. Once
		// caught up it says so, and the next push/pull compares as usual.
		// A member catching up itself pulls all the same: two nodes
		// started empty together would else wait for each other. (A
		// member of aeProto 2 or older ignores the flag, as before.)
		return
	}
	if g.rounds.pending(m.from) {
		// A round with this peer is under way: it brings what this one
		// would (a catch-up of a large store outlasts push/pull periods).
		// If it stalls it times out and is tried again.
		return
	}
	node := g.peerNode(m)
	if node == nil {
		return
	}
	// A bucket a round with another peer is pulling now comes from there:
	// pulling it twice would double a catch-up's transfer (a newcomer
	// compares the digests of every member it meets while its first round
	// runs). Whatever that round leaves different, the next push/pull finds.
	want := make([]uint8, 0, len(diff))
	for _, b := range diff {
		if m.digest[b] != 0 {
			want = append(want, b)
		}
		// else the peer holds nothing in this bucket (its records XOR to
		// zero with odds of 2^-64): nothing to pull. A new member's
		// digest is all zeros, and a full store's pull would be 16 bytes
		// a record for nothing.
	}
	id, buckets, skipped := g.rounds.claim(m.from, addrOf(node), g.roundTimeout(), want)
	if len(buckets) == 0 {
		if !skipped {
			g.roundDone(m.from, "nothing to pull")
		}
		return
	}
	byLeaf := m.proto >= 4 && g.proto.Load() >= 4
	lb := g.leafBits()
	groups := make([]bucketHashes, 0, len(buckets))
	var leaves []bucketLeaves
	var mine session.LeafHashes
	for _, b := range buckets {
		if byLeaf && lb > 0 && local[b] != 0 {
			// Many records here: their leaves, not their pairs. (A bucket
			// this member holds nothing of is pulled whole by an empty
			// list, as a newcomer's catch-up is.)
			g.store.Leaves(b, &mine)
			leaves = append(leaves, bucketLeaves{bucket: b, bits: lb, hashes: mine.Fold(lb)})
			continue
		}
		entries, err := g.store.BucketEntries(b)
		if err != nil {
			g.rounds.remove(id)
			g.log.Error("read bucket for anti-entropy", "bucket", b, "err", err)
			g.resyncLater(m.from, addrOf(node), resyncRetry)
			return
		}
		hb := bucketHashes{bucket: b, hashes: make(map[uint64]uint64, len(entries))}
		for _, e := range entries {
			hb.hashes[keyHash(e.Key)] = e.Hash
		}
		groups = append(groups, hb)
	}
	g.stats.bucketsRepaired.Add(uint64(len(groups) + len(leaves)))
	g.stats.bucketsByLeaf.Add(uint64(len(leaves)))
	for _, hb := range groups {
		g.stats.pairsSent.Add(uint64(len(hb.hashes)))
	}
	if m.proto < 2 || g.proto.Load() < 2 {
		// A peer of an older version answers without telling when it is
		// done: the round counts once its pull is sent (else a member
		// upgraded first, among busy older peers whose digests always
		// differ a little, would catch up only by chance).
		g.rounds.remove(id) // not a round of the book: nothing will tag its repairs
		if err := g.send(KindPull, node, encodeHashes(g.cfg.Name, g.addr, groups)); err != nil {
			g.resyncLater(m.from, addrOf(node), resyncRetry)
			return
		}
		g.roundDone(m.from, "pull sent to a peer of an older version")
		return
	}
	g.pulled()
	var msgs [][]byte
	if len(leaves) == 0 {
		msgs = encodePull(g.cfg.Name, g.addr, id, groups)
	} else {
		msgs = encodeRound(g.cfg.Name, g.addr, id, groups, leaves)
	}
	first := g.rounds.setParts(id, msgs, node)
	if err := g.send(KindPull, node, first); err != nil {
		g.roundFailed(id, "send pull: "+err.Error())
	}
}

// pullWindow is how many parts of a pull are answered at once: the next
// part goes out when one is applied. A catch-up then holds about two
// parts' records in memory (pullPartBuckets buckets each: 35,000 records
// of a store of a million), not the whole store, which the peer reads
// faster than a new node writes it; and the peer reads one part while the
// node applies the other.
const pullWindow = 2

// sendNextPart sends the next part of a round, once one is applied.
func (g *Gossip) sendNextPart(id uint64, node *memberlist.Node, msg []byte) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.send(KindPull, node, [][]byte{msg}); err != nil {
			g.roundFailed(id, "send pull: "+err.Error())
		}
	}()
}

// answerPull answers one part of a peer's pull round with the records it
// lacks or holds in another state, tagged so that it can count them. The
// chunks go out as the buckets are read, so that the puller sees progress
// early; the last one says how many there were, and is sent even when
// empty.
func (g *Gossip) answerPull(m message) {
	node := g.peerNode(m)
	if node == nil || m.from == g.cfg.Name {
		return
	}
	w := &repairWriter{g: g, node: node, tag: repairTag{Round: m.part.round, Part: m.part.part}}
	for _, hb := range m.buckets {
		entries, err := g.store.BucketEntries(hb.bucket)
		if err != nil {
			g.log.Error("read bucket for repair", "bucket", hb.bucket, "err", err)
			return
		}
		for _, e := range entries {
			if h, ok := hb.hashes[keyHash(e.Key)]; ok && h == e.Hash {
				continue
			}
			if !w.add(e.Enc) {
				return
			}
		}
	}
	w.finish(m.from)
}

// answerLeafPull answers a peer's pull of the leaves that differ
// (kindLeafPull) with the records of those leaves whose state the peer
// neither holds nor covers, tagged with the pull's part of the peer's
// round, as answerPull does.
func (g *Gossip) answerLeafPull(m message) {
	node := g.peerNode(m)
	if node == nil || m.from == g.cfg.Name {
		return
	}
	w := &repairWriter{g: g, node: node, tag: repairTag{Round: m.part.round, Part: m.part.part}}
	for _, p := range m.pulls {
		entries, err := g.store.BucketEntriesFunc(p.bucket, p.holds)
		if err != nil {
			g.log.Error("read bucket for repair", "bucket", p.bucket, "err", err)
			return
		}
		for _, e := range entries {
			kh := keyHash(e.Key)
			if h, ok := p.hashes[kh]; ok && h == e.Hash {
				continue
			}
			if h, ok := p.covers[kh]; ok && h == e.Hash {
				continue // the peer holds a state that dominates this one
			}
			if !w.add(e.Enc) {
				return
			}
		}
	}
	w.finish(m.from)
}

// repairWriter sends records answering one part of a peer's round, in
// tagged chunks of at most MaxChunkBytes, as they are read.
type repairWriter struct {
	g     *Gossip
	node  *memberlist.Node
	tag   repairTag // round and part; the chunk is counted here
	batch [][]byte
	size  int
	sent  int
}

// add queues one record, sending a chunk when full; false: a send failed
// (the puller's round fails or times out, and it retries).
func (w *repairWriter) add(enc []byte) bool {
	if len(w.batch) > 0 && w.size+len(enc)+1 > MaxChunkBytes-16-tagRoom {
		if !w.flush(false) {
			return false
		}
	}
	w.batch = append(w.batch, enc)
	w.size += len(enc) + 1
	return true
}

func (w *repairWriter) flush(last bool) bool {
	tag := w.tag
	if last {
		tag.Chunks = tag.Chunk + 1
	}
	if err := w.g.send(KindRepair, w.node, [][]byte{encodeTagged(kindRepair, w.g.cfg.Name, w.batch, &tag)}); err != nil {
		return false
	}
	w.tag.Chunk++
	w.sent += len(w.batch)
	w.g.stats.recordsRepaired.Add(uint64(len(w.batch)))
	w.batch, w.size = w.batch[:0], 0
	return true
}

// finish sends the last chunk, empty or not.
func (w *repairWriter) finish(peer string) {
	if w.flush(true) && w.sent > 0 {
		w.g.log.Debug("anti-entropy repair sent", "peer", peer, "records", w.sent, "chunks", w.tag.Chunk)
	}
}

// leafMinRecords is how many records a bucket holds, by this member's
// count, before it is pulled by its leaves (aeProto 4): below it, the
// pairs of its records (16 bytes each) cost about what its leaves would,
// without the two more trips a pull by leaves takes.
const leafMinRecords = 64

// leafBits is the resolution at which this member pulls a bucket by its
// leaves, 2^bits of them: about four records a leaf (2 bytes a record,
// where the pairs take 16), between 16 and session.Leaves. 0: by the pairs
// of its records, as a small store does.
func (g *Gossip) leafBits() uint8 {
	users, sessions := g.store.Counts()
	per := (users + sessions) / session.Buckets
	floor := leafMinRecords
	if g.cfg.LeafPullMin > 0 {
		floor = g.cfg.LeafPullMin
	}
	if per < floor {
		return 0
	}
	return uint8(min(max(bits.Len(uint(per/4)), 4), session.LeafBits))
}

// answerLeaves answers one part of a peer's pull by leaves: for each
// bucket, it folds its own leaves to the peer's resolution and names the
// leaves that differ (kindDiffer, tagged with the round and part, one
// chunk). No record is read: the leaves are in memory. The peer then pulls
// those leaves (kindLeafPull).
func (g *Gossip) answerLeaves(m message) {
	node := g.peerNode(m)
	if node == nil || m.from == g.cfg.Name {
		return
	}
	var mine session.LeafHashes
	sets := make([]leafSet, 0, len(m.leaves))
	for _, bl := range m.leaves {
		g.store.Leaves(bl.bucket, &mine)
		set := newLeafSet(bl.bucket, bl.bits)
		for i, h := range mine.Fold(bl.bits) {
			if h != bl.hashes[i] {
				set.add(i)
			}
		}
		sets = append(sets, set)
	}
	tag := repairTag{Round: m.part.round, Part: m.part.part, Chunks: 1}
	_ = g.send(KindRepair, node, [][]byte{encodeDiffer(g.cfg.Name, tag, sets)}) // lost: the puller's round times out
}

// receiveDiffer takes a peer's answer to a part of this member's pull by
// leaves: the leaves that differ. An answer that is not the one the part
// awaits (roundBook.differ) is refused, counted and logged by peer
// (refuseAnswer). It reads its own records of those leaves (scrubbing the
// bucket at once if they do not add up to a leaf it holds in memory:
// session.Store.LeafEntries) and pulls them (kindLeafPull): their pairs,
// and beside each record that provably dominates another state of it
// (session.BucketEntry.Dominates), that state's hash, so that the peer
// sends neither what this member holds nor what it would only discard.
// Split over messages (leafPacker), each numbered as a part of the round
// of its own; with no leaf differing, the part is complete.
func (g *Gossip) receiveDiffer(m message) {
	t := *m.tag
	node, err := g.rounds.differ(m.from, t, m.differ, g.roundTimeout())
	if err != nil {
		g.refuseAnswer(m.from, t.Round, err)
		return
	}
	limit := maxLeafPullBytes
	if g.cfg.leafPullMax > 0 {
		limit = g.cfg.leafPullMax
	}
	k := &leafPacker{limit: limit}
	for _, set := range m.differ {
		entries, err := g.store.LeafEntries(set.bucket, set.bits, set.has)
		if err != nil {
			g.log.Error("read bucket for anti-entropy", "bucket", set.bucket, "err", err)
			g.roundFailed(t.Round, "read bucket: "+err.Error())
			return
		}
		shift := session.LeafBits - set.bits
		byLeaf := map[int][]session.BucketEntry{}
		for _, e := range entries {
			i := int(session.LeafOf(e.Key) >> shift)
			byLeaf[i] = append(byLeaf[i], e)
		}
		for i := range 1 << set.bits {
			if set.has(i) {
				k.add(set.bucket, set.bits, i, byLeaf[i])
			}
		}
	}
	msgs := k.finish()
	first, out, ok := g.rounds.pulling(t.Round, t.Part, len(msgs))
	if !ok {
		return
	}
	wire := make([][]byte, len(msgs))
	for i, ps := range msgs {
		wire[i] = encodeLeafPull(g.cfg.Name, g.addr, t.Round, first+uint32(i), ps)
	}
	if err := g.send(KindPull, node, wire); err != nil {
		g.roundFailed(t.Round, "send leaf pull: "+err.Error())
		return
	}
	g.stats.pairsSent.Add(k.pairs)
	g.partOutcome(t.Round, out)
}

// Refusals of a peer's answer to a part by leaves (kindDiffer), by
// roundBook.differ. Each but errNoRound is counted as a bad message and
// logged by peer (refuseAnswer).
var (
	// errNoRound: the round is not in flight (it timed out, failed or
	// completed, or was never this member's): a late answer, dropped.
	errNoRound = errors.New("no such round in flight")
	// errAnswerSender: the answer names a sender other than the peer the
	// round pulls from; the round goes on.
	errAnswerSender = errors.New("not from the round's peer")
	// errAnswerAgain: the part was answered already; the round goes on.
	errAnswerAgain = errors.New("a part answered already")
	// errAnswerPart: the round has no part by leaves of that number; the
	// round is given up (the peer answers another part than it was asked).
	errAnswerPart = errors.New("no part by leaves of that number")
	// errAnswerBucket: the answer names a bucket the part did not ask, at
	// other bits than the part sent, or twice (each costs a read of the
	// bucket); the round is given up.
	errAnswerBucket = errors.New("a bucket not asked, at other bits, or twice")
)

// refuseAnswer drops an answer to one of this member's rounds that differ
// refused: counted (BadMessages), logged at most once a minute per peer,
// and, when the answer came from the round's peer but cannot complete its
// part, the round given up and tried again, rather than left to time out.
func (g *Gossip) refuseAnswer(from string, round uint64, err error) {
	if errors.Is(err, errNoRound) {
		return
	}
	g.stats.bad.Add(1)
	g.answerRefusals.note(g.log, from, []string{answerReason(err)}, err, time.Now())
	if errors.Is(err, errAnswerPart) || errors.Is(err, errAnswerBucket) {
		g.roundFailed(round, "its answer refused: "+err.Error())
	}
}

// answerReason names a refusal of differ in the log.
func answerReason(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{{errAnswerSender, "sender"}, {errAnswerAgain, "again"}, {errAnswerPart, "part"}, {errAnswerBucket, "bucket"}} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "other"
}

// leafPacker packs the pulls of the leaves that differ into kindLeafPull
// messages of at most limit bytes of buckets (maxLeafPullBytes, under
// MaxMessageBytes with room for the header), leaf by leaf: a leaf goes
// whole into the message being filled, or starts the next.
//
// A leaf whose pairs alone exceed limit (many keys whose KeyHash share
// their top bits: it takes 16,000 in one leaf of one bucket at the
// default) goes over several messages, each naming the leaf with some of
// its pairs. The peer answers each with the leaf's records not listed in
// it, so it sends some the puller holds, as a pull by pairs sends those of
// a bucket split over parts; the merge discards them. Without the split
// the message would be refused by the peer, and that bucket pulled and
// failed every round.
type leafPacker struct {
	limit int
	msgs  [][]leafPull
	cur   []leafPull // the message being filled
	size  int        // its bytes of buckets (leafPullBytes)
	pairs uint64     // pairs packed, covered states included
}

// add packs leaf i (at 2^bits leaves) of bucket, whose records es are.
func (k *leafPacker) add(bucket, bits uint8, i int, es []session.BucketEntry) {
	type pair struct {
		key, hash, cover uint64
		covers           bool
	}
	ps := make([]pair, len(es))
	n := 0
	for j, e := range es {
		ps[j] = pair{key: keyHash(e.Key), hash: e.Hash}
		ps[j].cover, ps[j].covers = e.Dominates()
		n++
		if ps[j].covers {
			n++
		}
	}
	k.pairs += uint64(n)
	head := leafPullBytes(bits, 0, 0)
	cost := func() int {
		if p := k.open(bucket, bits); p != nil {
			return hashEntryBytes * n
		}
		return head + hashEntryBytes*n
	}
	if len(k.cur) > 0 && k.size+cost() > k.limit {
		k.flush()
	}
	if k.size+cost() <= k.limit || len(ps) <= 1 {
		k.size += cost()
		p := k.start(bucket, bits)
		p.add(i)
		for _, e := range ps {
			p.hashes[e.key] = e.hash
			if e.covers {
				p.covers[e.key] = e.cover
			}
		}
		return
	}
	// Too large for a message of its own (the one being filled was just
	// sent): over several, each with as many pairs as fit (one at least).
	for len(ps) > 0 {
		p := k.start(bucket, bits)
		p.add(i)
		k.size = head
		for len(ps) > 0 {
			e := ps[0]
			need := hashEntryBytes
			if e.covers {
				need *= 2
			}
			if len(p.hashes) > 0 && k.size+need > k.limit {
				break
			}
			p.hashes[e.key] = e.hash
			if e.covers {
				p.covers[e.key] = e.cover
			}
			k.size += need
			ps = ps[1:]
		}
		k.flush()
	}
}

// open is the message being filled's pull of bucket at bits, if it ends
// with one (leaves of one bucket come in order, and share it).
func (k *leafPacker) open(bucket, bits uint8) *leafPull {
	if n := len(k.cur); n > 0 && k.cur[n-1].bucket == bucket && k.cur[n-1].bits == bits {
		return &k.cur[n-1]
	}
	return nil
}

// start returns the message being filled's pull of bucket, begun if need
// be.
func (k *leafPacker) start(bucket, bits uint8) *leafPull {
	if p := k.open(bucket, bits); p != nil {
		return p
	}
	k.cur = append(k.cur, leafPull{leafSet: newLeafSet(bucket, bits), hashes: map[uint64]uint64{}, covers: map[uint64]uint64{}})
	return &k.cur[len(k.cur)-1]
}

func (k *leafPacker) flush() {
	if len(k.cur) > 0 {
		k.msgs = append(k.msgs, k.cur)
	}
	k.cur, k.size = nil, 0
}

// finish returns the messages, the one being filled last.
func (k *leafPacker) finish() [][]leafPull {
	k.flush()
	return k.msgs
}

// answerHashes answers a peer of aeProto 1 (untagged, nothing when empty).
func (g *Gossip) answerHashes(m message) {
	node := g.peerNode(m)
	if node == nil || m.from == g.cfg.Name {
		return
	}
	encs, ok := g.missing(m)
	if !ok || len(encs) == 0 {
		return
	}
	if g.send(KindRepair, node, chunkRecords(kindRepair, g.cfg.Name, encs)) == nil {
		g.stats.recordsRepaired.Add(uint64(len(encs)))
	}
}

// missing lists the records of m's buckets that the peer lacks or holds in
// another state.
func (g *Gossip) missing(m message) ([][]byte, bool) {
	var encs [][]byte
	for _, hb := range m.buckets {
		entries, err := g.store.BucketEntries(hb.bucket)
		if err != nil {
			g.log.Error("read bucket for repair", "bucket", hb.bucket, "err", err)
			return nil, false
		}
		for _, e := range entries {
			if h, ok := hb.hashes[keyHash(e.Key)]; !ok || h != e.Hash {
				encs = append(encs, e.Enc)
			}
		}
	}
	return encs, true
}

// send delivers messages to node over TCP, stopping at the first failure
// (the round it belongs to is then retried whole).
func (g *Gossip) send(k Kind, node *memberlist.Node, msgs [][]byte) error {
	for _, msg := range msgs {
		if g.ctx.Err() != nil {
			return errClosed
		}
		if err := g.sendReliable(k, node, msg); err != nil {
			g.log.Debug("anti-entropy send", "peer", node.Name, "kind", k, "err", err)
			return err
		}
	}
	return nil
}

// sendReliable is memberlist's SendReliable, after the fault rules.
func (g *Gossip) sendReliable(k Kind, node *memberlist.Node, msg []byte) error {
	if g.cfg.Faults.message(k, addrOf(node)) {
		return errFault
	}
	return g.list.SendReliable(node, msg)
}

// sendBestEffort is memberlist's SendBestEffort, after the fault rules.
func (g *Gossip) sendBestEffort(k Kind, node *memberlist.Node, msg []byte) error {
	if g.cfg.Faults.message(k, addrOf(node)) {
		return nil // lost, as a packet is
	}
	return g.list.SendBestEffort(node, msg)
}

// pushPull runs one push/pull exchange with the member at addr (memberlist's
// Join), after the fault rules.
func (g *Gossip) pushPull(addr string) error {
	if g.cfg.Faults.message(KindPushPull, addr) {
		return errFault
	}
	_, err := g.list.Join([]string{addr})
	return err
}

// keyHash names a record key in 64 bits on the wire (session.KeyHash).
func keyHash[K string | []byte](key K) uint64 { return session.KeyHash(key) }

// nodeAt builds a node to send to from a name and a host:port.
func nodeAt(name, addr string) *memberlist.Node {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil
	}
	return &memberlist.Node{Name: name, Addr: net.IP(ap.Addr().AsSlice()), Port: ap.Port()}
}

// addrOf is a node's host:port.
func addrOf(n *memberlist.Node) string {
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// round is a pull this node sent, waiting for its repairs.
type round struct {
	peer, addr string
	parts      int               // pull messages sent (0 until known): kindPull and kindLeaves parts
	chunks     map[uint32]uint32 // part → repair chunks announced by its last one
	got        map[uint32]uint32 // part → repair chunks applied
	deadline   time.Time         // pushed back by every chunk applied
	buckets    []uint8           // the buckets pulled
	unsent     [][]byte          // parts not sent yet (pullWindow)
	node       *memberlist.Node  // where the parts go
	complete   map[uint32]bool   // parts (of the first parts) whose every repair chunk is applied
	answered   map[uint32]bool   // parts, first or want, whose every repair chunk is applied
	// A part by leaves is answered with the leaves that differ (leaf),
	// then with repairs to the leaf pulls it sends (pullOf): numbered from
	// parts up (next).
	leaf   map[uint32]*leafPart
	pullOf map[uint32]uint32
	next   uint32
}

// leafPart is a part of a round by leaves (kindLeaves): what it asked,
// then the leaf pulls still to be answered.
type leafPart struct {
	asked   map[uint8]uint8 // bucket → the bits its leaves were sent at
	decided bool            // the answer came, and the leaf pulls went out (or none)
	pulls   int             // leaf pulls not answered yet
}

// partOutcome is what a part's completion leads to: the next part to send
// (and where), or the round complete with peer.
type partOutcome struct {
	peer string
	done bool
	next []byte
	to   *memberlist.Node
}

// roundBook holds the rounds in flight.
type roundBook struct {
	mu     sync.Mutex
	next   uint64
	rounds map[uint64]*round
}

func newRoundBook() *roundBook {
	return &roundBook{next: rand.Uint64(), rounds: map[uint64]*round{}}
}

// claim starts a round with peer over the buckets of want that no round
// in flight pulls, in one step under the book's lock: read first and
// started later, two workers comparing two peers' digests at once (a
// newcomer meets every member) both found every bucket free and pulled the
// whole store twice. It returns the round's id and buckets (none: no round
// was started) and whether some of want were left to a round in flight.
func (b *roundBook) claim(peer, addr string, timeout time.Duration, want []uint8) (id uint64, buckets []uint8, skipped bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var busy [session.Buckets]bool
	for _, r := range b.rounds {
		for _, k := range r.buckets {
			busy[k] = true
		}
	}
	for _, k := range want {
		if busy[k] {
			skipped = true
		} else {
			buckets = append(buckets, k)
		}
	}
	if len(buckets) == 0 {
		return 0, nil, skipped
	}
	b.next++
	b.rounds[b.next] = &round{peer: peer, addr: addr, chunks: map[uint32]uint32{}, got: map[uint32]uint32{},
		deadline: time.Now().Add(timeout), buckets: buckets}
	return b.next, buckets, skipped
}

// setParts records the messages of a round's pull and returns the first
// pullWindow of them to send; the others go one by one as parts complete.
func (b *roundBook) setParts(id uint64, msgs [][]byte, node *memberlist.Node) [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(pullWindow, len(msgs))
	if r := b.rounds[id]; r != nil {
		r.parts, r.unsent, r.node, r.complete, r.answered = len(msgs), msgs[n:], node, map[uint32]bool{}, map[uint32]bool{}
		r.leaf, r.pullOf, r.next = map[uint32]*leafPart{}, map[uint32]uint32{}, uint32(len(msgs))
		for i, m := range msgs {
			if kind(m[1]) == kindLeaves {
				r.leaf[uint32(i)] = &leafPart{asked: leavesAsked(m)}
			}
		}
	}
	return msgs[:n]
}

// applied counts one repair chunk applied to the store. When the chunk
// completes a part (or the last leaf pull of a part by leaves), the part
// is complete: the outcome is the next part to send, if any is left, or
// the round complete once every part is.
func (b *roundBook) applied(t repairTag, timeout time.Duration) partOutcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rounds[t.Round]
	if r == nil {
		return partOutcome{} // late (the round was given up) or not ours
	}
	parent, isPull := r.pullOf[t.Part]
	if !isPull && (r.parts > 0 && int(t.Part) >= r.parts || r.leaf[t.Part] != nil) {
		return partOutcome{} // no part of ours is answered by repairs under that number
	}
	if t.Chunks > 0 {
		r.chunks[t.Part] = t.Chunks
	}
	r.got[t.Part]++
	r.deadline = time.Now().Add(timeout)
	if n, ok := r.chunks[t.Part]; !ok || r.got[t.Part] < n || r.answered == nil || r.answered[t.Part] {
		return partOutcome{}
	}
	r.answered[t.Part] = true
	if !isPull {
		return b.partDoneLocked(t.Round, r, t.Part)
	}
	lp := r.leaf[parent]
	if lp.pulls--; lp.pulls > 0 || !lp.decided {
		return partOutcome{}
	}
	return b.partDoneLocked(t.Round, r, parent)
}

// partDoneLocked marks part p of round id complete: the next part waiting
// goes out, or the round is complete once every part is.
func (b *roundBook) partDoneLocked(id uint64, r *round, p uint32) partOutcome {
	if r.complete[p] {
		return partOutcome{}
	}
	r.complete[p] = true
	if len(r.unsent) > 0 {
		var next []byte
		next, r.unsent = r.unsent[0], r.unsent[1:]
		return partOutcome{next: next, to: r.node}
	}
	if len(r.complete) < r.parts {
		return partOutcome{}
	}
	delete(b.rounds, id)
	return partOutcome{peer: r.peer, done: true}
}

// differ takes the answer from peer to part t.Part of round t.Round by
// leaves (the leaves that differ, sets), and returns where the round's
// messages go. It refuses (see the errors) an answer to no round in
// flight, from another member than the round's peer, to a part that is
// not by leaves or was answered already, or naming a bucket the part did
// not ask, at other bits than it sent, or twice. Only a taken answer
// pushes the round's deadline back.
func (b *roundBook) differ(peer string, t repairTag, sets []leafSet, timeout time.Duration) (*memberlist.Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rounds[t.Round]
	switch {
	case r == nil:
		return nil, errNoRound
	case peer != r.peer:
		return nil, fmt.Errorf("%w: round with %q", errAnswerSender, r.peer)
	}
	lp := r.leaf[t.Part]
	switch {
	case lp == nil:
		return nil, fmt.Errorf("%w: part %d", errAnswerPart, t.Part)
	case lp.decided:
		return nil, fmt.Errorf("%w: part %d", errAnswerAgain, t.Part)
	}
	seen := make(map[uint8]bool, len(sets))
	for _, s := range sets {
		if bits, ok := lp.asked[s.bucket]; !ok || bits != s.bits || seen[s.bucket] {
			return nil, fmt.Errorf("%w: bucket %d at %d bits, part %d", errAnswerBucket, s.bucket, s.bits, t.Part)
		}
		seen[s.bucket] = true
	}
	r.deadline = time.Now().Add(timeout)
	lp.decided = true
	return r.node, nil
}

// pulling numbers the n leaf pulls that part p of round id (by leaves)
// sends, and returns the first number. With none, part p is complete, and
// the outcome says what follows. It reports false if the round is gone.
func (b *roundBook) pulling(id uint64, p uint32, n int) (uint32, partOutcome, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rounds[id]
	if r == nil || r.leaf[p] == nil {
		return 0, partOutcome{}, false
	}
	first := r.next
	for i := range n {
		r.pullOf[first+uint32(i)] = p
	}
	r.next += uint32(n)
	r.leaf[p].pulls = n
	if n > 0 {
		return first, partOutcome{}, true
	}
	return first, b.partDoneLocked(id, r, p), true
}

// lost gives up every round: a repair was dropped before it could be
// read, so one of them cannot complete.
func (b *roundBook) lost() []*round {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*round, 0, len(b.rounds))
	for id, r := range b.rounds {
		out = append(out, r)
		delete(b.rounds, id)
	}
	return out
}

// remove ends a round and returns it.
func (b *roundBook) remove(id uint64) *round {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rounds[id]
	delete(b.rounds, id)
	return r
}

// removeWith ends round id if it pulls from peer, and returns it.
func (b *roundBook) removeWith(id uint64, peer string) *round {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rounds[id]
	if r == nil || r.peer != peer {
		return nil
	}
	delete(b.rounds, id)
	return r
}

// drop ends every round with peer, which a digest found in sync.
func (b *roundBook) drop(peer string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, r := range b.rounds {
		if r.peer == peer {
			delete(b.rounds, id)
		}
	}
}

// expired removes and returns the rounds past their deadline.
func (b *roundBook) expired(now time.Time) map[uint64]*round {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out map[uint64]*round
	for id, r := range b.rounds {
		if now.After(r.deadline) {
			if out == nil {
				out = map[uint64]*round{}
			}
			out[id] = r
			delete(b.rounds, id)
		}
	}
	return out
}

// pending reports whether a round with peer (or with anyone, for "") is in
// flight.
func (b *roundBook) pending(peer string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.rounds {
		if peer == "" || r.peer == peer {
			return true
		}
	}
	return false
}

// roundFailed gives a round up and schedules another with its peer.
func (g *Gossip) roundFailed(id uint64, why string) {
	if r := g.rounds.remove(id); r != nil {
		g.failRound(r, why)
	}
}

// failRound counts a round given up and owes its peer another.
func (g *Gossip) failRound(r *round, why string) {
	g.stats.roundsFailed.Add(1)
	g.log.Debug("anti-entropy round failed; retrying", "peer", r.peer, "why", why)
	g.resyncLater(r.peer, r.addr, resyncRetry)
}

// repairApplied is called by the apply loop once a tagged repair chunk is
// in the store.
func (g *Gossip) repairApplied(t repairTag) {
	g.partOutcome(t.Round, g.rounds.applied(t, g.roundTimeout()))
}

// partOutcome sends the next part of round id, or completes it.
func (g *Gossip) partOutcome(id uint64, o partOutcome) {
	if o.next != nil {
		g.sendNextPart(id, o.to, o.next)
	}
	if o.done {
		g.roundDone(o.peer, "repairs applied")
	}
}

// roundDone records a complete round with peer: this node now holds
// everything peer held when it answered.
func (g *Gossip) roundDone(peer, how string) {
	g.stats.roundsCompleted.Add(1)
	g.resyncs.done(peer)
	g.caughtUp(peer, how)
}
