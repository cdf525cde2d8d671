package session

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// listIDs pages through the whole listing and returns the ids in order.
func listIDs(t *testing.T, s *Store, f SessionFilter) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 10_000 {
			t.Fatal("paging does not end")
		}
		page, next, err := s.ListSessions(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range page {
			ids = append(ids, x.ID)
		}
		if next == "" {
			return ids
		}
		f.After = next
	}
}

// fillList stores n sessions, created one millisecond apart (session i at
// 900_000+i), for three users over two sites; every third has ended.
func fillList(t *testing.T, s *Store, n int) (all []Session) {
	t.Helper()
	var recs []Record
	for i := 0; i < n; i++ {
		sess := Session{
			ID:        fmt.Sprintf("%064x", i),
			Email:     fmt.Sprintf("u%d@example.com", i%3),
			Site:      []string{"shop", "blog"}[i%2],
			Created:   MakeHLC(int64(900_000+i), 0),
			ExpiresAt: 2_000_000,
		}
		if i%3 == 0 {
			sess.Ended, sess.EndReason = MakeHLC(int64(950_000+i), 0), EndLogout
		}
		all = append(all, sess)
		recs = append(recs, Record{Session: &sess})
	}
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	return all
}

func idsOf(ss []Session, keep func(Session) bool) []string {
	var ids []string
	for _, x := range ss {
		if keep == nil || keep(x) {
			ids = append(ids, x.ID)
		}
	}
	return ids
}

func TestStore_ListSessions(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	all := fillList(t, s, 230)
	oldest := idsOf(all, nil)
	newest := slices.Clone(oldest)
	slices.Reverse(newest)

	for _, tc := range []struct {
		name string
		f    SessionFilter
		want []string
	}{
		{"newest first", SessionFilter{Limit: 7}, newest},
		{"oldest first", SessionFilter{Limit: 7, Oldest: true}, oldest},
		{"default page", SessionFilter{}, newest},
		{"one page holds all", SessionFilter{Limit: 500}, newest},
		{"by email", SessionFilter{Email: "u1@example.com", Limit: 9}, reversed(idsOf(all, func(x Session) bool { return x.Email == "u1@example.com" }))},
		{"by email oldest", SessionFilter{Email: "u1@example.com", Limit: 9, Oldest: true}, idsOf(all, func(x Session) bool { return x.Email == "u1@example.com" })},
		{"by site", SessionFilter{Site: "blog", Limit: 10}, reversed(idsOf(all, func(x Session) bool { return x.Site == "blog" }))},
		{"active", SessionFilter{Active: true, Limit: 10}, reversed(idsOf(all, func(x Session) bool { return x.Ended == 0 }))},
		{"active, by email and site, oldest", SessionFilter{Email: "u2@example.com", Site: "shop", Active: true, Oldest: true, Limit: 4},
			idsOf(all, func(x Session) bool { return x.Ended == 0 && x.Email == "u2@example.com" && x.Site == "shop" })},
		{"nobody's", SessionFilter{Email: "nobody@example.com"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listIDs(t, s, tc.f); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %d sessions %v\nwant %d %v", len(got), short(got), len(tc.want), short(tc.want))
			}
		})
	}

	t.Run("page size and next", func(t *testing.T) {
		page, next, err := s.ListSessions(SessionFilter{Limit: 10})
		if err != nil || len(page) != 10 || next == "" {
			t.Fatalf("first page: %d sessions, next %q, %v", len(page), next, err)
		}
		if page[0].ID != newest[0] || page[0].Email == "" || page[0].Created == 0 {
			t.Fatalf("first session %+v", page[0])
		}
		page, _, _ = s.ListSessions(SessionFilter{Limit: 10_000})
		if len(page) != MaxListLimit && len(page) != len(all) {
			t.Fatalf("limit over the maximum gave %d", len(page))
		}
		// A page that ends exactly at the last session says there is no next.
		_, next, _ = s.ListSessions(SessionFilter{Limit: len(all)})
		if next != "" {
			t.Fatalf("next %q after the last session", next)
		}
	})

	t.Run("revoked and expired are not active", func(t *testing.T) {
		u := User{Email: "u1@example.com", RevokedBefore: MakeHLC(900_100, 0)}
		if _, err := s.Apply(Record{User: &u}); err != nil {
			t.Fatal(err)
		}
		got := listIDs(t, s, SessionFilter{Active: true, Email: "u1@example.com"})
		want := reversed(idsOf(all, func(x Session) bool {
			return x.Ended == 0 && x.Email == "u1@example.com" && x.Created > u.RevokedBefore
		}))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("active after revocation %v, want %v", short(got), short(want))
		}
		mt.Set(time.UnixMilli(2_000_000))
		if got := listIDs(t, s, SessionFilter{Active: true}); len(got) != 0 {
			t.Fatalf("%d active after expiry", len(got))
		}
		mt.Set(time.UnixMilli(1_000_000))
	})

	t.Run("a bad cursor", func(t *testing.T) {
		for _, c := range []string{"!!", "AAAA", "x"} {
			if _, _, err := s.ListSessions(SessionFilter{After: c}); !errors.Is(err, ErrBadCursor) {
				t.Errorf("cursor %q: %v", c, err)
			}
		}
	})
}

func reversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

func short(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[len(id)-3:]
	}
	return out
}

// TestStore_ListSessionsWhileAdding pages through the listing while
// sessions are added and ended: every session that was there at the start
// is seen exactly once, in order, whatever happens between pages.
func TestStore_ListSessionsWhileAdding(t *testing.T) {
	for _, oldestFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("oldest=%v", oldestFirst), func(t *testing.T) {
			mt := NewManualClock(time.UnixMilli(1_000_000))
			s := openStore(t, "", mt.Now)
			defer s.Close()
			all := fillList(t, s, 100)
			before := map[string]bool{}
			for _, x := range all {
				before[x.ID] = true
			}
			f := SessionFilter{Limit: 7, Oldest: oldestFirst}
			seen := map[string]int{}
			var order []HLC
			for page := 0; ; page++ {
				got, next, err := s.ListSessions(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range got {
					seen[x.ID]++
					order = append(order, x.Created)
				}
				// Between pages: a new login (newest of all), one arriving
				// late from a peer (created long ago) and a logout.
				fresh := Session{ID: fmt.Sprintf("new%061d", page), Email: "u9@example.com", Site: "shop", Created: s.Clock().Now(), ExpiresAt: 2_000_000}
				late := Session{ID: fmt.Sprintf("late%060d", page), Email: "u9@example.com", Site: "blog", Created: MakeHLC(int64(900_000+page*13), 1), ExpiresAt: 2_000_000}
				end := all[(page*17)%len(all)]
				end.Ended, end.EndReason = s.Clock().Now(), EndAdmin
				if _, err := s.Apply(Record{Session: &fresh}, Record{Session: &late}, Record{Session: &end}); err != nil {
					t.Fatal(err)
				}
				if next == "" {
					break
				}
				f.After = next
			}
			for id := range before {
				if seen[id] != 1 {
					t.Errorf("session %s seen %d times", id[61:], seen[id])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("session %s seen %d times", id, n)
				}
			}
			sorted := slices.IsSortedFunc(order, func(a, b HLC) int {
				if oldestFirst {
					return cmp.Compare(a, b)
				}
				return cmp.Compare(b, a)
			})
			if !sorted {
				t.Error("pages out of order")
			}
		})
	}
}

// TestStore_ListSessionsScanBudget: a filter that matches little costs a
// bounded page, and the cursors still lead through every match.
func TestStore_ListSessionsScanBudget(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, "", mt.Now)
	defer s.Close()
	var recs []Record
	n := maxListScan*2 + 100
	for i := 0; i < n; i++ {
		site := "shop"
		if i%(maxListScan/2) == 7 {
			site = "rare"
		}
		sess := Session{ID: fmt.Sprintf("%064x", i), Email: "a@example.com", Site: site, Created: MakeHLC(int64(900_000+i), 0), ExpiresAt: 2_000_000}
		recs = append(recs, Record{Session: &sess})
	}
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	f := SessionFilter{Site: "rare", Limit: 50}
	var found, pages int
	for {
		page, next, err := s.ListSessions(f)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		found += len(page)
		if next == "" {
			break
		}
		f.After = next
	}
	if found != 5 || pages < 3 {
		t.Fatalf("found %d rare sessions in %d pages; want 5 in at least 3 (each page reads at most %d entries)", found, pages, maxListScan)
	}
}

