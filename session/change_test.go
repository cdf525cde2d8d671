package session

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// genChange draws an operation of the cluster applied to generated prior
// states, with its stamp above theirs (the caller reads, then takes the
// clock): every record change of change.go, binding.go, site.go and
// reset.go. It returns the records the operation writes, each beside the
// state it was built from (nil for none).
func genChange(t *rapid.T) (out []Record, prior []*Record) {
	at := MakeHLC(4+rapid.Int64Range(0, 2).Draw(t, "at.wall"), uint16(rapid.IntRange(0, 2).Draw(t, "at.l")))
	by := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "change.by")
	user := func(email string) (User, bool) {
		if rapid.Bool().Draw(t, email+".known") {
			return genUser(t, email), true
		}
		return User{Email: email}, false
	}
	sessions := func() []Session {
		ids := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"s1", "s2", "s3"}), 0, 3, rapid.ID[string]).Draw(t, "active")
		out := make([]Session, len(ids))
		for i, id := range ids {
			out[i] = genSession(t, id)
			out[i].Ended, out[i].EndReason = 0, "" // the active ones
		}
		return out
	}
	withPriors := func(recs []Record, users []User, ss []Session) ([]Record, []*Record) {
		p := make([]*Record, len(recs))
		for i := range users {
			p[i] = &Record{User: &users[i]}
		}
		for i := range ss {
			p[len(users)+i] = &Record{Session: &ss[i]}
		}
		return recs, p
	}
	userChange := func(u User, known bool, f func(*User)) ([]Record, []*Record) {
		nu := u
		f(&nu)
		if !known {
			return []Record{{User: &nu}}, []*Record{nil}
		}
		return []Record{{User: &nu}}, []*Record{{User: &u}}
	}
	site := rapid.SampledFrom([]string{"shop", "blog", "wiki"}).Draw(t, "change.site")
	switch change := rapid.SampledFrom([]string{"update", "site-update", "verify", "unverify", "bind", "mark-known", "claim",
		"reset", "revoke-site", "unrevoke-site", "end", "revoke-all", "move"}).Draw(t, "change"); change {
	case "update":
		u, known := user("ann@example.com")
		c := UserChange{}
		if rapid.Bool().Draw(t, "set.login") {
			v := rapid.SampledFrom([]string{"ann", "bob", "cy"}).Draw(t, "login.v")
			c.Login = &v
		}
		if rapid.Bool().Draw(t, "set.verified") {
			v := Verification{OK: rapid.Bool().Draw(t, "verified.ok"), Method: VerifiedCode}
			c.Verified = &v
		}
		nu, _ := UpdateUser(u, known, c, at, by)
		if !known {
			return []Record{{User: &nu}}, []*Record{nil}
		}
		return []Record{{User: &nu}}, []*Record{{User: &u}}
	case "site-update":
		u, known := user("ann@example.com")
		c := UserChange{}
		for _, f := range []**string{&c.Login, &c.DisplayName} {
			if rapid.Bool().Draw(t, "set.name") {
				v := rapid.SampledFrom([]string{"ann", "bob", "cy"}).Draw(t, "name.v")
				*f = &v
			}
		}
		if rapid.Bool().Draw(t, "set.verified") {
			v := Verification{OK: rapid.Bool().Draw(t, "verified.ok"), Method: rapid.SampledFrom([]string{VerifiedAdmin, VerifiedCode}).Draw(t, "verified.method")}
			c.Verified = &v
		}
		ack := rapid.Bool().Draw(t, "ack")
		return userChange(u, known, func(nu *User) { *nu, _, _ = SiteUpdate(*nu, known, c, ack, at, site) })
	case "verify":
		u := genUser(t, "ann@example.com")
		method := rapid.SampledFrom([]string{VerifiedAdmin, VerifiedCode, VerifiedRegistration}).Draw(t, "verify.method")
		return userChange(u, true, func(nu *User) { nu.Verify(method, site, at) })
	case "unverify":
		return userChange(genUser(t, "ann@example.com"), true, func(nu *User) { nu.Unverify(site, at) })
	case "bind":
		return userChange(genUser(t, "ann@example.com"), true, func(nu *User) { nu.Bind(site, at) })
	case "mark-known":
		return userChange(genUser(t, "ann@example.com"), true, func(nu *User) { nu.MarkKnown(site, at) })
	case "claim":
		return userChange(genUser(t, "ann@example.com"), true, func(nu *User) { nu.ClaimProfile(site, at) })
	case "reset":
		u := genUser(t, "ann@example.com")
		r := ResetUser(u, at)
		return []Record{{User: &r}}, []*Record{{User: &u}}
	case "revoke-site", "unrevoke-site":
		name := rapid.SampledFrom([]string{"shop", "blog"}).Draw(t, "revoke.site")
		x := RevokeSite(name, at, by)
		if change == "unrevoke-site" {
			x = UnrevokeSite(name, at, by)
		}
		if !rapid.Bool().Draw(t, "site.known") {
			return []Record{{Site: &x}}, []*Record{nil}
		}
		prior := genSite(t, name)
		return []Record{{Site: &x}}, []*Record{{Site: &prior}}
	case "end":
		s := genSession(t, rapid.SampledFrom([]string{"s1", "s2"}).Draw(t, "end.id"))
		e := EndSession(s, at, rapid.SampledFrom([]string{EndLogout, EndAdmin}).Draw(t, "end.reason"))
		return []Record{{Session: &e}}, []*Record{{Session: &s}}
	case "revoke-all":
		u, known := user("ann@example.com")
		active := sessions()
		recs, p := withPriors(RevokeAll(u, known, active, at), []User{u}, active)
		if !known {
			p[0] = nil
		}
		return recs, p
	default:
		old := genUser(t, "ann@example.com")
		to, known := user("bob@example.com")
		active := sessions()
		recs, p := withPriors(Move(old, to, active, at, by), []User{to, old}, active)
		if !known {
			p[0] = nil
		}
		return recs, p
	}
}

