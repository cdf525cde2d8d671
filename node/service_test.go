package node

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ussync/ussync/session"
)

// TestService_ApplyThenPublish runs every operation of the service and
// checks, inside Publish, that each record handed to gossip is already in
// the store as published: a peer never hears of a change this node has not
// made. Records that stay on this site are never published, and a ticket's
// records are not published again. A log out everywhere publishes its user
// as the revocation delta (session.RevocationDelta).
func TestService_ApplyThenPublish(t *testing.T) {
	clock := session.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	st, err := session.Open(session.Options{Dir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var published, lastDeltas []session.Record
	publish := func(recs []session.Record) {
		for _, r := range recs {
			if !r.Replicated() {
				t.Errorf("a local record was published: %s", r.Key())
			}
			var stored session.Record
			var err error
			if r.User != nil {
				var u session.User
				u, err = st.User(r.User.Email)
				stored.User = &u
			} else {
				var s session.Session
				s, err = st.Session(r.Session.ID)
				stored.Session = &s
			}
			if err != nil || jsonOf(t, stored) != jsonOf(t, r) {
				t.Errorf("published %s before the store held it: store %s, %v", jsonOf(t, r), jsonOf(t, stored), err)
			}
		}
		published = append(published, recs...)
	}
	svc := newService(serviceConfig{Store: st, Name: "site-a", TTL: time.Hour, RequireVerified: true,
		Publish: publish,
		// A delta is a part of the user as the store holds it (joining it
		// changes nothing there), of its generation; it travels with the
		// whole records of its change.
		PublishWithDeltas: func(whole, deltas []session.Record) {
			publish(whole)
			for _, r := range deltas {
				u, err := st.User(r.User.Email)
				if err != nil || r.User.Reset != u.Reset || jsonOf(t, session.JoinUser(u, *r.User)) != jsonOf(t, u) {
					t.Errorf("published %s as a delta, not a part of the stored user %s (%v)", jsonOf(t, r), jsonOf(t, u), err)
				}
			}
			lastDeltas = deltas
			published = append(published, deltas...)
		}})
	step := func(name string, wantPublished int, op func() error) {
		t.Helper()
		published = nil
		if err := op(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(published) != wantPublished {
			t.Errorf("%s published %d records, want %d", name, len(published), wantPublished)
		}
	}

	verified := session.Verification{OK: true, Method: session.VerifiedRegistration}
	step("update", 1, func() error {
		_, err := svc.updateUser("ann@example.com", session.UserChange{Verified: &verified}, true)
		return err
	})
	var s session.Session
	step("login", 1, func() (err error) { // the user is unchanged: the session only
		res, err := svc.login(login{Email: "ann@example.com"})
		s = res.Session
		return err
	})
	step("end", 1, func() error {
		_, ended, err := svc.end(s, session.User{Email: s.Email}, session.EndLogout)
		if !ended {
			return errors.New("not ended")
		}
		return err
	})
	step("unverified login", 1, func() (err error) { // the new user; its session stays on this site
		res, err := svc.login(login{Email: "bob@example.com"})
		s = res.Session
		return err
	})
	step("log out everywhere", 1, func() error { // the user; the ended session stays on this site
		_, err := svc.logoutEverywhere("bob@example.com")
		return err
	})
	step("mark verified", 1, func() error {
		_, err := svc.markVerified("bob@example.com")
		return err
	})
	step("move", 2, func() error {
		_, _, err := svc.move("ann@example.com", "ann@new.example")
		return err
	})
	// A user another site knows logs in here: the user goes out as the
	// delta of the login, this site's mark alone.
	known := session.User{Email: "di@example.com", Sites: map[string]session.SiteBinding{"site-b": {Known: st.Clock().Now()}}}
	if _, err := st.Apply(session.Record{User: &known}); err != nil {
		t.Fatal(err)
	}
	step("login of a user another site knows", 1, func() error { // its session stays here: unverified
		_, err := svc.login(login{Email: "di@example.com"})
		return err
	})
	if len(lastDeltas) != 1 || len(lastDeltas[0].User.Sites) != 1 || lastDeltas[0].User.Sites["site-a"].Known == 0 {
		t.Errorf("the login's delta: %s, want the user with site-a's mark alone", jsonOf(t, lastDeltas))
	}
	step("accept a hand-off", 0, func() error {
		other := session.Session{ID: "s-from-b", Email: "cy@example.com", Site: "site-b", Created: st.Clock().Now(), ExpiresAt: clock.Now().Add(time.Hour).UnixMilli()}
		_, _, err := svc.acceptHandoff(other, &session.User{Email: "cy@example.com"})
		return err
	})
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestService_MigrateKnown: the users a site knew under an earlier
// version's node-local keys are marked known in their records (published:
// they travel, and survive a lost data dir), and the keys are removed; a
// user the site's backend had not acknowledged stays unknown.
func TestService_MigrateKnown(t *testing.T) {
	clock := session.NewManualClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	st, err := session.Open(session.Options{Dir: t.TempDir(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := st.Clock().Now()
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		u := session.User{Email: email, Created: at, Login: session.Set("x", at, "site-b")}
		if _, err := st.Apply(session.Record{User: &u}); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		"known/ann@example.com":  "",    // acknowledged
		"known/bob@example.com":  "new", // told by a ticket, not acknowledged
		"known/gone@example.com": "",    // no such user any more
		"new-user/" + "0123abcd": "bob@example.com",
	} {
		if err := st.LocalPut(k, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
	var published []string
	svc := newService(serviceConfig{Store: st, Name: "site-a", TTL: time.Hour,
		Publish: func(recs []session.Record) {
			for _, r := range recs {
				published = append(published, r.Key())
			}
		}})
	if err := svc.migrateKnown(); err != nil {
		t.Fatal(err)
	}
	if ann, _ := st.User("ann@example.com"); !ann.KnownTo("site-a") {
		t.Error("ann is not known to site-a")
	}
	if bob, _ := st.User("bob@example.com"); bob.KnownTo("site-a") {
		t.Error("bob, never acknowledged, is known to site-a")
	}
	if len(published) != 1 || published[0] != "uann@example.com" {
		t.Errorf("published %v", published)
	}
	for _, prefix := range []string{legacyKnown, legacyNewUser} {
		st.LocalScan(prefix, func(k string, _ []byte, _ time.Time) error {
			t.Errorf("%s is left", k)
			return nil
		})
	}
	// Again: nothing to do.
	published = nil
	if err := svc.migrateKnown(); err != nil || len(published) != 0 {
		t.Errorf("a second run: %v, published %v", err, published)
	}
}
