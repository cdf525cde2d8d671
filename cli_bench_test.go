package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBench_BadOptions: a bad bench option is refused before anything
// runs, with one error line naming it and exit code 2 (a flag the command
// cannot take).
func TestBench_BadOptions(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "nope"}, "nope"},
		{[]string{"--rounds", "0"}, "--rounds"},
		{[]string{"--wan-loss", "150"}, "150"},
		{[]string{"--heal-history", "-1"}, "--heal-history"},
		{[]string{"--split-for", "-1s"}, "--split-for"},
		{[]string{"--scenario", "wan", "--wan-concurrency", "0"}, "--wan-concurrency"},
	} {
		code, stdout, stderr := runCLI(t, append([]string{"bench"}, c.args...)...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want 2 and nothing", c.args, code, stdout)
		}
		oneErrorLine(t, stderr, c.want)
	}
}

// TestBench_BadOutputsRefusedFirst: a profile or trace the bench could not
// write is refused before anything runs (nothing on stdout: not even the
// header), not after the fill or the split it follows; so is a profile of
// a part of the run beside --cpuprofile, and a loss of NaN. The sizes are
// tiny so that a regression fails fast instead of running for hours.
func TestBench_BadOutputsRefusedFirst(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing", "x")
	catchup := []string{"--scenario", "catchup", "--timers", "test", "--catchup-sessions", "200", "--catchup-users", "40", "--catchup-rate", "1"}
	heal := []string{"--scenario", "heal", "--timers", "test", "--heal-changes", "10", "--split-timers", "test", "--split-for", "1s"}
	wan := []string{"--scenario", "wan", "--wan-nodes", "2", "--wan-loss", "5", "--wan-rounds", "1"}
	sites := []string{"--scenario", "sites", "--timers", "test", "--sites-nodes", "2", "--sites-rounds", "1", "--sites-logins", "1"}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{append(catchup, "--catchup-cpuprofile", missing), []string{"--catchup-cpuprofile", "missing"}},
		{append(catchup, "--catchup-cpuprofile", dir), []string{"--catchup-cpuprofile", "is a directory"}},
		{append(heal, "--heal-cpuprofile", missing), []string{"--heal-cpuprofile", "missing"}},
		{append(wan, "--wan-cpuprofile", missing), []string{"--wan-cpuprofile", "missing"}},
		{append(wan, "--wan-trace", missing), []string{"--wan-trace", "missing"}},
		{append(sites, "--sites-trace", missing), []string{"--sites-trace", "missing"}},
		{append(catchup, "--cpuprofile", missing), []string{"--cpuprofile", "missing"}},
		{append(catchup, "--memprofile", missing), []string{"--memprofile", "missing"}},
		{append(catchup, "--cpuprofile", filepath.Join(dir, "all.pprof"), "--catchup-cpuprofile", filepath.Join(dir, "c.pprof")),
			[]string{"--catchup-cpuprofile", "--cpuprofile"}},
		{append(wan, "--wan-loss", "NaN"), []string{"--wan-loss", "NaN"}},
	} {
		code, stdout, stderr := runCLI(t, append([]string{"bench"}, c.args...)...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want 2 and nothing", c.args, code, stdout)
		}
		oneErrorLine(t, stderr, c.want...)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the refusals left files behind: %v", left)
	}
}
