package session

import (
	"fmt"
	"sync"
	"time"
)

// HLC is a hybrid logical clock timestamp: physical Unix milliseconds in the
// upper 48 bits and a logical counter in the lower 16. The packing makes the
// order of timestamps the order of plain integers. The zero HLC means "never".
type HLC uint64

const logicalBits = 16

// MakeHLC packs a wall time in Unix milliseconds and a logical counter.
func MakeHLC(wallMs int64, logical uint16) HLC {
	return HLC(uint64(wallMs)<<logicalBits | uint64(logical))
}

// WallMs is the physical part of h, in Unix milliseconds.
func (h HLC) WallMs() int64 { return int64(uint64(h) >> logicalBits) }

// Logical is the logical counter of h.
func (h HLC) Logical() uint16 { return uint16(h) }

// Time is the physical part of h as a time.Time in UTC (zero for the zero HLC).
func (h HLC) Time() time.Time {
	if h == 0 {
		return time.Time{}
	}
	return time.UnixMilli(h.WallMs()).UTC()
}

// String formats h as wall.logical, for logs and tests.
func (h HLC) String() string { return fmt.Sprintf("%d.%d", h.WallMs(), h.Logical()) }

// DefaultMaxOffset is the largest offset between two nodes' wall clocks the
// cluster tolerates by default (Options.MaxOffset): a timestamp further
// ahead of this node's wall clock is refused. NTP keeps honest clocks within
// tens of milliseconds of each other; five seconds leaves room for a clock
// that has just been stepped, and is what crypto.MaxClockSkew allows for
// tickets.
const DefaultMaxOffset = 5 * time.Second

// MaxHLC is the greatest timestamp. The clock saturates there instead of
// wrapping to zero, which it could only reach if its wall clock read the year
// 10889 (the 48-bit physical part, in milliseconds).
const MaxHLC HLC = 1<<64 - 1

// maxWallMs is the greatest physical part an HLC holds.
const maxWallMs = 1<<(64-logicalBits) - 1

// Clock issues HLC timestamps that are strictly increasing and greater than
// every timestamp it has observed, after the hybrid logical clock of
// Kulkarni et al. ("Logical Physical Clocks", 2014) as cockroach's
// pkg/util/hlc implements it. Like cockroach's UpdateAndCheckMaxOffset, it
// refuses to observe a timestamp more than its max offset ahead of its wall
// clock: one such timestamp, once observed, would drag every later write
// into the future for good (and 2^64-1 would wrap the clock to zero). It
// never goes backwards, whatever the wall clock does, and never wraps. It is
// safe for concurrent use.
type Clock struct {
	now       func() time.Time
	maxOffset time.Duration
	mu        struct {
		sync.Mutex
		last HLC
	}
}

// NewClock returns a clock reading physical time from now (time.Now if nil)
// that refuses timestamps more than maxOffset ahead of it (DefaultMaxOffset
// if maxOffset <= 0).
func NewClock(now func() time.Time, maxOffset time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	if maxOffset <= 0 {
		maxOffset = DefaultMaxOffset
	}
	return &Clock{now: now, maxOffset: maxOffset}
}

// physical is the wall time t as an HLC with a zero logical part, clamped to
// what an HLC holds.
func physical(t time.Time) HLC {
	return MakeHLC(min(max(t.UnixMilli(), 0), maxWallMs), 0)
}

// Now returns a new timestamp, greater than any issued or observed before
// (equal to the last one only once the clock has saturated at MaxHLC).
func (c *Clock) Now() HLC {
	pt := physical(c.now())
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case pt > c.mu.last:
		c.mu.last = pt
	case c.mu.last < MaxHLC:
		// Same millisecond (or the wall clock went back): count logically.
		// An overflow of the counter carries into the wall part, which is
		// still strictly increasing.
		c.mu.last++
	}
	return c.mu.last
}

// Observe records a timestamp received from another node, so that every
// later Now is greater than it. A timestamp more than the max offset ahead
// of the wall clock is not observed: Observe returns an error wrapping
// ErrClockAhead and the clock is unchanged.
func (c *Clock) Observe(h HLC) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkLocked(h, now); err != nil {
		return err
	}
	if h > c.mu.last {
		c.mu.last = h
	}
	return nil
}

// Check reports, without observing h, whether Observe would refuse it: nil,
// or an error wrapping ErrClockAhead. A timestamp the clock has already
// reached is never refused (so a wall clock stepped back does not make the
// node refuse its own writes).
func (c *Clock) Check(h HLC) error {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkLocked(h, now)
}

func (c *Clock) checkLocked(h HLC, now time.Time) error {
	if h <= c.mu.last {
		return nil
	}
	return checkOffset(h.WallMs(), now, c.maxOffset)
}

// CheckTime reports whether t (a ticket's issue time, say) is more than the
// max offset ahead of the wall clock: nil, or an error wrapping
// ErrClockAhead.
func (c *Clock) CheckTime(t time.Time) error {
	return checkOffset(t.UnixMilli(), c.now(), c.maxOffset)
}

func checkOffset(wallMs int64, now time.Time, maxOffset time.Duration) error {
	ahead := time.Duration(wallMs-now.UnixMilli()) * time.Millisecond
	if ahead <= maxOffset {
		return nil
	}
	return fmt.Errorf("%w: %s is %s ahead of this node's clock (max offset %s)",
		ErrClockAhead, time.UnixMilli(wallMs).UTC().Format(time.RFC3339Nano), ahead, maxOffset)
}

// MaxOffset is the largest offset ahead of the wall clock the clock accepts.
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Last is the greatest timestamp issued or observed so far.
func (c *Clock) Last() HLC {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.last
}

// ManualClock is a wall clock moved by hand, for tests that drive expiry,
// retention and rate limits (as cockroach's hlc.ManualClock). Pass its Now
// as Options.Now. It is safe for concurrent use.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a clock stopped at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

// Now is the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Add moves the clock by d.
func (c *ManualClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
