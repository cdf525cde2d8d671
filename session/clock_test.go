package session

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestClock_NeverWrapsNorGoesBack(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	c := NewClock(mt.Now, 0)
	if c.MaxOffset() != DefaultMaxOffset {
		t.Fatalf("max offset %s", c.MaxOffset())
	}
	before := c.Now()

	t.Run("a maximal timestamp is not observed", func(t *testing.T) {
		if err := c.Observe(MaxHLC); !errors.Is(err, ErrClockAhead) {
			t.Fatalf("Observe(2^64-1) = %v", err)
		}
		if now := c.Now(); now <= before || now.WallMs() != 1_000_000 {
			t.Fatalf("Now %v after refusing 2^64-1 (before %v)", now, before)
		}
	})
	t.Run("within the max offset is observed", func(t *testing.T) {
		ahead := MakeHLC(1_004_999, 7)
		if err := c.Observe(ahead); err != nil {
			t.Fatal(err)
		}
		if now := c.Now(); now <= ahead {
			t.Fatalf("Now %v not after %v", now, ahead)
		}
		if err := c.Observe(MakeHLC(1_005_001, 0)); !errors.Is(err, ErrClockAhead) {
			t.Fatalf("5.001 s ahead: %v", err)
		}
	})
	t.Run("the wall clock steps back", func(t *testing.T) {
		last := c.Last()
		mt.Add(-time.Hour)
		if now := c.Now(); now <= last {
			t.Fatalf("Now %v went back with the wall clock (last %v)", now, last)
		}
		// What the clock has reached is never refused, or a node would
		// refuse its own writes until its wall clock caught up.
		if err := c.Check(c.Last()); err != nil {
			t.Fatalf("the clock refuses its own timestamp: %v", err)
		}
		if err := c.Check(c.Last() + MakeHLC(1, 0)); !errors.Is(err, ErrClockAhead) {
			t.Fatalf("a timestamp past what the clock reached, an hour ahead of the wall: %v", err)
		}
	})
	t.Run("a wall clock at the end of HLC time saturates", func(t *testing.T) {
		end := NewManualClock(time.UnixMilli(maxWallMs + 10))
		c := NewClock(end.Now, 0)
		prev := c.Now()
		for i := 0; i < 1<<logicalBits+10; i++ {
			now := c.Now()
			if now < prev {
				t.Fatalf("wrapped: %v after %v", now, prev)
			}
			prev = now
		}
		if prev != MaxHLC {
			t.Fatalf("ended at %v", prev)
		}
		before := NewClock(NewManualClock(time.UnixMilli(-5)).Now, 0)
		if now := before.Now(); now != 0 && now.WallMs() != 0 {
			t.Fatalf("a wall clock before 1970: %v", now)
		}
	})
	t.Run("a ticket's time", func(t *testing.T) {
		c := NewClock(NewManualClock(time.UnixMilli(1_000_000)).Now, 2*time.Second)
		if err := c.CheckTime(time.UnixMilli(1_002_000)); err != nil {
			t.Fatal(err)
		}
		if err := c.CheckTime(time.UnixMilli(1_002_001)); !errors.Is(err, ErrClockAhead) {
			t.Fatalf("2.001 s ahead with a 2 s max offset: %v", err)
		}
	})
}

