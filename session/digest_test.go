package session

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestLeafHashes_Fold: leaves folded to a coarser resolution are the XOR
// of the leaves they cover, and a key's coarse leaf is its leaf shifted.
func TestLeafHashes_Fold(t *testing.T) {
	var l LeafHashes
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprintf("s%064x", rng.Uint64())
		l[LeafOf(keys[i])] ^= uint64(i + 1)
	}
	for bits := uint8(0); bits <= LeafBits; bits++ {
		want := make([]uint64, 1<<bits)
		for i, k := range keys {
			want[LeafOf(k)>>(LeafBits-bits)] ^= uint64(i + 1)
		}
		got := l.Fold(bits)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("at %d bits: %v, want %v", bits, got, want)
		}
	}
	if got := l.Fold(LeafBits + 3); len(got) != Leaves {
		t.Fatalf("folded past the leaves: %d", len(got))
	}
}

// TestBucketEntry_Dominates: an ended session names its alive form (the
// state it dominates), never the other way round, and no other end; a user
// names nothing.
func TestBucketEntry_Dominates(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	alive := newSession("x1", "ann@example.com", MakeHLC(time.Now().UnixMilli()-1000, 0), time.Now().Add(time.Hour).UnixMilli())
	u := User{Email: "ann@example.com", Login: Set("ann", MakeHLC(time.Now().UnixMilli()-1000, 0), "shop")}
	if _, err := s.Apply(alive, Record{User: &u}); err != nil {
		t.Fatal(err)
	}
	entry := func(key string) BucketEntry {
		t.Helper()
		es, err := s.BucketEntriesFunc(BucketOf(key), func(k []byte) bool { return string(k) == key })
		if err != nil || len(es) != 1 {
			t.Fatalf("%s: %v, %v", key, es, err)
		}
		return es[0]
	}
	aliveEntry := entry("sx1")
	ended := *alive.Session
	ended.Ended, ended.EndReason = MakeHLC(time.Now().UnixMilli()-500, 0), EndLogout
	if _, err := s.Apply(Record{Session: &ended}); err != nil {
		t.Fatal(err)
	}
	endedEntry := entry("sx1")
	if h, ok := endedEntry.Dominates(); !ok || h != aliveEntry.Hash {
		t.Fatalf("an ended session names %x, %v; its alive form hashes to %x", h, ok, aliveEntry.Hash)
	}
	later := ended
	later.Ended = ended.Ended + 10
	if h, _ := endedEntry.Dominates(); h == hashOf(t, Record{Session: &later}) {
		t.Fatal("an ended session names another end")
	}
	if _, ok := aliveEntry.Dominates(); ok {
		t.Fatal("an alive session names a state it dominates")
	}
	if _, ok := entry("uann@example.com").Dominates(); ok {
		t.Fatal("a user names a state it dominates")
	}
	// The state named is dominated: joined with the ended one, it is the
	// ended one.
	if j := Join(alive, Record{Session: &ended}); *j.Session != ended {
		t.Fatalf("the join of the alive form and the end: %+v", j.Session)
	}
}

func hashOf(t *testing.T, r Record) uint64 {
	t.Helper()
	enc, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return recordHash(r.Key(), enc)
}

// TestStore_BucketEntriesFunc: the records of a bucket a predicate keeps,
// as BucketEntries gives them, and no local session.
func TestStore_BucketEntriesFunc(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	var recs []Record
	for i := range 2000 {
		r := newSession(fmt.Sprintf("%064x", i), "ann@example.com", MakeHLC(time.Now().UnixMilli()-1000, uint16(i)), time.Now().Add(time.Hour).UnixMilli())
		r.Session.Local = i%7 == 0
		recs = append(recs, r)
	}
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	for b := range uint8(4) {
		all, err := s.BucketEntries(b)
		if err != nil {
			t.Fatal(err)
		}
		// Every other record of the bucket, by key.
		var want []BucketEntry
		keepKeys := map[string]bool{}
		for i, e := range all {
			if i%2 == 0 {
				want = append(want, e)
				keepKeys[e.Key] = true
			}
		}
		seen := 0
		some, err := s.BucketEntriesFunc(b, func(k []byte) bool { seen++; return keepKeys[string(k)] })
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(some) != fmt.Sprint(want) || len(all) < 2 || seen < len(all) {
			t.Fatalf("bucket %d: %d of %d entries kept (%d keys seen, local sessions too), want %d", b, len(some), len(all), seen, len(want))
		}
	}
}

