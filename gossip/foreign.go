package gossip

import (
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Undecryptable gossip is counted per source and logged sampled: at most
// one line per source per foreignLogEvery, carrying the counts since the
// previous line, and at most maxForeignLines lines per foreignLogEvery in
// all: a source is a host:port, so packets from many ports (or spoofed
// addresses: UDP's source is whatever the sender writes) would otherwise
// write a line each, and anyone who can reach the gossip port could fill
// the disk with them. The next line says how many were left out. A source
// is forgotten foreignWindow after it was last heard; at most
// maxForeignSources are tracked (the least recently heard one makes room),
// the totals in Stats count them all.
const (
	foreignWindow     = 5 * time.Minute
	foreignLogEvery   = time.Minute
	maxForeignSources = 256
	maxForeignLines   = 10
)

// ForeignSource is one source of gossip traffic this member cannot
// decrypt, or one address that answered it in another key.
type ForeignSource struct {
	// Addr is where it came from: the host:port a packet came from, the host
	// an inbound stream came from, or the host:port this member dialled.
	Addr string
	// Packets and Streams count what arrived from Addr that no installed key
	// decrypts (or that was not encrypted, or was over the size limit).
	Packets, Streams uint64
	// Answered: this member opened a stream to Addr (joining it, or
	// reconnecting to it as a member) and the answer was sealed in a key
	// this member does not hold.
	Answered bool
	// Member: Addr is a live or failed member's address, a remembered
	// member's or a join address, not a stranger's.
	Member bool
	// Plausible: what came looked like memberlist traffic (another
	// cluster's, or this cluster's under another key), not noise.
	Plausible bool
	// First and Last are when it was first and last heard.
	First, Last time.Time
}

type foreignEntry struct {
	ForeignSource
	logged       time.Time
	sinceLogPkts uint64
	sinceLogStrm uint64
}

// foreignLog tracks ForeignSources.
type foreignLog struct {
	log *slog.Logger
	now func() time.Time

	packets, streams, answers atomic.Uint64

	mu      sync.Mutex
	sources map[string]*foreignEntry
	// The lines of the current foreignLogEvery window, and the lines left
	// out in it past maxForeignLines.
	window  time.Time
	lines   int
	leftOut int
}

// lineLocked reports whether a line may be written now, and how many were
// left out in the window before (said in the line).
func (f *foreignLog) lineLocked(now time.Time) (ok bool, leftOut int) {
	if now.Sub(f.window) >= foreignLogEvery {
		leftOut, f.window, f.lines, f.leftOut = f.leftOut, now, 0, 0
	}
	if f.lines >= maxForeignLines {
		f.leftOut++
		return false, 0
	}
	f.lines++
	return true, leftOut
}

func newForeignLog(log *slog.Logger, now func() time.Time) *foreignLog {
	return &foreignLog{log: log, now: now, sources: map[string]*foreignEntry{}}
}

// entryLocked returns addr's entry, making room for it if needed.
func (f *foreignLog) entryLocked(addr string, now time.Time) *foreignEntry {
	e := f.sources[addr]
	if e != nil && now.Sub(e.Last) > foreignWindow {
		delete(f.sources, addr)
		e = nil
	}
	if e == nil {
		if len(f.sources) >= maxForeignSources {
			var oldest string
			for a, o := range f.sources {
				if oldest == "" || o.Last.Before(f.sources[oldest].Last) {
					oldest = a
				}
			}
			delete(f.sources, oldest)
		}
		e = &foreignEntry{ForeignSource: ForeignSource{Addr: addr, First: now}}
		f.sources[addr] = e
	}
	e.Last = now
	return e
}

// note counts one undecryptable packet (or stream) from addr.
func (f *foreignLog) note(addr string, packet, plausible bool) {
	if packet {
		f.packets.Add(1)
	} else {
		f.streams.Add(1)
	}
	now := f.now()
	f.mu.Lock()
	e := f.entryLocked(addr, now)
	if packet {
		e.Packets++
		e.sinceLogPkts++
	} else {
		e.Streams++
		e.sinceLogStrm++
	}
	e.Plausible = e.Plausible || plausible
	var pk, st uint64
	var leftOut int
	due := e.logged.IsZero() || now.Sub(e.logged) >= foreignLogEvery
	if due {
		if due, leftOut = f.lineLocked(now); due {
			pk, st = e.sinceLogPkts, e.sinceLogStrm
			e.logged, e.sinceLogPkts, e.sinceLogStrm = now, 0, 0
		}
	}
	f.mu.Unlock()
	if due {
		args := []any{"source", addr, "packets", pk, "streams", st}
		if leftOut > 0 {
			args = append(args, "sources_left_out_before", leftOut)
		}
		f.log.Warn("gossip traffic that no installed key decrypts: a node with another cluster secret, or not a ussync node (logged at most once a minute per source, ten sources a minute)", args...)
	}
}

// answered records that addr, dialled by this member, answered in another
// key (or not encrypted at all).
func (f *foreignLog) answered(addr string) {
	f.answers.Add(1)
	now := f.now()
	f.mu.Lock()
	e := f.entryLocked(addr, now)
	e.Answered, e.Plausible = true, true
	due := e.logged.IsZero() || now.Sub(e.logged) >= foreignLogEvery
	if due {
		e.logged = now
	}
	f.mu.Unlock()
	if due {
		f.log.Error("a gossip peer answers in another cluster key: this node's secret is not the one that peer uses (compare the key fingerprints `ussync status` prints on both; logged at most once a minute per peer)",
			"peer", addr)
	}
}

// clear forgets that addr answered in another key: it answers in ours now.
func (f *foreignLog) clear(addr string) {
	f.mu.Lock()
	if e := f.sources[addr]; e != nil && e.Answered {
		delete(f.sources, addr)
	}
	f.mu.Unlock()
}

// list returns the sources heard within foreignWindow, most recent first,
// with Member set by known (an address or a bare host).
func (f *foreignLog) list(known func(addr string) bool) []ForeignSource {
	now := f.now()
	f.mu.Lock()
	out := make([]ForeignSource, 0, len(f.sources))
	for a, e := range f.sources {
		if now.Sub(e.Last) > foreignWindow {
			delete(f.sources, a)
			continue
		}
		out = append(out, e.ForeignSource)
	}
	f.mu.Unlock()
	for i := range out {
		out[i].Member = known(out[i].Addr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out
}

// keyMismatch reports whether sources show a peer with another key: one
// that answered in it, or a member's address sending what looks like
// memberlist traffic none of our keys opens. Noise from strangers is not.
func keyMismatch(sources []ForeignSource) bool {
	for _, s := range sources {
		if s.Answered || s.Member && s.Plausible {
			return true
		}
	}
	return false
}

// hostOf returns the host of host:port, or addr itself.
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
