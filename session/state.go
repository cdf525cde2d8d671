package session

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bits-and-blooms/bloom/v3"
	"github.com/dgraph-io/badger/v4"
)

// What a store keeps in memory about its records (the digest, the counts,
// the clock's last timestamp, the written-key filter, the sites) is written
// at Close under metaStateKey, and read back by the next Open instead of
// reading every record: a million sessions open in well under a second,
// not ten. Open deletes the key before anything else is written, so a store
// that was not closed (a crash, a kill) has none and is read whole, as
// before.
var metaStateKey = []byte{prefixMeta, 's', 't', 'a', 't', 'e'}

// The written-key filter is saved beside the state, in chunks (a value stays
// well under Badger's 1 MiB in-memory limit): metaFilterPrefix and the
// chunk's index, 4 bytes big-endian.
var metaFilterPrefix = []byte{prefixMeta, 'f', 'i', 'l', 't', 'e', 'r'}

// The digest's leaves (Store.Leaves) are saved the same way, under
// metaLeavesPrefix and the chunk's index: Buckets × Leaves hashes of 8
// bytes, big-endian, bucket by bucket. A state saved without them (by a
// version before the leaves) is not used: the store reads every record.
var metaLeavesPrefix = []byte{prefixMeta, 'l', 'e', 'a', 'v', 'e', 's'}

const filterChunk = 512 << 10

func filterKey(i int) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), metaFilterPrefix...), uint32(i))
}

func leavesKey(i int) []byte {
	return binary.BigEndian.AppendUint32(append([]byte(nil), metaLeavesPrefix...), uint32(i))
}

// encodeLeaves is the saved form of the leaves.
func encodeLeaves(l *[Buckets]LeafHashes) []byte {
	b := make([]byte, 0, 8*Buckets*Leaves)
	for i := range l {
		for _, h := range l[i] {
			b = binary.BigEndian.AppendUint64(b, h)
		}
	}
	return b
}

// decodeLeaves reads saved leaves and checks them against the digest saved
// with them: each bucket's leaves must XOR to its hash. Leaves left by an
// earlier run (a version that saves none ran since, and saved a digest of
// its own) fail the check wherever a bucket changed.
func decodeLeaves(b []byte, d *Digest) (*[Buckets]LeafHashes, bool) {
	if len(b) != 8*Buckets*Leaves {
		return nil, false
	}
	l := new([Buckets]LeafHashes)
	for i := range l {
		var x uint64
		for j := range l[i] {
			l[i][j] = binary.BigEndian.Uint64(b)
			x ^= l[i][j]
			b = b[8:]
		}
		if x != d[i] {
			return nil, false
		}
	}
	return l, true
}

// stateVersion is the layout of the saved state: a version byte; the
// users, sessions, clock, the filter's room and its length (uvarints); the
// digest's buckets (8 bytes each, big-endian); the sites (JSON) to the end.
const stateVersion = 1

// savedState is what Close saves and Open reads back.
type savedState struct {
	digest          Digest
	users, sessions int
	last            HLC
	room            int
	written         []byte // the filter, bloom's MarshalBinary (saved under its own keys)
	writtenLen      int
	sites           []Site
}

func (st *savedState) encode() ([]byte, error) {
	sites, err := json.Marshal(st.sites)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+5*binary.MaxVarintLen64+8*Buckets+len(sites))
	b = append(b, stateVersion)
	for _, v := range []uint64{uint64(st.users), uint64(st.sessions), uint64(st.last), uint64(st.room), uint64(len(st.written))} {
		b = binary.AppendUvarint(b, v)
	}
	for _, h := range st.digest {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return append(b, sites...), nil
}

