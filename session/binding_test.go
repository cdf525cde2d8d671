package session

import (
	"encoding/json"
	"testing"
	"time"
)

// joinAll merges states in order, as a replica receiving them would.
func joinAll(states ...User) User {
	u := states[0]
	for _, s := range states[1:] {
		u = JoinUser(u, s)
	}
	return u
}

// everyOrder calls f with the join of states in every order (states are
// few: histories of two to four events).
func everyOrder(t *testing.T, states []User, f func(t *testing.T, u User)) {
	t.Helper()
	var perm func(done, rest []User)
	perm = func(done, rest []User) {
		if len(rest) == 0 {
			f(t, joinAll(done...))
			return
		}
		for i := range rest {
			others := append(append([]User{}, rest[:i]...), rest[i+1:]...)
			perm(append(append([]User{}, done...), rest[i]), others)
		}
	}
	perm(nil, states)
}

// TestUser_Bindings are issue 9 item 1's histories: a login travels only
// when the address is verified and the site it is made on is bound to it.
func TestUser_Bindings(t *testing.T) {
	const bob = "bob@example.com"
	at := func(ms int64) HLC { return MakeHLC(ms, 0) }

	t.Run("a site that did not prove the address does not travel", func(t *testing.T) {
		// Site B verifies bob by code; site A registers bob with no proof of
		// the mailbox (its backend PUTs him) and logs him in.
		b := User{Email: bob, Created: at(1)}
		b.MarkKnown("b", at(1))
		b.Verify(VerifiedCode, "b", at(2))
		a := User{Email: bob, Created: at(3)}
		a.MarkKnown("a", at(3))
		everyOrder(t, []User{b, a}, func(t *testing.T, u User) {
			if ok, why := u.Travels("a"); ok || why != ReasonSiteNotBound {
				t.Fatalf("a login on a travels (%v, %q): the registrant would be bob everywhere", ok, why)
			}
			if ok, _ := u.Travels("b"); !ok {
				t.Fatal("a login on b, which proved the mailbox, stays local")
			}
			if u.MayWriteProfile("a") || !u.MayWriteProfile("b") {
				t.Fatal("a site not bound may overwrite bob's profile, or the bound one may not")
			}
			if !u.KnownTo("a") || !u.KnownTo("b") || u.KnownTo("c") {
				t.Fatalf("known: a %v b %v c %v", u.KnownTo("a"), u.KnownTo("b"), u.KnownTo("c"))
			}
		})
	})
	t.Run("a code at the site binds it; so does a completed hand-off", func(t *testing.T) {
		u := User{Email: bob, Created: at(1)}
		u.Verify(VerifiedRegistration, "b", at(2))
		code := u
		code.Verify(VerifiedCode, "a", at(5))
		handoff := u
		handoff.Bind("c", at(6))
		everyOrder(t, []User{u, code, handoff}, func(t *testing.T, u User) {
			for _, site := range []string{"a", "b", "c"} {
				if ok, why := u.Travels(site); !ok {
					t.Fatalf("site %s: stays local (%s)", site, why)
				}
			}
			if v := u.Verified; v.V.Method != VerifiedRegistration || v.By != "a" || v.At != at(5) {
				t.Fatalf("want the first method, restamped by the later code (a, at 5): %+v", v)
			}
		})
	})
	t.Run("a repeated registration keeps the first verification", func(t *testing.T) {
		u := User{Email: bob, Created: at(1)}
		u.Verify(VerifiedCode, "b", at(2))
		u.Verify(VerifiedRegistration, "b", at(3)) // a site's re-PUT
		if u.Verified.V.Method != VerifiedCode || u.Verified.At != at(2) {
			t.Fatalf("a registration replaced the verification: %+v", u.Verified)
		}
	})
	for _, method := range []string{VerifiedAdmin, VerifiedCode} {
		t.Run("a "+method+" verification made where an earlier unverify had not arrived yet wins", func(t *testing.T) {
			// ann is verified everywhere; the administrator unverifies her on
			// a at 3; before that reaches b, she is verified again on b at 4
			// (the administrator changed their mind, or she entered a code).
			// The later act must win once both arrive everywhere, as an
			// unverify made where a verification had not arrived yet does.
			u := User{Email: bob, Created: at(1)}
			u.Verify(VerifiedRegistration, "c", at(2))
			unverified := u
			unverified.Unverify("a", at(3))
			again := u
			if !again.Verify(method, "b", at(4)) {
				t.Fatal("the verification on b, where the address still read as verified, wrote nothing")
			}
			everyOrder(t, []User{u, unverified, again}, func(t *testing.T, u User) {
				if ok, why := u.Travels("b"); !ok {
					t.Fatalf("the later verification lost to the earlier unverify: %s, %+v", why, u.Verified)
				}
				if u.BoundTo("c") {
					t.Fatal("a binding made before the unverify counts again")
				}
			})
		})
	}
	t.Run("a verification that replaces a pre-binding record's keeps its site bound", func(t *testing.T) {
		var legacy User // verified by shop, stored before bindings were recorded
		if err := json.Unmarshal([]byte(`{"email":"bob@example.com","login":{"v":"bob"},"display_name":{"v":""},"verified":{"v":{"ok":true,"method":"registration"},"t":131072,"n":"shop"},"created":65536}`), &legacy); err != nil {
			t.Fatal(err)
		}
		replaced := legacy
		replaced.Verify(VerifiedAdmin, "blog", at(3))
		everyOrder(t, []User{legacy, replaced}, func(t *testing.T, u User) {
			if !u.BoundTo("shop") || !u.BoundTo("blog") {
				t.Fatalf("bound: shop %v, blog %v", u.BoundTo("shop"), u.BoundTo("blog"))
			}
		})
	})
	t.Run("an unverify voids every binding, in any order of arrival", func(t *testing.T) {
		u := User{Email: bob, Created: at(1)}
		u.Verify(VerifiedCode, "b", at(2))
		bound := u
		bound.MarkKnown("c", at(3))
		bound.Bind("c", at(3))
		unverified := u
		unverified.Unverify("admin", at(4))
		everyOrder(t, []User{u, bound, unverified}, func(t *testing.T, u User) {
			if u.BoundTo("b") || u.BoundTo("c") {
				t.Fatalf("a binding made before the unverify still counts: %+v", u.Sites)
			}
			if ok, why := u.Travels("b"); ok || why != ReasonNotVerified {
				t.Fatalf("travels %v %q after the unverify", ok, why)
			}
			if !u.KnownTo("c") {
				t.Fatal("the unverify made site c forget the user")
			}
		})
		// Verified again by code at a: only a is bound; b and c must prove
		// the mailbox again (or receive a hand-off from a).
		again := joinAll(u, bound, unverified)
		again.Verify(VerifiedCode, "a", at(5))
		if ok, _ := again.Travels("a"); !ok {
			t.Fatal("the site that verified again stays local")
		}
		for _, site := range []string{"b", "c"} {
			if ok, why := again.Travels(site); ok || why != ReasonSiteNotBound {
				t.Fatalf("site %s, bound before the unverify: %v %q", site, ok, why)
			}
		}
	})
	t.Run("a binding that raced the unverify and lost stays void", func(t *testing.T) {
		u := User{Email: bob, Created: at(1)}
		u.Verify(VerifiedCode, "b", at(2))
		late := u
		late.Bind("c", at(4)) // made at 4, before the unverify at 5, delivered after it
		unverified := u
		unverified.Unverify("admin", at(5))
		everyOrder(t, []User{unverified, late}, func(t *testing.T, u User) {
			if u.BoundTo("c") {
				t.Fatal("a binding older than the unverify counts")
			}
		})
	})
	t.Run("an unverify made where the verification had not arrived yet still wins", func(t *testing.T) {
		// The administrator unverifies on a node that has the user but not
		// yet the verification made at 2; the unverify at 3 is later, so
		// once both arrive everywhere the address is unverified.
		u := User{Email: bob, Created: at(1)}
		verified := u
		verified.Verify(VerifiedCode, "b", at(2))
		unverified := u
		if !unverified.Unverify("admin", at(3)) {
			t.Fatal("the unverify changed nothing")
		}
		everyOrder(t, []User{verified, unverified}, func(t *testing.T, u User) {
			if u.Verified.V.OK {
				t.Fatalf("a verification older than the unverify won: %+v", u.Verified)
			}
		})
	})
	t.Run("a user verified before bindings existed is bound to the site that verified it", func(t *testing.T) {
		var legacy User
		// As stored by an earlier version: no sites, verified by shop.
		if err := json.Unmarshal([]byte(`{"email":"bob@example.com","login":{"v":"bob"},"display_name":{"v":""},"verified":{"v":{"ok":true,"method":"registration"},"t":131072,"n":"shop"},"created":65536}`), &legacy); err != nil {
			t.Fatal(err)
		}
		if ok, why := legacy.Travels("shop"); !ok {
			t.Fatalf("the verifying site stays local (%s)", why)
		}
		if ok, why := legacy.Travels("blog"); ok || why != ReasonSiteNotBound {
			t.Fatalf("another site: %v %q", ok, why)
		}
		// blog's backend marks the user known: shop stays bound.
		legacy.MarkKnown("blog", at(3))
		if !legacy.BoundTo("shop") || legacy.BoundTo("blog") {
			t.Fatal("marking a site known moved the binding")
		}
	})
	t.Run("a new user may be written by any site; an existing one only by a bound site", func(t *testing.T) {
		if !(User{Email: bob}).MayWriteProfile("a") {
			t.Fatal("a site may not create a user")
		}
		u := User{Email: bob, Created: at(1)}
		u.MarkKnown("a", at(1))
		if u.MayWriteProfile("a") {
			t.Fatal("a site that only knows the user may overwrite its profile")
		}
	})
	t.Run("changes report whether they changed anything", func(t *testing.T) {
		u := User{Email: bob, Created: at(1)}
		if !u.MarkKnown("a", at(2)) || u.MarkKnown("a", at(2)) || u.MarkKnown("a", at(1)) {
			t.Fatal("MarkKnown")
		}
		if !u.Bind("a", at(3)) || u.Bind("a", at(3)) {
			t.Fatal("Bind")
		}
		if !u.Verify(VerifiedCode, "b", at(4)) || u.Verify(VerifiedCode, "b", at(4)) {
			t.Fatal("Verify")
		}
		if !u.Unverify("b", at(5)) || u.Unverify("b", at(5)) {
			t.Fatal("Unverify")
		}
	})
	t.Run("changes never write into a map another User shares", func(t *testing.T) {
		u := User{Email: bob}
		u.Bind("a", at(1))
		shared := u // a copy shares the map, as the store's cache does
		u.Bind("b", at(2))
		u.MarkKnown("a", at(3))
		if len(shared.Sites) != 1 || shared.Sites["a"] != (SiteBinding{Bound: at(1)}) {
			t.Fatalf("the shared map changed: %+v", shared.Sites)
		}
		j := JoinUser(shared, u)
		j2 := JoinUser(u, shared)
		if len(shared.Sites) != 1 || len(j.Sites) != 2 || len(j2.Sites) != 2 {
			t.Fatalf("join: shared %v, joined %v %v", shared.Sites, j.Sites, j2.Sites)
		}
	})
	t.Run("a hand-off binds the site but does not make the user known to its backend", func(t *testing.T) {
		u := User{Email: bob, Created: at(1)}
		u.Verify(VerifiedCode, "a", at(2))
		u.Bind("b", at(3)) // redeemed at b
		if !u.BoundTo("b") || u.KnownTo("b") {
			t.Fatalf("bound %v, known %v: b's backend must still be told (new_user)", u.BoundTo("b"), u.KnownTo("b"))
		}
		u.MarkKnown("b", at(4)) // b's backend PUT the user
		if !u.KnownTo("b") {
			t.Fatal("MarkKnown")
		}
	})
	t.Run("a ticket carries the user without its sites", func(t *testing.T) {
		u := User{Email: bob}
		u.Bind("a", at(1))
		if w := u.WithoutSites(); w.Sites != nil || u.Sites == nil {
			t.Fatal("WithoutSites")
		}
	})
}

