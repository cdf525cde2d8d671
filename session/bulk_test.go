package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestStore_BulkApplyEqualsMerge applies one history of records (users,
// sessions, later states of both: log outs, logins) to one store record by
// record and to another in one Apply (a catch-up's repair: one group of
// many pipelined transactions, a key written again in a later one). Both
// stores must hold the same records, byte for byte, the same index
// entries, digest and counts, before and after a restart.
func TestStore_BulkApplyEqualsMerge(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_700_000_000_000))
	now := mt.Now().UnixMilli()
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []Record
	const n = 12_000 // about 4 MiB: several transactions of maxBatchBytes
	for i := range n {
		email := fmt.Sprintf("u%d@example.com", rng.IntN(n/8))
		switch r := rng.IntN(10); {
		case r < 2:
			recs = append(recs, Record{User: &User{Email: email, Login: Set("u", MakeHLC(now-int64(rng.IntN(1000)), 0), "n0")}})
		case r < 4 && len(recs) > 0:
			// A later state of an earlier session: ended.
			old := recs[rng.IntN(len(recs))]
			if old.Session == nil {
				continue
			}
			s := *old.Session
			s.Ended, s.EndReason = MakeHLC(now-int64(rng.IntN(100)), 0), EndLogout
			recs = append(recs, Record{Session: &s})
		default:
			recs = append(recs, Record{Session: &Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "shop",
				Created: MakeHLC(now-int64(rng.IntN(1_000_000)), 0), ExpiresAt: now + int64(rng.IntN(3_600_000)),
				IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"}})
		}
	}

	dirA, dirB := t.TempDir(), t.TempDir()
	a, b := openStore(t, dirA, mt.Now), openStore(t, dirB, mt.Now)
	for _, r := range recs {
		if _, err := a.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	changed, encs, _, err := b.ApplyEncoded(recs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) == 0 || len(encs) != len(changed) {
		t.Fatalf("the bulk apply changed %d records, with %d encodings", len(changed), len(encs))
	}
	for i, r := range changed {
		// What gossip rebroadcasts instead of encoding the record again.
		if want, _ := json.Marshal(r); !bytes.Equal(encs[i], want) {
			t.Fatalf("encoding %d of %s is %s, json.Marshal's %s", i, r.Key(), encs[i], want)
		}
	}
	same := func(when string) {
		t.Helper()
		ha, err := a.RecordHashes()
		if err != nil {
			t.Fatal(err)
		}
		hb, err := b.RecordHashes()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ha, hb) {
			t.Fatalf("%s: the stores hold different records (%d and %d)", when, len(ha), len(hb))
		}
		if a.Digest() != b.Digest() {
			t.Fatalf("%s: digests differ", when)
		}
		ua, sa := a.Counts()
		ub, sb := b.Counts()
		if ua != ub || sa != sb {
			t.Fatalf("%s: counts %d/%d and %d/%d", when, ua, sa, ub, sb)
		}
		if ea, eb := indexEntries(t, a), indexEntries(t, b); !reflect.DeepEqual(ea, eb) {
			t.Fatalf("%s: index entries differ (%d and %d)", when, len(ea), len(eb))
		}
		// What a check reads (through the cache) is what is on disk.
		for _, r := range recs[len(recs)-200:] {
			if r.Session == nil {
				continue
			}
			sa, errA := a.Session(r.Session.ID)
			sb, errB := b.Session(r.Session.ID)
			if errA != nil || errB != nil || !reflect.DeepEqual(sa, sb) {
				t.Fatalf("%s: session %s reads %+v (%v) and %+v (%v)", when, r.Session.ID[:8], sa, errA, sb, errB)
			}
		}
	}
	same("after the apply")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	a, b = openStore(t, dirA, mt.Now), openStore(t, dirB, mt.Now)
	defer a.Close()
	defer b.Close()
	same("after a restart")
	// The digest saved at Close is the digest of what is on disk.
	if err := b.recountLocked(); err != nil {
		t.Fatal(err)
	}
	same("after reading the digest again from disk")
}