// TestChanges_Inflate: every record a change writes is above the state it
// was built from (old ⊔ change = change), so a replica holding the old
// state ends at the change whatever the order it gets the two in.
func TestChanges_Inflate(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		out, prior := genChange(t)
		for i, rec := range out {
			if err := rec.Validate(); err != nil {
				t.Fatalf("record %d is not valid: %v", i, err)
			}
			if prior[i] == nil {
				continue
			}
			if x, y := enc(t, Join(*prior[i], rec)), enc(t, rec); x != y {
				t.Fatalf("record %d: old ⊔ change = %s\nchange = %s", i, x, y)
			}
			if x, y := enc(t, Join(rec, *prior[i])), enc(t, rec); x != y {
				t.Fatalf("record %d: change ⊔ old = %s\nchange = %s", i, x, y)
			}
		}
	})
}

// TestChanges_Intent checks what each change is for, against any state a
// replica may hold or receive later: stale copies, concurrent writes with
// older stamps.
func TestChanges_Intent(t *testing.T) {
	now := time.UnixMilli(10) // before every generated expiry
	at := MakeHLC(9, 0)       // above every generated stamp
	t.Run("an ended session stays ended", rapid.MakeCheck(func(t *rapid.T) {
		s := genSession(t, "s1")
		ended := EndSession(s, at, EndLogout)
		other := genSession(t, "s1")
		if got := JoinSession(other, ended); got.Ended == 0 || got.StateAt(User{Email: s.Email}, now) != StateEnded {
			t.Fatalf("joined with %+v the end is lost: %+v", other, got)
		}
		if s.Ended != 0 && ended != s {
			t.Fatalf("a second end replaced the first: %+v, was %+v", ended, s)
		}
	}))
	t.Run("revoke-all ends every session created before it, even one that arrives later", rapid.MakeCheck(func(t *rapid.T) {
		u := genUser(t, "ann@example.com")
		u.MovedTo = Register[string]{}
		recs := RevokeAll(u, true, nil, at)
		late := genSession(t, "s9") // any session created before at
		other := genUser(t, "ann@example.com")
		other.MovedTo = Register[string]{}
		other.Reset = u.Reset // a write of the same generation (a reset voids older ones whole)
		for _, joined := range []User{JoinUser(*recs[0].User, other), JoinUser(other, *recs[0].User)} {
			if st := late.StateAt(joined, now); st == StateActive {
				t.Fatalf("a session created at %v is active after a revocation at %v", late.Created, at)
			}
		}
		fresh := Session{ID: "s8", Email: u.Email, Created: at + 1, ExpiresAt: 1 << 40}
		if st := fresh.StateAt(JoinUser(*recs[0].User, other), now); st != StateActive {
			t.Fatalf("a login after the revocation is %s", st)
		}
	}))
	t.Run("a move revokes the old address and carries the profile", rapid.MakeCheck(func(t *rapid.T) {
		old := genUser(t, "ann@example.com")
		to := genUser(t, "bob@example.com")
		recs := Move(old, to, nil, at, "a")
		nu, moved := *recs[0].User, *recs[1].User
		stale := genUser(t, "ann@example.com") // any older write to the old address
		stale.Reset = old.Reset                // of the same generation (a reset voids older ones whole)
		if got := JoinUser(stale, moved); got.MovedTo.V != "bob@example.com" {
			t.Fatalf("the old address is moved to %q after a stale write", got.MovedTo.V)
		}
		s := genSession(t, "s1")
		if st := s.StateAt(JoinUser(stale, moved), now); st == StateActive {
			t.Fatal("a session of the old address is active after the move")
		}
		if nu.MovedTo.V != "" || (old.Login.V != "" && nu.Login.V != old.Login.V) || (old.Verified.V.OK && !nu.Verified.V.OK) {
			t.Fatalf("the new address did not take the profile: %+v from %+v", nu, old)
		}
		if old.Created != 0 && (nu.Created == 0 || nu.Created > old.Created) {
			t.Fatalf("the new address was created at %v, after the old one (%v)", nu.Created, old.Created)
		}
		// Every binding to the old address is void, whatever stale write
		// arrives after the move. (Its verification register is written only
		// when it holds a value, like every register: a verification stamped
		// before the move and arriving after it may show, bound to no site.)
		for _, site := range []string{"a", "b", "shop", "blog", "wiki"} {
			if got := JoinUser(stale, moved); got.BoundTo(site) {
				t.Fatalf("the old address is still bound to %s after the move: %+v", site, got)
			}
		}
		if old.KnownTo("a") && !nu.KnownTo("a") {
			t.Fatal("the moving site knew the old address but not the new one")
		}
	}))
	t.Run("an unbound site's write never overwrites a bound site's profile", rapid.MakeCheck(func(t *rapid.T) {
		// A user verified and bound on shop, whose name shop wrote; blog
		// (not bound) writes another name, holding the user or not.
		u := genUser(t, "ann@example.com")
		u.Reset, u.MovedTo = 0, Register[string]{}
		u.Verify(VerifiedCode, "shop", MakeHLC(5, 0))
		name := "Ann"
		bound, _, _ := SiteUpdate(u, true, UserChange{DisplayName: &name}, true, MakeHLC(6, 0), "shop")
		other := "Mallory"
		known := rapid.Bool().Draw(t, "blog.holds")
		held := User{Email: u.Email}
		if known {
			held = genUser(t, "ann@example.com")
			held.Reset, held.Sites, held.Verified, held.UnboundBefore = 0, nil, Register[Verification]{}, 0 // blog never saw a verification
		}
		unbound, _, _ := SiteUpdate(held, known, UserChange{DisplayName: &other}, true, at, "blog")
		for _, got := range []User{JoinUser(bound, unbound), JoinUser(unbound, bound)} {
			if got.DisplayName.V != name {
				t.Fatalf("display name %q after blog's write at %v, want shop's %q (blog's: %+v)", got.DisplayName.V, unbound.DisplayName.At, name, unbound.DisplayName)
			}
		}
	}))
}

