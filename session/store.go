package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/badger/v4"
)

// Key layout in Badger. Every replicated record lives under its bucket, so
// anti-entropy reads a bucket with one prefix scan:
//
//	r <bucket> <key>                        -> record (JSON)
//	i <email> 0x00 <^created:8> <id>        -> entry (a user's sessions, newest first)
//	a <^created:8> <id>                     -> entry (every session, newest first; the sweeper reads it oldest first)
//	u <email>                               -> ""  (users in e-mail order)
//	t <ticket id>                           -> ""  (replay cache, with a Badger TTL)
//	m <name>                                -> store metadata (index version)
//
// An entry (indexEntry) holds what the listings and the sweeper filter on
// without reading the record: end, ended, local, site.
//
// A session is three keys (its record and two entries), a user one or two.
// Index version 2 (list.go) kept a fourth per session, x <ended-at:8> <id>,
// the sessions by end for the sweeper: a fifth of every login's Badger
// writes and two more at every log out. Version 3 dropped it (the sweeper
// reads the index of every session instead, whose entry now carries the
// end); Open deletes a version 2 store's x keys and rewrites its entries.
const (
	prefixRecord = 'r'
	prefixIndex  = 'i'
	prefixAll    = 'a'
	// prefixEnd is index version 2's sessions by end: Open deletes them.
	prefixEnd       = 'x'
	prefixUserIndex = 'u'
	prefixReplay    = 't'
	prefixMeta      = 'm'
	// maxBatchBytes bounds one transaction well under Badger's limit
	// (15% of the 16 MiB memtable, counting per-entry overhead); Apply
	// commits and starts another past it.
	maxBatchBytes = 1 << 20
)

// Options configures a Store.
type Options struct {
	// Dir is the data directory. Ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory (tests and benchmarks only).
	InMemory bool
	// Now reads the wall clock; time.Now if nil. Tests drive time with it.
	Now func() time.Time
	// Retention is how long ended and expired sessions stay as history
	// before they are swept. Zero keeps them for 30 days.
	Retention time.Duration
	// SyncWrites makes every commit wait for fsync. Off by default: a write
	// survives the process being killed (it is in the OS page cache), and a
	// write lost to a power cut is repaired from peers by anti-entropy.
	SyncWrites bool
	// Logger receives Badger's warnings and errors. slog.Default if nil.
	Logger *slog.Logger
	// CacheEntries bounds the in-memory cache of decoded records that serves
	// session checks without a Badger read. Zero means 100,000 (about 40 MB);
	// negative disables it.
	CacheEntries int
	// MaxOffset is the largest offset between two nodes' wall clocks the
	// cluster tolerates: Apply refuses a record carrying a timestamp further
	// ahead of this node's wall clock (ErrClockAhead), and the clock never
	// observes one. Zero means DefaultMaxOffset (5 s). Every node should use
	// the same value.
	MaxOffset time.Duration
	// MaxSessionTTL is the cluster's longest session: Apply refuses a
	// session whose ExpiresAt is more than MaxSessionTTL plus MaxOffset
	// after its creation (ErrLifetime). Zero means DefaultMaxSessionTTL (a
	// year, the longest ttl the private API accepts). Every node should use
	// the same value.
	MaxSessionTTL time.Duration
	// MinFree is the free space, in bytes, the store keeps in reserve on
	// its directory's filesystem: with less, every write is refused with
	// ErrStorageFull (space.go). Zero means DefaultMinFree; negative turns
	// the check off (a filesystem that reports no free space).
	MinFree int64
	// FreeSpace reads the bytes free to this process on the filesystem
	// holding dir; statfs if nil. Tests fill and free a disk with it.
	FreeSpace func(dir string) (uint64, error)
}

// DefaultMaxSessionTTL is Options.MaxSessionTTL's default: a year.
const DefaultMaxSessionTTL = 8760 * time.Hour

// Store is the on-disk replica of users and sessions. It is safe for
// concurrent use; writes are serialized, reads are not.
type Store struct {
	db            *badger.DB
	clock         *Clock
	now           func() time.Time
	retention     time.Duration
	maxSessionTTL time.Duration
	log           *slog.Logger
	refusals      refusals
	space         *space

	cache *cache
	sites siteView
	// written holds the key of every record this store has written (load
	// fills it; then only the writer goroutine touches it). A merge whose
	// key it does not hold knows the record is new without asking Badger:
	// a miss costs a search of every memtable and level, and nearly every
	// record a node merges (each login, on every node) is a new session.
	written *bloom.BloomFilter
	// writtenRoom is the number of keys written was sized for.
	writtenRoom int

	// sweepFrom is where the next Sweep goes on reading the index (a key
	// of it), nil for the oldest session.
	sweepFrom atomic.Pointer[[]byte]
	// scrubbed counts the digest buckets Scrub found different from their
	// records, and corrected.
	scrubbed atomic.Uint64

	// inMemory is Options.InMemory: nothing outlives Close.
	inMemory bool
	// fromState is set when Open read the state the last Close saved
	// (state.go) instead of every record.
	fromState bool

	// fresh is set when Open found no store in the directory (or none on
	// disk at all): see Fresh.
	fresh bool
	// unsaved is set when records were written behind the store's back
	// (Restore writes a backup's entries straight into Badger): its digest
	// and counts are not those on disk, and Close must not save them; the
	// next Open reads every record.
	unsaved bool

	writes     chan *applyReq // to the writer; unbuffered
	stop       chan struct{}  // closed by Close
	writerDone chan struct{}

	// mu serializes the writers (the writer goroutine, Sweep, UseOnce, the
	// local records) and guards closed.
	mu struct {
		sync.Mutex
		closed bool
	}
	// sum holds the digest and counts of what is committed. It has a lock
	// of its own, held only to read or update them: Digest and Counts never
	// wait for a write. (They waited for a whole group commit under mu,
	// seconds for thousands of records on a loaded machine, and memberlist
	// reads the digest inside a push/pull: its streams timed out.)
	sum struct {
		sync.Mutex
		digest Digest
		// leaves split each bucket of the digest (Leaves), kept with it:
		// 2 MiB whatever the number of records.
		leaves   *[Buckets]LeafHashes
		users    int
		sessions int
	}
}

