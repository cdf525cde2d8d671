package node_test

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

func newSecretText(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func fingerprint(t *testing.T, secret string) string {
	t.Helper()
	s, err := crypto.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s.Fingerprint()
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// keyring is a member's keyring, primary first, as its status shows it.
func keyring(t *testing.T, m *nodetest.Member) []string {
	t.Helper()
	var st client.Status
	if code := m.Call("GET", "/v1/status", nil, &st); code != http.StatusOK {
		t.Fatalf("status of %s: %d", m.Name(), code)
	}
	var out []string
	for _, k := range st.Keyring {
		if k.Primary != (len(out) == 0) {
			t.Fatalf("%s: the primary is not first: %+v", m.Name(), st.Keyring)
		}
		out = append(out, k.Fingerprint)
	}
	return out
}

// TestReload_Policies: a reload applies the live keys at once, reports
// the others as needing a restart, and a reload that cannot be applied
// whole changes nothing.
func TestReload_Policies(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "api-token")
	c := nodetest.New(t)
	writeText(t, tokenFile, c.Token+"\n")
	c.Configure = func(i int, cfg *node.Config) {
		cfg.API.Token, cfg.API.TokenFile = "", tokenFile
	}
	c.Start(1)
	m := c.Members[0]
	const ann = "ann@example.com"
	if code := m.Call("PUT", "/v1/users/"+ann, map[string]any{"login": "ann"}, nil); code != http.StatusOK {
		t.Fatal(code)
	}
	var la client.LoginAnswer
	m.Call("POST", "/v1/sessions", map[string]any{"email": ann}, &la)
	if la.Synced || la.Reason != "email_not_verified" {
		t.Fatalf("an unverified login is synced before the reload: %+v", la)
	}

	// The file's new token, a policy, the log level, and a key that needs a
	// restart.
	newToken := "reloaded-token-0123456789"
	writeText(t, tokenFile, newToken+"\n")
	cfg := c.Config(0)
	cfg.Sync.RequireVerified = false
	cfg.Log.Level = "debug"
	cfg.Session.SweepInterval = node.Duration(time.Hour)
	rep, err := m.Reload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Applied, []string{"sync.require_verified", "log.level", "api.token_file (content)"}) ||
		!slices.Equal(rep.Restart, []string{"session.sweep_interval"}) {
		t.Errorf("report: applied %q, restart %q", rep.Applied, rep.Restart)
	}
	if code := m.Call("GET", "/v1/users/"+ann, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("the old token answers %d after the reload", code)
	}
	if code := m.CallAs(newToken, "POST", "/v1/sessions", map[string]any{"email": ann}, &la); code != http.StatusCreated || !la.Synced {
		t.Errorf("a login after the reload: %d %+v", code, la)
	}
	var st client.Status
	m.CallAs(newToken, "GET", "/v1/status", nil, &st)
	if st.Reload == nil || st.Reload.Error != "" || !slices.Equal(st.Reload.Restart, []string{"session.sweep_interval"}) ||
		!slices.Contains(st.Reload.Applied, "sync.require_verified") {
		t.Errorf("status reload: %+v", st.Reload)
	}
	if !hasActivity(st.Activity, "sighup", "config.reload", "") {
		t.Errorf("status activity: %+v", st.Activity)
	}

	// The same again: nothing to apply, still one key waiting for a restart.
	if rep, err = m.Reload(cfg); err != nil || len(rep.Applied) != 0 || !slices.Equal(rep.Restart, []string{"session.sweep_interval"}) {
		t.Errorf("second reload: %+v %v", rep, err)
	}

	// A reload that cannot be applied whole changes nothing.
	bad := cfg
	bad.Sync.RequireVerified = true
	bad.Gossip.Secrets = []string{"not base64!"}
	if _, err := m.Reload(bad); err == nil || strings.Contains(err.Error(), "not base64!") {
		t.Errorf("a bad secret: %v", err)
	}
	if code := m.CallAs(newToken, "POST", "/v1/sessions", map[string]any{"email": ann}, &la); code != http.StatusCreated || !la.Synced {
		t.Errorf("a login after a refused reload: %d %+v", code, la)
	}
	m.CallAs(newToken, "GET", "/v1/status", nil, &st)
	if st.Reload == nil || !strings.Contains(st.Reload.Error, "cluster secret") || len(st.Reload.Applied) != 0 {
		t.Errorf("status after a refused reload: %+v", st.Reload)
	}
	os.Remove(tokenFile)
	if _, err := m.Reload(cfg); err == nil {
		t.Error("a reload without the token file succeeded")
	}
	if code := m.CallAs(newToken, "GET", "/v1/users/"+ann, nil, nil); code != http.StatusOK {
		t.Errorf("the token answers %d after a refused reload", code)
	}
}

// TestReload_KeyRotationByFile rotates the cluster secret the old way,
// through the secret files and reloads (install, use, remove), on three
// nodes serving logins throughout, and checks that a restart keeps the
// keyring where the rotation left it, and that a file changed while its
// node was down is applied at start.
func TestReload_KeyRotationByFile(t *testing.T) {
	c := nodetest.New(t)
	dir := t.TempDir()
	files := make([]string, 3)
	for i := range files {
		files[i] = filepath.Join(dir, "secret"+string(rune('0'+i)))
		writeText(t, files[i], c.Secret+"\n")
	}
	c.Configure = func(i int, cfg *node.Config) {
		cfg.Gossip.Secrets, cfg.Gossip.SecretFile = nil, files[i]
	}
	c.Start(3)
	registerEverywhere(t, c, 0, "ann@example.com")
	oldKey, newKey := c.Secret, newSecretText(t)
	oldFP, newFP := fingerprint(t, oldKey), fingerprint(t, newKey)

	step := func(what, text string, want []string) {
		t.Helper()
		for i, m := range c.Members {
			writeText(t, files[i], text)
			if _, err := m.Reload(c.Config(i)); err != nil {
				t.Fatalf("%s: reload %s: %v", what, m.Name(), err)
			}
			if got := keyring(t, m); !slices.Equal(got, want) {
				t.Fatalf("%s: %s holds %v, want %v", what, m.Name(), got, want)
			}
		}
		// The cluster works: a login on each node reaches every other.
		for _, m := range c.Members {
			a := login(t, m, "ann@example.com")
			waitAll(t, c, a.Session.ID, http.StatusOK, "")
		}
		c.WaitMembers(10 * time.Second)
	}
	step("install", oldKey+"\n"+newKey+"\n", []string{oldFP, newFP})
	step("use", newKey+"\n"+oldKey+"\n", []string{newFP, oldFP})
	step("remove", newKey+"\n", []string{newFP})

	// A restart keeps it.
	c.Kill(1)
	c.Restart(1)
	if got := keyring(t, c.Members[1]); !slices.Equal(got, []string{newFP}) {
		t.Errorf("after a restart: %v", got)
	}
	c.WaitMembers(10 * time.Second)

	// The file again holds only the old key, as the node's keyring.json
	// says it did last time: the change (old → new) is applied at start.
	writeText(t, files[2], oldKey+"\n")
	c.Kill(2)
	c.Restart(2)
	if got := keyring(t, c.Members[2]); !slices.Equal(got, []string{oldFP}) {
		t.Errorf("a file changed while the node was down: %v", got)
	}
}
