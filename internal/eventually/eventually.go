// Package eventually is the one wait helper of ussync's tests (and of the
// nodetest harness): it polls a condition that becomes true on its own —
// gossip arrives, a member is seen failing, a browser's page loads — until
// it holds or a deadline passes. It never sleeps a fixed time to "let
// things happen", and its deadline is a bound on a wait, never a measure
// asserted: a test that times out has found a bug, not a slow machine.
package eventually

import (
	"errors"
	"fmt"
	"time"
)

// Interval is how often a condition is polled.
const Interval = 5 * time.Millisecond

// T is what a wait needs of a test (testing.TB satisfies it).
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// True polls cond every Interval until it returns true, or fails t after
// timeout: "timed out after <timeout> waiting for <what>".
func True(t T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if _, ok := poll(timeout, Interval, func() string {
		if cond() {
			return ""
		}
		return "not yet"
	}); !ok {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Done polls cond every Interval until it returns "" (nothing left to wait
// for), or fails t after timeout with cond's last answer, which says what
// is not so yet: "timed out after <timeout> waiting for <what>: <why>".
func Done(t T, timeout time.Duration, what string, cond func() (why string)) {
	t.Helper()
	if why, ok := poll(timeout, Interval, cond); !ok {
		t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, why)
	}
}

// DoneEvery is Done polling every every instead of Interval: for a
// condition that costs a request to another process or a browser.
func DoneEvery(t T, timeout, every time.Duration, what string, cond func() (why string)) {
	t.Helper()
	if why, ok := poll(timeout, every, cond); !ok {
		t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, why)
	}
}

// Err polls cond every every until it returns nil, and returns nil; or
// returns "<what>: timed out after <timeout>: <cond's last error>". It
// fails no test: it is for setup code that returns its errors (a TestMain
// starting the programs a whole package shares). cond ends the wait at once
// by returning an error wrapped by Stop (a process that exited will not
// start answering): Err then returns "<what>: <that error>".
func Err(timeout, every time.Duration, what string, cond func() error) error {
	var last error
	_, ok := poll(timeout, every, func() string {
		last = cond()
		if last == nil || errors.As(last, new(stopped)) {
			return ""
		}
		return last.Error()
	})
	var s stopped
	switch {
	case errors.As(last, &s):
		return fmt.Errorf("%s: %w", what, s.err)
	case !ok:
		return fmt.Errorf("%s: timed out after %v: %w", what, timeout, last)
	}
	return nil
}

// Stop wraps err so that a condition given to Err ends the wait with it
// at once instead of polling on.
func Stop(err error) error { return stopped{err} }

type stopped struct{ err error }

func (s stopped) Error() string { return s.err.Error() }
func (s stopped) Unwrap() error { return s.err }

// poll calls cond until it returns "" (ok) or timeout has passed (cond's
// last answer, not ok), sleeping every between calls. cond is always
// called at least once.
func poll(timeout, every time.Duration, cond func() string) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return "", true
		}
		if time.Now().After(deadline) {
			return why, false
		}
		time.Sleep(every)
	}
}
