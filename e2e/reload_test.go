//go:build unix

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// reloadStatus is the part of GET /v1/status about keys and reloads.
type reloadStatus struct {
	Keyring []struct {
		Fingerprint string `json:"fingerprint"`
		Primary     bool   `json:"primary"`
	} `json:"keyring"`
	Reload *struct {
		At      string   `json:"at"`
		Applied []string `json:"applied"`
		Restart []string `json:"restart"`
		Error   string   `json:"error"`
	} `json:"reload"`
}

// fingerprintOf runs `ussync agent --print-config` on a secret to learn its
// fingerprint the way an operator would.
func (c *cluster) fingerprintOf(secret string) string {
	c.t.Helper()
	out, err := c.run(cleanEnv("USSYNC_SECRET="+secret, "USSYNC_API_TOKEN="+c.token), "agent", "--dev", "--print-config")
	if err != nil {
		c.t.Fatalf("print-config: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "-" && strings.HasPrefix(f[1], "secret:") {
			return strings.TrimPrefix(f[1], "secret:")
		}
	}
	c.t.Fatalf("no fingerprint in:\n%s", out)
	return ""
}

// run runs the ussync binary with env and args and returns its output.
func (c *cluster) run(env []string, args ...string) (string, error) {
	cmd := exec.Command(c.bin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAgents_SighupReloads runs three nodes from configuration files and
// changes the files while they run: a reload (SIGHUP) applies a site
// policy, the API token and the log level at once, says which key needs a
// restart, refuses a broken file without changing anything, and rotates
// the cluster secret (install, use, remove) with a login reaching every
// node at each step and no restart.
func TestAgents_SighupReloads(t *testing.T) {
	var c *cluster
	dir := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secretFile := func(a *agent) string { return filepath.Join(dir, a.name+"-secret") }
	tokenFile := func(a *agent) string { return filepath.Join(dir, a.name+"-token") }
	conf := func(a *agent, requireVerified bool, level, sweep string) string {
		return fmt.Sprintf("gossip:\n  secret_file: %s\napi:\n  token_file: %s\nsync:\n  require_verified: %t\nlog:\n  level: %s\nsession:\n  sweep_interval: %s\n",
			secretFile(a), tokenFile(a), requireVerified, level, sweep)
	}
	c = emptyCluster(t, func(a *agent) {
		a.config = filepath.Join(dir, a.name+".yaml")
		write(a.config, conf(a, true, "info", "1m"))
		write(secretFile(a), c.secret+"\n")
		write(tokenFile(a), c.token+"\n")
		a.env = []string{} // secret and token from the files only
	})
	for range 3 {
		c.add()
	}
	c.waitMembers(c.agents, c.agents...)
	n0, n2 := c.agents[0], c.agents[2]
	const ann, bob = "ann@example.com", "bob@example.com"
	c.register(n0, ann)

	// hup sends SIGHUP to every node and waits until each reports a reload
	// newer than the one before.
	last := map[string]string{}
	hup := func(want func(a *agent, st reloadStatus) string) {
		t.Helper()
		for _, a := range c.agents {
			c.signal(a, syscall.SIGHUP)
		}
		c.eventually(convergeTimeout, "every node to report its reload", func() string {
			for _, a := range c.agents {
				var st reloadStatus
				code, raw, err := c.do(a, "GET", "/v1/status", nil, &st)
				if err != nil || code != http.StatusOK {
					return fmt.Sprintf("%s: %d %v %s", a.name, code, err, raw)
				}
				if st.Reload == nil || st.Reload.At == last[a.name] {
					return a.name + ": no new reload yet"
				}
				if msg := want(a, st); msg != "" {
					return fmt.Sprintf("%s: %s; status %s", a.name, msg, raw)
				}
			}
			return ""
		})
		for _, a := range c.agents {
			var st reloadStatus
			c.do(a, "GET", "/v1/status", nil, &st)
			last[a.name] = st.Reload.At
		}
	}
	loginSynced := func(a *agent, email string) bool {
		t.Helper()
		var ans struct {
			Synced bool `json:"synced"`
		}
		c.must(a, "POST", "/v1/sessions", map[string]string{"email": email, "ip": "127.0.0.1"}, &ans, http.StatusCreated)
		return ans.Synced
	}
	c.must(n0, "PUT", "/v1/users/"+bob, map[string]string{"login": "bob"}, nil, http.StatusOK)
	if loginSynced(n0, bob) {
		t.Fatal("an unverified login is synced under sync.require_verified: true")
	}

	// A policy, the log level, the token file's content, and a key that
	// takes a restart.
	oldToken, newToken := c.token, randomHex(24)
	for _, a := range c.agents {
		write(a.config, conf(a, false, "debug", "2m"))
		write(tokenFile(a), newToken+"\n")
	}
	c.token = newToken
	hup(func(a *agent, st reloadStatus) string {
		if st.Reload.Error != "" || !slices.Equal(st.Reload.Applied, []string{"sync.require_verified", "log.level", "api.token_file (content)"}) ||
			!slices.Equal(st.Reload.Restart, []string{"session.sweep_interval"}) {
			return "unexpected reload"
		}
		return ""
	})
	if !loginSynced(n0, bob) {
		t.Error("an unverified login is not synced after the reload to sync.require_verified: false")
	}
	c.token = oldToken
	if code, _, _ := c.do(n2, "GET", "/v1/status", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("the old token answers %d after the reload", code)
	}
	c.token = newToken
	c.eventually(membersTimeout, "a debug line in n0's log after the reload to log.level: debug", func() string {
		if !strings.Contains(n0.cur().out.String(), "level=DEBUG") {
			return "none yet (memberlist logs its push/pull at debug)"
		}
		return ""
	})

	// A broken file: refused, nothing changed.
	write(n0.config, "sync:\n  require_verified: [\n")
	c.signal(n0, syscall.SIGHUP)
	c.eventually(convergeTimeout, "n0 to report the refused reload", func() string {
		var st reloadStatus
		c.do(n0, "GET", "/v1/status", nil, &st)
		if st.Reload == nil || st.Reload.Error == "" {
			return "no refused reload yet"
		}
		last[n0.name] = st.Reload.At
		return ""
	})
	if !loginSynced(n0, bob) {
		t.Error("a refused reload changed sync.require_verified")
	}
	write(n0.config, conf(n0, false, "debug", "2m"))

	// The cluster secret, rotated through the files: install, use, remove.
	oldKey, newKey := c.secret, c.keygen()
	oldFP, newFP := c.fingerprintOf(oldKey), c.fingerprintOf(newKey)
	for _, step := range []struct {
		name string
		file string
		want []string
	}{
		{"install", oldKey + "\n" + newKey + "\n", []string{oldFP, newFP}},
		{"use", newKey + "\n" + oldKey + "\n", []string{newFP, oldFP}},
		{"remove", newKey + "\n", []string{newFP}},
	} {
		for _, a := range c.agents {
			write(secretFile(a), step.file)
		}
		hup(func(a *agent, st reloadStatus) string {
			var got []string
			for _, k := range st.Keyring {
				got = append(got, k.Fingerprint)
			}
			if st.Reload.Error != "" || !slices.Equal(got, step.want) || !st.Keyring[0].Primary {
				return fmt.Sprintf("%s: keyring %v, want %v", step.name, got, step.want)
			}
			return ""
		})
		id := c.login(n0, ann)
		c.waitSessions([]sessionWant{{step.name + ": a login on n0", id, "200"}}, c.agents...)
		c.waitMembers(c.agents, c.agents...)
	}
	t.Logf("rotated %s -> %s through the files, no restart", oldFP, newFP)

	// A restart keeps the keyring where the rotation left it.
	p := n2.cur()
	c.signal(n2, syscall.SIGTERM)
	<-p.done
	c.restart(n2)
	c.waitMembers(c.agents, c.agents...)
	id := c.login(n2, ann)
	c.waitSessions([]sessionWant{{"a login on the restarted n2", id, "200"}}, c.agents...)
}
