package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
)

func TestRun_StatusHealth(t *testing.T) {
	const token = "0123456789abcdef"
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := fakeStatus()
	st.Health = &client.GossipHealth{
		Status:     "key_mismatch",
		Reason:     "10.0.0.3:7946 answers in another cluster key: this node's secret is not the cluster's, or that node missed a key rotation",
		CatchingUp: true, Isolated: true, IsolatedSince: &since, KeyMismatch: true,
		Foreign: []client.ForeignSource{{Addr: "10.0.0.3:7946", Answered: true}}, FailClosed: true,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()

	code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "--token", token)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	t.Logf("output:\n%s", stdout)
	for _, want := range []string{"DEGRADED: KEY MISMATCH: 10.0.0.3:7946 answers in another cluster key",
		"10.0.0.3:7946 speaks another cluster key", "fail closed"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(stdout, "\x1b[") {
		t.Errorf("colours on a pipe:\n%q", stdout)
	}
	code, stdout, _ = runCLI(t, "status", "--api", srv.URL, "--token", token, "--json")
	var got client.Status
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || !got.Health.KeyMismatch || !got.Health.FailClosed || got.Health.Status != "key_mismatch" {
		t.Errorf("--json: exit %d, %v, health %+v", code, err, got.Health)
	}

	t.Run("painted", func(t *testing.T) {
		for _, l := range healthLines(st.Health, true) {
			if !strings.HasPrefix(l, ansiRed) || !strings.HasSuffix(l, ansiReset) {
				t.Errorf("a degraded node's line is not red: %q", l)
			}
		}
		catching := &client.GossipHealth{Status: "catching_up", Reason: "catching up (starting) since …", CatchingUp: true}
		if l := healthLines(catching, true); !strings.HasPrefix(l[0], ansiYellow) || !strings.Contains(l[1], client.NodeStateCatchingUp) {
			t.Errorf("catching up: %q", l)
		}
		if l := healthLines(&client.GossipHealth{Status: "ok"}, true); len(l) != 1 || l[0] != "ok" {
			t.Errorf("ok: %q", l)
		}
	})
}

// TestRun_StatusOlderHandoff: a member left out of the hand-offs for its
// older hand-off (a rolling upgrade under way) says so in status's table.
func TestRun_StatusOlderHandoff(t *testing.T) {
	st := fakeStatus()
	st.Members = append(st.Members, client.MemberStatus{Name: "site-c", Address: "10.0.0.3:7946", State: "alive",
		SiteURL: "https://c.example/", Version: "0.0.9", HandoffSkipped: "older_version"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	code, stdout, stderr := runCLI(t, "status", "--api", srv.URL, "--token", "0123456789abcdef")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "site-c ") {
			if !strings.Contains(l, "alive, older hand-off") {
				t.Errorf("site-c's line: %q, want its state to say older hand-off", l)
			}
			return
		}
	}
	t.Errorf("no line for site-c:\n%s", stdout)
}
