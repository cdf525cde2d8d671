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
		ExpiresAt: 1 << 40,
	}
	if rapid.Bool().Draw(t, "ended") {
		s.Ended = genHLC(t, "end") + 1 // an end is never zero
		s.EndReason = rapid.SampledFrom([]string{EndLogout, EndLogoutEverywhere, EndAdmin}).Draw(t, "reason")
	}
	return s
}

// genRecord draws a record over a tiny universe of keys, so that records
// collide and merge.
func genRecord(t *rapid.T) Record {
	if rapid.Bool().Draw(t, "user") {
		u := genUser(t, rapid.SampledFrom([]string{"ann@example.com", "bob@example.com"}).Draw(t, "email"))
		return Record{User: &u}
	}
	s := genSession(t, rapid.SampledFrom([]string{"s1", "s2", "s3"}).Draw(t, "id"))
	return Record{Session: &s}
}

func genSameKind(t *rapid.T) (Record, Record, Record) {
	if rapid.Bool().Draw(t, "kind") {
		a, b, c := genUser(t, "ann@example.com"), genUser(t, "ann@example.com"), genUser(t, "ann@example.com")
		return Record{User: &a}, Record{User: &b}, Record{User: &c}
	}
	a, b, c := genSession(t, "s1"), genSession(t, "s1"), genSession(t, "s1")
	return Record{Session: &a}, Record{Session: &b}, Record{Session: &c}
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
	c := NewClock(func() time.Time { return wall })
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
