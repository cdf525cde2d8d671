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
	// A profile path that cannot be written (a missing directory: the
	// tests may run as root, whom a directory's mode does not stop).
	missing := filepath.Join(t.TempDir(), "missing", "cpu.prof")
	beside := filepath.Join(t.TempDir(), "whole.prof")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenario", "nope"}, "nope"},
		{[]string{"--rounds", "0"}, "--rounds"},
		{[]string{"--wan-loss", "150"}, "150"},
		{[]string{"--heal-history", "-1"}, "--heal-history"},
		{[]string{"--split-for", "-1s"}, "--split-for"},
		{[]string{"--catchup-cpuprofile", missing}, "--catchup-cpuprofile"},
		{[]string{"--heal-cpuprofile", missing}, "--heal-cpuprofile"},
		{[]string{"--cpuprofile", beside, "--catchup-cpuprofile", filepath.Join(t.TempDir(), "c.prof")}, "beside --cpuprofile"},
	} {
		// Tiny sizes, should a refusal ever fail to come before the work.
		tiny := []string{"--scenario", "catchup,heal", "--timers", "test", "--catchup-sessions", "20", "--catchup-users", "4",
			"--heal-changes", "5", "--split-timers", "test", "--split-for", "1s"}
		args := append(append([]string{"bench"}, tiny...), c.args...)
		code, stdout, stderr := runCLI(t, args...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want 2 and nothing", c.args, code, stdout)
		}
		oneErrorLine(t, stderr, c.want)
	}
	if _, err := os.Stat(beside); err == nil {
		t.Errorf("the refused run created its --cpuprofile %s", beside)
	}
}
