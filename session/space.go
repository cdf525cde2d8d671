package session

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Badger writes its write-ahead log and its tables through memory-mapped
// files, created sparse: on a full filesystem a write to one of their pages
// is not an error but a SIGBUS, and the process dies mid-commit. So the
// store refuses every write (ErrStorageFull) while the filesystem of its
// directory has less free space than a reserve that covers what Badger may
// take between two checks (one memtable flushed to a table, a compaction's
// output), and checks before each write. Reads go on. Once space returns,
// writes are accepted again; what peers sent meanwhile comes back by
// anti-entropy, and what the API refused was never acknowledged.

// ErrStorageFull means the store refused a write because the filesystem of
// its directory has less free space than Options.MinFree.
var ErrStorageFull = errors.New("storage full")

// DefaultMinFree is Options.MinFree's default: 64 MiB, four times the
// memtable, which covers a flush and a compaction's output.
const DefaultMinFree = 64 << 20

// space watches the free space of the store's filesystem.
type space struct {
	dir     string
	min     uint64 // 0: never refuse (in-memory stores)
	log     *slog.Logger
	free    func(dir string) (uint64, error)
	full    atomic.Bool
	refused atomic.Uint64

	mu     sync.Mutex
	logged time.Time
}

func newSpace(dir string, minFree int64, free func(string) (uint64, error), log *slog.Logger) *space {
	if free == nil {
		free = freeBytes
	}
	sp := &space{dir: dir, log: log, free: free}
	if minFree > 0 {
		sp.min = uint64(minFree)
	}
	return sp
}

// check returns ErrStorageFull (wrapped, with the figures) when a write
// must be refused, and counts it; nil otherwise. A filesystem whose free
// space cannot be read is not refused for it.
func (sp *space) check() error {
	free, full := sp.measure()
	if !full {
		return nil
	}
	sp.refused.Add(1)
	return fmt.Errorf("%w: %s free in the data dir's filesystem, under the %s the store keeps in reserve", ErrStorageFull, bytesString(free), bytesString(sp.min))
}

// measure reads the free space and whether it is under the reserve, and
// logs the moves in and out of full (and, while full, once a minute).
func (sp *space) measure() (free uint64, full bool) {
	if sp.min == 0 {
		return 0, false
	}
	free, err := sp.free(sp.dir)
	if err != nil {
		return 0, false
	}
	if free >= sp.min {
		if sp.full.Swap(false) {
			sp.log.Warn("storage: free space is back; the store writes again", "dir", sp.dir, "free_bytes", free)
		}
		return free, false
	}
	was := sp.full.Swap(true)
	sp.mu.Lock()
	due := !was || time.Since(sp.logged) >= time.Minute
	if due {
		sp.logged = time.Now()
	}
	sp.mu.Unlock()
	if due {
		sp.log.Error("storage full: the data dir's filesystem has less free space than the store keeps in reserve; every write is refused (503 storage_full) until space is freed (logged once a minute)",
			"dir", sp.dir, "free_bytes", free, "reserve_bytes", sp.min)
	}
	return free, true
}

// Space is the free space of the store's filesystem, as last measured by a
// write, and whether writes are being refused for want of it.
type Space struct {
	Free    uint64 // bytes available to the node's user; 0 when unknown
	Reserve uint64 // Options.MinFree; 0 for an in-memory store
	Full    bool   // writes are refused (ErrStorageFull)
	Refused uint64 // writes refused since the store opened
}

// Space measures the free space of the store's filesystem now, and
// whether writes are refused (it updates that state, as a write would).
func (s *Store) Space() Space {
	sp := s.space
	if sp.min == 0 {
		return Space{}
	}
	free, full := sp.measure()
	return Space{Free: free, Reserve: sp.min, Full: full, Refused: sp.refused.Load()}
}

func bytesString(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
