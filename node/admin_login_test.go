package node_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// adminFrom is an admin browser whose connections come from the loopback
// address ip (any of 127.0.0.0/8 reaches a loopback listener on Linux).
func adminFrom(t *testing.T, m *nodetest.Member, ip string) *adminBrowser {
	t.Helper()
	b := adminOpen(t, m)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	b.c.Transport = &http.Transport{DialContext: d.DialContext}
	return b
}

// TestAdmin_LoginLimiter: failed logins are counted for the one admin
// account, whatever address they come from: rotating through 127.x
// addresses gains nothing, and the wait doubles with each failure. A local
// user guessing cannot lock the administrator out: a browser that logged
// in before is counted on its own.
func TestAdmin_LoginLimiter(t *testing.T) {
	c := nodetest.New(t)
	clock := session.NewManualClock(time.Now())
	c.Clock = func(int) func() time.Time { return clock.Now }
	c.Start(1)
	m := c.Members[0]

	admin := adminFrom(t, m, "127.0.0.1")
	admin.login(c.Token)
	admin.post("/admin/logout", url.Values{"csrf": {admin.csrf(admin.page("/admin/sessions"))}})

	guess := func(ip, secret string) adminAnswer {
		t.Helper()
		x := adminFrom(t, m, ip)
		form := x.page("/admin/login")
		return x.post("/admin/login", url.Values{"secret": {secret}, "csrf": {x.csrf(form)}})
	}
	ip := func(i int) string { return fmt.Sprintf("127.0.%d.%d", 1+i/200, 1+i%200) }
	for i := range 5 {
		if ans := guess(ip(i), fmt.Sprintf("guess-%d-xxxxxxxxxxxx", i)); ans.Status != http.StatusUnauthorized {
			t.Fatalf("guess %d from %s: %d, want 401", i, ip(i), ans.Status)
		}
	}

	t.Run("a new address does not escape the account's backoff", func(t *testing.T) {
		ans := guess(ip(5), c.Token) // the right token, even
		if ans.Status != http.StatusTooManyRequests || ans.Header.Get("Retry-After") != "1" {
			t.Fatalf("after 5 failures from 5 addresses, the 6th address: %d Retry-After %q, want 429 after 1 s", ans.Status, ans.Header.Get("Retry-After"))
		}
	})
	t.Run("the wait doubles", func(t *testing.T) {
		for n, want := range []string{"2", "4", "8"} {
			clock.Add(time.Duration(1<<n) * time.Second) // the last wait, passed
			if ans := guess(ip(10+n), "guess-again-xxxxxxxxxxx"); ans.Status != http.StatusUnauthorized {
				t.Fatalf("a guess after the wait: %d, want 401", ans.Status)
			}
			if ans := guess(ip(20+n), "guess-again-xxxxxxxxxxx"); ans.Status != http.StatusTooManyRequests || ans.Header.Get("Retry-After") != want {
				t.Fatalf("right after failure %d: %d Retry-After %q, want 429 after %s s", 6+n, ans.Status, ans.Header.Get("Retry-After"), want)
			}
		}
	})
	t.Run("the administrator's browser is not locked out", func(t *testing.T) {
		admin.login(c.Token)
		admin.page("/admin/users")
	})
	t.Run("a browser never logged in here still waits", func(t *testing.T) {
		if ans := guess("127.0.0.1", c.Token); ans.Status != http.StatusTooManyRequests {
			t.Fatalf("a fresh browser with the right token during the backoff: %d, want 429", ans.Status)
		}
	})
}
