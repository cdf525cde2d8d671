package session

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestStore_SavedState: a store closed by Close opens from its saved state
// (digest, counts, clock, written keys, sites) with the same figures as one
// read whole, and one that was not closed is read whole.
func TestStore_SavedState(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	dir := t.TempDir()
	s := openStore(t, dir, mt.Now)
	var recs []Record
	for i := range 3000 {
		email := fmt.Sprintf("u%d@example.com", i%300)
		sess := Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "shop", Created: s.Clock().Now(), ExpiresAt: 2_000_000}
		recs = append(recs, Record{Session: &sess})
		if i < 300 {
			u := User{Email: email, Login: Set("u", s.Clock().Now(), "shop")}
			recs = append(recs, Record{User: &u})
		}
	}
	at := s.Clock().Now()
	site := Site{Name: "blog", Revoked: Set(true, at, "shop"), RevokedBefore: at}
	recs = append(recs, Record{Site: &site})
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	digest, last := s.Digest(), s.Clock().Last()
	users, sessions := s.Counts()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for _, saved := range []bool{true, false} {
		if !saved {
			forgetSavedState(t, dir)
		}
		s := openStore(t, dir, mt.Now)
		if s.fromState != saved {
			t.Fatalf("opened from the saved state: %v, want %v", s.fromState, saved)
		}
		u, n := s.Counts()
		if s.Digest() != digest || u != users || n != sessions {
			t.Errorf("saved %v: digest or counts (%d, %d) differ from (%d, %d) at close", saved, u, n, users, sessions)
		}
		if got := s.Clock().Now(); got <= last {
			t.Errorf("saved %v: the clock went back: %v after %v", saved, got, last)
		}
		if got, ok := s.sites.get("blog"); !ok || got.RevokedBefore != site.RevokedBefore {
			t.Errorf("saved %v: the site record is not known: %+v", saved, got)
		}
		// Every key is known written: merging an ended copy must find the
		// stored one (a filter that forgot it would write the copy over it).
		end := *recs[0].Session
		end.Ended, end.EndReason = s.Clock().Now(), EndLogout
		if _, err := s.Apply(Record{Session: &end}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Session(end.ID); err != nil || got.Ended == 0 || got.UserAgent != end.UserAgent {
			t.Errorf("saved %v: %+v, %v", saved, got, err)
		}
		digest, last = s.Digest(), s.Clock().Last()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStore_SavedStateOnlyAfterClose: the state is deleted on open, so a
// store killed after it opened (nothing closed it) is read whole.
func TestStore_SavedStateOnlyAfterClose(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, nil)
	defer s.Close()
	if err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(metaStateKey)
		return err
	}); err != badger.ErrKeyNotFound {
		t.Fatalf("the saved state outlives the open: %v", err)
	}
}

// forgetSavedState deletes a closed store's saved state, as a store closed
// by an earlier version (or not closed at all) has none.
func forgetSavedState(t *testing.T, dir string) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(metaStateKey); err != nil {
			return err
		}
		return txn.Delete(filterKey(0))
	}); err != nil {
		t.Fatal(err)
	}
}

// TestStore_SavedStateStaleAfterOtherWrites: a store written after its
// state was saved, by a program that does not know the state (an earlier
// version of ussync after a downgrade), is read whole: the saved figures
// would leave that write out of the digest and counts.
func TestStore_SavedStateStaleAfterOtherWrites(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	dir := t.TempDir()
	s := openStore(t, dir, mt.Now)
	if _, err := s.Apply(newSession("s1", "ann@example.com", MakeHLC(999_000, 0), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // saves the state
		t.Fatal(err)
	}
	// The earlier version writes a session record and knows nothing of
	// the saved state.
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	rec := newSession("s2", "ann@example.com", MakeHLC(999_000, 1), 2_000_000)
	enc, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(recordKey(rec.Key()), enc) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, mt.Now)
	defer s.Close()
	if s.fromState {
		t.Fatal("opened from a state saved before another program wrote")
	}
	if _, n := s.Counts(); n != 2 {
		t.Fatalf("%d sessions counted, want 2", n)
	}
}

// TestStore_SavedLeaves: the digest's leaves are saved with the state and
// read back; a state saved without them (by a version before the leaves)
// or beside leaves an earlier run left (a version that saves none ran in
// between) is not used: the store reads every record, and its leaves are
// its records'.
func TestStore_SavedLeaves(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	dir := t.TempDir()
	write := func(s *Store, from, to int) {
		t.Helper()
		var recs []Record
		for i := from; i < to; i++ {
			recs = append(recs, newSession(fmt.Sprintf("%064x", i), "ann@example.com", s.Clock().Now(), 2_000_000))
		}
		if _, err := s.Apply(recs...); err != nil {
			t.Fatal(err)
		}
	}
	reopen := func(wantSaved bool) *Store {
		t.Helper()
		s := openStore(t, dir, mt.Now)
		if s.fromState != wantSaved {
			t.Fatalf("opened from the saved state: %v, want %v", s.fromState, wantSaved)
		}
		if diff := leavesDiffer(t, s); diff != "" {
			t.Fatal(diff)
		}
		return s
	}
	s := openStore(t, dir, mt.Now)
	write(s, 0, 2000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A state without leaves, as the version before them saved.
	leaves := setMeta(t, dir, metaLeavesPrefix, nil)
	s = reopen(false)
	write(s, 2000, 2100)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The leaves saved before those 100 sessions, beside the state saved
	// after them.
	setMeta(t, dir, metaLeavesPrefix, leaves)
	s = reopen(false)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(true)
	s.Close()
}

// setMeta replaces the chunks saved under prefix in a closed store with
// chunks (none: deleted) and returns the ones it held.
func setMeta(t *testing.T, dir string, prefix []byte, chunks map[string][]byte) map[string][]byte {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := map[string][]byte{}
	if err := db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			old[string(it.Item().KeyCopy(nil))] = v
		}
		it.Close()
		for k := range old {
			if err := txn.Delete([]byte(k)); err != nil {
				return err
			}
		}
		for k, v := range chunks {
			if err := txn.Set([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(old) == 0 {
		t.Fatal("nothing saved under the prefix")
	}
	return old
}
