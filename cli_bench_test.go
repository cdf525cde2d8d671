package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ussync/ussync/bench"
	"github.com/ussync/ussync/internal/testenv"
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
		{[]string{"--scenario", "wan", "--wan-concurrency", "0"}, "--wan-concurrency"},
		{[]string{"--catchup-newcomer", "thread"}, "--catchup-newcomer"},
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

// TestBench_CatchupNewcomerProcess runs the catchup scenario at a tiny size
// with its newcomer as an agent process (this test binary, which runs as
// ussync when started as `agent`: TestMain): the newcomer converges, its own peak memory and bytes are
// reported, and no process or directory is left behind. It says nothing of
// speed.
func TestBench_CatchupNewcomerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and an agent process")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	code, stdout, stderr := runCLI(t, "bench", "--scenario", "catchup", "--timers", "test", "--catchup-newcomer", "process",
		"--catchup-sessions", "500", "--catchup-users", "100", "--catchup-rate", "20", "--json")
	t.Logf("stderr:\n%s", stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("decode the report: %v\n%s", err, stdout)
	}
	c := r.Catchup
	if c == nil || c.Newcomer != bench.NewcomerProcess || !c.Converged || c.RepairedAll < 600 || c.BytesNewcomer <= 0 {
		t.Fatalf("catchup %+v: want a converged agent newcomer, the records repaired, its bytes counted", c)
	}
	if runtime.GOOS == "linux" {
		// A Go program with a store open holds megabytes; a figure below
		// 1 MiB is not an agent's.
		if c.NewcomerRSSPeak < 1<<20 {
			t.Errorf("newcomer peak RSS %d bytes: not measured", c.NewcomerRSSPeak)
		}
		if kids := testenv.Children(t, os.Getpid()); len(kids) > 0 {
			t.Errorf("processes left running: %v", kids)
		}
	}
	if !strings.Contains(stderr, "memory of the newcomer's process") {
		t.Errorf("the table lacks the newcomer's memory")
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("%d temporary entries left, first %s", len(left), left[0].Name())
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