// TestStore_RefusesClockAhead: a record carrying any timestamp more than the
// max offset ahead of the wall clock is refused whole, counted, and never
// observed; the user it names can still log in.
func TestStore_RefusesClockAhead(t *testing.T) {
	const wall = 1_000_000
	ahead := MakeHLC(wall+5_001, 0)
	user := func(f func(u *User)) Record {
		u := User{Email: "ann@example.com", Created: MakeHLC(wall-1, 0)}
		f(&u)
		return Record{User: &u}
	}
	sess := func(f func(s *Session)) Record {
		s := Session{ID: "s1", Email: "ann@example.com", Site: "shop", Created: MakeHLC(wall-1, 0), ExpiresAt: wall + 60_000}
		f(&s)
		return Record{Session: &s}
	}
	for _, tc := range []struct {
		name string
		rec  Record
	}{
		{"revoked_before 2^64-1", user(func(u *User) { u.RevokedBefore = MaxHLC })},
		{"a register", user(func(u *User) { u.Login = Set("ann", ahead, "n") })},
		{"created", user(func(u *User) { u.Created = ahead })},
		{"moved_to", user(func(u *User) { u.MovedTo = Set("b@example.com", ahead, "n") })},
		{"a site's binding", user(func(u *User) { u.Sites = map[string]SiteBinding{"shop": {Bound: ahead}} })},
		{"unbound_before", user(func(u *User) { u.UnboundBefore = ahead })},
		{"reset", user(func(u *User) { u.Reset = ahead })},
		{"a session's creation", sess(func(s *Session) { s.Created = ahead })},
		{"a session's end", sess(func(s *Session) { s.Ended, s.EndReason = ahead, EndLogout })},
		{"a site's revocation", func() Record { x := RevokeSite("shop", ahead, "n"); return Record{Site: &x} }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mt := NewManualClock(time.UnixMilli(wall))
			s := openStore(t, "", mt.Now)
			defer s.Close()
			last := s.Clock().Last()
			changed, refused, err := s.ApplyChecked(tc.rec)
			if err != nil || len(changed) != 0 || len(refused) != 1 || !errors.Is(refused[0].Err, ErrClockAhead) || refused[0].Key != tc.rec.Key() {
				t.Fatalf("changed %d, refused %+v, %v", len(changed), refused, err)
			}
			if err := s.Check(tc.rec); !errors.Is(err, ErrClockAhead) {
				t.Fatalf("Check = %v", err)
			}
			if s.Clock().Last() != last || s.Refused()[RefusedClockAhead] != 1 {
				t.Fatalf("clock %v (was %v), refused %v", s.Clock().Last(), last, s.Refused())
			}
			// Nothing of it took effect: Ann logs in, and the login is active.
			login := Session{ID: "s2", Email: "ann@example.com", Site: "shop", Created: s.Clock().Now(), ExpiresAt: wall + 60_000}
			if _, err := s.Apply(Record{Session: &login}); err != nil {
				t.Fatal(err)
			}
			u, err := s.User("ann@example.com")
			if err != nil && !errors.Is(err, ErrNotFound) {
				t.Fatal(err)
			}
			if st := login.StateIn(u, s.Site("shop"), mt.Now()); st != StateActive {
				t.Fatalf("a login after the refused record is %s", st)
			}
			// The same record is merged once the wall clock is within the
			// max offset of it (2^64-1 never is).
			mt.Add(time.Second)
			_, refused, err = s.ApplyChecked(tc.rec)
			if err != nil || (len(refused) == 0) == (tc.rec.MaxHLC() == MaxHLC) {
				t.Fatalf("a second later: refused %+v, %v", refused, err)
			}
		})
	}
	t.Run("the max offset is configurable", func(t *testing.T) {
		mt := NewManualClock(time.UnixMilli(wall))
		s, err := Open(Options{InMemory: true, Now: mt.Now, MaxOffset: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ok := user(func(u *User) { u.Login = Set("ann", MakeHLC(wall+59_000, 0), "n") })
		far := user(func(u *User) { u.Email = "bob@example.com"; u.Login = Set("bob", MakeHLC(wall+61_000, 0), "n") })
		changed, refused, err := s.ApplyChecked(ok, far)
		if err != nil || len(changed) != 1 || len(refused) != 1 || refused[0].Index != 1 {
			t.Fatalf("changed %d, refused %+v, %v", len(changed), refused, err)
		}
	})
}

// TestStore_RefusesLongSessions is issue 9 item 7's session side: a session
// expiring in 2100, sealed by a member, is refused.
func TestStore_RefusesLongSessions(t *testing.T) {
	const wall = 1_000_000_000
	mt := NewManualClock(time.UnixMilli(wall))
	s, err := Open(Options{InMemory: true, Now: mt.Now, MaxSessionTTL: 24 * time.Hour, MaxOffset: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	created := MakeHLC(wall, 0)
	limit := int64((24*time.Hour + 2*time.Second) / time.Millisecond)
	in2100 := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, tc := range []struct {
		name    string
		expires int64
		refused bool
	}{
		{"a day", wall + int64(24*time.Hour/time.Millisecond), false},
		{"the ttl plus the max offset", wall + limit, false},
		{"a millisecond more", wall + limit + 1, true},
		{"expiring in 2100", in2100, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Record{Session: &Session{ID: tc.name, Email: "ann@example.com", Site: "shop", Created: created, ExpiresAt: tc.expires}}
			_, refused, err := s.ApplyChecked(r)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(refused) == 1 && errors.Is(refused[0].Err, ErrLifetime); got != tc.refused {
				t.Fatalf("refused %+v, want refused %v", refused, tc.refused)
			}
		})
	}
	if n := s.Refused()[RefusedLifetime]; n != 2 {
		t.Fatalf("counted %d", n)
	}
	if RefusalReason(s.Check(Record{})) != RefusedInvalid {
		t.Fatal("an empty record is not invalid")
	}
}

// TestStore_RefusalsLoggedOnce: a flood of refused records makes one log
// line a minute per reason, with the count since the last.
func TestStore_RefusalsLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s, err := Open(Options{InMemory: true, Now: mt.Now, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bad := User{Email: "ann@example.com", RevokedBefore: MaxHLC}
	for i := 0; i < 100; i++ {
		if _, err := s.Apply(Record{User: &bad}); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "record refused"); n != 1 {
		t.Fatalf("%d log lines for 100 refusals:\n%s", n, buf.String())
	}
	mt.Add(time.Minute)
	if _, err := s.Apply(Record{User: &bad}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "record refused"); n != 2 || !strings.Contains(buf.String(), "refused=100") {
		t.Fatalf("after a minute:\n%s", buf.String())
	}
	if s.Refused()[RefusedClockAhead] != 101 {
		t.Fatalf("counted %v", s.Refused())
	}
}