// TestChanges_Histories are operations a user would recognise, replayed in
// every order.
func TestChanges_Histories(t *testing.T) {
	ann := User{Email: "ann@example.com", Login: Set("ann", MakeHLC(1, 0), "shop"), Verified: Set(Verification{OK: true, Method: VerifiedCode}, MakeHLC(1, 0), "shop"), Created: MakeHLC(1, 0)}
	login := Session{ID: "s1", Email: ann.Email, Site: "shop", Created: MakeHLC(2, 0), ExpiresAt: 1 << 40}
	now := time.UnixMilli(100)

	t.Run("move, then move back: the later move wins", func(t *testing.T) {
		away := Move(ann, User{Email: "ann@new.example"}, []Session{login}, MakeHLC(3, 0), "shop")
		back := Move(*away[0].User, *away[1].User, nil, MakeHLC(4, 0), "blog")
		all := append(append([]Record{}, away...), back...)
		for _, order := range [][]int{{0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, {3, 0, 4, 1, 2}} {
			users := map[string]User{}
			for _, i := range order {
				if u := all[i].User; u != nil {
					if have, ok := users[u.Email]; ok {
						users[u.Email] = JoinUser(have, *u)
					} else {
						users[u.Email] = *u
					}
				}
			}
			if users["ann@example.com"].MovedTo.V != "" || users["ann@new.example"].MovedTo.V != "ann@example.com" {
				t.Fatalf("order %v: old moved to %q, new moved to %q", order, users["ann@example.com"].MovedTo.V, users["ann@new.example"].MovedTo.V)
			}
		}
		if s := *away[2].Session; s.EndReason != EndAdmin || s.StateAt(*back[0].User, now) != StateEnded {
			t.Fatalf("the move's session %+v", s)
		}
	})
	t.Run("revoke-all of a user known only by its sessions", func(t *testing.T) {
		recs := RevokeAll(User{Email: ann.Email}, false, []Session{login}, MakeHLC(5, 0))
		u := JoinUser(ann, *recs[0].User)
		if u.Created != ann.Created || u.RevokedBefore != MakeHLC(5, 0) || u.Login.V != "ann" {
			t.Fatalf("joined with the real record: %+v", u)
		}
		if s := *recs[1].Session; s.EndReason != EndLogoutEverywhere || s.Ended != MakeHLC(5, 0) {
			t.Fatalf("session %+v", s)
		}
	})
	t.Run("an update to the same value keeps the old stamp", func(t *testing.T) {
		same := "ann"
		if u, changed := UpdateUser(ann, true, UserChange{Login: &same}, MakeHLC(6, 0), "blog"); changed || u.Login != ann.Login {
			t.Fatalf("changed %v, login %+v", changed, u.Login)
		}
	})
}

// TestRevocationDelta checks that the delta a revocation pushes is a delta
// state of it: joined into a replica that held the user before the
// revocation (or more), it gives what joining the whole user gives; joined
// into any replica, a later join of the whole user gives the same as that
// join alone; and it carries far fewer bytes than a user many sites know.
func TestRevocationDelta(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		before := genUser(t, "ann@example.com")
		known := rapid.Bool().Draw(t, "known")
		at := genHLC(t, "at") + 1
		u := *RevokeAll(before, known, nil, at)[0].User
		d := RevocationDelta(u)

		checkDelta(t, before, u, d)
	})
	u := User{Email: "ann@example.com", Login: Set("ann", 5, "shop"), RevokedBefore: 9, Sites: map[string]SiteBinding{}}
	for i := range 100 {
		u.Sites[fmt.Sprintf("site-%02d", i)] = SiteBinding{Known: MakeHLC(1_780_000_000_000, 3), Bound: MakeHLC(1_780_000_000_000, 7)}
	}
	whole, _ := json.Marshal(Record{User: &u})
	d := RevocationDelta(u)
	delta, _ := json.Marshal(Record{User: &d})
	if len(delta) > 200 || len(whole) < 4000 {
		t.Errorf("a user 100 sites know: %d bytes whole, its revocation delta %d (want under 200)", len(whole), len(delta))
	}
}

