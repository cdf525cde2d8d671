package node_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node/nodetest"
)

// traffic logs users in and out on every member of c until stopped, a
// logout on another member than its login, and remembers how each session
// must end up.
type traffic struct {
	c    *nodetest.Cluster
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	want map[string]bool // session id → still active
	errs []error
}

func startTraffic(t *testing.T, c *nodetest.Cluster, email string) *traffic {
	tr := &traffic{c: c, stop: make(chan struct{}), want: map[string]bool{}}
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			default:
			}
			live := liveMembers(c)
			if len(live) < 2 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			on, off := live[i%len(live)], live[(i+1)%len(live)]
			a, err := client.New("http://"+on.APIAddr(), c.Token).Login(context.Background(), client.LoginRequest{Email: email})
			if err != nil {
				tr.fail(fmt.Errorf("login %d on %s: %w", i, on.Name(), err))
				continue
			}
			active := i%2 == 0
			if !active {
				// The logout goes to another member, which may not have the
				// session yet: it ends whatever it holds, or answers 404 and
				// the login stays (then it must stay everywhere).
				if _, err := client.New("http://"+off.APIAddr(), c.Token).EndSession(context.Background(), a.Session.ID); err != nil {
					if client.ErrorCode(err) != client.CodeNotFound {
						tr.fail(fmt.Errorf("logout %d on %s: %w", i, off.Name(), err))
					}
					active = true
				}
			}
			tr.mu.Lock()
			tr.want[a.Session.ID] = active
			tr.mu.Unlock()
		}
	}()
	return tr
}

// more waits until the traffic has made n more sessions: each step of a
// rotation then happens among logins and logouts.
func (tr *traffic) more(t *testing.T, n int) {
	t.Helper()
	tr.mu.Lock()
	from := len(tr.want)
	tr.mu.Unlock()
	tr.c.WaitFor(30*time.Second, fmt.Sprintf("%d more sessions", n), func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return len(tr.want) >= from+n
	})
}

func (tr *traffic) fail(err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.errs = append(tr.errs, err)
}

// finish stops the traffic and waits until every member holds every
// session as it must be: nothing lost.
func (tr *traffic) finish(t *testing.T, on ...*nodetest.Member) {
	t.Helper()
	close(tr.stop)
	tr.wg.Wait()
	for _, err := range tr.errs {
		t.Errorf("traffic: %v", err)
	}
	if len(tr.want) < 10 {
		t.Fatalf("only %d sessions made during the test", len(tr.want))
	}
	tr.c.WaitFor(30*time.Second, fmt.Sprintf("%d sessions as they must be on every member", len(tr.want)), func() bool {
		for _, m := range on {
			for id, active := range tr.want {
				s, err := m.Store().Session(id)
				if err != nil || (s.Ended == 0) != active {
					return false
				}
			}
		}
		return true
	})
	t.Logf("%d sessions, every one as it must be on %d members", len(tr.want), len(on))
}

func liveMembers(c *nodetest.Cluster) []*nodetest.Member {
	var out []*nodetest.Member
	for _, m := range c.Members {
		if m.Gossip() != nil && readyzQuiet(m) {
			out = append(out, m)
		}
	}
	return out
}

