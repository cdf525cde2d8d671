package session

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// Refusal is a record Store.ApplyChecked did not merge, and why.
type Refusal struct {
	// Index is the record's position among the call's arguments.
	Index int
	// Key is the record's Key ("" for a record without identity).
	Key string
	// Err wraps ErrInvalidRecord, ErrClockAhead or ErrLifetime.
	Err error
}

// Reasons for refusing a record, as RefusalReason names them (metric labels,
// log fields).
const (
	RefusedInvalid    = "invalid"     // ErrInvalidRecord
	RefusedClockAhead = "clock_ahead" // ErrClockAhead
	RefusedLifetime   = "lifetime"    // ErrLifetime
)

// refusalReasons are the reasons in the order of refusals' counters.
var refusalReasons = [...]string{RefusedInvalid, RefusedClockAhead, RefusedLifetime}

// RefusalReason names the reason an error of Check or ApplyChecked wraps:
// one of the Refused* constants, "" for nil or another error.
func RefusalReason(err error) string {
	switch {
	case errors.Is(err, ErrInvalidRecord):
		return RefusedInvalid
	case errors.Is(err, ErrClockAhead):
		return RefusedClockAhead
	case errors.Is(err, ErrLifetime):
		return RefusedLifetime
	}
	return ""
}

// refusalLogEvery is how often a store logs refusals of one reason: the
// first one, then a summary of those refused since, at most this often.
const refusalLogEvery = time.Minute

// refusals counts the records a store refused, by reason. The counters are
// read concurrently; the log state is the writer goroutine's own.
type refusals struct {
	n      [len(refusalReasons)]atomic.Uint64
	logged [len(refusalReasons)]time.Time
	quiet  [len(refusalReasons)]uint64 // refused since the last log line
}

func (r *refusals) add(log *slog.Logger, rec Record, err error, now time.Time) {
	i := 0
	for i < len(refusalReasons) && refusalReasons[i] != RefusalReason(err) {
		i++
	}
	if i == len(refusalReasons) {
		return
	}
	r.n[i].Add(1)
	r.quiet[i]++
	if d := now.Sub(r.logged[i]); !r.logged[i].IsZero() && d >= 0 && d < refusalLogEvery {
		return
	}
	attrs := []any{"reason", refusalReasons[i], "refused", r.quiet[i], "err", err}
	if rec.Session != nil {
		attrs = append(attrs, "session", rec.Session.ID)
	}
	if rec.Site != nil {
		attrs = append(attrs, "site", rec.Site.Name)
	}
	log.Warn("record refused (counted; logged at most once a minute per reason)", attrs...)
	r.logged[i], r.quiet[i] = now, 0
}

// Refused returns how many records the store has refused since it opened,
// by reason (RefusedInvalid, RefusedClockAhead, RefusedLifetime; every
// reason is present).
func (s *Store) Refused() map[string]uint64 {
	out := make(map[string]uint64, len(refusalReasons))
	for i, reason := range refusalReasons {
		out[reason] = s.refusals.n[i].Load()
	}
	return out
}
