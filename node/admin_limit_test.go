package node

import (
	"testing"
	"time"
)

// TestLoginLimiter_Backoff: five failures are free; then each attempt waits
// a second doubled per failure past them, up to 15 minutes, wherever it
// comes from; a known device is counted on its own; a success resets the
// counters it was held by; a day of quiet forgets them.
func TestLoginLimiter_Backoff(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginLimiter()
	at := func(ip string) attempt { return attempt{ip: ip} }
	for i := range adminFreeFailures {
		if w := l.wait(at("127.0.0.1"), t0); w != 0 {
			t.Fatalf("failure %d waits %s", i, w)
		}
		l.failed(at("127.0.0.1"), t0)
	}
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		now := t0.Add(time.Duration(n) * time.Hour) // well past the last wait
		l.account.last = now
		l.ips["127.0.0.1"].last = now
		// Another address, never seen: the account holds it back.
		if w := l.wait(at(fmtIP(n)), now); w != want {
			t.Fatalf("after %d failures, a new address waits %s, want %s", adminFreeFailures+n, w, want)
		}
		if w := l.wait(at(fmtIP(n)), now.Add(want)); w != 0 {
			t.Fatalf("after %d failures, waited out, still %s", adminFreeFailures+n, w)
		}
		l.failed(at(fmtIP(n)), now.Add(want))
	}
	l.account.failures = 100
	if w := l.wait(at("10.0.0.1"), l.account.last); w != adminBackoffMax {
		t.Fatalf("after 100 failures: %s, want the cap %s", w, adminBackoffMax)
	}

	// A browser that logged in before is counted on its own.
	l2 := newLoginLimiter()
	l2.succeeded(at("127.0.0.1"), "device-a", t0)
	for range 20 {
		l2.failed(at("127.0.0.9"), t0)
	}
	dev := attempt{ip: "127.0.0.9", device: "device-a"}
	if w := l2.wait(dev, t0); w != 0 {
		t.Fatalf("a known device waits %s behind others' failures", w)
	}
	if w := l2.wait(at("127.0.0.9"), t0); w == 0 {
		t.Fatal("the failing address does not wait")
	}
	// A success elsewhere resets the account, not the failing address.
	l2.succeeded(at("127.0.0.2"), "device-b", t0)
	if w := l2.wait(at("127.0.0.3"), t0); w != 0 {
		t.Fatalf("after a success, another address waits %s", w)
	}
	if w := l2.wait(at("127.0.0.9"), t0); w == 0 {
		t.Fatal("after a success elsewhere, the failing address does not wait")
	}
	// A day of quiet forgets.
	later := t0.Add(adminForgetAfter)
	l2.failed(at("127.0.0.9"), later)
	if w := l2.wait(at("127.0.0.9"), later); w != 0 || l2.ips["127.0.0.9"].failures != 1 {
		t.Fatalf("a day later: wait %s, %d failures", w, l2.ips["127.0.0.9"].failures)
	}
}

func fmtIP(n int) string { return "127.0.1." + string(rune('0'+n)) }