func TestRecord_ValidateSites(t *testing.T) {
	many := map[string]SiteBinding{}
	for i := 0; i <= MaxSitesPerUser; i++ {
		many[string(rune('a'+i%26))+string(rune(0x100+i))] = SiteBinding{Known: 1}
	}
	long := string(make([]byte, MaxSiteNameBytes+1))
	for name, u := range map[string]User{
		"too many sites":  {Email: "a@b.c", Sites: many},
		"empty site name": {Email: "a@b.c", Sites: map[string]SiteBinding{"": {Known: 1}}},
		"long site name":  {Email: "a@b.c", Sites: map[string]SiteBinding{long: {Known: 1}}},
		"empty entry":     {Email: "a@b.c", Sites: map[string]SiteBinding{"a": {}}},
	} {
		if err := (Record{User: &u}).Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	delete(many, func() string {
		for k := range many {
			return k
		}
		return ""
	}())
	if err := (Record{User: &User{Email: "a@b.c", Sites: many}}).Validate(); err != nil {
		t.Fatalf("%d sites: %v", len(many), err)
	}
}

// TestUser_OldRecordsKeepTheirBytes: a record written before Sites,
// UnboundBefore and Reset existed decodes, joins with itself and encodes to
// the same bytes, so its digest does not change at upgrade.
func TestUser_OldRecordsKeepTheirBytes(t *testing.T) {
	old := `{"u":{"email":"bob@example.com","login":{"v":"bob","t":131072,"n":"shop"},"display_name":{"v":"Bob","t":131072,"n":"shop"},"verified":{"v":{"ok":true,"method":"code"},"t":196608,"n":"blog"},"revoked_before":262144,"created":65536}}`
	var r Record
	if err := json.Unmarshal([]byte(old), &r); err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]Record{"decoded": r, "joined with itself": Join(r, r)} {
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != old {
			t.Fatalf("%s: %s\nwant %s", name, b, old)
		}
	}
}

