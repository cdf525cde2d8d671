package session

import (
	"fmt"
	"testing"
	"time"
)

// skewed is one store of a skewed pair: its own wall clock, offset from
// true time by off.
type skewed struct {
	*Store
	wall *ManualClock
	off  time.Duration
}

// skewPair opens a correct store and one whose wall clock is off by off.
func skewPair(t *testing.T, off time.Duration) (correct, other *skewed, advance func(time.Duration)) {
	t.Helper()
	trueTime := time.UnixMilli(1_700_000_000_000)
	mk := func(off time.Duration) *skewed {
		wall := NewManualClock(trueTime.Add(off))
		s := openStore(t, "", wall.Now)
		t.Cleanup(func() { s.Close() })
		return &skewed{Store: s, wall: wall, off: off}
	}
	correct, other = mk(0), mk(off)
	return correct, other, func(d time.Duration) { correct.wall.Add(d); other.wall.Add(d) }
}

const skewUser = "ann@example.com"

// login makes a session on st, as the API does: after reading the user, at
// the clock's Now.
func (st *skewed) login(t *testing.T, id string) Record {
	t.Helper()
	s := Session{ID: id, Email: skewUser, Site: fmt.Sprint(st.off), Created: st.Clock().Now(), ExpiresAt: st.Now().Add(time.Hour).UnixMilli()}
	r := Record{Session: &s}
	if _, err := st.Apply(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// logoutEverywhere raises the user's revoked_before on st to its clock's
// Now and returns the changed record.
func (st *skewed) logoutEverywhere(t *testing.T) Record {
	t.Helper()
	u, err := st.User(skewUser)
	if err != nil {
		u = User{Email: skewUser}
	}
	u.RevokedBefore = st.Clock().Now()
	if u.Created == 0 {
		u.Created = u.RevokedBefore
	}
	r := Record{User: &u}
	if _, err := st.Apply(r); err != nil {
		t.Fatal(err)
	}
	return r
}

// receive applies records another store sent and returns how many it
// refused because they were ahead of its clock.
func (st *skewed) receive(t *testing.T, recs ...Record) int {
	t.Helper()
	_, refused, err := st.ApplyChecked(recs...)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range refused {
		if RefusalReason(r.Err) != RefusedClockAhead {
			t.Fatalf("refused for another reason: %v", r.Err)
		}
		n++
	}
	return n
}

// state is the session's state on st ("unknown" when st does not have it).
func (st *skewed) state(t *testing.T, id string) State {
	t.Helper()
	s, err := st.Session(id)
	if err != nil {
		return "unknown"
	}
	u, _ := st.User(skewUser)
	return s.StateIn(u, st.Site(s.Site), st.Now())
}

// TestStore_SkewedClocks: what a store refuses and accepts when its wall
// clock, or a peer's, is off (issue 9 item 6). docs/security.md ("Records
// and clocks") states the same outcomes.
func TestStore_SkewedClocks(t *testing.T) {
	t.Run("10 minutes slow: a log out everywhere from a correct node is refused until the clock is fixed", func(t *testing.T) {
		c, slow, advance := skewPair(t, -10*time.Minute)
		login := slow.login(t, "on-slow")
		if n := c.receive(t, login); n != 0 {
			t.Fatal("the correct node refused a login from the past")
		}
		advance(time.Second)
		out := c.logoutEverywhere(t)
		if st := c.state(t, "on-slow"); st != StateRevoked {
			t.Fatalf("on the correct node: %s", st)
		}
		if n := slow.receive(t, out); n != 1 {
			t.Fatal("the slow node merged a record 10 minutes ahead of its clock")
		}
		// The hazard, stated: the slow node (out of spec) keeps the session
		// until its clock is fixed; its refusal counter says so.
		if st := slow.state(t, "on-slow"); st != StateActive || slow.Refused()[RefusedClockAhead] != 1 {
			t.Fatalf("on the slow node: %s, refused %v", st, slow.Refused())
		}
		slow.wall.Add(10 * time.Minute) // NTP steps the clock
		antiEntropy(t, c.Store, slow.Store)
		if st := slow.state(t, "on-slow"); st != StateRevoked || slow.Digest() != c.Digest() {
			t.Fatalf("after the clock is fixed: %s", st)
		}
	})
	t.Run("10 minutes slow: a correct node's login never reaches it; its own log out everywhere is in the past", func(t *testing.T) {
		c, slow, advance := skewPair(t, -10*time.Minute)
		login := c.login(t, "on-correct")
		if n := slow.receive(t, login); n != 1 || slow.state(t, "on-correct") != "unknown" {
			t.Fatal("the slow node merged a login 10 minutes ahead of its clock")
		}
		advance(time.Second)
		out := slow.logoutEverywhere(t)
		if n := c.receive(t, out); n != 0 {
			t.Fatal("the correct node refused a record from the past")
		}
		// The hazard, stated: pressed on the slow node after the login, the
		// logout is stamped 10 minutes earlier and misses it.
		if st := c.state(t, "on-correct"); st != StateActive {
			t.Fatalf("on the correct node: %s", st)
		}
	})
	t.Run("10 minutes fast: its records are refused, so it cannot kill a later login elsewhere", func(t *testing.T) {
		c, fast, advance := skewPair(t, 10*time.Minute)
		out := fast.logoutEverywhere(t) // stamped 10 minutes ahead
		if n := c.receive(t, out); n != 1 {
			t.Fatal("the correct node merged a record 10 minutes ahead")
		}
		advance(time.Second)
		c.login(t, "later")
		if st := c.state(t, "later"); st != StateActive {
			t.Fatalf("a login after the fast node's logout: %s", st)
		}
		if n := c.receive(t, fast.login(t, "on-fast")); n != 1 {
			t.Fatal("a login 10 minutes ahead was merged")
		}
		if c.Clock().Last().WallMs() > c.Now().UnixMilli()+DefaultMaxOffset.Milliseconds() {
			t.Fatal("the correct node's clock followed the fast one")
		}
	})
	t.Run("3 seconds slow, within the max offset: the clock follows and order holds", func(t *testing.T) {
		c, slow, advance := skewPair(t, -3*time.Second)
		before := slow.login(t, "before")
		advance(time.Millisecond)
		out := c.logoutEverywhere(t)
		if n := slow.receive(t, out) + c.receive(t, before); n != 0 {
			t.Fatal("a record within the max offset was refused")
		}
		advance(time.Millisecond)
		after := slow.login(t, "after") // its clock observed the logout
		c.receive(t, after)
		for _, st := range []*skewed{c, slow} {
			if st.state(t, "before") != StateRevoked || st.state(t, "after") != StateActive {
				t.Fatalf("store off by %s: before %s, after %s", st.off, st.state(t, "before"), st.state(t, "after"))
			}
		}
	})
}
