//go:build unix

package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ussync/ussync/crypto"
)

// cli runs `ussync args...` as an operator does, with the API token in
// the environment, and returns its exit status, stdout and stderr.
func (c *cluster) cli(args ...string) (code int, stdout, stderr string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = cleanEnv("USSYNC_API_TOKEN=" + c.token)
	var out, errOut logBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		c.t.Fatalf("ussync %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errOut.String()
}

// loginLoop logs a user in and out on the agents of a cluster, round
// robin, a logout on another agent than the login, until stopped; it
// remembers how each session must end up.
type loginLoop struct {
	c    *cluster
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	want map[string]string // session id → "200" or "410 session_ended logout"
	errs []string
}

func startLoginLoop(c *cluster, email string) *loginLoop {
	l := &loginLoop{c: c, stop: make(chan struct{}), done: make(chan struct{}), want: map[string]string{}}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			on, off := c.agents[i%len(c.agents)], c.agents[(i+1)%len(c.agents)]
			var ans struct {
				Session struct {
					ID string `json:"id"`
				} `json:"session"`
				Synced bool `json:"synced"`
			}
			code, raw, err := c.do(on, "POST", "/v1/sessions", map[string]string{"email": email, "ip": "127.0.0.1", "user_agent": "ussync-e2e"}, &ans)
			if err != nil || code != http.StatusCreated || !ans.Synced {
				l.fail("login %d on %s: %d %v %s", i, on.name, code, err, raw)
				continue
			}
			want := "200"
			if i%2 == 1 {
				// The other agent may not hold the session yet: then it
				// answers 404 and the session stays active everywhere.
				code, raw, err := c.do(off, "DELETE", "/v1/sessions/"+ans.Session.ID, nil, nil)
				switch {
				case err == nil && code == http.StatusOK:
					want = "410 session_ended logout"
				case err == nil && code == http.StatusNotFound:
				default:
					l.fail("logout %d on %s: %d %v %s", i, off.name, code, err, raw)
				}
			}
			l.mu.Lock()
			l.want[ans.Session.ID] = want
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *loginLoop) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

// count is how many sessions the loop has made.
func (l *loginLoop) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.want)
}

// more waits until the loop has made n more sessions.
func (l *loginLoop) more(n int) {
	l.c.t.Helper()
	from := l.count()
	l.c.eventually(convergeTimeout, fmt.Sprintf("%d more logins", n), func() string {
		if got := l.count() - from; got < n {
			return fmt.Sprintf("%d so far", got)
		}
		return ""
	})
}

// finish stops the loop and waits until every agent gives every session
// its answer: nothing lost.
func (l *loginLoop) finish() {
	l.c.t.Helper()
	close(l.stop)
	<-l.done
	for _, e := range l.errs {
		l.c.t.Errorf("login loop: %s", e)
	}
	var wants []sessionWant
	ended := 0
	for id, w := range l.want {
		wants = append(wants, sessionWant{"session " + id[:8], id, w})
		if w != "200" {
			ended++
		}
	}
	if ended == 0 || len(wants)-ended == 0 {
		l.c.t.Fatalf("the loop made %d sessions, %d logged out: both kinds are needed", len(wants), ended)
	}
	l.c.waitSessions(wants, l.c.agents...)
	l.c.t.Logf("%d sessions (%d logged out), each as it must be on %d agents", len(wants), ended, len(l.c.agents))
}

// TestAgents_KeyRotation rotates the cluster secret of five running agents
// with the CLI, `ussync keys install`, `use` and `remove`, each answered by
// all five, while a login/logout loop runs on every agent: not one
// restart, nothing lost. Then an agent restarted with its old
// configuration (the old secret) keeps the new keyring from its data dir
// and rejoins.
func TestAgents_KeyRotation(t *testing.T) {
	c := newCluster(t, 5)
	n0 := c.agents[0]
	const ann = "ann@example.com"
	c.register(n0, ann)
	api := "http://" + n0.api
	oldFP := keyFingerprint(t, c.secret)
	newKey := c.keygen()
	newFP := keyFingerprint(t, newKey)
	keyFile := filepath.Join(t.TempDir(), "new-key")
	if err := os.WriteFile(keyFile, []byte(newKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	loop := startLoginLoop(c, ann)
	for _, step := range []struct {
		args []string
		head string
		keys []string // key rows: fingerprint, held by, primary on, missing on
	}{
		{[]string{"keys", "install", "--api", api, "--key-file", keyFile},
			"installed key " + newFP + " on 5 of 5 members", []string{oldFP + " 5/5 all -", newFP + " 5/5 - -"}},
		{[]string{"keys", "use", "--api", api, newFP},
			"key " + newFP + " is the primary on 5 of 5 members", []string{oldFP + " 5/5 - -", newFP + " 5/5 all -"}},
		{[]string{"keys", "remove", "--api", api, oldFP},
			"removed key " + oldFP + " from 5 of 5 members", []string{newFP + " 5/5 all -"}},
	} {
		loop.more(10)
		code, out, errOut := c.cli(step.args...)
		if code != 0 || errOut != "" {
			t.Fatalf("ussync %s: exit %d, stderr %q\n%s", strings.Join(step.args, " "), code, errOut, out)
		}
		t.Logf("ussync %s:\n%s", strings.Join(step.args[:2], " "), out)
		checkKeysOutput(t, out, step.head, step.keys)
	}
	loop.more(10)
	loop.finish()

	// A restart, with the configuration (USSYNC_SECRET) still naming the
	// old key: the keyring kept in the data dir wins, and the agent rejoins.
	n3 := c.agents[3]
	p := n3.cur()
	c.signal(n3, syscall.SIGTERM)
	<-p.done
	c.restart(n3)
	c.waitMembers(c.agents, c.agents...)
	code, out, errOut := c.cli("keys", "list", "--api", "http://"+n3.api)
	if code != 0 || errOut != "" {
		t.Fatalf("keys list on the restarted n3: exit %d %q\n%s", code, errOut, out)
	}
	checkKeysOutput(t, out, "keys held by 5 members: 5 answered", []string{newFP + " 5/5 all -"})
	id := c.login(n3, ann)
	c.waitSessions([]sessionWant{{"a login on the restarted n3", id, "200"}}, c.agents...)
}

// keyFingerprint is a secret's fingerprint, as `ussync keys` and the
// status show it.
func keyFingerprint(t *testing.T, secret string) string {
	t.Helper()
	s, err := crypto.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s.Fingerprint()
}

// checkKeysOutput checks the output of a `ussync keys` command that every
// member carried out: its headline, every member "ok", its key rows.
func checkKeysOutput(t *testing.T, out, head string, keys []string) {
	t.Helper()
	parts := strings.Split(strings.TrimRight(out, "\n"), "\n\n")
	if len(parts) != 3 || parts[0] != head {
		t.Fatalf("output %q, want the headline %q", out, head)
	}
	members := strings.Split(parts[1], "\n")[1:]
	if len(members) != 5 {
		t.Errorf("members %q", members)
	}
	for _, m := range members {
		if f := strings.Fields(m); len(f) != 2 || f[1] != "ok" {
			t.Errorf("member %q", m)
		}
	}
	var rows []string
	for _, l := range strings.Split(parts[2], "\n")[1:] {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	if len(rows) != len(keys) {
		t.Fatalf("keys %q, want %q", rows, keys)
	}
	for _, k := range keys {
		found := false
		for _, r := range rows {
			found = found || r == k
		}
		if !found {
			t.Errorf("keys %q, want %q", rows, keys)
		}
	}
}
