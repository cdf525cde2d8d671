//go:build unix

package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestAgents_BackupRestore: `ussync backup` saves a running node's store
// through its private API while another node takes logins, `ussync
// restore` refuses a data dir in use and restores into an empty one, and
// the restored node rejoins and catches up on what changed since.
func TestAgents_BackupRestore(t *testing.T) {
	c := newCluster(t, 3)
	n0, n1 := c.agents[0], c.agents[1]
	const ann = "ann@example.com"
	c.register(n0, ann)
	const logins = 200
	var wants []sessionWant
	for i := range logins {
		id := c.login(c.agents[i%2], ann)
		if i < 3 {
			wants = append(wants, sessionWant{fmt.Sprintf("login %d", i), id, "200"})
		}
	}
	c.waitSessions(wants, c.agents...)
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The backup, with logins going on at n0.
	file := filepath.Join(t.TempDir(), "n1.backup")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			if _, _, err := c.do(n0, "POST", "/v1/sessions", map[string]string{"email": ann}, nil); err != nil {
				return
			}
		}
	}()
	cmd := exec.Command(c.bin, "backup", "--api", "http://"+n1.api, "--token-file", tokenFile, file)
	cmd.Env = cleanEnv()
	var stdout, stderr logBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	<-done
	if err != nil {
		t.Fatalf("ussync backup: %v\nstdout %s\nstderr %s", err, stdout.String(), stderr.String())
	}
	t.Logf("ussync backup: %s%s", stderr.String(), stdout.String())
	m := regexp.MustCompile(`^backup of node n1 taken at .* written to .*: (\d+) records \((\d+) users, (\d+) sessions\)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("backup summary: %q", stdout.String())
	}
	if sessions, _ := strconv.Atoi(m[3]); sessions < logins+1 || m[2] != "1" {
		t.Errorf("the backup holds %s users and %s sessions", m[2], m[3])
	}
	if !strings.HasPrefix(stderr.String(), "backup: ") || !strings.Contains(stderr.String(), " records") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the backup file: %v %v", fi, err)
	}
	if _, err := os.Stat(file + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file remains: %v", err)
	}
	// A second backup to the same name is refused without --force.
	if out, err := c.run(cleanEnv("USSYNC_API_TOKEN="+c.token), "backup", "--api", "http://"+n1.api, file); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("a backup over an existing file: %v %s", err, out)
	}

	// n1 stops; a restore into its (full) data dir is refused.
	p := n1.cur()
	c.signal(n1, syscall.SIGTERM)
	<-p.done
	out, err := c.run(cleanEnv(), "restore", "--data-dir", n1.dir, file)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "is not empty") {
		t.Fatalf("restore into a data dir in use: %v %s", err, out)
	}
	// What changes while n1 is down.
	annBefore := wants[0].id
	c.must(n0, "DELETE", "/v1/sessions/"+annBefore, nil, nil, 200)
	annAfter := c.login(n0, ann)

	// The restore, through the data dir the configuration names.
	fresh := filepath.Join(t.TempDir(), "data")
	conf := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(conf, []byte("node:\n  data_dir: "+fresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = c.run(cleanEnv(), "restore", "--config", conf, file)
	if err != nil || !strings.Contains(out, "restored the backup of node n1") || !strings.Contains(out, m[1]+" records") {
		t.Fatalf("restore: %v %s", err, out)
	}
	t.Logf("ussync restore: %s", out)
	n1.dir = fresh
	c.restart(n1)
	c.waitMembers(c.agents, c.agents...)
	c.waitSessions([]sessionWant{
		{"a login before the backup, logged out while n1 was down", annBefore, "410 session_ended logout"},
		{"a login before the backup", wants[1].id, "200"},
		{"a login while n1 was down", annAfter, "200"},
	}, c.agents...)
}
