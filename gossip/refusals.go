package gossip

import (
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ussync/ussync/session"
)

// Records the store refused, by the peer that sent them (a record message
// names its sender: message.go, "f"). The store counts refusals by reason
// and logs each reason at most once a minute; this says who sends them: a
// member whose clock runs ahead, or one that carries damaged records. Each
// peer is logged at most once a minute, with what it sent since.

// refusalLogEvery is how often one peer's refusals are logged.
const refusalLogEvery = time.Minute

// maxRefusalPeers bounds the peers tracked (a sender's name comes from the
// message; only holders of the cluster key can send one).
const maxRefusalPeers = 1024

// unknownPeer names the sender of a message that names none (an older
// version).
const unknownPeer = "(unnamed)"

type peerRefusals struct {
	total  uint64
	quiet  map[string]uint64 // by reason, since the last log line
	logged time.Time
	last   time.Time
}

type refusalBook struct {
	mu    sync.Mutex
	peers map[string]*peerRefusals
	line  string // the log line
}

// newRefusalBook counts refusals by peer and logs them under line.
func newRefusalBook(line string) *refusalBook {
	return &refusalBook{peers: map[string]*peerRefusals{}, line: line}
}

// recordsRefused is the line of the book of records the store refused.
const recordsRefused = "records from a peer refused (a clock ahead of this node's, or damaged records; logged at most once a minute per peer)"

// answersRefused is the line of the book of anti-entropy answers refused
// (receiveDiffer).
const answersRefused = "anti-entropy answers from a peer refused (not the answer its round awaits: a bug, or a member of another version; logged at most once a minute per peer)"

// add counts the refusals of records sent by from, and logs them unless the
// peer was logged less than refusalLogEvery ago.
func (b *refusalBook) add(log *slog.Logger, from string, refused []session.Refusal, now time.Time) {
	if len(refused) == 0 {
		return
	}
	reasons := make([]string, len(refused))
	for i, r := range refused {
		reasons[i] = session.RefusalReason(r.Err)
	}
	b.note(log, from, reasons, refused[0].Err, now)
}

// note counts refusals of what from sent, one a reason, and logs them (err
// the first one's) unless the peer was logged less than refusalLogEvery
// ago.
func (b *refusalBook) note(log *slog.Logger, from string, reasons []string, err error, now time.Time) {
	if from == "" {
		from = unknownPeer
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.peers[from]
	if p == nil {
		if len(b.peers) >= maxRefusalPeers {
			b.dropQuietestLocked()
		}
		p = &peerRefusals{quiet: map[string]uint64{}}
		b.peers[from] = p
	}
	for _, r := range reasons {
		p.total++
		p.quiet[r]++
	}
	p.last = now
	if d := now.Sub(p.logged); !p.logged.IsZero() && d >= 0 && d < refusalLogEvery {
		return
	}
	attrs := []any{"peer", from, "total", p.total, "err", err}
	names := make([]string, 0, len(p.quiet))
	for r := range p.quiet {
		names = append(names, r)
	}
	sort.Strings(names)
	for _, r := range names {
		attrs = append(attrs, r, p.quiet[r])
	}
	log.Warn(b.line, attrs...)
	p.logged = now
	clear(p.quiet)
}

func (b *refusalBook) dropQuietestLocked() {
	oldest := ""
	for name, p := range b.peers {
		if oldest == "" || p.last.Before(b.peers[oldest].last) {
			oldest = name
		}
	}
	delete(b.peers, oldest)
}

// counts returns how many records from each peer were refused.
func (b *refusalBook) counts() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]uint64, len(b.peers))
	for name, p := range b.peers {
		out[name] = p.total
	}
	return out
}

// RefusedFrom returns how many records the store refused from each peer
// since this node started, by the peer's name; a message that named no
// sender (an older version) counts under "(unnamed)".
func (g *Gossip) RefusedFrom() map[string]uint64 { return g.refusals.counts() }
