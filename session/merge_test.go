package session

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// genHLC draws from a small range so that ties happen.
func genHLC(t *rapid.T, label string) HLC {
	return MakeHLC(rapid.Int64Range(0, 3).Draw(t, label+".wall"), uint16(rapid.IntRange(0, 2).Draw(t, label+".l")))
}

func genRegister(t *rapid.T, label string) Register[string] {
	return Register[string]{
		V:  rapid.SampledFrom([]string{"", "ann", "bob"}).Draw(t, label+".v"),
		At: genHLC(t, label+".at"),
		By: rapid.SampledFrom([]string{"a", "b"}).Draw(t, label+".by"),
	}
}

func genUser(t *rapid.T, email string) User {
	return User{
		Email:       email,
		Login:       genRegister(t, "login"),
		DisplayName: genRegister(t, "name"),
		Verified: Register[Verification]{
			V:  Verification{OK: rapid.Bool().Draw(t, "ok"), Method: rapid.SampledFrom([]string{"", "admin", "code"}).Draw(t, "method")},
			At: genHLC(t, "ver.at"),
			By: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "ver.by"),
		},
		RevokedBefore: genHLC(t, "revoked"),
		Created:       genHLC(t, "created"),
		MovedTo:       genMovedTo(t),
		Sites:         genSites(t),
		UnboundBefore: genRarely(t, "unbound"),
		Reset:         genRarely(t, "reset"),
	}
}

// genRarely is most often zero (a field left out of the encoding), else a
// small HLC, so that both ties and differences happen.
func genRarely(t *rapid.T, label string) HLC {
	if rapid.IntRange(0, 2).Draw(t, label+".set") == 0 {
		return genHLC(t, label)
	}
	return 0
}

// genSites draws what up to three sites know of a user: often nothing (a
// record from before Sites existed), else a few entries, each with at least
// one time.
func genSites(t *rapid.T) map[string]SiteBinding {
	names := rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"shop", "blog", "wiki"}), 0, 3, rapid.ID[string]).Draw(t, "sites")
	if len(names) == 0 {
		return nil
	}
	out := map[string]SiteBinding{}
	for _, n := range names {
		b := SiteBinding{Known: genHLC(t, n+".known"), Bound: genRarely(t, n+".bound")}
		if b == (SiteBinding{}) {
			b.Known = 1
		}
		out[n] = b
	}
	return out
}

func genSite(t *rapid.T, name string) Site {
	return Site{
		Name: name,
		Revoked: Register[bool]{
			V:  rapid.Bool().Draw(t, "site.revoked"),
			At: genHLC(t, "site.at"),
			By: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "site.by"),
		},
		RevokedBefore: genHLC(t, "site.before"),
	}
}

// genMovedTo is most often never set (the zero register, left out of the
// encoding), else set to an address or cleared again.
func genMovedTo(t *rapid.T) Register[string] {
	if rapid.IntRange(0, 2).Draw(t, "moved") == 0 {
		return Register[string]{}
	}
	return Register[string]{
		V:  rapid.SampledFrom([]string{"", "new@example.com", "other@example.com"}).Draw(t, "moved.v"),
		At: genHLC(t, "moved.at"),
		By: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "moved.by"),
	}
}

func genSession(t *rapid.T, id string) Session {
	s := Session{
		ID:        id,
		Email:     "ann@example.com",
		Site:      rapid.SampledFrom([]string{"shop", "blog"}).Draw(t, "site"),
		Created:   genHLC(t, "created"),
		ExpiresAt: 1 << 30, // twelve days: within the maximum session TTL
	}
	if rapid.Bool().Draw(t, "ended") {
		s.Ended = genHLC(t, "end") + 1 // an end is never zero
		s.EndReason = rapid.SampledFrom([]string{EndLogout, EndLogoutEverywhere, EndAdmin}).Draw(t, "reason")
	}
	return s
}

// genRecord draws a record over a tiny universe of keys, so that records
// collide and merge: an arbitrary one, or one that an operation of the
// cluster writes (genChange, change_test.go), so that the convergence
// properties hold for the records the node really makes.
func genRecord(t *rapid.T) Record {
	if rapid.IntRange(0, 2).Draw(t, "from") == 0 {
		out, _ := genChange(t)
		return out[rapid.IntRange(0, len(out)-1).Draw(t, "which")]
	}
	switch rapid.IntRange(0, 4).Draw(t, "kind") {
	case 0, 1:
		u := genUser(t, rapid.SampledFrom([]string{"ann@example.com", "bob@example.com"}).Draw(t, "email"))
		return Record{User: &u}
	case 2, 3:
		s := genSession(t, rapid.SampledFrom([]string{"s1", "s2", "s3"}).Draw(t, "id"))
		return Record{Session: &s}
	}
	x := genSite(t, rapid.SampledFrom([]string{"shop", "blog"}).Draw(t, "site"))
	return Record{Site: &x}
}

// genSameKind draws three records with one key, to join: each an arbitrary
// record or one a change writes (genOfKind).
func genSameKind(t *rapid.T) (Record, Record, Record) {
	kind := rapid.IntRange(0, 2).Draw(t, "kind")
	return genOfKind(t, kind), genOfKind(t, kind), genOfKind(t, kind)
}