// TestSitesDelta: the delta of a login's change to a user (the sites whose
// entry it changed, with every other field) joins into a replica holding
// the state before as the whole user does, and on any replica a later join
// of the whole user gives the same; a user a hundred sites know sends a
// login's delta in one packet.
func TestSitesDelta(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		before := genUser(t, "ann@example.com")
		at := genHLC(t, "at") + 1
		site := rapid.SampledFrom([]string{"shop", "blog", "forum"}).Draw(t, "site")
		u := before
		u.MarkKnown(site, at)
		if rapid.Bool().Draw(t, "renamed") {
			name := "ann2"
			setRegister(&u.Login, &name, at, site)
		}
		d := SitesDelta(u, before)
		if len(d.Sites) > 1 {
			t.Fatalf("one site marked known: the delta holds %d sites", len(d.Sites))
		}
		checkDelta(t, before, u, d)
	})
	u := User{Email: "ann@example.com", Login: Set("ann", 5, "shop"), Sites: map[string]SiteBinding{}}
	for i := range 100 {
		u.Sites[fmt.Sprintf("site-%02d", i)] = SiteBinding{Known: MakeHLC(1_780_000_000_000, 3), Bound: MakeHLC(1_780_000_000_000, 7)}
	}
	after := u
	after.MarkKnown("site-07", MakeHLC(1_780_000_000_001, 0))
	d := SitesDelta(after, u)
	whole, _ := json.Marshal(Record{User: &after})
	delta, _ := json.Marshal(Record{User: &d})
	if len(delta) > 300 || len(whole) < 4000 {
		t.Errorf("a user 100 sites know: %d bytes whole, a login's delta %d (want under 300)", len(whole), len(delta))
	}
}

// checkDelta checks that d is a delta state of the change from before to
// u: joined into a replica holding before (or more) it gives what u
// gives, and on any replica u joined after it gives what u alone gives.
func checkDelta(t *rapid.T, before, u, d User) {
	caughtUp := JoinUser(before, genUser(t, "ann@example.com"))
	if got, want := JoinUser(caughtUp, d), JoinUser(caughtUp, u); !reflect.DeepEqual(got, want) {
		t.Fatalf("a replica holding the state before: delta gives %+v, the whole user %+v", got, want)
	}
	any := genUser(t, "ann@example.com")
	if got, want := JoinUser(JoinUser(any, d), u), JoinUser(any, u); !reflect.DeepEqual(got, want) {
		t.Fatalf("any replica: delta then user gives %+v, the user alone %+v", got, want)
	}
}
