package node

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/session"
)

// The node's activity history: every change an operator or a site's
// backend makes through the private API or the admin page (but the logins,
// logouts and checks of everyday traffic, which the session records
// themselves tell), with the name of the token that made it. It is
// node-local (each node records what was asked of it), kept in the store
// for activityRetention and at most activityMax entries, shown by the admin
// page (Activity), GET /v1/activity and the last few by `ussync status`,
// and logged.

const (
	// activityKeyPrefix is where the store keeps the history (node-local).
	activityKeyPrefix = "activity/"
	// activityRetention is how long an entry is kept: long enough to look
	// back over a month of administration.
	activityRetention = 30 * 24 * time.Hour
	// activityMax bounds the entries kept, whatever their age: a backend
	// that updates users in bulk must not fill the store.
	activityMax = 10000
	// activityPruneEvery is how many entries are recorded between two
	// prunings down to activityMax.
	activityPruneEvery = 256
)

// activity records and lists the history. Safe for concurrent use; a nil
// *activity records nothing.
type activity struct {
	store *session.Store
	now   func() time.Time
	log   *slog.Logger

	mu    sync.Mutex
	seq   uint32 // tells apart entries of one millisecond
	since int    // entries recorded since the last pruning
}

func newActivity(store *session.Store, now func() time.Time, log *slog.Logger) *activity {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &activity{store: store, now: now, log: log}
}

// activityKey orders entries newest first: the inverted millisecond, then
// the inverted sequence number.
func activityKey(at time.Time, seq uint32) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], ^uint64(at.UnixMilli()))
	binary.BigEndian.PutUint32(b[8:], ^seq)
	return activityKeyPrefix + hex.EncodeToString(b[:])
}

// record keeps one change and logs it (the subject only when it is not an
// e-mail address: logs carry no addresses). A failure to store it is
// logged, never returned: the change itself was made.
func (a *activity) record(actor, action, subject string) {
	if a == nil {
		return
	}
	e := client.ActivityEntry{At: a.now().UTC(), Actor: actor, Action: action, Subject: subject}
	attrs := []any{"actor", actor, "action", action}
	if subject != "" && !isEmailSubject(action) {
		attrs = append(attrs, "subject", subject)
	}
	a.log.Info("change", attrs...)
	if a.store == nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	a.mu.Lock()
	a.seq++
	key := activityKey(e.At, a.seq)
	a.since++
	prune := a.since >= activityPruneEvery
	if prune {
		a.since = 0
	}
	a.mu.Unlock()
	if err := a.store.LocalPut(key, b, activityRetention); err != nil && !errors.Is(err, session.ErrClosed) {
		a.log.Warn("record activity", "err", err)
	}
	if prune {
		a.prune()
	}
}

// isEmailSubject reports whether an action's subject is an e-mail address.
func isEmailSubject(action string) bool {
	return len(action) > 5 && action[:5] == "user."
}

// errStopScan ends a LocalScan early.
var errStopScan = errors.New("stop")

// recent returns the latest entries, newest first, at most limit.
func (a *activity) recent(limit int) ([]client.ActivityEntry, error) {
	out := []client.ActivityEntry{}
	if a == nil || a.store == nil {
		return out, nil
	}
	err := a.store.LocalScan(activityKeyPrefix, func(_ string, v []byte, _ time.Time) error {
		if len(out) >= limit {
			return errStopScan
		}
		var e client.ActivityEntry
		if json.Unmarshal(v, &e) == nil {
			out = append(out, e)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return out, err
	}
	return out, nil
}

// prune deletes the entries past the activityMax newest.
func (a *activity) prune() {
	var old []string
	n := 0
	err := a.store.LocalScan(activityKeyPrefix, func(key string, _ []byte, _ time.Time) error {
		if n++; n > activityMax {
			old = append(old, key)
		}
		return nil
	})
	if err != nil {
		return
	}
	for _, k := range old {
		if err := a.store.LocalDelete(k); err != nil {
			return
		}
	}
}