// Open opens (or creates) the store in opts.Dir and rebuilds its digest.
func Open(opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention == 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxSessionTTL <= 0 {
		opts.MaxSessionTTL = DefaultMaxSessionTTL
	}
	if opts.MinFree == 0 {
		opts.MinFree = DefaultMinFree
	}
	if opts.InMemory {
		opts.MinFree = -1
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(opts.SyncWrites).
		WithLogger(badgerLogger{opts.Logger}).
		WithNumVersionsToKeep(1).
		// Records are a few hundred bytes: modest tables keep a node small
		// (a site's sidecar, and tests that run dozens of nodes).
		WithMemTableSize(16 << 20).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithNumCompactors(2).
		// A catch-up writes a whole store in a minute, keys in every part
		// of the key space (record keys by bucket, index keys by e-mail
		// and by time): with Badger's defaults (compact L0 at 5 tables,
		// stall writes at 15, a 10 MB base level and a level per tenfold),
		// writes stalled behind L0's compactions and every byte was
		// rewritten through three levels; a catch-up of a million
		// sessions spent half the newcomer's CPU compacting. L0 may now
		// hold 15 tables before it is compacted (writes stall at 25: each
		// compaction then takes three times the data, in one pass over
		// the base level), and the base level holds 256 MB, so a store of
		// a million sessions has one level under L0, not three. Reads
		// check more L0 tables (each behind its Bloom filter); the record
		// cache serves the hot ones. BenchmarkStore_CatchUpCPU, a million
		// records, load 5: 30.5 → 19.1 µs a record by the clock, 32.5 →
		// 22.1 µs of CPU.
		WithNumLevelZeroTables(15).
		WithNumLevelZeroTablesStall(25).
		WithBaseLevelSize(256 << 20).
		// One goroutine writes (see writer): there is nothing to detect, and
		// tracking every read of a transaction costs each merge.
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	if opts.InMemory {
		bo.Dir, bo.ValueDir = "", ""
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("open badger in %q: %w", opts.Dir, err)
	}
	s := &Store{
		db: db, clock: NewClock(opts.Now, opts.MaxOffset), now: opts.Now, retention: opts.Retention,
		maxSessionTTL: opts.MaxSessionTTL, log: opts.Logger, inMemory: opts.InMemory,
		space:  newSpace(opts.Dir, opts.MinFree, opts.FreeSpace, opts.Logger),
		cache:  newCache(opts.CacheEntries),
		writes: make(chan *applyReq), stop: make(chan struct{}), writerDone: make(chan struct{}),
	}
	s.sum.leaves = new([Buckets]LeafHashes)
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		// A store written before the index version was recorded has
		// records, and no version.
		_, err := txn.Get(metaIndexKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			s.fresh, err = s.sum.users+s.sum.sessions == 0 && len(s.Sites()) == 0, nil
		}
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("read store metadata: %w", err)
	}
	if err := s.upgradeIndexes(); err != nil {
		db.Close()
		return nil, err
	}
	go s.writer()
	return s, nil
}

// Sizing of Store.written: room for twice the records a store opens with,
// at least minWrittenKeys, at a 1% false-positive rate (about 1.2 MB per
// million keys). Past its room the rate climbs (16% of the misses read
// Badger at twice the room, 44% at three times) until the next start sizes
// it anew.
const (
	minWrittenKeys = 1 << 20
	writtenFPRate  = 0.01
)

// load rebuilds the in-memory digest, counts, clock and written-key filter
// from disk.
//
// A store closed by Close saved its digest, counts, clock, filter and sites
// (state.go): then nothing else is read. Otherwise every record is decoded.
func (s *Store) load() error {
	saved, err := s.loadState()
	if err != nil {
		return err
	}
	if !saved {
		if err := s.loadRecords(); err != nil {
			return err
		}
	}
	if s.written != nil {
		return nil // restored with the state
	}
	s.writtenRoom = max(minWrittenKeys, 2*(s.sum.users+s.sum.sessions))
	s.written = bloom.NewWithEstimates(uint(s.writtenRoom), writtenFPRate)
	return s.loadKeys()
}

