package node_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ussync/ussync/node/nodetest"
)

// TestCluster_UnboundProfileAcrossPartition: site A, cut off from site B,
// does not hold bob@… yet (a partition, a node that lost its data dir, a
// new site catching up). B registers Bob, verified; A's backend PUTs the
// same address with a login and display name of its choosing. A is not
// bound to the address, so once the two sides meet Bob's profile must be
// the one B wrote, on every node, however often A wrote it.
//
// B proves the address at registration, or registers Bob unverified and
// proves it later (the profile it wrote before is claimed then).
func TestCluster_UnboundProfileAcrossPartition(t *testing.T) {
	t.Run("verified at registration", func(t *testing.T) {
		unboundProfileAcrossPartition(t, []map[string]any{
			{"login": "bob", "display_name": "Bob", "verified_via": "registration"},
		})
	})
	t.Run("verified later", func(t *testing.T) {
		unboundProfileAcrossPartition(t, []map[string]any{
			{"login": "bob", "display_name": "Bob"},
			{"verified_via": "admin"},
		})
	})
}

func unboundProfileAcrossPartition(t *testing.T, onB []map[string]any) {
	c := nodetest.NewCluster(t, 2)
	a, b := c.Members[0], c.Members[1]
	const bob = "bob@example.com"
	c.Partition([]int{0}, []int{1})
	c.WaitFor(10*time.Second, "each side to see the other fail", func() bool {
		return len(a.Gossip().LiveMembers()) == 1 && len(b.Gossip().LiveMembers()) == 1
	})
	for _, body := range onB {
		if code := b.Call("PUT", "/v1/users/"+bob, body, nil); code != http.StatusOK {
			t.Fatalf("PUT %v on B: %d", body, code)
		}
	}
	if code := a.Call("PUT", "/v1/users/"+bob, map[string]any{"login": "mallory", "display_name": "Mallory"}, nil); code != http.StatusOK {
		t.Fatalf("PUT on A: %d", code)
	}
	// Written again, and logged in: A now holds the user it made, still
	// with nobody's proof; it is no more bound than before.
	if code := a.Call("PUT", "/v1/users/"+bob, map[string]any{"display_name": "Mallory M."}, nil); code != http.StatusOK {
		t.Fatalf("second PUT on A: %d", code)
	}
	if code := a.Call("POST", "/v1/sessions", map[string]any{"email": bob, "login": "mallory2", "ip": "192.0.2.1", "user_agent": "test"}, nil); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("login on A: %d", code)
	}
	c.Heal()
	c.WaitMembers(20 * time.Second)
	c.WaitConverged(20 * time.Second)
	for _, m := range c.Members {
		u, err := m.Store().User(bob)
		if err != nil {
			t.Fatal(err)
		}
		if u.Login.V != "bob" || u.DisplayName.V != "Bob" {
			t.Errorf("on %s Bob's profile is %q/%q, written by unbound site %s", m.Name(), u.Login.V, u.DisplayName.V, u.Login.By)
		}
		if !u.Verified.V.OK {
			t.Errorf("on %s Bob is no longer verified", m.Name())
		}
	}
}

// TestPublic_HandoffAfterUnverifyBindsNothing: an administrator unverifies
// ann@… (a site may have claimed her address: every binding voids), but a
// sync link of a session made before is still in a browser. Completing it
// after the unverify must not bind the target: the session travelled on a
// binding that is void now. Otherwise, once another site proves the address
// again, the target's logins travel with no proof of its own.
func TestPublic_HandoffAfterUnverifyBindsNothing(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	const ann = "ann@example.com"
	register(t, c, 0, ann)
	l := loginSync(t, c.Members[0], ann, "")
	if code := c.Members[0].Call("PUT", "/v1/users/"+ann, map[string]any{"verified": false}, nil); code != http.StatusOK {
		t.Fatalf("unverify: %d", code)
	}
	n1 := c.Members[1]
	// Everywhere, n2 included: a verification n2 writes before the unverify
	// reaches it is concurrent with it, and the later stamp wins, which
	// need not be n2's (CI saw ann stay unverified on n1 for 10 s).
	c.WaitFor(10*time.Second, "ann unverified everywhere", func() bool {
		for _, m := range c.Members {
			if u, err := m.Store().User(ann); err != nil || u.Verified.V.OK {
				return false
			}
		}
		return true
	})
	b := newBrowser(t, c, nil)
	b.setSession("http://site-0.localhost/", l.Token)
	if l.Sync.URLs[0].Site != "n1" {
		t.Fatalf("sync %+v", l.Sync)
	}
	b.follow(l.Sync.URLs[0].URL) // redeemed or refused: either way, no binding
	if code := c.Members[2].Call("PUT", "/v1/users/"+ann, map[string]any{"verified_via": "admin"}, nil); code != http.StatusOK {
		t.Fatalf("verify again on n2: %d", code)
	}
	c.WaitFor(10*time.Second, "ann verified again on n1", func() bool {
		u, err := n1.Store().User(ann)
		return err == nil && u.Verified.V.OK
	})
	if u, _ := n1.Store().User(ann); u.BoundTo("n1") {
		t.Errorf("n1 is bound to ann by a hand-off of a session made before the unverify")
	}
	var a loginAnswer
	if code := n1.Call("POST", "/v1/sessions", map[string]any{"email": ann}, &a); code != http.StatusCreated {
		t.Fatalf("login on n1: %d", code)
	}
	if a.Synced || a.Reason != "site_not_bound" {
		t.Errorf("a login on n1 after the stale hand-off: synced %v (%s), want site_not_bound", a.Synced, a.Reason)
	}
}