func TestStore_ListUsers(t *testing.T) {
	s := openStore(t, "", func() time.Time { return time.UnixMilli(1_000_000) })
	defer s.Close()
	var want []string
	var recs []Record
	for i := 0; i < 23; i++ {
		u := User{Email: fmt.Sprintf("user%02d@example.com", (i*7)%23), Login: Set(fmt.Sprint(i), MakeHLC(1, 0), "n")}
		recs = append(recs, Record{User: &u})
		want = append(want, u.Email)
	}
	// A session alone makes no user.
	recs = append(recs, newSession("s1", "ghost@example.com", MakeHLC(900_000, 0), 2_000_000))
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	// A second write of a user does not list it twice.
	u := User{Email: "user03@example.com", DisplayName: Set("Three", MakeHLC(2, 0), "n")}
	if _, err := s.Apply(Record{User: &u}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	var got []string
	after := ""
	for {
		page, next, err := s.ListUsers(after, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 5 {
			t.Fatalf("page of %d", len(page))
		}
		for _, u := range page {
			got = append(got, u.Email)
			if u.Email == "user03@example.com" && u.DisplayName.V != "Three" {
				t.Fatalf("user %+v", u)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("users %v\nwant %v", got, want)
	}
	if page, next, _ := s.ListUsers("user99@example.com", 5); len(page) != 0 || next != "" {
		t.Fatalf("after the last: %d, %q", len(page), next)
	}
}

// indexKeys counts the keys under each index prefix.
func indexKeys(t *testing.T, s *Store) map[byte]int {
	t.Helper()
	out := map[byte]int{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out[it.Item().Key()[0]]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStore_SweepRemovesIndexEntries(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(10_000_000))
	s := openStore(t, t.TempDir(), mt.Now) // retention: 1 h
	defer s.Close()
	ended := newSession("ended", "ann@example.com", MakeHLC(9_000_000, 0), 9_600_000)
	ended.Session.Ended, ended.Session.EndReason = MakeHLC(9_500_000, 0), EndLogout
	alive := newSession("alive", "ann@example.com", MakeHLC(9_000_001, 0), 20_000_000)
	if _, err := s.Apply(ended, alive); err != nil {
		t.Fatal(err)
	}
	if k := indexKeys(t, s); k[prefixAll] != 2 || k[prefixIndex] != 2 || k[prefixEnd] != 0 {
		t.Fatalf("index keys before the sweep: %v", k)
	}
	mt.Set(time.UnixMilli(9_600_000 + time.Hour.Milliseconds())) // past the ended one's expiry
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v", n, err)
	}
	if k := indexKeys(t, s); k[prefixAll] != 1 || k[prefixIndex] != 1 || k[prefixEnd] != 0 {
		t.Fatalf("index keys after the sweep: %v", k)
	}
	if got := listIDs(t, s, SessionFilter{}); !reflect.DeepEqual(got, []string{"alive"}) {
		t.Fatalf("listing after the sweep: %v", got)
	}
	if got := listIDs(t, s, SessionFilter{Email: "ann@example.com", Oldest: true}); !reflect.DeepEqual(got, []string{"alive"}) {
		t.Fatalf("user listing after the sweep: %v", got)
	}
}

// TestStore_IndexesBuiltForOldStores opens a store as an older version
// left it (no listing index, no entries) and finds the listings complete.
func TestStore_IndexesBuiltForOldStores(t *testing.T) {
	dir := t.TempDir()
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, dir, mt.Now)
	all := fillList(t, s, 40)
	u := User{Email: "u0@example.com", Login: Set("u0", MakeHLC(1, 0), "n")}
	if _, err := s.Apply(Record{User: &u}); err != nil {
		t.Fatal(err)
	}
	digest := s.Digest()
	// Take the store back to the old layout.
	err := s.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		var del, blank [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			switch k[0] {
			case prefixAll, prefixUserIndex, prefixMeta:
				del = append(del, k)
			case prefixIndex:
				blank = append(blank, k)
			}
		}
		for _, k := range del {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		for _, k := range blank {
			if err := txn.Set(k, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, s, SessionFilter{}); len(got) != 0 {
		t.Fatalf("the old layout lists %d", len(got))
	}
	s.Close()
	s = openStore(t, dir, mt.Now)
	defer s.Close()
	if s.Digest() != digest {
		t.Fatal("building the indexes changed the digest")
	}
	if got := listIDs(t, s, SessionFilter{}); !reflect.DeepEqual(got, reversed(idsOf(all, nil))) {
		t.Fatalf("after the upgrade: %v", short(got))
	}
	if got := listIDs(t, s, SessionFilter{Active: true, Site: "shop"}); !reflect.DeepEqual(got, reversed(idsOf(all, func(x Session) bool { return x.Ended == 0 && x.Site == "shop" }))) {
		t.Fatalf("active at shop after the upgrade: %v", short(got))
	}
	if page, _, _ := s.ListUsers("", 10); len(page) != 1 || page[0].Email != "u0@example.com" {
		t.Fatalf("users after the upgrade: %+v", page)
	}
}

func TestStore_LocalScan(t *testing.T) {
	s := openStore(t, "", time.Now)
	defer s.Close()
	empty := s.Digest()
	for k, ttl := range map[string]time.Duration{"p/a": 0, "p/b": time.Hour, "q/c": 0} {
		if err := s.LocalPut(k, []byte("v"+k), ttl); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := s.LocalScan("p/", func(key string, v []byte, exp time.Time) error {
		got = append(got, fmt.Sprintf("%s=%s ttl:%v", key, v, !exp.IsZero()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"p/a=vp/a ttl:false", "p/b=vp/b ttl:true"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("scan %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := s.LocalScan("", func(string, []byte, time.Time) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error: %v", err)
	}
	if s.Digest() != empty {
		t.Fatal("local keys changed the digest")
	}
}

// TestStore_ListSessionsTies: two nodes may create sessions with the same
// HLC (the same millisecond and counter, neither having heard of the
// other). Listings order them by id: ascending newest first, descending
// oldest first (the exact reverse), on every node alike (docs/users.md).
func TestStore_ListSessionsTies(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	at := MakeHLC(900_000, 3)
	var recs []Record
	for i, id := range []string{"c", "a", "b"} {
		sess := Session{ID: strings.Repeat(id, 64), Email: "ann@example.com", Site: fmt.Sprintf("n%d", i), Created: at, ExpiresAt: 2_000_000}
		recs = append(recs, Record{Session: &sess})
	}
	later := Session{ID: strings.Repeat("0", 64), Email: "ann@example.com", Site: "n0", Created: at + 1, ExpiresAt: 2_000_000}
	recs = append(recs, Record{Session: &later})
	if _, err := s.Apply(recs...); err != nil {
		t.Fatal(err)
	}
	a, b, c, z := strings.Repeat("a", 64), strings.Repeat("b", 64), strings.Repeat("c", 64), later.ID
	for _, tc := range []struct {
		name string
		f    SessionFilter
		want []string
	}{
		{"newest first", SessionFilter{Limit: 2}, []string{z, a, b, c}},
		{"oldest first", SessionFilter{Limit: 2, Oldest: true}, []string{c, b, a, z}},
		{"a user's, newest first", SessionFilter{Email: "ann@example.com", Limit: 2}, []string{z, a, b, c}},
		{"a user's, oldest first", SessionFilter{Email: "ann@example.com", Oldest: true}, []string{c, b, a, z}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listIDs(t, s, tc.f); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", short(got), short(tc.want))
			}
		})
	}
	us, err := s.UserSessions("ann@example.com", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := idsOf(us, nil); !reflect.DeepEqual(got, []string{z, a, b, c}) {
		t.Fatalf("UserSessions: %v", short(got))
	}
}