func (s *Store) loadRecords() error {
	ahead := 0
	defer func() {
		if ahead > 0 {
			s.log.Warn("records on disk carry timestamps ahead of the wall clock; the clock did not observe them (see docs/security.md, \"Records and clocks\")",
				"records", ahead, "max_offset", s.clock.MaxOffset())
		}
	}()
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := string(item.Key()[2:])
			err := item.Value(func(v []byte) error {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decode record %q: %w", key, err)
				}
				if s.clock.Observe(r.MaxHLC()) != nil {
					ahead++
				}
				if r.Replicated() {
					b, leaf := locate(key)
					h := recordHash(key, v)
					s.sum.digest[b] ^= h
					s.sum.leaves[b][leaf] ^= h
				}
				switch {
				case r.User != nil:
					s.sum.users++
				case r.Session != nil:
					s.sum.sessions++
				case r.Site != nil:
					s.sites.put(*r.Site)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// Close stops the writer (pending Apply calls finish first; later ones get
// ErrClosed) and closes Badger. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.closed = true
	close(s.stop)
	s.mu.Unlock()
	<-s.writerDone
	if s.inMemory || s.unsaved {
		return s.db.Close()
	}
	if err := s.saveState(); err != nil {
		s.log.Warn("save the store's state; the next start reads every record", "err", err)
	}
	return s.db.Close()
}

// Fresh reports whether Open created the store: the data dir held none (a
// new node, or one restarted on a wiped or lost data dir). What was
// node-local is gone (the replay cache of tickets, verification codes, the
// site-only sessions); what is replicated comes back from the peers. A node
// cannot tell which tickets it accepted before: it should refuse tickets for one
// ticket TTL after starting on a fresh store.
func (s *Store) Fresh() bool { return s.fresh }

// Clock is the store's hybrid logical clock. Apply observes every timestamp
// it receives; local writers take their timestamps from Clock().Now().
func (s *Store) Clock() *Clock { return s.clock }

// Now is the store's wall clock.
func (s *Store) Now() time.Time { return s.now() }

// Retention is how long history is kept.
func (s *Store) Retention() time.Duration { return s.retention }

func recordKey(key string) []byte { return recordKeyIn(BucketOf(key), key) }

// recordKeyIn is recordKey for a key whose bucket b is known.
func recordKeyIn(b uint8, key string) []byte {
	k := make([]byte, 0, 2+len(key))
	return append(append(k, prefixRecord, b), key...)
}

func indexKey(sess *Session) []byte {
	k := make([]byte, 0, 1+len(sess.Email)+1+8+len(sess.ID))
	k = append(k, prefixIndex)
	k = append(k, sess.Email...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, ^uint64(sess.Created))
	return append(k, sess.ID...)
}

// sweepable reports whether a session's history is past retention at now:
// retention has passed since its expiry (and since its creation), whether
// or not it ended before. An ended session is kept as long as its alive
// form could be: swept any earlier, a node that still held the alive form
// (away longer than retention, or restored from an old backup) would bring
// the session back to life on every node, none of which held the end any
// more; kept until then, the end wins the join, and the alive form, once
// its expiry is past retention, is refused as past it. (The creation
// matters only for a session that expires before it is created: the
// sweeper reads sessions in creation order and stops at the first created
// within retention, doc.go.)
func (s *Store) sweepable(sess *Session, now time.Time) bool {
	return sweepEnd(sess)+s.retention.Milliseconds() <= now.UnixMilli()
}

// sweepEnd is the time, Unix ms, from which a session's retention runs:
// its expiry, never before its creation.
func sweepEnd(sess *Session) int64 { return max(sess.ExpiresAt, sess.Created.WallMs()) }

type digestChange struct {
	bucket   uint8
	leaf     uint16
	xor      uint64
	users    int
	sessions int
}

// Apply merges records into the store and returns, in order, the merged
// state of each record that changed it (records that taught the store
// nothing are left out: that is what stops rebroadcast). Records that fail
// Check are refused: never merged, never observed by the clock, counted by
// reason (Refused) and logged at most once a minute per reason; sessions
// already past retention are skipped. Apply keeps no reference to recs.
//
// Concurrent calls are committed together (group commit): one writer
// goroutine takes every call waiting and merges them in one transaction, so
// parallel logins share a commit instead of queueing for one each.
func (s *Store) Apply(recs ...Record) ([]Record, error) {
	changed, _, err := s.ApplyChecked(recs...)
	return changed, err
}

// ApplyChecked is Apply that also returns the records it refused, in order,
// each with its reason: for a caller that knows where the records came from
// (a peer, a ticket) and counts or logs refusals by source.
func (s *Store) ApplyChecked(recs ...Record) (changed []Record, refused []Refusal, err error) {
	changed, _, refused, err = s.ApplyEncoded(recs...)
	return changed, refused, err
}

// ApplyEncoded is ApplyChecked that also returns, beside each changed
// record, the bytes stored for it: json.Marshal's encoding of the merged
// record, for a caller that sends it on (gossip rebroadcasts what it
// learns) without encoding it again. The caller must not modify them.
func (s *Store) ApplyEncoded(recs ...Record) (changed []Record, encs [][]byte, refused []Refusal, err error) {
	if len(recs) == 0 {
		return nil, nil, nil, nil
	}
	req := &applyReq{recs: recs, done: make(chan struct{})}
	if err := s.submit(req); err != nil {
		return nil, nil, nil, err
	}
	return req.changed, req.encs, req.refused, req.err
}

// ApplyRepairs is ApplyChecked for records that nobody is reading now: a
// catch-up's or a heal's repairs, tens of thousands of records at a time.
// They are merged exactly as Apply merges them, but the record cache does
// not take their merged states (a later read fills it from disk): copying
// each into the cache cost a tenth of a catch-up's merging, and evicted
// the sessions that checks were reading.
func (s *Store) ApplyRepairs(recs ...Record) (changed []Record, refused []Refusal, err error) {
	if len(recs) == 0 {
		return nil, nil, nil
	}
	req := &applyReq{recs: recs, cold: true, done: make(chan struct{})}
	if err := s.submit(req); err != nil {
		return nil, nil, err
	}
	return req.changed, req.refused, req.err
}

// submit hands req to the writer and waits until it is done.
func (s *Store) submit(req *applyReq) error {
	select {
	case s.writes <- req:
	case <-s.stop:
		return ErrClosed
	}
	<-req.done
	return nil
}

// Check reports whether Apply would refuse rec, and why: nil, or an error
// wrapping ErrInvalidRecord (Record.Validate), ErrClockAhead (a timestamp
// more than the max offset ahead of this node's wall clock) or ErrLifetime
// (a session living longer than the maximum session TTL plus the max
// offset). It neither counts nor logs.
func (s *Store) Check(rec Record) error { return s.check(rec, s.now()) }

func (s *Store) check(rec Record, now time.Time) error {
	if err := rec.Validate(); err != nil {
		return err
	}
	h := rec.MaxHLC()
	s.clock.mu.Lock()
	err := s.clock.checkLocked(h, now)
	s.clock.mu.Unlock()
	if err != nil {
		return err
	}
	if sess := rec.Session; sess != nil {
		limit := s.maxSessionTTL + s.clock.maxOffset
		if life := time.Duration(sess.ExpiresAt-sess.Created.WallMs()) * time.Millisecond; life > limit {
			return fmt.Errorf("%w: expires %s after its creation, limit %s", ErrLifetime, life, limit)
		}
	}
	return nil
}

// applyReq is one Apply call waiting for the writer.
type applyReq struct {
	recs    []Record
	changed []Record
	encs    [][]byte // the stored encoding of each of changed
	refused []Refusal
	err     error
	// cold leaves the merged states out of the record cache
	// (ApplyRepairs).
	cold bool
	done chan struct{}
}

// maxGroupRecords bounds how many records one group commit takes.
const maxGroupRecords = 4096

// writer is the one goroutine that writes records. s.writes is unbuffered:
// a call is taken only while the writer is running, so none is lost at Close.
func (s *Store) writer() {
	defer close(s.writerDone)
	for {
		var first *applyReq
		select {
		case first = <-s.writes:
		case <-s.stop:
			return
		}
		group, n := []*applyReq{first}, len(first.recs)
	gather:
		for n < maxGroupRecords {
			select {
			case r := <-s.writes:
				group, n = append(group, r), n+len(r.recs)
			default:
				break gather
			}
		}
		s.mu.Lock()
		if err := s.space.check(); err != nil {
			for _, r := range group {
				r.err = err
			}
		} else {
			s.applyGroupLocked(group)
		}
		s.mu.Unlock()
		for _, r := range group {
			close(r.done)
		}
	}
}

// applyGroupLocked merges every call of the group in as few transactions as
// fit Badger's limits.
//
// The transactions are pipelined: one is committed (CommitWith) while the
// next is merged, so a large group (a catch-up's repairs: tens of thousands
// of records) keeps both Badger's writer and this one busy instead of
// taking turns. A record whose key an earlier transaction of the group
// wrote merges with the state that transaction wrote (own), never with
// the disk, which may not show it yet. Each commit, once done, adds to the
// digest and drops its keys from the cache; the calls return, and the
// cache takes the merged states, once every commit is done, in order. If one
// fails, the later ones were merged on a state that was not written: the
// digest and counts are read again from disk (recountLocked).
func (s *Store) applyGroupLocked(group []*applyReq) {
	now := s.now()
	type batch struct {
		pending []digestChange
		written []entry // what the cache takes once committed
		sites   []Site  // site records written
		keys    []string
		reqs    []*applyReq
		err     error
	}
	n := 0
	for _, req := range group {
		n += len(req.recs)
	}
	var (
		cur     = &batch{}
		batches []*batch
		size    int
		own     = make(map[string]entry, n) // written by this group's transactions
		commits sync.WaitGroup
	)
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	commit := func() {
		b := cur
		batches = append(batches, b)
		commits.Add(1)
		// The next transaction begins before this one commits: a
		// transaction begun after a commit waits until it is written (its
		// read timestamp covers it), which would leave nothing to overlap.
		// It waits for the commits before this one: one is in flight.
		next := s.db.NewTransaction(true)
		txn.CommitWith(func(err error) {
			defer commits.Done()
			if err != nil {
				b.err = fmt.Errorf("commit: %w", err)
				return
			}
			s.addSums(b.pending)
			// The cache holds the states before: a check must read what is
			// committed now (and a read begun before cannot fill the cache
			// with the old state: drop counts as a write).
			s.cache.drop(b.keys...)
		})
		txn = next
		cur, size = &batch{}, 0
	}
	for _, req := range group {
		cur.reqs = append(cur.reqs, req)
		for i, rec := range req.recs {
			if err := s.check(rec, now); err != nil {
				req.refused = append(req.refused, Refusal{Index: i, Key: rec.Key(), Err: err})
				s.refusals.add(s.log, rec, err, now)
				continue
			}
			// Checked against now just above: this cannot fail.
			_ = s.clock.Observe(rec.MaxHLC())
			if rec.Session != nil && s.sweepable(rec.Session, now) {
				continue
			}
			key := rec.Key()
			var prev *entry
			if e, ok := own[key]; ok {
				prev = &e
			}
			merged, change, writes, err := s.mergeLocked(txn, rec, prev)
			if err == nil && writes != nil && size > 0 && size+writes.size() > maxBatchBytes {
				commit()
				cur.reqs = append(cur.reqs, req)
			}
			if err == nil && writes != nil {
				err = writes.apply(txn)
				// Added before the commit: a key in the open transaction must
				// be read back from it, and a failed commit leaves a false
				// positive, which only costs a read.
				s.written.Add(writes.sets[0][0])
			}
			if err != nil {
				req.err = err
				break
			}
			if writes == nil {
				continue
			}
			size += writes.size()
			cur.pending = append(cur.pending, change)
			e := entry{rec: merged, enc: writes.sets[0][1]}
			if !req.cold {
				cur.written = append(cur.written, e)
			}
			if merged.Site != nil {
				cur.sites = append(cur.sites, *merged.Site)
			}
			cur.keys = append(cur.keys, key)
			own[key] = e
			req.changed = append(req.changed, merged)
			req.encs = append(req.encs, e.enc)
		}
	}
	if size > 0 {
		commit()
	}
	commits.Wait()
	failed := false
	for _, b := range batches {
		if b.err != nil {
			failed = true
			for _, r := range b.reqs {
				r.err = b.err
			}
			continue
		}
		if failed {
			continue // merged on a state that was not written
		}
		s.cache.put(latest(b.written, own)...)
		s.sites.put(b.sites...)
	}
	if failed {
		keys := make([]string, 0, len(own))
		for k := range own {
			keys = append(keys, k)
		}
		s.cache.drop(keys...)
		if err := s.recountLocked(); err != nil {
			s.log.Error("read the digest again after a failed commit", "err", err)
		}
	}
}

// latest returns the entries of written that are their key's last state
// in the group (own): a later request of the group may have written the
// key again, a repair whose state the cache does not take (cold) among
// them. The cache must never hold a state that is not on disk: the next
// merge of the key would take it for the old state and XOR the wrong hash
// out of the digest, which would then differ from the records for good
// (TestStore_GroupApplyThenRepair).
func latest(written []entry, own map[string]entry) []entry {
	out := written[:0:0]
	for _, e := range written {
		// A key's states in a group only grow (each is the join of the
		// one before and a record, and differs from it), so equal
		// encodings are the same state.
		if bytes.Equal(own[e.rec.Key()].enc, e.enc) {
			out = append(out, e)
		}
	}
	return out
}

// recountLocked reads the digest, the counts and the sites again from
// every record on disk: after a failed commit of a pipelined group, whose
// later transactions' digest changes assumed the failed one's writes.
func (s *Store) recountLocked() error {
	var (
		digest          Digest
		leaves          = new([Buckets]LeafHashes)
		users, sessions int
		sites           []Site
	)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := string(it.Item().Key()[2:])
			if err := it.Item().Value(func(v []byte) error {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decode record %q: %w", key, err)
				}
				if r.Replicated() {
					b, leaf := locate(key)
					h := recordHash(key, v)
					digest[b] ^= h
					leaves[b][leaf] ^= h
				}
				switch {
				case r.User != nil:
					users++
				case r.Session != nil:
					sessions++
				case r.Site != nil:
					sites = append(sites, *r.Site)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.sum.Lock()
	s.sum.digest, s.sum.leaves, s.sum.users, s.sum.sessions = digest, leaves, users, sessions
	s.sum.Unlock()
	for _, site := range sites {
		s.sites.put(site)
	}
	return nil
}

type writeSet struct {
	sets [][2][]byte
	dels [][]byte
}

func (w *writeSet) size() int {
	n := 0
	for _, kv := range w.sets {
		n += len(kv[0]) + len(kv[1]) + 128 // skiplist node and value-pointer overhead
	}
	for _, k := range w.dels {
		n += len(k) + 128
	}
	return n
}

func (w *writeSet) apply(txn *badger.Txn) error {
	for _, k := range w.dels {
		if err := txn.Delete(k); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
	}
	for _, kv := range w.sets {
		if err := txn.Set(kv[0], kv[1]); err != nil {
			return fmt.Errorf("set: %w", err)
		}
	}
	return nil
}

// mergeLocked computes the writes that merging rec into the store needs; nil
// writes mean rec teaches nothing. The current state is prev when not nil
// (what a transaction of the group wrote, not committed yet), else the
// cache's, which holds exactly what was committed, else the disk's (in
// txn) when the written-key filter says the key may be there.
func (s *Store) mergeLocked(txn *badger.Txn, rec Record, prev *entry) (Record, digestChange, *writeSet, error) {
	key := rec.Key()
	b, leaf := locate(key)
	rk := recordKeyIn(b, key)
	ch := digestChange{bucket: b, leaf: leaf}
	var (
		old    Record
		oldEnc []byte
		err    error
	)
	if prev != nil {
		old, oldEnc = prev.rec, prev.enc
	} else if !s.written.Test(rk) {
		// Never written here: new. The cache cannot hold it either: it
		// holds only what was committed, and every key written is in the
		// filter before its commit. (Tested first: nearly every record of
		// a catch-up is new, and the filter is cheaper than the cache's
		// map.)
	} else if e, ok := s.cache.entry(key); ok {
		old, oldEnc = e.rec, e.enc
	} else if old, oldEnc, err = getRecord(txn, rk); err != nil && !errors.Is(err, ErrNotFound) {
		return Record{}, ch, nil, err
	}
	merged := rec
	if oldEnc != nil {
		merged = Join(old, rec)
	}
	enc, err := json.Marshal(merged)
	if err != nil {
		return Record{}, ch, nil, fmt.Errorf("encode record: %w", err)
	}
	if bytes.Equal(enc, oldEnc) {
		return merged, ch, nil, nil
	}
	w := &writeSet{sets: [][2][]byte{{rk, enc}}}
	if merged.Replicated() {
		ch.xor = recordHash(key, enc)
	}
	if oldEnc != nil && old.Replicated() {
		ch.xor ^= recordHash(key, oldEnc)
	}
	switch {
	case oldEnc == nil && merged.User != nil:
		ch.users = 1
	case oldEnc == nil && merged.Session != nil:
		ch.sessions = 1
	}
	if sess := merged.Session; sess != nil {
		ik, ak := indexKey(sess), allKey(sess)
		ent := encodeEntry(sess)
		if o := old.Session; o != nil {
			for _, k := range [][2][]byte{{indexKey(o), ik}, {allKey(o), ak}} {
				if !bytes.Equal(k[0], k[1]) {
					w.dels = append(w.dels, k[0])
				}
			}
			if oldEnt := encodeEntry(o); bytes.Equal(oldEnt, ent) && bytes.Equal(indexKey(o), ik) && bytes.Equal(allKey(o), ak) {
				// Most merges of a session change neither its entry nor
				// its keys (a repair of a field the listings do not read):
				// the record alone is written.
				return merged, ch, w, nil
			}
		}
		w.sets = append(w.sets, [2][]byte{ik, ent}, [2][]byte{ak, ent})
	}
	if merged.User != nil && oldEnc == nil {
		w.sets = append(w.sets, [2][]byte{userIndexKey(merged.User.Email), nil})
	}
	return merged, ch, w, nil
}

func getRecord(txn *badger.Txn, rk []byte) (Record, []byte, error) {
	item, err := txn.Get(rk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, nil, ErrNotFound
	}
	if err != nil {
		return Record{}, nil, fmt.Errorf("get %q: %w", rk[2:], err)
	}
	enc, err := item.ValueCopy(nil)
	if err != nil {
		return Record{}, nil, fmt.Errorf("read %q: %w", rk[2:], err)
	}
	var r Record
	if err := json.Unmarshal(enc, &r); err != nil {
		return Record{}, nil, fmt.Errorf("decode %q: %w", rk[2:], err)
	}
	return r, enc, nil
}

// get reads a record through the cache.
func (s *Store) get(key string) (Record, error) {
	if r, ok := s.cache.get(key); ok {
		return r, nil
	}
	gen := s.cache.generation()
	var (
		r   Record
		enc []byte
	)
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		r, enc, err = getRecord(txn, recordKey(key))
		return err
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return r, ErrClosed
	}
	if err == nil {
		s.cache.fill(key, r, enc, gen)
	}
	return r, err
}

// User returns the user with the (normalized) email, or ErrNotFound.
func (s *Store) User(email string) (User, error) {
	// A copy of the cached value, as get's clone would give, without the
	// clone's allocations (the session check reads a user on every page
	// view).
	if e, ok := s.cache.entry("u" + email); ok && e.rec.User != nil {
		return *e.rec.User, nil
	}
	r, err := s.get("u" + email)
	if err != nil || r.User == nil {
		return User{}, notFound(err)
	}
	return *r.User, nil
}

// Session returns the session with the id, or ErrNotFound.
func (s *Store) Session(id string) (Session, error) {
	if e, ok := s.cache.entry("s" + id); ok && e.rec.Session != nil {
		return *e.rec.Session, nil // a copy, as User's
	}
	r, err := s.get("s" + id)
	if err != nil || r.Session == nil {
		return Session{}, notFound(err)
	}
	return *r.Session, nil
}

func notFound(err error) error {
	if err == nil {
		return ErrNotFound
	}
	return err
}

// UserSessions returns the user's sessions, newest first: all of them
// (history included) when all is set, else only those active now. limit <= 0
// means no limit.
func (s *Store) UserSessions(email string, all bool, limit int) ([]Session, error) {
	now := s.now()
	u, err := s.User(email)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	prefix := userSessionsPrefix(email)
	var out []Session
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[len(prefix)+8:])
			if !all {
				// The entry tells most history apart without the record.
				over, err := entryOver(item, now)
				if err != nil {
					return err
				}
				if over {
					continue
				}
			}
			sess, ok, err := s.sessionIn(txn, id)
			if err != nil {
				return err
			}
			if !ok || (!all && sess.StateIn(u, s.Site(sess.Site), now) != StateActive) {
				continue
			}
			out = append(out, sess)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// Leaves copies bucket b's leaves (Leaves) into dst, as committed, without
// waiting for a write in progress (as Digest).
func (s *Store) Leaves(b uint8, dst *LeafHashes) {
	s.sum.Lock()
	defer s.sum.Unlock()
	*dst = s.sum.leaves[b]
}

// VerifyDigest reads every replicated record and checks the digest and its
// leaves against them, one bucket at a time under the writers' lock (as
// Scrub, which corrects what it finds): nil, or an error naming the first
// bucket (and leaf) whose sum is not its records'. Writes wait while a
// bucket is read (about 4,000 records at a million), so it may run on a
// live store; it returns ErrClosed after Close. Tests and benchmarks that
// find a cluster not converging ask it why.
func (s *Store) VerifyDigest() error {
	for b := 0; b < Buckets; b++ {
		if err := s.verifyBucket(uint8(b)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) verifyBucket(b uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	sum, want, n, err := s.bucketSums(b)
	if err != nil {
		return err
	}
	var got LeafHashes
	s.Leaves(b, &got)
	if d := s.Digest(); d[b] != sum {
		return fmt.Errorf("bucket %d: the digest holds %016x, its %d records add up to %016x", b, d[b], n, sum)
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("bucket %d, leaf %d: the leaf holds %016x, its records add up to %016x", b, i, got[i], want[i])
		}
	}
	return nil
}

// bucketSums reads bucket b's replicated records and returns the sum of
// their hashes, their leaves and their number.
func (s *Store) bucketSums(b uint8) (sum uint64, leaves LeafHashes, n int, err error) {
	entries, err := s.BucketEntries(b)
	if err != nil {
		return 0, leaves, 0, fmt.Errorf("read bucket %d: %w", b, err)
	}
	for _, e := range entries {
		leaves[LeafOf(e.Key)] ^= e.Hash
		sum ^= e.Hash
	}
	return sum, leaves, len(entries), nil
}

// Digest returns a copy of the current digest.
// It never waits for a write in progress: it is the digest of what is
// committed.
func (s *Store) Digest() Digest {
	s.sum.Lock()
	defer s.sum.Unlock()
	return s.sum.digest
}

// addSums adds committed changes to the digest and counts.
func (s *Store) addSums(changes []digestChange) {
	s.sum.Lock()
	defer s.sum.Unlock()
	for _, c := range changes {
		s.sum.digest[c.bucket] ^= c.xor
		s.sum.leaves[c.bucket][c.leaf] ^= c.xor
		s.sum.users += c.users
		s.sum.sessions += c.sessions
	}
}

// Scrub reads every replicated record of bucket b and compares the
// digest's bucket and its leaves (Leaves) with their records' sums; if any
// differs it sets them to the records' sums, logs an error (saying whether
// the bucket's sum drifted or its leaves only: a drift that moved a hash
// from one leaf to another leaves the bucket's sum right, and anti-entropy
// by leaves then pulls those leaves for ever) and counts it (Scrubbed),
// and reports true. It holds the writers' lock while it reads (a bucket is
// a 256th of the store: about 4,000 records at a million), so nothing is
// committed meanwhile.
//
// A digest that differs from its records is a bug, never a state the
// cluster can repair by itself: anti-entropy pulls the bucket from every
// peer for ever and finds nothing to carry. Scrubbing one bucket at a time
// in the background (the node's housekeeping) bounds how long such a bug
// can keep two stores apart, as ZFS's scrub or Cassandra's repair bound
// silent corruption; anti-entropy scrubs a bucket at once when the records
// of a leaf it reads do not add up to the leaf (LeafEntries). It returns
// ErrClosed after Close.
func (s *Store) Scrub(b uint8) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false, ErrClosed
	}
	sum, leaves, n, err := s.bucketSums(b)
	if err != nil {
		return false, err
	}
	s.sum.Lock()
	kept, keptLeaves := s.sum.digest[b], s.sum.leaves[b]
	s.sum.digest[b], s.sum.leaves[b] = sum, leaves
	s.sum.Unlock()
	wrong := 0
	for i := range leaves {
		if keptLeaves[i] != leaves[i] {
			wrong++
		}
	}
	if kept == sum && wrong == 0 {
		return false, nil
	}
	s.scrubbed.Add(1)
	s.log.Error("the digest differed from the records in one bucket: corrected (a bug: please report it with this node's log)",
		"bucket", b, "records", n, "sum_drifted", kept != sum, "leaves_drifted", wrong)
	return true, nil
}

// LeafEntries is BucketEntriesFunc for the records of bucket b in the
// leaves that in accepts, at 2^bits leaves (LeafHashes.Fold: leaf i holds
// the keys whose LeafOf is i·2^(LeafBits-bits) to (i+1)·2^(LeafBits-bits)-1).
// It also checks what it read against the leaves kept in memory: if the
// records of an accepted leaf do not add up to it, and the bucket's leaves
// did not change while it read, it scrubs the bucket (Scrub) at once
// rather than at its turn in the node's background scrub. (A write
// committed but not yet added to the sums when the leaves were read twice
// can make a bucket look drifted: Scrub, exact under the writers' lock,
// then finds nothing and counts nothing.) The records returned are those
// read; a failed scrub is logged, not returned.
func (s *Store) LeafEntries(b, bits uint8, in func(leaf int) bool) ([]BucketEntry, error) {
	bits = min(bits, LeafBits)
	shift := LeafBits - bits
	var before, after LeafHashes
	s.Leaves(b, &before)
	entries, err := s.BucketEntriesFunc(b, func(key []byte) bool { return in(int(LeafOf(key) >> shift)) })
	if err != nil {
		return nil, err
	}
	s.Leaves(b, &after)
	if before != after {
		return entries, nil // written meanwhile: no telling
	}
	sums := make([]uint64, 1<<bits)
	for _, e := range entries {
		sums[LeafOf(e.Key)>>shift] ^= e.Hash
	}
	for i, h := range before.Fold(bits) {
		if in(i) && sums[i] != h {
			if _, err := s.Scrub(b); err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("scrub a bucket whose leaf differs from its records", "bucket", b, "err", err)
			}
			break
		}
	}
	return entries, nil
}

// Scrubbed returns how many digest buckets Scrub has corrected since the
// store opened.
func (s *Store) Scrubbed() uint64 { return s.scrubbed.Load() }

// BucketEntry is one replicated record of a bucket: its key, the hash it
// adds to the digest, and its stored encoding (the JSON of a Record, ready
// to send).
type BucketEntry struct {
	Key  string
	Hash uint64
	Enc  []byte
}

// RecordHashes maps the key of every replicated record to the hash it adds
// to the digest: the store's state as anti-entropy compares it, to judge
// convergence by records rather than by digests alone (tests, bench).
func (s *Store) RecordHashes() (map[string]uint64, error) {
	out := map[string]uint64{}
	for b := 0; b < Buckets; b++ {
		entries, err := s.BucketEntries(uint8(b))
		if err != nil {
			return nil, fmt.Errorf("read bucket %d: %w", b, err)
		}
		for _, e := range entries {
			out[e.Key] = e.Hash
		}
	}
	return out, nil
}

// BucketEntries returns every replicated record in bucket b (local sessions
// are left out: they never travel).
func (s *Store) BucketEntries(b uint8) ([]BucketEntry, error) { return s.BucketEntriesFunc(b, nil) }

// BucketEntriesFunc is BucketEntries for the records of bucket b whose key
// keep accepts: the others' values are neither read nor hashed (keep sees
// every key of the bucket, local sessions included, in a buffer valid only
// during the call). Anti-entropy reads
// the records of a bucket's differing leaves (LeafOf) or those a peer asked
// for this way. A nil keep keeps every record, whose values are then
// prefetched.
func (s *Store) BucketEntriesFunc(b uint8, keep func(key []byte) bool) ([]BucketEntry, error) {
	var out []BucketEntry
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.IteratorOptions{Prefix: []byte{prefixRecord, b}}
		if keep == nil {
			opts.PrefetchValues, opts.PrefetchSize = true, 256
		}
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if keep != nil && !keep(it.Item().Key()[2:]) {
				continue
			}
			key := string(it.Item().Key()[2:])
			enc, err := it.Item().ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read record: %w", err)
			}
			if !localEnc(key, enc) {
				out = append(out, BucketEntry{Key: key, Hash: recordHash(key, enc), Enc: enc})
			}
		}
		return nil
	})
	return out, err
}