// readyzQuiet reports whether member answers its /readyz at all (it runs).
func readyzQuiet(m *nodetest.Member) bool {
	resp, err := http.Get("http://" + m.APIAddr() + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// keysCall runs a keyring call on m and returns its answer.
func keysCall(t *testing.T, m *nodetest.Member, method, path string, body any) client.KeyringAnswer {
	t.Helper()
	var a client.KeyringAnswer
	if code := m.Call(method, path, body, &a); code != http.StatusOK {
		t.Fatalf("%s %s on %s: %d", method, path, m.Name(), code)
	}
	return a
}

// keysStep runs one rotation step as an operator does (docs/operations.md,
// "When a member failed or did not answer"): an answer that names a member
// down or not answering other than those in down (the members the test
// stopped), while that member is alive again, was a stall or a false death (a process-wide stall of the
// in-process cluster lets a peer's suspicion time out); the step is run
// again once n0 lists it alive, at most twice more. Every step can be run
// again safely.
func keysStep(t *testing.T, c *nodetest.Cluster, method, path string, body any, down ...string) client.KeyringAnswer {
	t.Helper()
	n0 := c.Members[0]
	a := keysCall(t, n0, method, path, body)
	for try := 0; try < 2; try++ {
		var falsely []string
		for _, name := range append(slices.Clone(a.Down), a.NoAnswer...) {
			name, _, _ = strings.Cut(name, " ") // "n1 (unreachable: …)"
			if !slices.Contains(down, name) {
				falsely = append(falsely, name)
			}
		}
		if len(falsely) == 0 {
			break
		}
		t.Logf("%s %s: %v named down or not answering, not stopped: waiting for them to be alive on n0, then again", method, path, falsely)
		c.WaitFor(20*time.Second, fmt.Sprintf("%v alive on n0", falsely), func() bool {
			for _, m := range n0.Gossip().Members() {
				if slices.Contains(falsely, m.Name) && m.State != "alive" {
					return false
				}
			}
			return true
		})
		a = keysCall(t, n0, method, path, body)
	}
	return a
}

// holders returns the fingerprints of a keyring answer, most held first,
// and checks each is held by n members.
func holders(t *testing.T, a client.KeyringAnswer, n int) []string {
	t.Helper()
	var out []string
	for _, k := range a.Keys {
		if k.Members != n || len(k.MissingOn) != 0 {
			t.Errorf("key %s held by %d (missing on %v), want %d", k.Fingerprint, k.Members, k.MissingOn, n)
		}
		out = append(out, k.Fingerprint)
	}
	return out
}

// TestKeys_RotationOnFiveNodes rotates the cluster secret on five nodes
// through one node's private API (install, use, remove), each step
// answered by every member, while logins and logouts run on every node;
// nothing is lost, a restart keeps the new keyring, and a node down during
// the next rotation is flagged when it comes back, then given the key
// locally and rejoins.
func TestKeys_RotationOnFiveNodes(t *testing.T) {
	c := nodetest.NewCluster(t, 5)
	// A keys call waits up to 10 s for the members (keysTimeout, profile
	// local), then answers who did not answer: a client giving up at the
	// same 10 s (nodetest's) lost that answer under load.
	c.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: c.HTTP.Transport}
	n0 := c.Members[0]
	const ann = "ann@example.com"
	registerEverywhere(t, c, 0, ann)
	k1, k2 := c.Secret, newSecretText(t)
	fp1, fp2 := fingerprint(t, k1), fingerprint(t, k2)

	list := keysStep(t, c, "GET", "/v1/keys", nil)
	if !list.Complete || len(list.Asked) != 5 || len(list.OK) != 5 || !slices.Equal(holders(t, list, 5), []string{fp1}) {
		t.Fatalf("keys list: %+v", list)
	}

	tr := startTraffic(t, c, ann)
	for _, step := range []struct {
		method, path string
		body         any
		want         []string // fingerprints after, most held first
		primary      string
	}{
		{"POST", "/v1/keys", map[string]string{"key": k2}, []string{fp1, fp2}, fp1},
		{"POST", "/v1/keys/" + fp2 + "/use", nil, []string{fp1, fp2}, fp2},
		{"DELETE", "/v1/keys/" + fp1, nil, []string{fp2}, fp2},
	} {
		tr.more(t, 10)
		a := keysStep(t, c, step.method, step.path, step.body)
		got := holders(t, a, 5)
		slices.Sort(got)
		slices.Sort(step.want)
		if !a.Complete || len(a.OK) != 5 || !slices.Equal(got, step.want) {
			t.Fatalf("%s %s: %+v", step.method, step.path, a)
		}
		for _, k := range a.Keys {
			if k.Fingerprint == step.primary && len(k.PrimaryOn) != 5 {
				t.Fatalf("%s %s: primary on %v", step.method, step.path, k.PrimaryOn)
			}
		}
		for _, m := range c.Members {
			if got := keyring(t, m); got[0] != step.primary {
				t.Fatalf("%s %s: %s's status shows %v", step.method, step.path, m.Name(), got)
			}
		}
	}
	tr.more(t, 10)
	tr.finish(t, c.Members...)
	c.WaitMembers(10 * time.Second)

	// The primary is refused; an unknown key fails on every member.
	var e errorAnswer
	if code := n0.Call("DELETE", "/v1/keys/"+fp2, nil, &e); code != http.StatusConflict || e.Error.Code != client.CodeKeyPrimary {
		t.Errorf("remove the primary: %d %+v", code, e)
	}
	if a := keysStep(t, c, "POST", "/v1/keys/"+fp1+"/use", nil); a.Complete || len(a.Failed) != 5 {
		t.Errorf("use a removed key: %+v", a)
	}
	var act activityAnswer
	c.Members[3].Call("GET", "/v1/activity", nil, &act)
	if !hasActivity(act.Activity, "n0 via config", "keys.install", fp2) || !hasActivity(act.Activity, "n0 via config", "keys.remove", fp1) {
		t.Errorf("n3's activity: %+v", act.Activity)
	}

	// A restart keeps the keyring (the configuration still names k1).
	c.Kill(2)
	c.Restart(2)
	c.WaitMembers(20 * time.Second)
	if got := keyring(t, c.Members[2]); !slices.Equal(got, []string{fp2}) {
		t.Errorf("after a restart: %v", got)
	}

	// n4 is down during the next rotation: every answer says so.
	k3 := newSecretText(t)
	fp3 := fingerprint(t, k3)
	c.Kill(4)
	c.WaitFor(20*time.Second, "n4 dead on n0", func() bool {
		for _, m := range n0.Gossip().Members() {
			if m.Name == "n4" {
				return m.State == "dead"
			}
		}
		return false
	})
	tr = startTraffic(t, c, ann)
	for _, step := range []struct {
		method, path string
		body         any
	}{{"POST", "/v1/keys", map[string]string{"key": k3}}, {"POST", "/v1/keys/" + fp3 + "/use", nil}, {"DELETE", "/v1/keys/" + fp2, nil}} {
		tr.more(t, 10)
		a := keysStep(t, c, step.method, step.path, step.body, "n4")
		if a.Complete || !slices.Equal(a.Down, []string{"n4"}) || len(a.OK) != 4 {
			t.Fatalf("%s %s with n4 down: %+v", step.method, step.path, a)
		}
	}
	tr.more(t, 10)
	tr.finish(t, c.Members[:4]...)

	// n4 comes back with k2 alone: flagged, not ready.
	c.Restart(4)
	n4 := c.Members[4]
	c.WaitFor(20*time.Second, "n4 flagged", func() bool {
		var st client.Status
		n4.Call("GET", "/v1/status", nil, &st)
		return st.Health != nil && st.Health.KeyMismatch && st.Health.Isolated && readyz(t, n4) == http.StatusServiceUnavailable
	})
	// Given the key on its own, it rejoins and catches up.
	if a := keysCall(t, n4, "POST", "/v1/keys?local=1", map[string]string{"key": k3}); !a.Complete || !a.Local || len(a.Asked) != 1 {
		t.Fatalf("local install on n4: %+v", a)
	}
	if a := keysCall(t, n4, "POST", "/v1/keys/"+fp3+"/use?local=1", nil); !a.Complete {
		t.Fatalf("local use on n4: %+v", a)
	}
	c.WaitMembers(30 * time.Second)
	c.WaitFor(30*time.Second, "n4 caught up", func() bool { return readyz(t, n4) == http.StatusOK })
	c.WaitConverged(30 * time.Second)
	list = keysStep(t, c, "GET", "/v1/keys", nil)
	if !list.Complete || len(list.OK) != 5 {
		t.Errorf("keys list after n4 is back: %+v; n0 sees %+v", list, n0.Gossip().Members())
	}
}

// A member stopped cleanly (it leaves, as under `systemctl stop`) comes
// back with the keys it had, as one that crashed does: a keyring call
// names it and is not complete, or the operator rotates on "2 of 2
// members" and the stopped node cannot rejoin.
func TestKeys_LeftMemberNamed(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	c.WaitMembers(10 * time.Second)
	n0 := c.Members[0]
	if err := c.Members[2].Close(context.Background()); err != nil {
		t.Fatalf("stop n2: %v", err)
	}
	c.WaitFor(20*time.Second, "n2 left on n0", func() bool {
		for _, m := range n0.Gossip().Members() {
			if m.Name == "n2" {
				return m.State == "left"
			}
		}
		return false
	})
	a := keysCall(t, n0, "GET", "/v1/keys", nil)
	if a.Complete || !slices.Equal(a.Left, []string{"n2"}) || len(a.OK) != 2 {
		t.Errorf("keys list with n2 stopped: %+v", a)
	}
}
