package session

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"pgregory.net/rapid"
)

func openStore(t testing.TB, dir string, now func() time.Time) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir, InMemory: dir == "", Now: now, Retention: time.Hour})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

// stateOf is every record of a store, by bucket: what convergence compares.
func stateOf(t interface{ Fatalf(string, ...any) }, s *Store) map[uint8][]string {
	out := map[uint8][]string{}
	for b := 0; b < Buckets; b++ {
		recs, err := s.BucketRecords(uint8(b))
		if err != nil {
			t.Fatalf("bucket %d: %v", b, err)
		}
		for _, r := range recs {
			out[uint8(b)] = append(out[uint8(b)], enc(t.(interface{ Fatal(...any) }), r))
		}
	}
	return out
}

// antiEntropy does what one push/pull round does: the two stores compare
// digests and send each other the records of the buckets that differ.
func antiEntropy(t interface{ Fatalf(string, ...any) }, a, b *Store) {
	da, db := a.Digest(), b.Digest()
	for _, bucket := range da.Diff(&db) {
		ra, err := a.BucketRecords(bucket)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		rb, err := b.BucketRecords(bucket)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if _, err := b.Apply(ra...); err != nil {
			t.Fatalf("apply: %v", err)
		}
		if _, err := a.Apply(rb...); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
}

// noneRefused fails unless every store merged every record it was given:
// a property over records the stores refuse would prove nothing.
func noneRefused(t interface{ Fatalf(string, ...any) }, stores ...*Store) {
	for _, s := range stores {
		for reason, n := range s.Refused() {
			if n != 0 {
				t.Fatalf("a store refused %d records (%s): the generator makes records no store accepts", n, reason)
			}
		}
	}
}

func TestStore_Converges(t *testing.T) {
	clock := func() time.Time { return time.UnixMilli(10) }
	rapid.Check(t, func(rt *rapid.T) {
		recs := rapid.SliceOfN(rapid.Custom(genRecord), 1, 30).Draw(rt, "records")
		inOrder := openStore(t, "", clock)
		shuffled := openStore(t, "", clock)
		lossy := openStore(t, "", clock)
		defer inOrder.Close()
		defer shuffled.Close()
		defer lossy.Close()

		if _, err := inOrder.Apply(recs...); err != nil {
			rt.Fatalf("apply: %v", err)
		}
		// Any order, with duplicates, one record at a time.
		perm := rapid.Permutation(append(append([]Record{}, recs...), recs...)).Draw(rt, "perm")
		for _, r := range perm[:len(recs)+rapid.IntRange(0, len(recs)).Draw(rt, "dups")] {
			if _, err := shuffled.Apply(r); err != nil {
				rt.Fatalf("apply: %v", err)
			}
		}
		// perm may have left some records out: the duplicates stand in for
		// them only partly, so shuffled too needs a round of anti-entropy.
		for _, r := range recs {
			if rapid.Bool().Draw(rt, "keep") {
				if _, err := lossy.Apply(r); err != nil {
					rt.Fatalf("apply: %v", err)
				}
			}
		}
		antiEntropy(rt, lossy, inOrder)
		antiEntropy(rt, shuffled, inOrder)

		noneRefused(rt, inOrder, shuffled, lossy)
		want := stateOf(rt, inOrder)
		for name, s := range map[string]*Store{"shuffled": shuffled, "lossy": lossy} {
			if got := stateOf(rt, s); !reflect.DeepEqual(got, want) {
				rt.Fatalf("%s replica state differs:\n got %v\nwant %v", name, got, want)
			}
			if s.Digest() != inOrder.Digest() {
				rt.Fatalf("%s replica digest differs", name)
			}
		}
	})
}

func TestStore_ShuffledWithoutRepair(t *testing.T) {
	// Every delivery order of the same set of records, each delivered at
	// least once, gives the same digest with no anti-entropy at all.
	clock := func() time.Time { return time.UnixMilli(10) }
	rapid.Check(t, func(rt *rapid.T) {
		recs := rapid.SliceOfN(rapid.Custom(genRecord), 1, 20).Draw(rt, "records")
		a := openStore(t, "", clock)
		b := openStore(t, "", clock)
		defer a.Close()
		defer b.Close()
		if _, err := a.Apply(recs...); err != nil {
			rt.Fatal(err)
		}
		extra := rapid.SliceOfN(rapid.SampledFrom(recs), 0, 10).Draw(rt, "dups")
		for _, r := range rapid.Permutation(append(append([]Record{}, recs...), extra...)).Draw(rt, "order") {
			if _, err := b.Apply(r); err != nil {
				rt.Fatal(err)
			}
		}
		noneRefused(rt, a, b)
		if a.Digest() != b.Digest() || !reflect.DeepEqual(stateOf(rt, a), stateOf(rt, b)) {
			rt.Fatal("replicas diverged")
		}
	})
}

func newSession(id, email string, created HLC, expires int64) Record {
	return Record{Session: &Session{ID: id, Email: email, Site: "shop", Created: created, ExpiresAt: expires}}
}

func TestStore_Apply(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()

	t.Run("new record changes, duplicate does not", func(t *testing.T) {
		r := newSession("s1", "ann@example.com", MakeHLC(999_000, 0), 2_000_000)
		ch, err := s.Apply(r)
		if err != nil || len(ch) != 1 {
			t.Fatalf("first apply: %v changed %d", err, len(ch))
		}
		ch, err = s.Apply(r)
		if err != nil || len(ch) != 0 {
			t.Fatalf("duplicate apply: %v changed %d", err, len(ch))
		}
	})
	t.Run("clock observes received timestamps", func(t *testing.T) {
		far := MakeHLC(1_004_000, 3) // 4 s ahead: within the max offset
		u := User{Email: "ann@example.com", Login: Set("ann", far, "blog")}
		if _, err := s.Apply(Record{User: &u}); err != nil {
			t.Fatal(err)
		}
		if now := s.Clock().Now(); now <= far {
			t.Fatalf("clock %v not past observed %v", now, far)
		}
	})
	t.Run("invalid records are skipped", func(t *testing.T) {
		ch, err := s.Apply(Record{}, Record{Session: &Session{ID: "x"}})
		if err != nil || len(ch) != 0 {
			t.Fatalf("apply invalid: %v changed %d", err, len(ch))
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if _, err := s.Session("nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
		if _, err := s.User("nobody@example.com"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestStore_LateLoginStaysRevoked(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	// A node logged ann in at 900; another node logged her out everywhere at
	// 950; this node hears of the logout first and of the login later.
	u := User{Email: "ann@example.com", RevokedBefore: MakeHLC(950_000, 0)}
	if _, err := s.Apply(Record{User: &u}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(newSession("late", "ann@example.com", MakeHLC(900_000, 0), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(newSession("fresh", "ann@example.com", MakeHLC(960_000, 0), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	active, err := s.UserSessions("ann@example.com", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0].ID != "fresh" {
		t.Fatalf("active sessions = %+v, want only the one after the logout", active)
	}
	if n, err := s.ActiveSessions(); err != nil || n != 1 {
		t.Fatalf("ActiveSessions = %d, %v", n, err)
	}
}

func TestStore_UserSessionsNewestFirst(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	for i := 0; i < 5; i++ {
		r := newSession(fmt.Sprintf("s%d", i), "ann@example.com", MakeHLC(int64(990_000+i), 0), 2_000_000)
		if i == 2 {
			r.Session.Ended, r.Session.EndReason = MakeHLC(995_000, 0), EndLogout
		}
		if _, err := s.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply(newSession("other", "bob@example.com", MakeHLC(990_000, 0), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	all, err := s.UserSessions("ann@example.com", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range all {
		ids = append(ids, x.ID)
	}
	if want := []string{"s4", "s3", "s2", "s1", "s0"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("all = %v, want %v", ids, want)
	}
	active, _ := s.UserSessions("ann@example.com", false, 2)
	if len(active) != 2 || active[0].ID != "s4" || active[1].ID != "s3" {
		t.Fatalf("active limit 2 = %+v", active)
	}
}

func TestStore_ReopenKeepsStateAndDigest(t *testing.T) {
	dir := t.TempDir()
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, dir, mt.Now)
	u := User{Email: "ann@example.com", Login: Set("ann", MakeHLC(999_000, 0), "shop")}
	if _, err := s.Apply(Record{User: &u}, newSession("s1", "ann@example.com", MakeHLC(999_001, 0), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	digest, last := s.Digest(), s.Clock().Last()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	s = openStore(t, dir, mt.Now)
	defer s.Close()
	if s.Digest() != digest {
		t.Fatal("digest changed across reopen")
	}
	if users, sessions := s.Counts(); users != 1 || sessions != 1 {
		t.Fatalf("counts = %d users %d sessions", users, sessions)
	}
	if s.Clock().Now() <= last {
		t.Fatal("clock went back across reopen")
	}
	if _, err := s.Session("s1"); err != nil {
		t.Fatal(err)
	}
}

// TestStore_Sweep: a session is swept once retention has passed since its
// expiry, ended or not; an ended session is kept until then, so that its
// alive form, sent by a peer that held it all along (away longer than
// retention, or restored from a backup), never brings it back to life.
func TestStore_Sweep(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(10_000_000))
	s := openStore(t, t.TempDir(), mt.Now) // retention: 1 h
	defer s.Close()
	aliveForm := newSession("ended", "ann@example.com", MakeHLC(9_000_000, 0), 20_000_000)
	ended := newSession("ended", "ann@example.com", MakeHLC(9_000_000, 0), 20_000_000)
	ended.Session.Ended, ended.Session.EndReason = MakeHLC(9_500_000, 0), EndLogout
	alive := newSession("alive", "ann@example.com", MakeHLC(9_000_000, 0), 20_000_000)
	short := newSession("short", "ann@example.com", MakeHLC(9_000_000, 1), 9_600_000)
	if _, err := s.Apply(ended, alive, short); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep before retention: %d, %v", n, err)
	}
	// Retention past the end, not past the expiry: the end is kept, and
	// the alive form sent back changes nothing.
	mt.Set(time.UnixMilli(9_600_000 + time.Hour.Milliseconds()))
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep past the short session's expiry = %d, %v; want 1", n, err)
	}
	if ch, err := s.Apply(aliveForm); err != nil || len(ch) != 0 {
		t.Fatalf("the alive form of an ended session within its lifetime: changed %d, %v", len(ch), err)
	}
	if sess, err := s.Session("ended"); err != nil || sess.Ended == 0 {
		t.Fatalf("the ended session within its lifetime: %+v, %v", sess, err)
	}
	// Retention past the expiry: both swept; neither form comes back.
	mt.Set(time.UnixMilli(20_000_000 + time.Hour.Milliseconds()))
	if n, err := s.Sweep(context.Background()); err != nil || n != 2 {
		t.Fatalf("sweep past expiry = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"ended", "alive", "short"} {
		if _, err := s.Session(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("swept session %s still there: %v", id, err)
		}
	}
	if ch, err := s.Apply(ended, aliveForm, short); err != nil || len(ch) != 0 {
		t.Fatalf("swept records resurrected: %d, %v", len(ch), err)
	}
	// The digest is that of a store that never held a session.
	fresh := openStore(t, "", mt.Now)
	defer fresh.Close()
	if fresh.Digest() != s.Digest() {
		t.Fatal("digest after sweep differs from a store without the swept records")
	}
}

// TestStore_SweepRewritesEndEntries: an index entry written when retention
// ran from an ended session's end (earlier builds) makes the sweeper read
// the session's record; the record is kept (its expiry is within
// retention), and the entry written again, so the next pass does not read
// it.
func TestStore_SweepRewritesEndEntries(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(10_000_000))
	s := openStore(t, t.TempDir(), mt.Now) // retention: 1 h
	defer s.Close()
	ended := newSession("ended", "ann@example.com", MakeHLC(9_000_000, 0), 20_000_000)
	ended.Session.Ended, ended.Session.EndReason = MakeHLC(9_500_000, 0), EndLogout
	if _, err := s.Apply(ended); err != nil {
		t.Fatal(err)
	}
	old := binary.BigEndian.AppendUint64(nil, uint64(9_500_000)) // the end, as earlier builds wrote it
	old = append(append(old, entryEnded), "shop"...)
	if err := s.db.Update(func(txn *badger.Txn) error {
		for _, k := range [][]byte{indexKey(ended.Session), allKey(ended.Session)} {
			if err := txn.Set(k, old); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mt.Set(time.UnixMilli(9_500_000 + time.Hour.Milliseconds()))
	if ids, err := s.sweepCandidates(mt.Now()); err != nil || len(ids) != 1 {
		t.Fatalf("candidates with the old entry: %v, %v; want the ended session", ids, err)
	}
	if n, err := s.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep = %d, %v; want 0: the session expires later", n, err)
	}
	if ids, err := s.sweepCandidates(mt.Now()); err != nil || len(ids) != 0 {
		t.Fatalf("candidates once the entry is written again: %v, %v; want none", ids, err)
	}
	if sess, err := s.Session("ended"); err != nil || sess.Ended == 0 {
		t.Fatalf("the ended session: %+v, %v", sess, err)
	}
}

func TestStore_UseOnce(t *testing.T) {
	mt := NewManualClock(time.Now())
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	exp := mt.Now().Add(time.Minute)
	if first, err := s.UseOnce("ticket-1", exp); err != nil || !first {
		t.Fatalf("first use = %v, %v", first, err)
	}
	if first, err := s.UseOnce("ticket-1", exp); err != nil || first {
		t.Fatalf("replay = %v, %v", first, err)
	}
	if first, _ := s.UseOnce("ticket-2", mt.Now().Add(-time.Second)); first {
		t.Fatal("expired ticket accepted")
	}
}

func TestStore_LocalSessionsStayOut(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	empty := s.Digest()
	local := newSession("local", "ann@example.com", MakeHLC(999_000, 0), 2_000_000)
	local.Session.Local = true
	if ch, err := s.Apply(local); err != nil || len(ch) != 1 {
		t.Fatalf("apply local: %d, %v", len(ch), err)
	}
	if s.Digest() != empty {
		t.Fatal("a local session changed the digest")
	}
	for b := 0; b < Buckets; b++ {
		if recs, _ := s.BucketRecords(uint8(b)); len(recs) != 0 {
			t.Fatalf("a local session is offered for repair: %+v", recs)
		}
	}
	if _, err := s.Session("local"); err != nil {
		t.Fatalf("local session not stored: %v", err)
	}
}

// TestStore_ConcurrentApply drives the group commit and the cache: many
// callers writing the same few records at once must end where one caller
// applying everything in order ends, digest included.
func TestStore_ConcurrentApply(t *testing.T) {
	clock := func() time.Time { return time.UnixMilli(10) }
	var recs []Record
	for i := 0; i < 400; i++ {
		email := fmt.Sprintf("u%d@example.com", i%5)
		u := User{Email: email, Login: Set(fmt.Sprint(i), MakeHLC(int64(i), 0), "n"), RevokedBefore: MakeHLC(int64(i%7), 0)}
		s := Session{ID: fmt.Sprintf("s%d", i%40), Email: email, Site: "n", Created: 1, ExpiresAt: 1 << 30}
		if i%3 == 0 {
			s.Ended, s.EndReason = MakeHLC(int64(i)+1, 0), EndLogout
		}
		recs = append(recs, Record{User: &u}, Record{Session: &s})
	}
	concurrent := openStore(t, t.TempDir(), clock)
	defer concurrent.Close()
	done := make(chan error)
	for w := 0; w < 8; w++ {
		go func(w int) {
			var err error
			for i := w; i < len(recs) && err == nil; i += 8 {
				_, err = concurrent.Apply(recs[i])
			}
			done <- err
		}(w)
	}
	for w := 0; w < 8; w++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	serial := openStore(t, "", clock)
	defer serial.Close()
	if _, err := serial.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	noneRefused(t, concurrent, serial)
	if concurrent.Digest() != serial.Digest() || !reflect.DeepEqual(stateOf(t, concurrent), stateOf(t, serial)) {
		t.Fatal("concurrent writers diverged from one serial writer")
	}
	// Reads through the cache agree with the disk after a reopen.
	u, err := concurrent.User("u1@example.com")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := serial.User("u1@example.com")
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("cached user %+v, want %+v", u, want)
	}
}

func TestStore_Local(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	empty := s.Digest()
	if err := s.LocalPut("code/ann@example.com", []byte("mac"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := s.LocalGet("code/ann@example.com"); err != nil || string(v) != "mac" {
		t.Fatalf("get = %q, %v", v, err)
	}
	if s.Digest() != empty {
		t.Fatal("local data changed the digest")
	}
	err := s.LocalUpdate("n", 0, func(old []byte) ([]byte, error) { return append(old, 'x'), nil })
	if err != nil {
		t.Fatal(err)
	}
	_ = s.LocalUpdate("n", 0, func(old []byte) ([]byte, error) { return append(old, 'y'), nil })
	if v, _ := s.LocalGet("n"); string(v) != "xy" {
		t.Fatalf("update = %q", v)
	}
	if err := s.LocalDelete("n"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LocalGet("n"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// TestStore_MergesWithWhatIsOnDisk: a record the cache does not hold (a
// reopened store, or no cache at all) is merged with the one on disk, never
// written over it: the written-key filter must know every key on disk.
func TestStore_MergesWithWhatIsOnDisk(t *testing.T) {
	ended := func() Record {
		r := newSession("s1", "ann@example.com", MakeHLC(999_001, 0), 2_000_000)
		r.Session.Ended, r.Session.EndReason = MakeHLC(999_500, 0), "logout"
		return r
	}
	alive := func() Record { return newSession("s1", "ann@example.com", MakeHLC(999_001, 0), 2_000_000) }
	check := func(t *testing.T, s *Store, digest Digest) {
		t.Helper()
		if _, err := s.Apply(alive()); err != nil {
			t.Fatal(err)
		}
		got, err := s.Session("s1")
		if err != nil || got.Ended == 0 || got.EndReason != "logout" {
			t.Fatalf("after the older copy: %+v, %v; want it still ended", got, err)
		}
		if _, n := s.Counts(); n != 1 || s.Digest() != digest {
			t.Fatalf("%d sessions, digest changed: %v", n, s.Digest() != digest)
		}
	}
	mt := NewManualClock(time.UnixMilli(1_000_000))
	t.Run("reopened", func(t *testing.T) {
		dir := t.TempDir()
		s := openStore(t, dir, mt.Now)
		if _, err := s.Apply(ended()); err != nil {
			t.Fatal(err)
		}
		digest := s.Digest()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, dir, mt.Now)
		defer s.Close()
		check(t, s, digest)
	})
	t.Run("no cache", func(t *testing.T) {
		s, err := Open(Options{InMemory: true, Now: mt.Now, Retention: time.Hour, CacheEntries: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Apply(ended()); err != nil {
			t.Fatal(err)
		}
		check(t, s, s.Digest())
	})
}

func TestStore_Fresh(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	if !s.Fresh() {
		t.Fatal("a new store is not fresh")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, nil)
	if s.Fresh() {
		t.Fatal("a reopened store is fresh")
	}
	// A store written before the index version was recorded: records, no
	// version.
	if ch, err := s.Apply(Record{User: &User{Email: "ann@example.com", Created: s.Clock().Now()}}); err != nil || len(ch) != 1 {
		t.Fatal(ch, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaIndexKey) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, nil)
	defer s.Close()
	if s.Fresh() {
		t.Fatal("a store of an earlier version is fresh")
	}
	mem := openStore(t, "", nil)
	defer mem.Close()
	if !mem.Fresh() {
		t.Fatal("an in-memory store is not fresh")
	}
}

// quietLog drops Badger's chatter in tests that open many stores.
var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// recomputed is the digest of what s holds on disk: the XOR, per bucket, of
// the hash of every replicated record's stored encoding.
func recomputed(t interface{ Fatalf(string, ...any) }, s *Store) Digest {
	var d Digest
	for b := 0; b < Buckets; b++ {
		entries, err := s.BucketEntries(uint8(b))
		if err != nil {
			t.Fatalf("bucket %d: %v", b, err)
		}
		for _, e := range entries {
			if BucketOf(e.Key) != uint8(b) {
				t.Fatalf("record %q in bucket %d, belongs in %d", e.Key, b, BucketOf(e.Key))
			}
			d[b] ^= recordHash(e.Key, e.Enc)
		}
	}
	return d
}

// leavesDiffer says where s's leaves (Store.Leaves) are not those its
// records give, or "": each record's hash XORed into the leaf LeafOf names
// in its bucket.
func leavesDiffer(t interface{ Fatalf(string, ...any) }, s *Store) string {
	for b := 0; b < Buckets; b++ {
		var want, got LeafHashes
		entries, err := s.BucketEntries(uint8(b))
		if err != nil {
			t.Fatalf("bucket %d: %v", b, err)
		}
		for _, e := range entries {
			want[LeafOf(e.Key)] ^= e.Hash
		}
		s.Leaves(uint8(b), &got)
		if got != want {
			return fmt.Sprintf("the leaves of bucket %d are not its records'", b)
		}
	}
	return ""
}

// TestStore_DigestMatchesRecordsAcrossRestarts: whatever a store went
// through (merges of every kind, local sessions, sweeps, many records in
// one call, concurrent calls), its digest is the one its records give, and
// stays so after each restart (issue 13, item 0: anti-entropy trusts it).
func TestStore_DigestMatchesRecordsAcrossRestarts(t *testing.T) {
	t.Run("random histories", func(t *testing.T) {
		// Seeded histories rather than rapid's hundred: each restart opens
		// Badger on disk, which is what takes the time.
		for seed := uint64(1); seed <= 8; seed++ {
			rng := rand.New(rand.NewPCG(seed, 13))
			dir := t.TempDir()
			mt := NewManualClock(time.UnixMilli(1 << 40))
			open := func() *Store {
				s, err := Open(Options{Dir: dir, Now: mt.Now, Retention: time.Hour, Logger: quietLog})
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				return s
			}
			s := open()
			for i := 0; i < 60; i++ {
				switch rng.IntN(12) {
				case 0: // restart
					before := s.Digest()
					if err := s.Close(); err != nil {
						t.Fatalf("close: %v", err)
					}
					s = open()
					if s.Digest() != before {
						t.Fatalf("seed %d, step %d: digest changed across a restart", seed, i)
					}
				case 1: // time passes; history is swept
					mt.Set(mt.Now().Add(time.Duration(rng.IntN(3)) * time.Hour))
					if _, err := s.Sweep(context.Background()); err != nil {
						t.Fatalf("sweep: %v", err)
					}
				default:
					var recs []Record
					for n := 1 + rng.IntN(5); n > 0; n-- {
						recs = append(recs, randomRecord(rng, mt.Now()))
					}
					if _, err := s.Apply(recs...); err != nil {
						t.Fatalf("apply: %v", err)
					}
				}
				if got := recomputed(t, s); s.Digest() != got {
					t.Fatalf("seed %d, step %d: the digest is not the records'", seed, i)
				}
				if diff := leavesDiffer(t, s); diff != "" {
					t.Fatalf("seed %d, step %d: %s", seed, i, diff)
				}
				if err := s.VerifyDigest(); err != nil {
					t.Fatalf("seed %d, step %d: %v", seed, i, err)
				}
			}
			s.Close()
		}
	})

	t.Run("large and concurrent applies", func(t *testing.T) {
		dir := t.TempDir()
		mt := NewManualClock(time.UnixMilli(1 << 40))
		s := openStore(t, dir, mt.Now)
		// One call over Badger's batch size, with keys written twice in it
		// (on both sides of a mid-call commit).
		var recs []Record
		ua := strings.Repeat("u", 400)
		for i := 0; i < 5000; i++ {
			r := newSession(fmt.Sprintf("s%d", i%3500), "ann@example.com", MakeHLC(1<<40-1000, uint16(i)), 1<<41)
			r.Session.UserAgent = ua
			if i >= 3500 {
				r.Session.Ended, r.Session.EndReason = MakeHLC(1<<40-10, 0), EndLogout
			}
			recs = append(recs, r)
		}
		if _, err := s.Apply(recs...); err != nil {
			t.Fatal(err)
		}
		// Calls at once, committed in groups.
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					u := User{Email: fmt.Sprintf("u%d@example.com", i), Login: Set(fmt.Sprintf("l%d", g), MakeHLC(1<<40-500, uint16(g)), "shop")}
					if _, err := s.Apply(Record{User: &u}, newSession(fmt.Sprintf("g%d-%d", g, i), u.Email, MakeHLC(1<<40-400, 0), 1<<41)); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		for round := 0; round < 3; round++ {
			if got := recomputed(t, s); s.Digest() != got {
				t.Fatalf("round %d: the digest is not the records'", round)
			}
			if diff := leavesDiffer(t, s); diff != "" {
				t.Fatalf("round %d: %s", round, diff)
			}
			before := s.Digest()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openStore(t, dir, mt.Now)
			if s.Digest() != before {
				t.Fatalf("round %d: digest changed across a restart", round)
			}
		}
		s.Close()
	})
}

// randomRecord draws a record over a small universe of keys, so that
// records collide and merge: users with any field set, sessions alive or
// ended, local or not, expiring around now.
func randomRecord(rng *rand.Rand, now time.Time) Record {
	at := func() HLC {
		return MakeHLC(now.UnixMilli()-rng.Int64N(3*time.Hour.Milliseconds()), uint16(rng.IntN(3)))
	}
	email := []string{"ann@example.com", "bob@example.com"}[rng.IntN(2)]
	if rng.IntN(3) == 0 {
		u := User{Email: email, Created: at()}
		switch rng.IntN(4) {
		case 0:
			u.Login = Set(fmt.Sprintf("l%d", rng.IntN(3)), at(), "shop")
		case 1:
			u.DisplayName = Set(fmt.Sprintf("d%d", rng.IntN(3)), at(), "blog")
		case 2:
			u.Verified = Set(Verification{OK: true, Method: "code"}, at(), "shop")
		case 3:
			u.RevokedBefore = at()
		}
		return Record{User: &u}
	}
	s := Session{ID: fmt.Sprintf("s%d", rng.IntN(8)), Email: email, Site: "shop", Created: at(),
		ExpiresAt: now.UnixMilli() + rng.Int64N(4*time.Hour.Milliseconds()) - 2*time.Hour.Milliseconds(), Local: rng.IntN(4) == 0}
	if rng.IntN(2) == 0 {
		s.Ended, s.EndReason = at(), EndLogout
	}
	return Record{Session: &s}
}

// TestStore_LocalEnc: anti-entropy tells a local session by the end of its
// stored encoding; a user agent made to look like it changes nothing.
func TestStore_LocalEnc(t *testing.T) {
	for _, tc := range []struct {
		rec   Record
		local bool
	}{
		{Record{Session: &Session{ID: "a", Email: "ann@example.com", Site: "n0", Created: 1, ExpiresAt: 2, Local: true}}, true},
		{Record{Session: &Session{ID: "b", Email: "ann@example.com", Site: "n0", Created: 1, ExpiresAt: 2}}, false},
		{Record{Session: &Session{ID: "c", Email: "ann@example.com", Site: "n0", UserAgent: `x,"local":true}}`, Created: 1, ExpiresAt: 2}}, false},
		{Record{Session: &Session{ID: "d", Email: "ann@example.com", Site: "n0", Ended: 3, EndReason: `,"local":true}}`, Created: 1, ExpiresAt: 2}}, false},
		{Record{User: &User{Email: "ann@example.com", Login: Set(`,"local":true}}`, 1, "n0")}}, false},
	} {
		enc, err := json.Marshal(tc.rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := localEnc(tc.rec.Key(), enc); got != tc.local {
			t.Errorf("localEnc(%s) = %v, want %v", enc, got, tc.local)
		}
	}
}

// TestStore_DigestDoesNotWaitForWrites: the digest and counts are read
// while a write holds the writers' lock (a group commit of thousands of
// records takes seconds on a loaded machine; memberlist reads the digest
// inside a push/pull, whose stream must not wait for it), and they are
// those of what is committed.
func TestStore_DigestDoesNotWaitForWrites(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	if _, err := s.Apply(newSession("s1", "ann@example.com", MakeHLC(999_000, 0), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	want := s.Digest()

	s.mu.Lock() // as the writer holds it through a group commit
	applied := make(chan error, 1)
	go func() { // waits for the lock: nothing of it is committed yet
		_, err := s.Apply(newSession("s2", "ann@example.com", MakeHLC(999_000, 1), 2_000_000))
		applied <- err
	}()
	read := make(chan struct{})
	var (
		got          Digest
		users, nsess int
	)
	go func() {
		got = s.Digest()
		users, nsess = s.Counts()
		close(read)
	}()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		s.mu.Unlock()
		t.Fatal("Digest or Counts waited for the writers' lock")
	}
	s.mu.Unlock()
	if got != want || users != 0 || nsess != 1 {
		t.Fatalf("read during the write: digest equal %v, %d users, %d sessions; want the committed state (1 session)", got == want, users, nsess)
	}
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	if _, n := s.Counts(); n != 2 || s.Digest() == want {
		t.Fatalf("after the write: %d sessions, digest changed %v", n, s.Digest() != want)
	}
}

// TestStore_ApplyRepairsMergesAsApply: ApplyRepairs merges exactly as Apply
// does, into a store that already holds records (some cached by reads),
// returns the same changes, and leaves no stale state in the record cache
// while adding none of its own.
func TestStore_ApplyRepairsMergesAsApply(t *testing.T) {
	clock := func() time.Time { return time.UnixMilli(10) }
	rapid.Check(t, func(rt *rapid.T) {
		held := rapid.SliceOfN(rapid.Custom(genRecord), 0, 20).Draw(rt, "held")
		repairs := rapid.SliceOfN(rapid.Custom(genRecord), 1, 30).Draw(rt, "repairs")
		// Repairs of records already held, in other states, too.
		repairs = append(repairs, rapid.SliceOfN(rapid.SampledFrom(append(append([]Record{}, held...), repairs...)), 0, 10).Draw(rt, "again")...)
		applied := openStore(t, "", clock)
		repaired := openStore(t, "", clock)
		defer applied.Close()
		defer repaired.Close()
		for _, s := range []*Store{applied, repaired} {
			if _, err := s.Apply(held...); err != nil {
				rt.Fatal(err)
			}
			for _, r := range held { // cached by a read
				if _, err := s.get(r.Key()); err != nil {
					rt.Fatalf("read %s: %v", r.Key(), err)
				}
			}
		}
		want, err := applied.Apply(repairs...)
		if err != nil {
			rt.Fatal(err)
		}
		got, refused, err := repaired.ApplyRepairs(repairs...)
		if err != nil || len(refused) != 0 {
			rt.Fatalf("repairs: %v, refused %v", err, refused)
		}
		noneRefused(rt, applied, repaired)
		if !reflect.DeepEqual(got, want) {
			rt.Fatalf("changed:\n got %v\nwant %v", got, want)
		}
		if applied.Digest() != repaired.Digest() || !reflect.DeepEqual(stateOf(rt, applied), stateOf(rt, repaired)) {
			rt.Fatal("ApplyRepairs merged otherwise than Apply")
		}
		for _, r := range repairs {
			key := r.Key()
			if _, ok := repaired.cache.entry(key); ok && !slices.ContainsFunc(held, func(h Record) bool { return h.Key() == key }) {
				rt.Fatalf("%s is in the cache: only a read puts a repaired record there", key)
			}
		}
		for _, r := range repairs {
			key := r.Key()
			a, errA := applied.get(key)
			b, errB := repaired.get(key)
			if errors.Is(errA, ErrNotFound) && errors.Is(errB, ErrNotFound) {
				continue // skipped by both: already past retention
			}
			if errA != nil || errB != nil || enc(rt, a) != enc(rt, b) {
				rt.Fatalf("%s reads %v (%v) after ApplyRepairs, %v (%v) after Apply", key, b, errB, a, errA)
			}
		}
	})
}