// localSuffix ends the stored encoding of a local session and of nothing
// else: the store writes json.Marshal's encoding of a Record, whose last
// part is then the Session, whose last field is Local. Inside a string a
// quote is always escaped, so no field's value can end the encoding so.
var localSuffix = []byte(`,"local":true}}`)

// localEnc reports whether the stored record enc under key is a local
// session, without decoding it (anti-entropy reads every record of the
// buckets it compares).
func localEnc(key string, enc []byte) bool {
	return len(key) > 0 && key[0] == 's' && bytes.HasSuffix(enc, localSuffix)
}

// BucketRecords returns every replicated record in bucket b, decoded.
func (s *Store) BucketRecords(b uint8) ([]Record, error) {
	entries, err := s.BucketEntries(b)
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, len(entries))
	for _, e := range entries {
		var r Record
		if err := json.Unmarshal(e.Enc, &r); err != nil {
			return nil, fmt.Errorf("decode record: %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Counts are the numbers of users and sessions (history included) held.
func (s *Store) Counts() (users, sessions int) {
	s.sum.Lock()
	defer s.sum.Unlock()
	return s.sum.users, s.sum.sessions
}

// ActiveSessions counts the sessions active now. It reads the entry of
// every session, and the record of every one that has not ended or
// expired: for status and metrics, not for hot paths.
func (s *Store) ActiveSessions() (int, error) {
	now := s.now()
	users := map[string]User{}
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixAll}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			over, err := entryOver(it.Item(), now)
			if err != nil {
				return err
			}
			if over {
				continue
			}
			sess, ok, err := s.sessionIn(txn, string(it.Item().Key()[9:]))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			u, ok := users[sess.Email]
			if !ok {
				ur, _, err := getRecord(txn, recordKey("u"+sess.Email))
				if err != nil && !errors.Is(err, ErrNotFound) {
					return err
				}
				if ur.User != nil {
					u = *ur.User
				}
				users[sess.Email] = u
			}
			if sess.StateIn(u, s.Site(sess.Site), now) == StateActive {
				n++
			}
		}
		return nil
	})
	return n, err
}

