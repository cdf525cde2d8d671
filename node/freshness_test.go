package node

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
)

// fakeHealth is a gossip member's health set by hand.
type fakeHealth struct {
	mu     sync.Mutex
	h      gossip.Health
	stalls []time.Duration
}

func (f *fakeHealth) set(h gossip.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.h = h
}
func (f *fakeHealth) Health() gossip.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.h
}
func (f *fakeHealth) CatchingUp() bool { return f.Health().CatchingUp }
func (f *fakeHealth) Isolated() bool   { return f.Health().Isolated }

// Stalled starts a catch-up, as gossip's does when there are peers, and
// records the gap it was told.
func (f *fakeHealth) Stalled(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stalls = append(f.stalls, d)
	f.h.CatchingUp, f.h.CatchUpReason = true, gossip.CatchUpStalled
}

// freshEnv is a private API whose node state is src's, read at the
// instants the test gives (update), failing closed after failAfter.
func freshEnv(t *testing.T, src *fakeHealth, failAfter time.Duration) (*apiEnv, *freshness) {
	var f *freshness
	e := newAPIEnv(t, func(w *testWiring) {
		w.wire = func(_ *service, d *apiDeps) {
			f = newFreshness(src, failAfter, slog.New(slog.NewTextHandler(&strings.Builder{}, nil)), w.api.Metrics)
			d.Fresh = f
			d.NotReady = func() []string { return gossipNotReady(src) }
		}
	})
	return e, f
}

