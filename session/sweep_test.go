package session

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// toIndexVersion2 takes s's indexes back to version 2's layout: entries
// holding the expiry, an x key per session (its end, for the sweeper), and
// index version "2".
func toIndexVersion2(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
		defer it.Close()
		var sets [][2][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			var r Record
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return err
			}
			sess := r.Session
			if sess == nil {
				continue
			}
			ent := binary.BigEndian.AppendUint64(nil, uint64(sess.ExpiresAt))
			ent = append(append(ent, encodeEntry(sess)[8]), sess.Site...)
			end := binary.BigEndian.AppendUint64([]byte{prefixEnd}, uint64(sess.EndedAt()))
			sets = append(sets, [2][]byte{indexKey(sess), ent}, [2][]byte{allKey(sess), ent}, [2][]byte{append(end, sess.ID...), nil})
		}
		it.Close()
		for _, kv := range sets {
			if err := txn.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return txn.Set(metaIndexKey, []byte("2"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStore_OpensIndexVersion2 opens a store as the previous version left
// it (index version 2: a fourth key per session, the index by end, and
// entries holding the expiry) and finds it migrated: the index by end
// gone, the entries rewritten, the digest and listings unchanged, and the
// sweeper sweeping what is past retention.
func TestStore_OpensIndexVersion2(t *testing.T) {
	dir := t.TempDir()
	mt := NewManualClock(time.UnixMilli(10_000_000))
	s := openStore(t, dir, mt.Now) // retention: 1 h
	ended := newSession("ended", "ann@example.com", MakeHLC(9_000_000, 0), 9_600_000)
	ended.Session.Ended, ended.Session.EndReason = MakeHLC(9_500_000, 0), EndLogout
	alive := newSession("alive", "ann@example.com", MakeHLC(9_000_001, 0), 20_000_000)
	other := newSession("other", "bob@example.com", MakeHLC(9_000_002, 0), 30_000_000)
	if _, err := s.Apply(ended, alive, other); err != nil {
		t.Fatal(err)
	}
	want := indexEntries(t, s)
	digest := s.Digest()
	toIndexVersion2(t, s)
	if k := indexKeys(t, s); k[prefixEnd] != 3 {
		t.Fatalf("the version 2 layout has %d x keys, want 3", k[prefixEnd])
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, mt.Now)
	defer s.Close()
	if k := indexKeys(t, s); k[prefixEnd] != 0 || k[prefixAll] != 3 || k[prefixIndex] != 3 {
		t.Fatalf("index keys after the migration: %v", k)
	}
	if got := indexEntries(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("entries after the migration:\n got %q\nwant %q", got, want)
	}
	if s.Digest() != digest {
		t.Fatal("the migration changed the digest")
	}
	if got := listIDs(t, s, SessionFilter{Active: true}); !reflect.DeepEqual(got, []string{"other", "alive"}) {
		t.Fatalf("active listing after the migration: %v", got)
	}
	mt.Set(time.UnixMilli(9_600_000 + time.Hour.Milliseconds()))
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep after the migration = %d, %v; want 1", n, err)
	}
	if got := listIDs(t, s, SessionFilter{}); !reflect.DeepEqual(got, []string{"other", "alive"}) {
		t.Fatalf("listing after the sweep: %v", got)
	}
}

// indexEntries maps every key of both session indexes to its entry.
func indexEntries(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if k[0] != prefixAll && k[0] != prefixIndex {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(k)] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestStore_SweepReadsPastLongSessions: sessions created before the cutoff
// but living on (a long ttl) do not hide those behind them that are past
// retention, and are kept.
func TestStore_SweepReadsPastLongSessions(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(10_000_000))
	s := openStore(t, t.TempDir(), mt.Now) // retention: 1 h
	defer s.Close()
	var recs []Record
	for i := range 5 {
		recs = append(recs, newSession(string(rune('a'+i))+"-long", "ann@example.com", MakeHLC(9_000_000+int64(i), 0), 100_000_000))
	}
	short := newSession("short", "ann@example.com", MakeHLC(9_000_010, 0), 9_100_000)
	if _, err := s.Apply(append(recs, short)...); err != nil {
		t.Fatal(err)
	}
	mt.Set(time.UnixMilli(9_100_000 + time.Hour.Milliseconds()))
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want 1", n, err)
	}
	if _, err := s.Session("short"); err != ErrNotFound {
		t.Fatalf("the expired session after the sweep: %v", err)
	}
	if _, sessions := s.Counts(); sessions != 5 {
		t.Fatalf("%d sessions after the sweep, want the 5 long ones", sessions)
	}
	if n, err := s.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want 0", n, err)
	}
}

// TestStore_SweepSessionEndingBeforeCreation: a session whose expiry is
// before its creation is kept for retention from its creation, by Apply and
// Sweep alike (so a node that has not swept it cannot keep sending it to
// one that refuses it).
func TestStore_SweepSessionEndingBeforeCreation(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(10_000_000))
	s := openStore(t, t.TempDir(), mt.Now) // retention: 1 h
	defer s.Close()
	odd := newSession("odd", "ann@example.com", MakeHLC(9_000_000, 0), 1_000)
	if changed, err := s.Apply(odd); err != nil || len(changed) != 1 {
		t.Fatalf("apply = %d, %v: a session expired at creation is history, kept for retention", len(changed), err)
	}
	if n, err := s.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep within retention of its creation = %d, %v", n, err)
	}
	mt.Set(time.UnixMilli(9_000_000 + time.Hour.Milliseconds()))
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep past retention of its creation = %d, %v; want 1", n, err)
	}
	if changed, err := s.Apply(odd); err != nil || len(changed) != 0 {
		t.Fatalf("apply once swept = %d, %v: want it skipped", len(changed), err)
	}
}

// TestStore_SweepGoesOnWhereItStopped: a sweep that runs out of its budget
// (entries read, sessions deleted) leaves the rest to the next, which goes
// on after the last entry read: repeated sweeps delete every session past
// retention, once, and none other.
func TestStore_SweepGoesOnWhereItStopped(t *testing.T) {
	defer func(b, s int) { sweepBatch, sweepScan = b, s }(sweepBatch, sweepScan)
	sweepBatch, sweepScan = 2, 3
	mt := NewManualClock(time.UnixMilli(10_000_000))
	s := openStore(t, t.TempDir(), mt.Now) // retention: 1 h
	defer s.Close()
	var recs []Record
	for i := range 20 {
		expires := int64(9_100_000) // past retention at the sweep
		if i%3 == 0 {
			expires = 100_000_000 // lives on
		}
		recs = append(recs, newSession(fmt.Sprintf("s%02d", i), "ann@example.com", MakeHLC(9_000_000+int64(i), 0), expires))
	}
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	mt.Set(time.UnixMilli(9_100_000 + time.Hour.Milliseconds()))
	total := 0
	for range 40 {
		n, err := s.Sweep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n > sweepBatch {
			t.Fatalf("one sweep deleted %d, more than its batch of %d", n, sweepBatch)
		}
		total += n
	}
	if total != 13 {
		t.Fatalf("the sweeps deleted %d sessions, want the 13 past retention", total)
	}
	if _, sessions := s.Counts(); sessions != 7 {
		t.Fatalf("%d sessions left, want the 7 living on", sessions)
	}
}