// Sweeping bounds: one Sweep deletes at most sweepBatch sessions and reads
// at most sweepScan index entries, going on the next time from where it
// stopped (Store.sweepFrom). Variables for the tests.
var (
	sweepBatch = 10_000
	sweepScan  = 100_000
)

// sweepCandidates reads the index of every session oldest first, from the
// last call's position, and returns the ids whose entries say they are past
// retention at now (the caller checks each record). It stops at the first
// session created within retention: none after it can be past it
// (sweepable).
func (s *Store) sweepCandidates(now time.Time) ([]string, error) {
	cutoff := now.UnixMilli() - s.retention.Milliseconds()
	prefix := []byte{prefixAll}
	from := s.sweepFrom.Load()
	var ids []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		seek := append(bytes.Clone(prefix), bytes.Repeat([]byte{0xff}, 9)...) // past the oldest
		if from != nil {
			seek = *from
		}
		scanned := 0
		var last []byte // the last entry read
		for it.Seek(seek); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) < 9 || (from != nil && bytes.Equal(k, *from)) {
				continue
			}
			if HLC(^binary.BigEndian.Uint64(k[1:9])).WallMs() > cutoff {
				break // created within retention: so is every later one
			}
			if scanned == sweepScan || len(ids) == sweepBatch {
				// Out of budget: the next sweep goes on after the last
				// entry read.
				s.sweepFrom.Store(&last)
				return nil
			}
			scanned++
			last = append(last[:0], k...)
			past := true
			if err := it.Item().Value(func(v []byte) error {
				if ent, ok := decodeEntry(v); ok {
					past = ent.end+s.retention.Milliseconds() <= now.UnixMilli()
				}
				return nil
			}); err != nil {
				return err
			}
			if past {
				ids = append(ids, string(k[9:]))
			}
		}
		s.sweepFrom.Store(nil) // a whole pass: the next one starts from the oldest
		return nil
	})
	return ids, err
}