// genOfKind draws a record of kind (0 a user, 1 a session, 2 a site) keyed
// ann@example.com, s1 or shop: an arbitrary one, or one that an operation
// of the cluster writes (genChange), given that key, so that the algebra
// holds for the records the node really makes.
func genOfKind(t *rapid.T, kind int) Record {
	if rapid.Bool().Draw(t, "from.change") {
		out, _ := genChange(t)
		for _, r := range out {
			switch {
			case kind == 0 && r.User != nil:
				u := *r.User
				u.Email = "ann@example.com"
				return Record{User: &u}
			case kind == 1 && r.Session != nil:
				s := *r.Session
				s.ID = "s1"
				return Record{Session: &s}
			case kind == 2 && r.Site != nil:
				x := *r.Site
				x.Name = "shop"
				return Record{Site: &x}
			}
		}
	}
	switch kind {
	case 0:
		u := genUser(t, "ann@example.com")
		return Record{User: &u}
	case 1:
		s := genSession(t, "s1")
		return Record{Session: &s}
	}
	x := genSite(t, "shop")
	return Record{Site: &x}
}

func enc(t interface{ Fatal(...any) }, r Record) string {
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestJoin_Algebra(t *testing.T) {
	t.Run("commutative", rapid.MakeCheck(func(t *rapid.T) {
		a, b, _ := genSameKind(t)
		if x, y := enc(t, Join(a, b)), enc(t, Join(b, a)); x != y {
			t.Fatalf("a⊔b = %s\nb⊔a = %s", x, y)
		}
	}))
	t.Run("associative", rapid.MakeCheck(func(t *rapid.T) {
		a, b, c := genSameKind(t)
		if x, y := enc(t, Join(Join(a, b), c)), enc(t, Join(a, Join(b, c))); x != y {
			t.Fatalf("(a⊔b)⊔c = %s\na⊔(b⊔c) = %s", x, y)
		}
	}))
	t.Run("idempotent", rapid.MakeCheck(func(t *rapid.T) {
		a, _, _ := genSameKind(t)
		if x, y := enc(t, Join(a, a)), enc(t, a); x != y {
			t.Fatalf("a⊔a = %s\na = %s", x, y)
		}
	}))
	t.Run("inputs are valid, left unchanged, and the join's encoding round-trips", rapid.MakeCheck(func(t *rapid.T) {
		a, b, _ := genSameKind(t)
		if err := a.Validate(); err != nil {
			t.Fatalf("the generator made an invalid record: %v", err)
		}
		ea, eb := enc(t, a), enc(t, b)
		j := Join(a, b)
		if enc(t, a) != ea || enc(t, b) != eb {
			t.Fatal("the join modified an input")
		}
		var back Record
		if err := json.Unmarshal([]byte(enc(t, j)), &back); err != nil {
			t.Fatal(err)
		}
		if enc(t, back) != enc(t, j) || back.Key() != a.Key() {
			t.Fatalf("the join's encoding does not round-trip: %s", enc(t, j))
		}
	}))
}

// FuzzRecord decodes records as gossip, repair and tickets deliver them
// (JSON of a Record): whatever Validate accepts has a key, joins with itself
// to itself, and re-encodes to bytes that decode to the same encoding.
func FuzzRecord(f *testing.F) {
	u := User{Email: "ann@example.com", Login: Set("ann", 5, "shop"), RevokedBefore: 7,
		Sites: map[string]SiteBinding{"shop": {Known: 3, Bound: 4}, "blog": {Known: 2}}, UnboundBefore: 1, Reset: 2}
	s := Session{ID: "abc", Email: "ann@example.com", Site: "shop", Created: 1, ExpiresAt: 2, Ended: 3, EndReason: EndLogout}
	x := RevokeSite("shop", 9, "admin")
	for _, r := range []Record{{User: &u}, {Session: &s}, {Site: &x}} {
		f.Add([]byte(enc(f, r)))
	}
	f.Add([]byte(`{"site":{"name":"a"},"u":{"email":"b"}}`))
	f.Add([]byte(`{"u":{"email":"a@b.c","sites":{"":{}},"reset":18446744073709551615}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if json.Unmarshal(b, &r) != nil {
			return
		}
		_ = r.MaxHLC()
		if r.Validate() != nil {
			return
		}
		if r.Key() == "" {
			t.Fatal("a valid record without a key")
		}
		e := enc(t, r)
		if j := enc(t, Join(r, r)); j != e {
			t.Fatalf("r⊔r = %s\nr = %s", j, e)
		}
		var back Record
		if err := json.Unmarshal([]byte(e), &back); err != nil {
			t.Fatal(err)
		}
		if enc(t, back) != e {
			t.Fatalf("%s re-encodes as %s", e, enc(t, back))
		}
	})
}

// TestJoin_Histories are event histories a user would recognise.
func TestJoin_Histories(t *testing.T) {
	alive := Session{ID: "s1", Email: "ann@example.com", Site: "shop", Created: MakeHLC(100, 0), ExpiresAt: 10_000}
	logout := alive
	logout.Ended, logout.EndReason = MakeHLC(200, 0), EndLogout
	everywhere := alive
	everywhere.Ended, everywhere.EndReason = MakeHLC(300, 0), EndLogoutEverywhere

	for _, tc := range []struct {
		name       string
		history    []Session
		wantEnded  HLC
		wantReason string
	}{
		{"alive stays alive", []Session{alive, alive}, 0, ""},
		{"logout then stale alive copy", []Session{logout, alive}, MakeHLC(200, 0), EndLogout},
		{"stale alive copy then logout", []Session{alive, logout}, MakeHLC(200, 0), EndLogout},
		{"two ends keep the first", []Session{everywhere, logout}, MakeHLC(200, 0), EndLogout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.history[0]
			for _, s := range tc.history[1:] {
				got = JoinSession(got, s)
			}
			if got.Ended != tc.wantEnded || got.EndReason != tc.wantReason {
				t.Fatalf("ended %v %q, want %v %q", got.Ended, got.EndReason, tc.wantEnded, tc.wantReason)
			}
		})
	}

	t.Run("revoked_before only grows", func(t *testing.T) {
		u := JoinUser(User{Email: "a@b.c", RevokedBefore: MakeHLC(500, 0)}, User{Email: "a@b.c", RevokedBefore: MakeHLC(100, 0)})
		if u.RevokedBefore != MakeHLC(500, 0) {
			t.Fatalf("revoked_before = %v", u.RevokedBefore)
		}
	})
	t.Run("a move is a register: the later of move and move back wins", func(t *testing.T) {
		moved := User{Email: "a@b.c", MovedTo: Set("new@b.c", MakeHLC(2, 0), "shop")}
		back := User{Email: "a@b.c", MovedTo: Set("", MakeHLC(3, 0), "blog")}
		never := User{Email: "a@b.c"}
		if JoinUser(moved, never).MovedTo.V != "new@b.c" || JoinUser(never, moved).MovedTo.V != "new@b.c" {
			t.Fatal("a user never moved undid the move")
		}
		if JoinUser(moved, back).MovedTo.V != "" || JoinUser(back, moved).MovedTo.V != "" {
			t.Fatal("the older move won")
		}
	})
	t.Run("a user never moved encodes as before moved_to existed", func(t *testing.T) {
		b, err := json.Marshal(User{Email: "a@b.c", Created: MakeHLC(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"email":"a@b.c","login":{"v":""},"display_name":{"v":""},"verified":{"v":{"ok":false}},"created":65536}`; string(b) != want {
			t.Fatalf("encoding %s, want %s", b, want)
		}
	})
	t.Run("later display name wins, whatever the order", func(t *testing.T) {
		old := User{Email: "a@b.c", DisplayName: Set("Ann", MakeHLC(1, 0), "shop")}
		newer := User{Email: "a@b.c", DisplayName: Set("Ann B.", MakeHLC(2, 0), "blog")}
		if JoinUser(old, newer).DisplayName.V != "Ann B." || JoinUser(newer, old).DisplayName.V != "Ann B." {
			t.Fatal("the older name won")
		}
	})
}

func TestSession_StateAt(t *testing.T) {
	now := time.UnixMilli(5_000)
	base := Session{ID: "s1", Email: "a@b.c", Created: MakeHLC(1_000, 0), ExpiresAt: 10_000}
	user := User{Email: "a@b.c"}
	ended := base
	ended.Ended = MakeHLC(2_000, 0)
	revoked := user
	revoked.RevokedBefore = MakeHLC(3_000, 0) // a logout-everywhere after the login
	for _, tc := range []struct {
		name string
		s    Session
		u    User
		now  time.Time
		want State
	}{
		{"active", base, user, now, StateActive},
		{"ended", ended, user, now, StateEnded},
		{"late login created before logout-everywhere", base, revoked, now, StateRevoked},
		{"user moved to another address", base, User{Email: "a@b.c", MovedTo: Set("new@b.c", MakeHLC(500, 0), "n")}, now, StateRevoked},
		{"expired exactly at expiry", base, user, time.UnixMilli(10_000), StateExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.StateAt(tc.u, tc.now); got != tc.want {
				t.Fatalf("state %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClock(t *testing.T) {
	wall := time.UnixMilli(1_000)
	c := NewClock(func() time.Time { return wall }, time.Hour)
	a := c.Now()
	b := c.Now()
	if !(b > a) || a.WallMs() != 1_000 {
		t.Fatalf("not increasing in one millisecond: %v then %v", a, b)
	}
	c.Observe(MakeHLC(5_000, 7))
	if got := c.Now(); got <= MakeHLC(5_000, 7) {
		t.Fatalf("Now %v not after observed 5000.7", got)
	}
	wall = time.UnixMilli(900) // the wall clock steps back
	if got := c.Now(); got <= MakeHLC(5_000, 8) {
		t.Fatalf("Now %v went back with the wall clock", got)
	}
	if !reflect.DeepEqual(MakeHLC(0, 0).Time(), time.Time{}) {
		t.Fatal("zero HLC is not the zero time")
	}
}
