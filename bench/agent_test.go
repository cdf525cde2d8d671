package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
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
		if kids := childProcesses(t, os.Getpid()); len(kids) > 0 {
			t.Errorf("processes left running: %v", kids)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("%d temporary entries left, first %s", len(left), left[0].Name())
	}
}

// childProcesses lists the processes whose parent is pid, as "pid
// command" (Linux's /proc), after waiting a moment for any still exiting.
func childProcesses(t *testing.T, pid int) []string {
	t.Helper()
	var out []string
	for try := 0; try < 50; try++ {
		out = out[:0]
		dirs, err := os.ReadDir("/proc")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if _, err := strconv.Atoi(d.Name()); err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
			if err != nil {
				continue // gone meanwhile
			}
			// pid (comm) state ppid ...: comm may hold spaces.
			s := string(b)
			f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				out = append(out, d.Name()+" "+s[strings.IndexByte(s, '(')+1:strings.LastIndexByte(s, ')')])
			}
		}
		if len(out) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}