// Sweep deletes the sessions whose history is past retention and returns how
// many it deleted. The rule depends only on each record and the wall clock,
// so every node sweeps the same records. One call deletes at most 10,000
// and reads at most 100,000 index entries; the next goes on from there.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	ids, err := s.sweepCandidates(now)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return 0, ErrClosed
	}
	if err := s.space.check(); err != nil {
		return 0, err
	}
	n := 0
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var (
		pending []digestChange
		swept   []string
	)
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		var (
			r   Record
			enc []byte
		)
		err := s.db.View(func(txn *badger.Txn) error {
			var err error
			r, enc, err = getRecord(txn, recordKey("s"+id))
			return err
		})
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if r.Session == nil {
			continue
		}
		if !s.sweepable(r.Session, now) {
			// An entry written when retention ran from a session's end
			// (before an ended session was kept until its expiry):
			// written again with its record's, so that the sweeper does
			// not read the record on every pass.
			ent := encodeEntry(r.Session)
			for _, k := range [][]byte{indexKey(r.Session), allKey(r.Session)} {
				if err := wb.Set(k, ent); err != nil {
					return n, fmt.Errorf("sweep: %w", err)
				}
			}
			continue
		}
		rk := recordKey("s" + id)
		for _, k := range [][]byte{rk, indexKey(r.Session), allKey(r.Session)} {
			if err := wb.Delete(k); err != nil {
				return n, fmt.Errorf("sweep: %w", err)
			}
		}
		c := digestChange{bucket: rk[1], leaf: LeafOf("s" + id), sessions: -1}
		if r.Replicated() {
			c.xor = recordHash("s"+id, enc)
		}
		pending = append(pending, c)
		swept = append(swept, "s"+id)
		n++
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("sweep: %w", err)
	}
	s.addSums(pending)
	s.cache.drop(swept...)
	return n, nil
}

