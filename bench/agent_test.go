package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ussync/ussync/internal/testenv"
)

// TestCatchup_AgentFailsToStart: a newcomer agent that exits at start
// (here a script standing for a ussync that refuses its configuration) is
// one clear error with the agent's own last line, and the run leaves no
// process and no directory behind. (The command's test runs a real agent.)
func TestCatchup_AgentFailsToStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	script := filepath.Join(t.TempDir(), "ussync")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'ussync: gossip.join: no such thing' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Catchup(context.Background(), Options{Timers: TimersTest, CatchupNewcomer: NewcomerProcess, Agent: script,
		CatchupSessions: 50, CatchupUsers: 10, CatchupRate: 20, Log: testLog{t}})
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "gossip.join: no such thing") {
		t.Fatalf("error %v: want the agent's exit and its last line", err)
	}
	if strings.Contains(err.Error(), "goroutine") || strings.Count(err.Error(), "\n") > 0 {
		t.Errorf("error is not one line: %q", err)
	}
	if runtime.GOOS == "linux" {
		if kids := testenv.Children(t, os.Getpid()); len(kids) > 0 {
			t.Errorf("processes left running: %v", kids)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("%d temporary entries left, first %s", len(left), left[0].Name())
	}
}