// TestStore_SiteKnowledgeSurvivesWipe is issue 13 item 4: what a site knows
// of its users travels in the store, so a node restarted on an empty data
// dir gets it back from a peer.
func TestStore_SiteKnowledgeSurvivesWipe(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	peer := openStore(t, "", mt.Now)
	defer peer.Close()
	site := openStore(t, t.TempDir(), mt.Now) // the node of site "shop"
	u := User{Email: "bob@example.com", Created: site.Clock().Now()}
	u.MarkKnown("shop", site.Clock().Now())            // shop's backend PUT bob
	u.Verify(VerifiedCode, "shop", site.Clock().Now()) // and bob proved his mailbox there
	if _, err := site.Apply(Record{User: &u}); err != nil {
		t.Fatal(err)
	}
	antiEntropy(t, site, peer)
	if err := site.Close(); err != nil {
		t.Fatal(err)
	}

	wiped := openStore(t, t.TempDir(), mt.Now) // same node, empty data dir
	defer wiped.Close()
	if _, err := wiped.User("bob@example.com"); err == nil {
		t.Fatal("the wiped store is not empty")
	}
	antiEntropy(t, peer, wiped)
	got, err := wiped.User("bob@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !got.KnownTo("shop") || !got.BoundTo("shop") {
		t.Fatalf("after the wipe shop knows bob %v, is bound %v", got.KnownTo("shop"), got.BoundTo("shop"))
	}
	if ok, why := got.Travels("shop"); !ok {
		t.Fatalf("bob's logins on shop stay local after the wipe (%s)", why)
	}
}

