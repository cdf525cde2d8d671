package session

import (
	"reflect"
	"testing"
	"time"
)

// TestSite_Revocation are issue 9 item 8's histories for a revoked site:
// its sessions stop being active; taking the revocation back lets its new
// logins in, never what it minted before.
func TestSite_Revocation(t *testing.T) {
	now := time.UnixMilli(50_000)
	user := User{Email: "ann@example.com"}
	minted := func(id string, site string, ms int64) Session {
		return Session{ID: id, Email: user.Email, Site: site, Created: MakeHLC(ms, 0), ExpiresAt: 100_000}
	}
	before := minted("before", "shop", 1_000) // minted before the revocation
	during := minted("during", "shop", 3_000) // minted while revoked
	after := minted("after", "shop", 5_000)   // minted after the un-revocation
	other := minted("other", "blog", 3_000)   // another site's session

	revoked := RevokeSite("shop", MakeHLC(2_000, 0), "admin-node")
	unrevoked := UnrevokeSite("shop", MakeHLC(4_000, 0), "admin-node")
	for _, tc := range []struct {
		name    string
		history []Site
		want    map[string]State
	}{
		{"never revoked", nil, map[string]State{"before": StateActive, "during": StateActive, "after": StateActive, "other": StateActive}},
		{"revoked", []Site{revoked}, map[string]State{"before": StateSiteRevoked, "during": StateSiteRevoked, "after": StateSiteRevoked, "other": StateActive}},
		{"revoked then un-revoked", []Site{revoked, unrevoked}, map[string]State{"before": StateSiteRevoked, "during": StateSiteRevoked, "after": StateActive, "other": StateActive}},
		{"un-revocation heard first", []Site{unrevoked, revoked}, map[string]State{"before": StateSiteRevoked, "during": StateSiteRevoked, "after": StateActive, "other": StateActive}},
		{"revoked again later", []Site{revoked, unrevoked, RevokeSite("shop", MakeHLC(6_000, 0), "n")}, map[string]State{"before": StateSiteRevoked, "during": StateSiteRevoked, "after": StateSiteRevoked, "other": StateActive}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var site Site
			if len(tc.history) > 0 {
				site = tc.history[0]
				for _, x := range tc.history[1:] {
					site = JoinSite(site, x)
				}
			}
			for _, s := range []Session{before, during, after, other} {
				if got := s.StateIn(user, site, now); got != tc.want[s.ID] {
					t.Errorf("session %s: %s, want %s", s.ID, got, tc.want[s.ID])
				}
			}
		})
	}
	t.Run("ended and revoked-by-user come first; expired last", func(t *testing.T) {
		ended := before
		ended.Ended, ended.EndReason = MakeHLC(1_500, 0), EndLogout
		if got := ended.StateIn(user, revoked, now); got != StateEnded {
			t.Fatalf("ended: %s", got)
		}
		out := user
		out.RevokedBefore = MakeHLC(1_200, 0)
		if got := before.StateIn(out, revoked, now); got != StateRevoked {
			t.Fatalf("logged out everywhere: %s", got)
		}
		if got := before.StateIn(user, revoked, time.UnixMilli(200_000)); got != StateSiteRevoked {
			t.Fatalf("expired and site revoked: %s", got)
		}
	})
}

func TestStore_SiteRecords(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	dir := t.TempDir()
	s := openStore(t, dir, mt.Now)
	sess := newSession("s1", "ann@example.com", MakeHLC(999_000, 0), 2_000_000)
	if _, err := s.Apply(sess); err != nil {
		t.Fatal(err)
	}
	users, sessions := s.Counts()
	digest := s.Digest()
	rev := RevokeSite("shop", s.Clock().Now(), "n1")
	ch, err := s.Apply(Record{Site: &rev})
	if err != nil || len(ch) != 1 || ch[0].Site == nil {
		t.Fatalf("apply a site record: %+v, %v", ch, err)
	}
	if !s.Site("shop").IsRevoked() || s.Site("blog").IsRevoked() {
		t.Fatal("the store does not see the revocation")
	}
	if s.Digest() == digest {
		t.Fatal("a site record is not in the digest: anti-entropy would never repair it")
	}
	if u, n := s.Counts(); u != users || n != sessions {
		t.Fatalf("counts %d %d, want %d %d: a site is counted as a user or session", u, n, users, sessions)
	}
	if active, err := s.UserSessions("ann@example.com", false, 0); err != nil || len(active) != 0 {
		t.Fatalf("active sessions of a revoked site: %+v, %v", active, err)
	}
	if n, err := s.ActiveSessions(); err != nil || n != 0 {
		t.Fatalf("ActiveSessions = %d, %v", n, err)
	}
	if page, _, err := s.ListSessions(SessionFilter{Active: true}); err != nil || len(page) != 0 {
		t.Fatalf("listing of active sessions: %+v, %v", page, err)
	}

	// A peer that never heard of the revocation learns it by anti-entropy.
	peer := openStore(t, "", mt.Now)
	defer peer.Close()
	if _, err := peer.Apply(sess); err != nil {
		t.Fatal(err)
	}
	antiEntropy(t, s, peer)
	if !peer.Site("shop").IsRevoked() || peer.Digest() != s.Digest() {
		t.Fatal("anti-entropy did not carry the site record")
	}
	if !reflect.DeepEqual(stateOf(t, peer), stateOf(t, s)) {
		t.Fatal("replicas differ")
	}

	// The view survives a restart.
	want := s.Digest()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, mt.Now)
	defer s.Close()
	if !s.Site("shop").IsRevoked() || s.Digest() != want || len(s.Sites()) != 1 {
		t.Fatal("the site record was lost at restart")
	}
	// Un-revoked: the session minted before stays dead.
	un := UnrevokeSite("shop", s.Clock().Now(), "n1")
	if _, err := s.Apply(Record{Site: &un}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session("s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Site("shop").IsRevoked() || got.StateIn(User{}, s.Site("shop"), mt.Now()) != StateSiteRevoked {
		t.Fatal("un-revoking the site resurrected a session it minted before")
	}
}
