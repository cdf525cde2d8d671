package session

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// poisoned is a user record as an earlier version could store it: every
// timestamp maximal, so no write can ever outbid it, and the user logged
// out for good.
func poisoned(email string) User {
	return User{
		Email:         email,
		Login:         Set("mallory", MaxHLC, "evil"),
		DisplayName:   Set("Mallory", MaxHLC, "evil"),
		Verified:      Set(Verification{OK: true, Method: VerifiedAdmin}, MaxHLC, "evil"),
		RevokedBefore: MaxHLC,
		Created:       MakeHLC(1_000, 0),
	}
}

// TestResetUser_Histories: a reset replaces a damaged record whole, in any
// order of arrival, and the new generation joins field by field after it.
func TestResetUser_Histories(t *testing.T) {
	bad := poisoned("ann@example.com")
	reset := ResetUser(bad, MakeHLC(5_000, 0))
	t.Run("what a reset keeps and clears", func(t *testing.T) {
		if reset.Email != bad.Email || reset.Login.V != "mallory" || reset.Created != bad.Created {
			t.Fatalf("identity or profile lost: %+v", reset)
		}
		if reset.Verified.V.OK || len(reset.Sites) != 0 || reset.RevokedBefore != MakeHLC(5_000, 0) || reset.Reset != MakeHLC(5_000, 0) {
			t.Fatalf("not cleared: %+v", reset)
		}
		if (Record{User: &reset}).MaxHLC() != MakeHLC(5_000, 0) {
			t.Fatal("the reset record still carries the damaged timestamps")
		}
	})
	// An honest write of the old generation made by a node that had not
	// heard of the reset; a write of the new generation after it.
	stale := bad
	stale.DisplayName = Set("Ann", MaxHLC, "blog")
	later := reset
	later.DisplayName = Set("Ann B.", MakeHLC(6_000, 0), "shop")
	later.Verify(VerifiedCode, "shop", MakeHLC(6_000, 1))
	everyOrder(t, []User{bad, reset, stale, later}, func(t *testing.T, u User) {
		if u.Reset != MakeHLC(5_000, 0) || u.RevokedBefore != MakeHLC(5_000, 0) {
			t.Fatalf("the damaged generation survived: %+v", u)
		}
		if u.DisplayName.V != "Ann B." || !u.BoundTo("shop") {
			t.Fatalf("a write after the reset was lost: %+v", u)
		}
		s := Session{ID: "s", Email: u.Email, Site: "shop", Created: MakeHLC(7_000, 0), ExpiresAt: 100_000}
		if st := s.StateAt(u, time.UnixMilli(8_000)); st != StateActive {
			t.Fatalf("a login after the reset: %s", st)
		}
	})
	t.Run("a second reset wins over the first", func(t *testing.T) {
		again := ResetUser(later, MakeHLC(9_000, 0))
		everyOrder(t, []User{bad, reset, later, again}, func(t *testing.T, u User) {
			if u.Reset != MakeHLC(9_000, 0) || u.Verified.V.OK {
				t.Fatalf("%+v", u)
			}
		})
	})
	t.Run("a moved user stays moved", func(t *testing.T) {
		moved := bad
		moved.MovedTo = Set("new@example.com", MaxHLC, "evil")
		if r := ResetUser(moved, MakeHLC(5_000, 0)); r.MovedTo.V != "new@example.com" || r.MovedTo.At != MakeHLC(5_000, 0) {
			t.Fatalf("moved_to %+v", r.MovedTo)
		}
		if r := ResetUser(User{Email: "a@b.c"}, MakeHLC(5_000, 0)); r.MovedTo != (Register[string]{}) || r.Created != MakeHLC(5_000, 0) {
			t.Fatalf("a user never moved is moved, or has no creation: %+v", r)
		}
	})
}

// TestStore_ResetPoisonedUser is issue 9 item 6's record on disk (written by
// an earlier version, which merged anything): the store opens without its
// clock following it, refuses to take it again from a peer, and a reset
// heals the user on every replica.
func TestStore_ResetPoisonedUser(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	dir := t.TempDir()
	s := openStore(t, dir, mt.Now)
	bad := poisoned("ann@example.com")
	enc, err := json.Marshal(Record{User: &bad})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(recordKey("uann@example.com"), enc); err != nil {
			return err
		}
		return txn.Set(userIndexKey("ann@example.com"), nil)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	forgetSavedState(t, dir) // the earlier version saved no state at close
	s = openStore(t, dir, mt.Now)
	defer s.Close()
	now := s.Clock().Now()
	if now.WallMs() != 1_000_000 {
		t.Fatalf("the clock followed the damaged record on open: %v", now)
	}
	// Locked out: a login now is revoked at once.
	u, err := s.User("ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	login := Session{ID: "s1", Email: u.Email, Site: "shop", Created: s.Clock().Now(), ExpiresAt: 2_000_000}
	if login.StateAt(u, mt.Now()) != StateRevoked {
		t.Fatal("the damaged record does not lock the user out: the test proves nothing")
	}

	// A peer that still has it cannot hand it to a healthy store.
	healthy := openStore(t, "", mt.Now)
	defer healthy.Close()
	antiEntropy(t, s, healthy)
	if _, err := healthy.User("ann@example.com"); err == nil {
		t.Fatal("a healthy store merged the damaged record from a peer")
	}
	if healthy.Refused()[RefusedClockAhead] == 0 {
		t.Fatal("the refusal was not counted")
	}

	// The administrator resets the user on the damaged store.
	r := ResetUser(u, s.Clock().Now())
	if _, err := s.Apply(Record{User: &r}); err != nil {
		t.Fatal(err)
	}
	u, _ = s.User("ann@example.com")
	login.Created = s.Clock().Now()
	if _, err := s.Apply(Record{Session: &login}); err != nil {
		t.Fatal(err)
	}
	if st := login.StateAt(u, mt.Now()); st != StateActive {
		t.Fatalf("a login after the reset is %s", st)
	}
	// Anti-entropy now carries the reset everywhere; the replicas agree.
	antiEntropy(t, s, healthy)
	if s.Digest() != healthy.Digest() {
		t.Fatal("the replicas still differ after the reset")
	}
	hu, err := healthy.User("ann@example.com")
	if err != nil || hu.Reset != r.Reset {
		t.Fatalf("the healthy store has %+v, %v", hu, err)
	}
}