func TestFreshness_SessionCheck(t *testing.T) {
	src := &fakeHealth{}
	e, f := freshEnv(t, src, time.Minute)
	s := e.login(t, "ann@example.com", true)
	ended := e.login(t, "bob@example.com", true)
	e.do("DELETE", "/v1/sessions/"+ended.Session.ID, nil).want(t, http.StatusOK, nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	check := func(t *testing.T, id string, status int, header string, node *client.NodeState) {
		t.Helper()
		r := e.do("GET", "/v1/sessions/"+id, nil)
		if got := r.Header.Get(client.HeaderNodeState); got != header {
			t.Errorf("%s: %q, want %q", client.HeaderNodeState, got, header)
		}
		if r.Status != status {
			t.Fatalf("check: %d %s, want %d", r.Status, r.Body, status)
		}
		if status != http.StatusOK {
			return
		}
		var sc client.SessionCheck
		r.want(t, http.StatusOK, &sc)
		switch {
		case node == nil && sc.Node != nil:
			t.Errorf("node %+v, want none", *sc.Node)
		case node != nil && sc.Node == nil:
			t.Errorf("no node state, want %+v", *node)
		case node != nil && (sc.Node.State != node.State || sc.Node.CatchingUp != node.CatchingUp || sc.Node.Isolated != node.Isolated ||
			(node.Since != nil && (sc.Node.Since == nil || !sc.Node.Since.Equal(*node.Since)))):
			t.Errorf("node %+v, want %+v", *sc.Node, *node)
		}
	}

	t.Run("in touch", func(t *testing.T) {
		check(t, s.Session.ID, http.StatusOK, client.NodeStateOK, nil)
		check(t, ended.Session.ID, http.StatusGone, client.NodeStateOK, nil)
		check(t, strings.Repeat("0", 64), http.StatusNotFound, client.NodeStateOK, nil)
	})
	t.Run("catching up shows at once", func(t *testing.T) {
		// No reading yet: CatchingUp is read on every check.
		src.set(gossip.Health{CatchingUp: true, CatchUpReason: gossip.CatchUpStarting, CatchUpSince: t0})
		check(t, s.Session.ID, http.StatusOK, client.NodeStateCatchingUp, &client.NodeState{State: client.NodeStateCatchingUp, CatchingUp: true})
		f.update(t0.Add(time.Second))
		check(t, s.Session.ID, http.StatusOK, client.NodeStateCatchingUp, &client.NodeState{State: client.NodeStateCatchingUp, CatchingUp: true, Since: &t0})
		check(t, ended.Session.ID, http.StatusGone, client.NodeStateCatchingUp, nil)
	})
	t.Run("isolated then catching up is one spell", func(t *testing.T) {
		src.set(gossip.Health{CatchingUp: true, CatchUpSince: t0, Isolated: true, IsolatedSince: t0.Add(2 * time.Second)})
		f.update(t0.Add(3 * time.Second))
		check(t, s.Session.ID, http.StatusOK, client.NodeStateIsolated, &client.NodeState{State: client.NodeStateIsolated, CatchingUp: true, Isolated: true, Since: &t0})
		// Back in touch, catching up again (a rejoin restarts the catch-up).
		src.set(gossip.Health{CatchingUp: true, CatchUpReason: gossip.CatchUpRejoined, CatchUpSince: t0.Add(50 * time.Second)})
		f.update(t0.Add(50 * time.Second))
		check(t, s.Session.ID, http.StatusOK, client.NodeStateCatchingUp, &client.NodeState{State: client.NodeStateCatchingUp, CatchingUp: true, Since: &t0})
	})
	t.Run("fails closed past fail_closed_after", func(t *testing.T) {
		f.update(t0.Add(61 * time.Second))
		r := e.do("GET", "/v1/sessions/"+s.Session.ID, nil)
		ea := r.wantError(t, http.StatusServiceUnavailable, client.CodeNodeIsolated)
		if r.Header.Get(client.HeaderNodeState) != client.NodeStateCatchingUp || !strings.Contains(ea.Error.Message, "sync.fail_closed_after") || r.Header.Get("Retry-After") == "" {
			t.Errorf("refusal: header %q, Retry-After %q, message %q", r.Header.Get(client.HeaderNodeState), r.Header.Get("Retry-After"), ea.Error.Message)
		}
		// What is over stays over: an ended session is still 410.
		check(t, ended.Session.ID, http.StatusGone, client.NodeStateCatchingUp, nil)
		var h healthzBody
		e.do("GET", "/healthz", nil).want(t, http.StatusOK, &h)
		if !h.FailClosed || h.Gossip != "catching_up" || !strings.Contains(h.Reason, "fail closed") {
			t.Errorf("healthz %+v", h)
		}
		if m := e.do("GET", "/metrics", nil); !strings.Contains(string(m.Body), "ussync_session_checks_failed_closed_total 1") {
			t.Errorf("the refusal was not counted")
		}
	})
	t.Run("in touch again", func(t *testing.T) {
		src.set(gossip.Health{CaughtUpAt: t0.Add(62 * time.Second), CaughtUpWith: "n1"})
		f.update(t0.Add(62 * time.Second))
		check(t, s.Session.ID, http.StatusOK, client.NodeStateOK, nil)
	})
}

// A node whose process stood still (SIGSTOP, a suspended VM) answers the
// checks that queued meanwhile as catching up, not fresh, though no other
// goroutine has run since it resumed; its watch's next reading starts the
// catch-up, which ends as usual (found by an attack: a resumed node
// answered 200 "ok" for a session logged out while it was held dead).
func TestFreshness_Stalled(t *testing.T) {
	src := &fakeHealth{}
	e, f := freshEnv(t, src, time.Minute)
	s := e.login(t, "ann@example.com", true)
	header := func() string {
		t.Helper()
		r := e.do("GET", "/v1/sessions/"+s.Session.ID, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("check: %d %s", r.Status, r.Body)
		}
		return r.Header.Get(client.HeaderNodeState)
	}
	if got := header(); got != client.NodeStateOK {
		t.Fatalf("not watching: %q", got)
	}
	// The watch read gossip's state 1 s ago, then 3 s ago: the process ran,
	// then stood still.
	f.epoch = time.Now().Add(-time.Minute)
	f.ticked.Store(int64(time.Minute - time.Second))
	if got := header(); got != client.NodeStateOK {
		t.Fatalf("1 s since the last reading: %q", got)
	}
	f.ticked.Store(int64(time.Minute - 3*time.Second))
	if got := header(); got != client.NodeStateCatchingUp {
		t.Fatalf("3 s since the last reading, before any goroutine ran: %q", got)
	}
	f.tick()
	if len(src.stalls) != 1 || src.stalls[0] < 3*time.Second {
		t.Fatalf("gossip told of stalls %v, want one of 3 s or more", src.stalls)
	}
	if got := header(); got != client.NodeStateCatchingUp {
		t.Fatalf("after the watch's reading, catching up: %q", got)
	}
	src.set(gossip.Health{}) // a round completed
	f.tick()
	if got := header(); got != client.NodeStateOK || len(src.stalls) != 1 {
		t.Fatalf("caught up: %q, stalls %v", got, src.stalls)
	}
}

func TestFreshness_HealthAndReadiness(t *testing.T) {
	src := &fakeHealth{}
	e, f := freshEnv(t, src, 0)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		h          gossip.Health
		state      string
		ready      int
		inReason   string
		foreignHas string
	}{
		{"ok", gossip.Health{}, "ok", http.StatusOK, "", ""},
		{"catching up", gossip.Health{CatchingUp: true, CatchUpReason: gossip.CatchUpStarting, CatchUpSince: t0},
			"catching_up", http.StatusServiceUnavailable, "catching up (starting)", ""},
		{"isolated", gossip.Health{Isolated: true, IsolatedSince: t0},
			"isolated", http.StatusServiceUnavailable, "no other member is alive", ""},
		{"key mismatch", gossip.Health{Isolated: true, IsolatedSince: t0, KeyMismatch: true,
			Foreign: []gossip.ForeignSource{{Addr: "192.0.2.9:7946", Answered: true, Plausible: true}}},
			"key_mismatch", http.StatusServiceUnavailable, "another cluster key", "192.0.2.9:7946"},
		{"a peer with another key", gossip.Health{KeyMismatch: true,
			Foreign: []gossip.ForeignSource{{Addr: "192.0.2.8", Member: true, Plausible: true}, {Addr: "198.51.100.1:1", Member: true, Plausible: false}}},
			"key_mismatch", http.StatusOK, "no installed key decrypts", "192.0.2.8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src.set(tc.h)
			f.update(t0.Add(time.Second))
			// Liveness: 200 whatever the state, which it names.
			var hz healthzBody
			e.do("GET", "/healthz", nil).want(t, http.StatusOK, &hz)
			if hz.Status != "ok" || hz.Gossip != tc.state || !strings.Contains(hz.Reason, tc.inReason) {
				t.Errorf("healthz %+v, want gossip %s, reason with %q", hz, tc.state, tc.inReason)
			}
			h := f.health()
			if h.Status != tc.state || !strings.Contains(h.Reason, tc.inReason) {
				t.Errorf("health %+v, want status %s, reason with %q", h, tc.state, tc.inReason)
			}
			if fp := h.ForeignPeers(); tc.foreignHas != "" && (len(fp) != 1 || fp[0] != tc.foreignHas) {
				t.Errorf("foreign peers %v, want only %s (noise is not a peer)", fp, tc.foreignHas)
			}
			var rd readyBody
			e.do("GET", "/readyz", nil).want(t, tc.ready, &rd)
			if (tc.ready == http.StatusOK) != (rd.Status == "ready") || (tc.ready != http.StatusOK && len(rd.Reasons) == 0) {
				t.Errorf("readyz %+v", rd)
			}
			var st client.Status
			e.do("GET", "/v1/status", nil).want(t, http.StatusOK, &st)
		})
	}
}
