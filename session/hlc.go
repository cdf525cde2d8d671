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

// Clock issues HLC timestamps that are strictly increasing and greater than
// every timestamp it has observed. It is safe for concurrent use.
type Clock struct {
	now func() time.Time
	mu  struct {
		sync.Mutex
		last HLC
	}
}

// NewClock returns a clock reading physical time from now (time.Now if nil).
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Now returns a new timestamp, greater than any issued or observed before.
func (c *Clock) Now() HLC {
	pt := MakeHLC(c.now().UnixMilli(), 0)
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt > c.mu.last {
		c.mu.last = pt
	} else {
		// Same millisecond (or the wall clock went back): count logically.
		// An overflow of the counter carries into the wall part, which is
		// still strictly increasing.
		c.mu.last++
	}
	return c.mu.last
}

// Observe records a timestamp received from another node, so that every
// later Now is greater than it.
func (c *Clock) Observe(h HLC) {
	c.mu.Lock()
	if h > c.mu.last {
		c.mu.last = h
	}
	c.mu.Unlock()
}

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
