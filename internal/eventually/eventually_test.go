package eventually

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeT records a failure instead of ending the test.
type fakeT struct{ failed string }

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	panic(f) // as t.Fatalf ends the goroutine
}

func run(f func(t T)) (failed string) {
	ft := &fakeT{}
	defer func() {
		if p := recover(); p != nil && p != ft {
			panic(p)
		}
		failed = ft.failed
	}()
	f(ft)
	return ""
}

func TestTrue(t *testing.T) {
	t.Run("holds after a few polls", func(t *testing.T) {
		n := 0
		if got := run(func(t T) { True(t, time.Minute, "n to reach 3", func() bool { n++; return n >= 3 }) }); got != "" || n != 3 {
			t.Fatalf("failed %q after %d polls", got, n)
		}
	})
	t.Run("never holds", func(t *testing.T) {
		got := run(func(t T) { True(t, 0, "the impossible", func() bool { return false }) })
		if got != "timed out after 0s waiting for the impossible" {
			t.Fatalf("failure %q", got)
		}
	})
}

func TestErr(t *testing.T) {
	t.Run("holds after a few polls", func(t *testing.T) {
		n := 0
		if err := Err(time.Minute, time.Millisecond, "n to reach 3", func() error {
			if n++; n < 3 {
				return fmt.Errorf("n is %d", n)
			}
			return nil
		}); err != nil || n != 3 {
			t.Fatalf("error %v after %d polls", err, n)
		}
	})
	t.Run("never holds", func(t *testing.T) {
		err := Err(0, time.Millisecond, "the socket", func() error { return errNoSocket })
		if !errors.Is(err, errNoSocket) || err.Error() != "the socket: timed out after 0s: no socket" {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		n := 0
		err := Err(time.Minute, time.Millisecond, "the node", func() error { n++; return Stop(errNoSocket) })
		if !errors.Is(err, errNoSocket) || err.Error() != "the node: no socket" || n != 1 {
			t.Fatalf("error %v after %d polls", err, n)
		}
	})
}

var errNoSocket = errors.New("no socket")

func TestDone(t *testing.T) {
	got := run(func(t T) { Done(t, 0, "convergence", func() string { return "n1 lacks 2 records" }) })
	if !strings.HasSuffix(got, "waiting for convergence: n1 lacks 2 records") {
		t.Fatalf("failure %q does not say why", got)
	}
}
