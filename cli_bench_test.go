package main

import "testing"

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
