package node

import (
	"sync"
	"time"
)

// The admin page's login limiter (docs/admin.md, "Logging in"). The page
// has one account: whichever secret is typed (the API token or the
// password), a wrong one is a guess at it. So failures are counted per
// account, with exponential backoff, wherever they come from: rotating
// source addresses (any of 127.0.0.0/8 reaches a loopback listener) gains
// nothing. Counted per account alone, one local user could lock the
// administrator out; so a browser that has logged in here before carries a
// device cookie (OWASP, "Slow Down Online Guessing Attacks with Device
// Cookies"), and its attempts are counted on that device alone. The client address is
// a secondary signal: its failures are counted too (and logged), and an
// address in backoff stays there when a success elsewhere resets the
// account.

// Backoff of failed admin logins.
const (
	// adminFreeFailures is how many failures a counter allows before the
	// first wait: typing mistakes.
	adminFreeFailures = 5
	// adminBackoffBase is the first wait; each further failure doubles it,
	// up to adminBackoffMax. With a wait of 15 minutes, about a hundred
	// guesses a day get through: nothing against a token of 16 or more
	// random characters, or a bcrypt password of a few words.
	adminBackoffBase = time.Second
	adminBackoffMax  = 15 * time.Minute
	// adminForgetAfter is how long a counter must stay quiet to be forgotten.
	adminForgetAfter = 24 * time.Hour
	// adminMaxTracked bounds the addresses and the devices kept; past it,
	// the ones quiet the longest are dropped.
	adminMaxTracked = 10000
)

// backoff counts failures of one key and says how long the next attempt
// must wait.
type backoff struct {
	failures int
	last     time.Time // of the last failure (or device use)
}

// wait is how long an attempt at now must wait: 0 within the free
// failures, else adminBackoffBase doubled for each failure past them
// (capped at adminBackoffMax), from the last failure.
func (b *backoff) wait(now time.Time) time.Duration {
	if b == nil || b.failures < adminFreeFailures {
		return 0
	}
	d := adminBackoffMax
	if n := b.failures - adminFreeFailures; n < 20 {
		d = min(adminBackoffBase<<n, adminBackoffMax)
	}
	if left := b.last.Add(d).Sub(now); left > 0 {
		return left
	}
	return 0
}

func (b *backoff) fail(now time.Time) {
	if !b.last.IsZero() && now.Sub(b.last) >= adminForgetAfter {
		b.failures = 0
	}
	b.failures++
	b.last = now
}

// loginLimiter is the admin page's limiter. It is safe for concurrent use.
type loginLimiter struct {
	mu      sync.Mutex
	account backoff
	ips     map[string]*backoff
	devices map[string]*backoff // by adminKey of the device cookie
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{ips: map[string]*backoff{}, devices: map[string]*backoff{}}
}

// attempt is one login attempt: its client address and the key of its
// device cookie ("" for none, or one this node did not issue).
type attempt struct {
	ip     string
	device string
}

// known reports whether device is a device cookie this node issued.
func (l *loginLimiter) known(device string) bool {
	if device == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.devices[device]
	return ok
}

// wait is how long attempt a must wait before its secret is checked: its
// device's backoff when it has a device cookie, else the longer of the
// account's and its address's.
func (l *loginLimiter) wait(a attempt, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.devices[a.device]; ok && a.device != "" {
		return d.wait(now)
	}
	return max(l.account.wait(now), l.ips[a.ip].wait(now))
}

// failed counts a wrong secret of attempt a, and returns the failures its
// counters now hold (for the log).
func (l *loginLimiter) failed(a attempt, now time.Time) (account, ip int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d, ok := l.devices[a.device]; ok && a.device != "" {
		d.fail(now)
		return d.failures, 0
	}
	l.account.fail(now)
	b := l.ips[a.ip]
	if b == nil {
		prune(l.ips, now)
		b = &backoff{}
		l.ips[a.ip] = b
	}
	b.fail(now)
	return l.account.failures, b.failures
}

// succeeded clears the counters of attempt a (its device's, or the
// account's and its address's) and remembers device as one that logged in
// here.
func (l *loginLimiter) succeeded(a attempt, device string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.devices[a.device]; ok && a.device != "" {
		delete(l.devices, a.device)
	} else {
		l.account = backoff{}
		delete(l.ips, a.ip)
	}
	prune(l.devices, now)
	l.devices[device] = &backoff{last: now}
}

// prune makes room for one more key in m: it drops the counters quiet for
// adminForgetAfter and, if m is still full, the one quiet the longest.
func prune(m map[string]*backoff, now time.Time) {
	if len(m) < adminMaxTracked {
		return
	}
	oldest := ""
	for k, b := range m {
		if now.Sub(b.last) >= adminForgetAfter {
			delete(m, k)
			continue
		}
		if oldest == "" || b.last.Before(m[oldest].last) {
			oldest = k
		}
	}
	if len(m) >= adminMaxTracked && oldest != "" {
		delete(m, oldest)
	}
}
