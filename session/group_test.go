package session

import (
	"fmt"
	"testing"
	"time"
)

// TestStore_GroupApplyThenRepair: one group commit holding an Apply of a
// record and then a repair (ApplyRepairs, whose merged states the cache
// does not take) of the same record. The cache must not be left holding
// the Apply's state, which is no longer what is on disk: the next merge of
// the record would read it as the old state, XOR the wrong hash out of the
// digest, and the digest would differ from the records for good (anti-
// entropy pulls that bucket for ever and finds nothing to carry: the fault
// schedule's "the digests of n0 and n2 differ", where both nodes held the
// same records). With padding, the two land in different transactions of
// the group.
func TestStore_GroupApplyThenRepair(t *testing.T) {
	for _, padding := range []int{0, 3000} {
		t.Run(fmt.Sprintf("padding %d", padding), func(t *testing.T) {
			mt := NewManualClock(time.UnixMilli(1_000_000))
			s := openStore(t, t.TempDir(), mt.Now)
			defer s.Close()
			created := MakeHLC(999_000, 0)
			alive := newSession("s1", "ann@example.com", created, 2_000_000)
			if _, err := s.Apply(alive); err != nil {
				t.Fatal(err)
			}
			// Ends of the session, each earlier than the one before: each
			// wins the merge (of two ends, the earliest is kept).
			endedAt := func(ms int64) Record {
				r := alive
				r.Session = &Session{ID: "s1", Email: "ann@example.com", Site: "shop", Created: created, ExpiresAt: 2_000_000, Ended: MakeHLC(ms, 0), EndReason: "logout"}
				return r
			}
			touched, ended, again := endedAt(999_300), endedAt(999_200), endedAt(999_100)
			var pad []Record
			for i := range padding {
				pad = append(pad, newSession(fmt.Sprintf("pad%04d", i), "pad@example.com", MakeHLC(999_000, uint16(i+1)), 2_000_000))
			}
			hot := &applyReq{recs: append([]Record{touched}, pad...), done: make(chan struct{})}
			cold := &applyReq{recs: []Record{ended}, cold: true, done: make(chan struct{})}
			s.mu.Lock() // as the writer does around a group
			s.applyGroupLocked([]*applyReq{hot, cold})
			s.mu.Unlock()
			if hot.err != nil || cold.err != nil || len(cold.changed) != 1 {
				t.Fatalf("group: %v, %v, repair changed %d", hot.err, cold.err, len(cold.changed))
			}
			if e, ok := s.cache.entry("ss1"); ok && e.rec.Session.Ended != ended.Session.Ended {
				t.Fatalf("the cache holds the state the repair replaced: %s", e.enc)
			}
			// The next write of the record merges with what is on disk.
			if _, err := s.Apply(again); err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyDigest(); err != nil {
				t.Fatal(err)
			}
			if sess, err := s.Session("s1"); err != nil || sess.Ended != again.Session.Ended {
				t.Fatalf("s1 after the repair and a later write: %+v, %v", sess, err)
			}
		})
	}
}

// TestStore_Scrub: a bucket of the digest that differs from its records,
// in its sum or in its leaves only (a hash moved from one leaf to another
// leaves the sum right), is set to their sums, counted and reported once;
// a bucket that agrees is left alone.
func TestStore_Scrub(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	rec := newSession("s1", "ann@example.com", MakeHLC(999_000, 0), 2_000_000)
	if _, err := s.Apply(rec); err != nil {
		t.Fatal(err)
	}
	b, leaf := BucketOf(rec.Key()), LeafOf(rec.Key())
	if fixed, err := s.Scrub(b); err != nil || fixed {
		t.Fatalf("scrub of a bucket that agrees: %v, %v", fixed, err)
	}
	for i, drift := range []struct {
		name string
		bug  func()
	}{
		{"the bucket's sum and a leaf", func() { // as a bug in keeping them would leave them
			s.sum.digest[b] ^= 1 << 40
			s.sum.leaves[b][leaf] ^= 1 << 40
		}},
		{"the leaves only", func() {
			s.sum.leaves[b][leaf] ^= 1 << 40
			s.sum.leaves[b][(leaf+1)%Leaves] ^= 1 << 40
		}},
	} {
		s.sum.Lock()
		drift.bug()
		s.sum.Unlock()
		if err := s.VerifyDigest(); err == nil {
			t.Fatalf("%s: VerifyDigest finds nothing wrong", drift.name)
		}
		if fixed, err := s.Scrub(b); err != nil || !fixed {
			t.Fatalf("%s: scrub of a drifted bucket: %v, %v", drift.name, fixed, err)
		}
		if err := s.VerifyDigest(); err != nil || s.Scrubbed() != uint64(i+1) {
			t.Fatalf("%s: after the scrub: %v, %d scrubbed", drift.name, err, s.Scrubbed())
		}
		if fixed, _ := s.Scrub(b); fixed || s.Scrubbed() != uint64(i+1) {
			t.Fatalf("%s: a second scrub: %v, %d scrubbed", drift.name, fixed, s.Scrubbed())
		}
	}
	s.Close()
	if _, err := s.Scrub(b); err != ErrClosed {
		t.Fatalf("scrub after Close: %v", err)
	}
	if err := s.VerifyDigest(); err != ErrClosed {
		t.Fatalf("VerifyDigest after Close: %v", err)
	}
}

// TestStore_LeafEntriesScrubs: LeafEntries returns the records of the
// leaves asked at a coarser resolution, and scrubs the bucket at once when
// those records do not add up to a leaf kept in memory (anti-entropy reads
// them anyway), but not for a leaf it was not asked about.
func TestStore_LeafEntriesScrubs(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	var recs []Record
	for i := range 2000 {
		recs = append(recs, newSession(fmt.Sprintf("s%d", i), "ann@example.com", MakeHLC(999_000, uint16(i)), 2_000_000))
	}
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	const bits = 4
	b, leaf := BucketOf(recs[0].Key()), LeafOf(recs[0].Key())
	at := int(leaf >> (LeafBits - bits))
	want := map[string]bool{}
	for _, r := range recs {
		if BucketOf(r.Key()) == b && int(LeafOf(r.Key())>>(LeafBits-bits)) == at {
			want[r.Key()] = true
		}
	}
	only := func(i int) bool { return i == at }
	other := func(i int) bool { return i == (at+1)%(1<<bits) }
	read := func(in func(int) bool) []BucketEntry {
		t.Helper()
		es, err := s.LeafEntries(b, bits, in)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	es := read(only)
	got := map[string]bool{}
	for _, e := range es {
		got[e.Key] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || s.Scrubbed() != 0 {
		t.Fatalf("%d records read, want %d; %d scrubbed", len(got), len(want), s.Scrubbed())
	}
	s.sum.Lock()
	s.sum.leaves[b][leaf] ^= 1 << 40 // the sum kept right: only the leaves tell
	s.sum.leaves[b][leaf^(1<<(LeafBits-1))] ^= 1 << 40
	s.sum.Unlock()
	read(other)
	if s.Scrubbed() != 0 {
		t.Fatal("a leaf not read was scrubbed")
	}
	if len(read(only)) != len(want) || s.Scrubbed() != 1 {
		t.Fatalf("a drifted leaf read: %d scrubbed, want 1", s.Scrubbed())
	}
	if err := s.VerifyDigest(); err != nil {
		t.Fatal(err)
	}
}
