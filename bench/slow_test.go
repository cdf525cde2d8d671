package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ussync/ussync/node/nodetest"
)

// TestSlowWatch checks that an operation over the threshold is noted with
// the execution trace of the seconds before it, the first maxSlowTraces
// only, and one under it is not.
func TestSlowWatch(t *testing.T) {
	c := nodetest.NewCluster(t, 2)
	c.Start(2)
	prefix := filepath.Join(t.TempDir(), "slow")
	w, err := newSlowWatch(c, 10*time.Millisecond, prefix)
	if err != nil {
		t.Fatal(err)
	}
	m := w.mark()
	w.saw(OpLogin, 0, 5*time.Millisecond, m, 1, 4*time.Millisecond)
	for range maxSlowTraces + 1 {
		w.saw(OpLogout, 1, 50*time.Millisecond, m, 0, 20*time.Millisecond)
	}
	ops, err := w.stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != maxSlowTraces+1 {
		t.Fatalf("%d slow operations noted, want %d: %+v", len(ops), maxSlowTraces+1, ops)
	}
	for i, s := range ops {
		if s.Op != OpLogout || s.Origin != c.Members[1].Name() || s.Ms != 50 || s.Last != c.Members[0].Name() || s.NextMs != 20 {
			t.Errorf("slow operation %d: %+v", i, s)
		}
		if i >= maxSlowTraces {
			if s.Trace != "" {
				t.Errorf("slow operation %d has a trace (%s): at most %d are written", i, s.Trace, maxSlowTraces)
			}
			continue
		}
		b, err := os.ReadFile(s.Trace)
		if err != nil {
			t.Fatalf("slow operation %d: %v", i, err)
		}
		// An execution trace starts with its header, "go 1.N trace".
		if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:16], []byte(" trace")) {
			t.Errorf("slow operation %d: %s is not an execution trace (%q…)", i, s.Trace, b[:min(len(b), 16)])
		}
	}
}
