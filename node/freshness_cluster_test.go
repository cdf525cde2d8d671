package node_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// reply is one answer of a member's private API, headers included.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// get sends GET path to m's private API with the cluster's token.
func get(t *testing.T, c *nodetest.Cluster, m *nodetest.Member, path string) reply {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+m.APIAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, m.Name(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, b}
}

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// state describes a session check for a test's messages.
func (r reply) state(t *testing.T) string {
	var sc struct {
		client.SessionCheck
		Error struct{ Code string }
	}
	json.Unmarshal(r.body, &sc)
	node := "-"
	if sc.Node != nil {
		node = fmt.Sprintf("%+v", *sc.Node)
	}
	return fmt.Sprintf("%d %s %s=%s node=%s", r.status, sc.Error.Code, client.HeaderNodeState, r.header.Get(client.HeaderNodeState), node)
}

// metric returns the value of the series line (name and labels) on m's
// /metrics, or "" when absent.
func metric(t *testing.T, c *nodetest.Cluster, m *nodetest.Member, series string) string {
	t.Helper()
	for _, l := range strings.Split(string(get(t, c, m, "/metrics").body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// TestFreshness_RestartedNodeCatchingUp: a node back from a crash answers
// from its own store until it has caught up, and says so on every session
// check, on /readyz and in status; /healthz stays ok (it is alive and will
// be fresh by itself).
func TestFreshness_RestartedNodeCatchingUp(t *testing.T) {
	c := nodetest.NewCluster(t, 3)
	n2 := c.Members[2]
	register(t, c, 0, "ann@example.com")
	s := login(t, c.Members[0], "ann@example.com")
	waitAll(t, c, s.Session.ID, http.StatusOK, "")
	if r := get(t, c, n2, "/v1/sessions/"+s.Session.ID); r.header.Get(client.HeaderNodeState) != client.NodeStateOK {
		t.Fatalf("a node in touch: %s", r.state(t))
	}

	c.Kill(2)
	c.WaitFor(10*time.Second, "the others to see n2 fail", func() bool { return len(c.Members[0].Gossip().LiveMembers()) == 2 })
	if code := c.Members[0].Call("POST", "/v1/users/ann@example.com/logout-everywhere", nil, nil); code != http.StatusOK {
		t.Fatalf("logout everywhere: %d", code)
	}
	// n2 comes back, but every pull it sends is lost: it joins, and cannot
	// complete a round.
	n2.Faults.DropNext(1<<30, gossip.KindPull, "")
	c.Restart(2)

	r := get(t, c, n2, "/v1/sessions/"+s.Session.ID)
	var sc client.SessionCheck
	r.decode(t, &sc)
	if r.status != http.StatusOK || r.header.Get(client.HeaderNodeState) != client.NodeStateCatchingUp || sc.Node == nil || !sc.Node.CatchingUp || sc.Node.Since == nil {
		t.Fatalf("the restarted node, before any round: %s; want 200 (its store does not know the logout yet) saying it is catching up", r.state(t))
	}
	c.WaitMembers(10 * time.Second)
	// In touch with every member, still catching up: not isolated.
	r = get(t, c, n2, "/v1/sessions/"+s.Session.ID)
	if r.status != http.StatusOK || r.header.Get(client.HeaderNodeState) != client.NodeStateCatchingUp {
		t.Fatalf("the restarted node, a member again, no round: %s", r.state(t))
	}
	if r := get(t, c, n2, "/readyz"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "catching up") {
		t.Errorf("readyz while catching up: %d %s", r.status, r.body)
	}
	var h healthz
	if r := get(t, c, n2, "/healthz"); r.status != http.StatusOK {
		t.Errorf("healthz while catching up: %d %s, want 200 (alive)", r.status, r.body)
	} else if r.decode(t, &h); h.Gossip != "catching_up" {
		t.Errorf("healthz while catching up: %s", r.body)
	}
	var st client.Status
	get(t, c, n2, "/v1/status").decode(t, &st)
	if !st.Health.CatchingUp || st.Health.CatchUpSince == nil || !strings.Contains(st.Health.Reason, "catching up") {
		t.Errorf("status while catching up: %+v", st.Health)
	}
	if v := metric(t, c, n2, "ussync_catching_up"); v != "1" {
		t.Errorf("ussync_catching_up %q, want 1", v)
	}

	// The pulls go through again: the next retry completes a round.
	n2.Faults.Reset()
	c.WaitFor(10*time.Second, "n2 to catch up", func() bool {
		r := get(t, c, n2, "/v1/sessions/"+s.Session.ID)
		return r.status == http.StatusGone && r.header.Get(client.HeaderNodeState) == client.NodeStateOK
	})
	if r := get(t, c, n2, "/readyz"); r.status != http.StatusOK {
		t.Errorf("readyz once caught up: %d %s", r.status, r.body)
	}
	get(t, c, n2, "/v1/status").decode(t, &st)
	if st.Health.CatchingUp || st.Health.CaughtUpAt == nil || st.Health.CaughtUpWith == "" {
		t.Errorf("status once caught up: %+v", st.Health)
	}
	if v := metric(t, c, n2, "ussync_catching_up"); v != "0" {
		t.Errorf("ussync_catching_up %q, want 0", v)
	}
}

// TestFreshness_IsolatedNodeFailsClosed: a node restarted while cut off from
// every member is isolated: degraded on /healthz, not ready, and, past
// sync.fail_closed_after, its session checks refuse to vouch for a session
// (503 node_isolated) that the rest of the cluster logged out meanwhile.
func TestFreshness_IsolatedNodeFailsClosed(t *testing.T) {
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) {
		if i == 2 {
			cfg.Sync.FailClosedAfter = node.Duration(time.Second)
		}
	}
	c.Start(3)
	n2 := c.Members[2]
	register(t, c, 0, "ann@example.com")
	s := login(t, c.Members[0], "ann@example.com")
	waitAll(t, c, s.Session.ID, http.StatusOK, "")

	c.Kill(2)
	c.WaitFor(10*time.Second, "the others to see n2 fail", func() bool { return len(c.Members[0].Gossip().LiveMembers()) == 2 })
	if code := c.Members[0].Call("POST", "/v1/users/ann@example.com/logout-everywhere", nil, nil); code != http.StatusOK {
		t.Fatalf("logout everywhere: %d", code)
	}
	n2.Faults.Block(c.Members[0].GossipAddr(), c.Members[1].GossipAddr())
	c.Restart(2)

	var last string
	c.WaitFor(10*time.Second, "n2 to say it is isolated", func() bool {
		r := get(t, c, n2, "/v1/sessions/"+s.Session.ID)
		last = r.state(t)
		var sc client.SessionCheck
		json.Unmarshal(r.body, &sc)
		return r.status == http.StatusOK && r.header.Get(client.HeaderNodeState) == client.NodeStateIsolated &&
			sc.Node != nil && sc.Node.Isolated && sc.Node.CatchingUp
	})
	t.Logf("isolated: %s", last)
	var h healthz
	if r := get(t, c, n2, "/healthz"); r.status != http.StatusOK {
		t.Errorf("healthz while isolated: %d %s, want 200 (alive: a restart cures nothing)", r.status, r.body)
	} else if r.decode(t, &h); h.Gossip != "isolated" || !strings.Contains(h.Reason, "no other member is alive") {
		t.Errorf("healthz while isolated: %s", r.body)
	}
	if r := get(t, c, n2, "/readyz"); r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "isolated") {
		t.Errorf("readyz while isolated: %d %s", r.status, r.body)
	}

	c.WaitFor(10*time.Second, "n2 to fail closed", func() bool {
		r := get(t, c, n2, "/v1/sessions/"+s.Session.ID)
		last = r.state(t)
		return r.status == http.StatusServiceUnavailable && strings.Contains(last, client.CodeNodeIsolated)
	})
	if v := metric(t, c, n2, "ussync_fail_closed"); v != "1" {
		t.Errorf("ussync_fail_closed %q, want 1", v)
	}
	if v := metric(t, c, n2, "ussync_isolated"); v != "1" {
		t.Errorf("ussync_isolated %q, want 1", v)
	}
	var st client.Status
	get(t, c, n2, "/v1/status").decode(t, &st)
	if !st.Health.FailClosed || !st.Health.Isolated || st.Health.Status != "isolated" {
		t.Errorf("status while failing closed: %+v", st.Health)
	}

	n2.Faults.Heal()
	c.WaitMembers(20 * time.Second)
	c.WaitFor(10*time.Second, "n2 to hear of the logout", func() bool {
		r := get(t, c, n2, "/v1/sessions/"+s.Session.ID)
		last = r.state(t)
		return r.status == http.StatusGone && r.header.Get(client.HeaderNodeState) == client.NodeStateOK
	})
	if r := get(t, c, n2, "/healthz"); r.status != http.StatusOK {
		t.Errorf("healthz in touch again: %d %s", r.status, r.body)
	}
	if v := metric(t, c, n2, "ussync_fail_closed"); v != "0" {
		t.Errorf("ussync_fail_closed %q, want 0", v)
	}
}

// healthz is the answer of GET /healthz.
type healthz struct {
	Status      string `json:"status"`
	Gossip      string `json:"gossip"`
	Reason      string `json:"reason"`
	FailClosed  bool   `json:"fail_closed"`
	SiteDown    bool   `json:"site_down"`
	StorageFull bool   `json:"storage_full"`
}
