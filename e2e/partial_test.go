//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ussync/ussync/client"
)

// health is the part of GET /healthz these tests read: always 200 while
// the process answers, naming the node's state.
type health struct {
	Status      string `json:"status"`
	Gossip      string `json:"gossip"`
	Reason      string `json:"reason"`
	FailClosed  bool   `json:"fail_closed"`
	StorageFull bool   `json:"storage_full"`
}

// nodeHealth is the node's full health, from its status.
func (c *cluster) nodeHealth(a *agent) (client.GossipHealth, string) {
	var st client.Status
	code, raw, err := c.do(a, "GET", "/v1/status", nil, &st)
	if err != nil || code != http.StatusOK || st.Health == nil {
		return client.GossipHealth{}, fmt.Sprintf("status: %d %v %s", code, err, raw)
	}
	return *st.Health, ""
}

// TestAgents_MissedKeyRotation: a node that was down while the others moved
// to a new cluster secret comes back with the old one. It must not pass for
// healthy: it says it is isolated and why (another cluster key) on
// /healthz, in status, its metrics and its log; its session checks say it
// is isolated and, past sync.fail_closed_after, refuse to vouch for a
// session the others logged out meanwhile. Its peers see the stranger too.
func TestAgents_MissedKeyRotation(t *testing.T) {
	c := newCluster(t, 3)
	n0, n1, n2 := c.agents[0], c.agents[1], c.agents[2]
	const ann = "ann@example.com"
	c.register(n0, ann)
	sid := c.login(n0, ann)
	c.waitSessions([]sessionWant{{"ann on n0", sid, "200"}}, c.agents...)

	// n2 goes down; the others move to a new secret without it.
	c.kill(n2)
	newSecret := c.keygen()
	for _, a := range []*agent{n0, n1} {
		c.signal(a, syscall.SIGTERM)
		<-a.cur().done
		a.secret = newSecret
		c.restart(a)
	}
	c.eventually(membersTimeout, "n0 and n1 to see each other on the new secret", func() string {
		for _, a := range []*agent{n0, n1} {
			m, err := c.states(a)
			if err != nil || m[n0.name] != "alive" || m[n1.name] != "alive" {
				return fmt.Sprintf("%s lists %v %v", a.name, m, err)
			}
		}
		return ""
	})
	c.must(n0, "POST", "/v1/users/"+ann+"/logout-everywhere", nil, nil, http.StatusOK)
	c.waitSessions([]sessionWant{{"ann, logged out everywhere", sid, "410 session_ended logout_everywhere"}}, n0, n1)

	// n2 comes back with the old secret, failing closed after a second.
	n2.config = filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(n2.config, []byte("sync:\n  fail_closed_after: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.restart(n2)

	var h client.GossipHealth
	c.eventually(convergeTimeout, "n2 to say it speaks another cluster key", func() string {
		var hz health
		code, raw, err := c.do(n2, "GET", "/healthz", nil, &hz)
		if err != nil || code != http.StatusOK || hz.Gossip != "key_mismatch" || !strings.Contains(hz.Reason, "another cluster key") {
			return fmt.Sprintf("healthz: %d %v %s", code, err, raw)
		}
		var why string
		if h, why = c.nodeHealth(n2); why != "" {
			return why
		}
		if h.Status != "key_mismatch" || !h.Isolated || !containsAll(h.ForeignPeers(), n0.gossip) {
			return fmt.Sprintf("health: %+v", h)
		}
		return ""
	})
	t.Logf("n2's healthz: %+v", h)

	// The session check: isolated, then failing closed.
	var got string
	c.eventually(convergeTimeout, "n2's session checks to fail closed", func() string {
		code, raw, hdr := c.checkRaw(n2, sid)
		got = fmt.Sprintf("%d %s %s", code, hdr, raw)
		if code != http.StatusServiceUnavailable || hdr != "isolated" || !strings.Contains(string(raw), `"node_isolated"`) {
			return got
		}
		return ""
	})
	t.Logf("n2's session check: %s", got)

	// status, as an operator runs it.
	out := c.ussync(n2, "status", "--json")
	var st struct {
		Health  client.GossipHealth `json:"health"`
		Keyring []struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"keyring"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Health.KeyMismatch || !st.Health.FailClosed || st.Health.Status != "key_mismatch" {
		t.Errorf("status --json: %v %s", err, out)
	}
	if table := c.ussync(n2, "status"); !strings.Contains(table, "DEGRADED: KEY MISMATCH") || !strings.Contains(table, n0.gossip+" speaks another cluster key") {
		t.Errorf("status:\n%s", table)
	}
	for _, series := range []string{"ussync_key_mismatch 1", "ussync_isolated 1", "ussync_fail_closed 1", `ussync_session_checks_failed_closed_total 1`} {
		if m := c.metrics(n2); !strings.Contains(m, "\n"+series) {
			t.Errorf("n2's metrics lack %q", series)
		}
	}
	// Its log says it plainly, with its own fingerprint to compare.
	log := n2.cur().out.String()
	if !strings.Contains(log, "another cluster key") || len(st.Keyring) == 0 || !strings.Contains(log, st.Keyring[0].Fingerprint) {
		t.Errorf("n2's log does not say it speaks another cluster key, with its fingerprint %v:\n%s", st.Keyring, log)
	}
	// The others see a member's address speak a key they do not hold.
	c.eventually(convergeTimeout, "n0 to report the stranger", func() string {
		h0, why := c.nodeHealth(n0)
		if why != "" || !h0.KeyMismatch || h0.Isolated {
			return fmt.Sprintf("n0's health: %+v %s", h0, why)
		}
		return ""
	})

	// n2 gets the new secret: it catches up, and ann's session is over there too.
	c.signal(n2, syscall.SIGTERM)
	<-n2.cur().done
	n2.secret = newSecret
	c.restart(n2)
	c.waitMembers(c.agents, c.agents...)
	c.waitSessions([]sessionWant{{"ann, logged out everywhere", sid, "410 session_ended logout_everywhere"}}, c.agents...)
	c.eventually(convergeTimeout, "n2 healthy", func() string {
		code, raw, err := c.do(n2, "GET", "/healthz", nil, &h)
		if err != nil || code != http.StatusOK || h.Status != "ok" {
			return fmt.Sprintf("healthz: %d %v %s", code, err, raw)
		}
		return ""
	})
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}

// checkRaw is a session check's status, body and node-state header.
func (c *cluster) checkRaw(a *agent, id string) (int, []byte, string) {
	c.t.Helper()
	req, err := http.NewRequest("GET", "http://"+a.api+"/v1/sessions/"+id, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, []byte(err.Error()), ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Ussync-Node-State")
}

// ussync runs the ussync command with args against a's private API and
// returns its standard output; it fails the test if the command fails.
func (c *cluster) ussync(a *agent, args ...string) string {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = cleanEnv("USSYNC_API_URL=http://"+a.api, "USSYNC_API_TOKEN="+c.token)
	var stderr logBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("ussync %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// metrics is a's /metrics.
func (c *cluster) metrics(a *agent) string {
	c.t.Helper()
	_, raw, err := c.do(a, "GET", "/metrics", nil, nil)
	if err != nil {
		c.t.Fatalf("metrics of %s: %v", a.name, err)
	}
	return string(raw)
}