// TestStore_VerifyDigest: a record written behind the store's back (its
// digest not told) is found.
func TestStore_VerifyDigest(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	rec := newSession("x1", "ann@example.com", MakeHLC(time.Now().UnixMilli()-1000, 0), time.Now().Add(time.Hour).UnixMilli())
	if _, err := s.Apply(rec); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyDigest(); err != nil {
		t.Fatal(err)
	}
	behind := newSession("x2", "ann@example.com", MakeHLC(time.Now().UnixMilli()-1000, 0), time.Now().Add(time.Hour).UnixMilli())
	enc, err := json.Marshal(behind)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(recordKey(behind.Key()), enc) }); err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyDigest(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bucket %d", BucketOf(behind.Key()))) {
		t.Fatalf("a record written behind the digest's back: %v", err)
	}
}

// TestDigest_Fingerprint: stores holding the same records, written in any
// order, show one fingerprint; one record more shows another.
func TestDigest_Fingerprint(t *testing.T) {
	a, b := openStore(t, t.TempDir(), nil), openStore(t, t.TempDir(), nil)
	defer a.Close()
	defer b.Close()
	at := MakeHLC(time.Now().UnixMilli()-1000, 0)
	exp := time.Now().Add(time.Hour).UnixMilli()
	r1, r2 := newSession("f1", "ann@example.com", at, exp), newSession("f2", "bob@example.com", at, exp)
	if _, err := a.Apply(r1, r2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(r2); err != nil {
		t.Fatal(err)
	}
	da, db := a.Digest(), b.Digest()
	if da.Fingerprint() == db.Fingerprint() {
		t.Fatalf("stores of 2 and 1 records: one fingerprint %s", da.Fingerprint())
	}
	if _, err := b.Apply(r1); err != nil {
		t.Fatal(err)
	}
	db = b.Digest()
	if fa, fb := da.Fingerprint(), db.Fingerprint(); fa != fb || len(fa) != 16 {
		t.Errorf("the same records: fingerprints %q and %q, want one of 16 hex characters", fa, fb)
	}
}

// TestAliveEnc: the encoding cut without decoding is json.Marshal's of the
// alive form, whatever the strings hold; what is not an ended, replicated
// session is left to the decoding path.
func TestAliveEnc(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	strs := []string{"", "logout", `"}}`, `\`, `\"`, `,"ended":5`, "<&>", "é\u2028\x01", `a"b\\"c`}
	for i := range 2000 {
		pick := func() string {
			if rng.IntN(3) == 0 {
				b := make([]byte, rng.IntN(12))
				for j := range b {
					b[j] = byte(rng.IntN(128))
				}
				return string(b)
			}
			return strs[rng.IntN(len(strs))]
		}
		s := Session{ID: fmt.Sprintf("%x", i), Email: pick(), Site: pick(), IP: pick(), UserAgent: pick(),
			Created: HLC(rng.Uint64N(1 << 50)), ExpiresAt: rng.Int64N(1 << 45), Ended: HLC(1 + rng.Uint64N(1<<50)), EndReason: pick(), Local: rng.IntN(8) == 0}
		enc, err := json.Marshal(Record{Session: &s})
		if err != nil {
			t.Fatal(err)
		}
		alive := s
		alive.Ended, alive.EndReason = 0, ""
		want, err := json.Marshal(Record{Session: &alive})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := aliveEnc(enc)
		if ok == s.Local || ok && string(got) != string(want) {
			t.Fatalf("%+v:\n%s\ngot  %s, %v\nwant %s", s, enc, got, ok, want)
		}
		if _, ok := aliveEnc(want); ok {
			t.Fatalf("an alive session was cut: %s", want)
		}
	}
	u, _ := json.Marshal(Record{User: &User{Email: `x","ended":5}}`}})
	if _, ok := aliveEnc(u); ok {
		t.Fatalf("a user was cut: %s", u)
	}
}