// UseOnce records a single-use token id (a ticket) until expires and reports
// whether this is its first use. The record disappears after expiry.
func (s *Store) UseOnce(id string, expires time.Time) (bool, error) {
	ttl := expires.Sub(s.now())
	if ttl <= 0 {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return false, ErrClosed
	}
	if err := s.space.check(); err != nil {
		return false, err
	}
	first := false
	err := s.db.Update(func(txn *badger.Txn) error {
		k := append([]byte{prefixReplay}, id...)
		_, err := txn.Get(k)
		if err == nil {
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		first = true
		// Keep it a little past expiry so clock rounding cannot reopen it.
		return txn.SetEntry(badger.NewEntry(k, nil).WithTTL(ttl + time.Second))
	})
	if err != nil {
		return false, fmt.Errorf("replay cache: %w", err)
	}
	return first, nil
}

// LocalScan calls fn with every node-local key under prefix (without the
// store's own prefix), its value and its expiry (zero: none), in key order,
// until fn returns an error. fn must not keep value.
func (s *Store) LocalScan(prefix string, fn func(key string, value []byte, expires time.Time) error) error {
	p := localKey(prefix)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var exp time.Time
			if e := item.ExpiresAt(); e != 0 {
				exp = time.Unix(int64(e), 0)
			}
			if err := item.Value(func(v []byte) error { return fn(string(item.Key()[1:]), v, exp) }); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return ErrClosed
	}
	return err
}

// GC reclaims value-log space; call it now and then (the node does, hourly).
func (s *Store) GC() {
	for s.space.check() == nil && s.db.RunValueLogGC(0.5) == nil {
	}
}

// badgerLogger routes Badger's logs into slog, keeping only what matters.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error("badger: " + trim(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn("badger: " + trim(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Infof(string, ...any)        {}
func (b badgerLogger) Debugf(string, ...any)       {}

func trim(s string) string { return string(bytes.TrimSpace([]byte(s))) }

// entryOver reports whether the index entry item says its session is over
// at now (ended, or expired), without reading the record; an entry it
// cannot decode is not over (the record decides).
func entryOver(item *badger.Item, now time.Time) (bool, error) {
	var over bool
	err := item.Value(func(v []byte) error {
		ent, ok := decodeEntry(v)
		over = ok && (ent.ended || ent.expiredAt(now))
		return nil
	})
	return over, err
}
