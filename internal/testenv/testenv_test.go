package testenv

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

var absent = Program{Name: "Absent", Var: "USSYNC_TESTENV_ABSENT",
	Candidates: []string{"ussync-no-such-program-anywhere"}, Install: "nothing installs it"}

// TestHelperMissing is run by TestRequire in a child process.
func TestHelperMissing(t *testing.T) {
	if os.Getenv("USSYNC_TESTENV_CHILD") != "1" {
		t.Skip("helper of TestRequire")
	}
	Require(t, absent, "the absent program's test")
	t.Log("Require returned for a missing program")
}

// TestRequire: a missing program skips the test, or fails it under
// USSYNC_E2E_REQUIRE=1, and says so on stderr either way.
func TestRequire(t *testing.T) {
	for _, tt := range []struct {
		require  string
		wantFail bool
		want     string
	}{
		{"", false, "--- SKIP: TestHelperMissing"},
		{"0", false, "--- SKIP: TestHelperMissing"},
		{"1", true, "--- FAIL: TestHelperMissing"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMissing$", "-test.v")
		cmd.Env = append(os.Environ(), "USSYNC_TESTENV_CHILD=1", RequireVar+"="+tt.require)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tt.wantFail {
			t.Errorf("%s=%q: child failed=%v (%v), want %v:\n%s", RequireVar, tt.require, failed, err, tt.wantFail, out)
		}
		s := string(out)
		if !strings.Contains(s, tt.want) || !strings.Contains(s, "NOT tested on this machine: the absent program's test") ||
			!strings.Contains(s, "nothing installs it") || strings.Contains(s, "Require returned") {
			t.Errorf("%s=%q: output:\n%s", RequireVar, tt.require, s)
		}
	}
}

func TestFind(t *testing.T) {
	sh := Program{Name: "sh", Var: "USSYNC_TESTENV_SH", Candidates: []string{"ussync-no-such-program", "sh"}}
	if path, _ := sh.Find(); path == "" {
		t.Fatal("sh not found through the second candidate")
	}
	t.Setenv("USSYNC_TESTENV_ABSENT", "true") // the variable wins over the candidates
	if path, _ := absent.Find(); !strings.HasSuffix(path, "/true") {
		t.Fatalf("with $USSYNC_TESTENV_ABSENT=true, Find = %q", path)
	}
}

// TestFreePort: the ports are below the ephemeral range, never the same
// twice, and free for TCP and UDP when asked.
func TestFreePort(t *testing.T) {
	lo, hi := PortRange()
	seen := map[int]bool{}
	for range 50 {
		port, err := FreePort(true)
		if err != nil {
			t.Fatal(err)
		}
		if hi-lo >= 1000 && (port < lo || port >= hi) {
			t.Fatalf("port %d outside [%d, %d)", port, lo, hi)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("TCP on the port given: %v", err)
		}
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("UDP on the port given: %v", err)
		}
		ln.Close()
		pc.Close()
	}
}