func decodeState(b []byte) (savedState, bool) {
	var st savedState
	if len(b) < 1 || b[0] != stateVersion {
		return st, false
	}
	b = b[1:]
	var v [5]uint64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 || i != 2 && x > 1<<40 { // counts and lengths; 2 is the clock
			return st, false
		}
		v[i], b = x, b[n:]
	}
	st.users, st.sessions, st.last, st.room, st.writtenLen = int(v[0]), int(v[1]), HLC(v[2]), int(v[3]), int(v[4])
	if len(b) < 8*Buckets {
		return st, false
	}
	for i := range st.digest {
		st.digest[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	b = b[8*Buckets:]
	if json.Unmarshal(b, &st.sites) != nil {
		return st, false
	}
	return st, true
}

// saveState writes the in-memory state for the next Open. The writer has
// stopped: nothing changes it any more.
func (s *Store) saveState() error {
	written, err := s.written.MarshalBinary()
	if err != nil {
		return err
	}
	s.sum.Lock()
	st := savedState{digest: s.sum.digest, users: s.sum.users, sessions: s.sum.sessions, last: s.clock.Last(),
		room: s.writtenRoom, written: written, sites: s.Sites()}
	leaves := encodeLeaves(s.sum.leaves)
	s.sum.Unlock()
	b, err := st.encode()
	if err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i := 0; i*filterChunk < len(written); i++ {
		if err := wb.Set(filterKey(i), written[i*filterChunk:min(len(written), (i+1)*filterChunk)]); err != nil {
			return err
		}
	}
	for i := 0; i*filterChunk < len(leaves); i++ {
		if err := wb.Set(leavesKey(i), leaves[i*filterChunk:min(len(leaves), (i+1)*filterChunk)]); err != nil {
			return err
		}
	}
	if err := wb.Set(metaStateKey, b); err != nil {
		return err
	}
	return wb.Flush()
}

// loadState reads and deletes the state the last Close saved, and installs
// it. It reports false when there is none (the store was not closed, or is
// new) or it cannot be used: the caller then reads every record.
func (s *Store) loadState() (bool, error) {
	var (
		raw    []byte
		filter []byte
		leaves []byte
		keys   [][]byte
		stale  bool
	)
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaStateKey)
		if err != nil {
			return err
		}
		// Anything committed after the state (an earlier version of
		// ussync, which does not know the key, ran on this store after
		// the last Close: a downgrade and back) makes it stale.
		stale = s.db.MaxVersion() > item.Version()
		if raw, err = item.ValueCopy(nil); err != nil {
			return err
		}
		for _, c := range []struct {
			prefix []byte
			into   *[]byte
		}{{metaFilterPrefix, &filter}, {metaLeavesPrefix, &leaves}} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: c.prefix, PrefetchValues: true, PrefetchSize: 8})
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
				if err := it.Item().Value(func(v []byte) error {
					*c.into = append(*c.into, v...)
					return nil
				}); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read saved state: %w", err)
	}
	// Gone before anything else is written: from now on only a Close
	// vouches for the state.
	if err := s.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Delete(metaStateKey)
	}); err != nil {
		return false, fmt.Errorf("delete saved state: %w", err)
	}
	if stale {
		s.log.Warn("the store was written after its state was saved (an earlier version ran on it?); reading every record")
		return false, nil
	}
	st, ok := decodeState(raw)
	if !ok {
		s.log.Warn("saved store state unreadable; reading every record")
		return false, nil
	}
	l, ok := decodeLeaves(leaves, &st.digest)
	if !ok {
		// Saved by a version before the leaves (once, after an upgrade),
		// or beside leaves of an earlier run.
		s.log.Info("saved store state has no digest leaves of its own; reading every record")
		return false, nil
	}
	if len(filter) == st.writtenLen {
		st.written = filter
	}
	if n := st.users + st.sessions; 2*n > st.room {
		// The filter is past its room: read the keys and size it anew.
		st.written = nil
	}
	if st.written != nil {
		s.written = &bloom.BloomFilter{}
		if err := s.written.UnmarshalBinary(st.written); err != nil {
			s.log.Warn("saved written-key filter unreadable; reading every key", "err", err)
			s.written = nil
		} else {
			s.writtenRoom = st.room
		}
	}
	s.sum.digest, s.sum.leaves, s.sum.users, s.sum.sessions = st.digest, l, st.users, st.sessions
	s.sites.put(st.sites...)
	s.fromState = true
	if err := s.clock.Observe(st.last); err != nil {
		s.log.Warn("the clock's last timestamp is ahead of the wall clock; the clock did not observe it (see docs/security.md, \"Records and clocks\")",
			"max_offset", s.clock.MaxOffset())
	}
	return true, nil
}

// loadKeys fills the written-key filter from every record key.
func (s *Store) loadKeys() error {
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			s.written.Add(it.Item().Key())
		}
		return nil
	})
}
