package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Children lists the processes whose parent is pid, as "pid command", from
// Linux's /proc, waiting up to a second for any still exiting; it returns
// nil at once where /proc has no process entries. Tests that start
// processes (an agent, a server) check with it that they left none behind.
func Children(t testing.TB, pid int) []string {
	t.Helper()
	var out []string
	for try := 0; try < 50; try++ {
		out = out[:0]
		dirs, err := os.ReadDir("/proc")
		if err != nil {
			return nil
		}
		for _, d := range dirs {
			if _, err := strconv.Atoi(d.Name()); err != nil {
				continue
			}
			b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
			if err != nil {
				continue // gone meanwhile
			}
			// pid (comm) state ppid ...: comm may hold spaces, so read
			// after its closing parenthesis.
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