// TestClaimProfile: a bound site claims the profile fields at a floor stamp
// and leaves the ones a clock stamped; every clock stamp beats every floor
// stamp in the join.
func TestClaimProfile(t *testing.T) {
	at := MakeHLC(1_700_000_000_000, 0)
	u := User{Email: "bob@example.com", Login: Set("bob", FloorStamp(Register[string]{}), "b"), DisplayName: Set("Bob", at, "c")}
	if FloorStamp(u.Login) != 2 {
		t.Errorf("next floor stamp %v, want 2", FloorStamp(u.Login))
	}
	if !u.ClaimProfile("b", at+1) || u.Login != Set("bob", at+1, "b") || u.DisplayName != Set("Bob", at, "c") {
		t.Fatalf("claimed %+v / %+v", u.Login, u.DisplayName)
	}
	if u.ClaimProfile("b", at+2) {
		t.Error("claimed twice")
	}
	floor := Register[string]{V: "mallory", At: ProfileFloorEnd - 1, By: "zz"}
	if FloorStamp(floor) != ProfileFloorEnd-1 {
		t.Error("the floor stamp left the floor")
	}
	if got := joinRegister(floor, Set("bob", MakeHLC(946684800000, 0), "a")); got.V != "bob" {
		t.Errorf("a floor write beat a clock write: %+v", got)
	}
}
