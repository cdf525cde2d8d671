package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// The push/pull scenario: the bytes of one anti-entropy exchange between
// two in-sync nodes.

// PushPullResult is one push/pull between two in-sync nodes.
type PushPullResult struct {
	Sessions int `json:"sessions"`
	Users    int `json:"users"`
	// FillSeconds is how long writing the records into both stores took.
	FillSeconds float64 `json:"fill_seconds"`
	// Seconds is the measured window: from SyncWith until both sides had
	// compared digests and gossip was quiet again.
	Seconds float64 `json:"seconds"`
	// BytesInitiator and BytesPeer are what each side sent in the window,
	// background subtracted; Total is their sum.
	BytesInitiator int64 `json:"bytes_initiator"`
	BytesPeer      int64 `json:"bytes_peer"`
	Total          int64 `json:"bytes_total"`
	// Background is what both sent in a quiet window of the same length
	// without a push/pull (subtracted above; probes are off, so it should
	// be 0).
	Background int64 `json:"background_bytes"`
	// Repaired is the number of buckets anti-entropy found different (0 when
	// the nodes really were in sync).
	Repaired uint64 `json:"buckets_repaired"`
	Target   int64  `json:"target_bytes"`
}

// PushPull starts two nodes with probes and periodic push/pull slowed to
// once an hour, writes the same opts.Sessions sessions (and one user per
// ten sessions) straight into both stores, checks their digests are equal,
// waits for gossip to go quiet, then triggers exactly one push/pull and
// counts the gossip bytes each side sent for it. A quiet window of the same
// length without a push/pull is measured too and subtracted.
// It is long on purpose: one scenario's steps in the order they run,
// sharing the figures they measure; split, the story would be spread out.
func PushPull(ctx context.Context, opts Options) (PushPullResult, error) {
	opts = opts.withDefaults()
	res := PushPullResult{Sessions: opts.Sessions, Users: max(1, opts.Sessions/10), Target: TargetPushPullBytes}
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("pushpull: starting 2 nodes")
		c := newCluster(h, opts)
		c.TuneGossip = func(_ int, g *gossip.Config) {
			tuneTimers(opts.Timers, g)
			g.ProbeInterval = slowTimer
			g.PushPullInterval = slowTimer
		}
		c.Start(2)
		a, b := c.Members[0], c.Members[1]

		opts.progressf("pushpull: writing %d sessions and %d users into both stores", res.Sessions, res.Users)
		start := time.Now()
		recs := syntheticRecords(res.Users, res.Sessions, time.Now())
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, m := range []*nodetest.Member{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for lo := 0; lo < len(recs) && ctx.Err() == nil; lo += fillBatch {
					if _, err := m.Store().Apply(recs[lo:min(lo+fillBatch, len(recs))]...); err != nil {
						errs[i] = fmt.Errorf("fill the store of %s: %w", m.Name(), err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(append(errs, ctx.Err())...); err != nil {
			return err
		}
		res.FillSeconds = time.Since(start).Seconds()
		if a.Store().Digest() != b.Store().Digest() {
			return errors.New("the two stores hold the same records but their digests differ")
		}
		for _, m := range c.Members {
			if _, s := m.Store().Counts(); s != res.Sessions {
				return fmt.Errorf("%s holds %d sessions, not %d", m.Name(), s, res.Sessions)
			}
		}

		opts.progressf("pushpull: waiting for gossip to go quiet")
		bytesSent := func() (int64, int64) {
			return int64(a.Gossip().Stats().BytesSent), int64(b.Gossip().Stats().BytesSent)
		}
		quiet := func(limit time.Duration) error {
			deadline := time.Now().Add(limit)
			la, lb := bytesSent()
			since := time.Now()
			for time.Since(since) < quietFor {
				if time.Now().After(deadline) {
					return fmt.Errorf("gossip still sending after %v", limit)
				}
				time.Sleep(10 * time.Millisecond)
				if na, nb := bytesSent(); na != la || nb != lb {
					la, lb, since = na, nb, time.Now()
				}
			}
			return nil
		}
		if err := quiet(30 * time.Second); err != nil {
			return err
		}

		opts.progressf("pushpull: one push/pull from %s to %s", a.Name(), b.Name())
		sa, sb := a.Gossip().Stats(), b.Gossip().Stats()
		t0 := time.Now()
		if err := a.Gossip().SyncWith(b.GossipAddr()); err != nil {
			return fmt.Errorf("push/pull: %w", err)
		}
		c.WaitFor(10*time.Second, "both sides to compare digests", func() bool {
			return a.Gossip().Stats().AERounds > sa.AERounds && b.Gossip().Stats().AERounds > sb.AERounds
		})
		// Whatever the exchange caused (a repair, if the digests differed)
		// is over when gossip is quiet again; quietFor of silence is in the
		// window, and so in the background window too.
		if err := quiet(30 * time.Second); err != nil {
			return err
		}
		window := time.Since(t0)
		ea, eb := a.Gossip().Stats(), b.Gossip().Stats()
		res.Seconds = window.Seconds()
		res.Repaired = ea.BucketsRepaired - sa.BucketsRepaired + eb.BucketsRepaired - sb.BucketsRepaired

		opts.progressf("pushpull: quiet window of %v", window.Round(time.Millisecond))
		qa, qb := bytesSent()
		select {
		case <-time.After(window):
		case <-ctx.Done():
			return ctx.Err()
		}
		qa2, qb2 := bytesSent()
		res.Background = qa2 - qa + qb2 - qb
		// The background is split evenly: it is 0 unless something other
		// than the push/pull ran, and then it is an estimate anyway.
		res.BytesInitiator = int64(ea.BytesSent-sa.BytesSent) - res.Background/2
		res.BytesPeer = int64(eb.BytesSent-sb.BytesSent) - (res.Background - res.Background/2)
		res.Total = res.BytesInitiator + res.BytesPeer
		return nil
	})
	return res, err
}

// syntheticRecords returns users users and sessions sessions, alive and
// replicated, spread over the users; the same arguments give the same
// records.
func syntheticRecords(users, sessions int, now time.Time) []session.Record {
	recs := make([]session.Record, 0, users+sessions)
	syntheticRange(users, sessions, now, 0, users+sessions, func(r session.Record) { recs = append(recs, r) })
	return recs
}

// syntheticRange calls fn with records lo to hi-1 of syntheticRecords
// (users first, then sessions), without holding them all.
func syntheticRange(users, sessions int, now time.Time, lo, hi int, fn func(session.Record)) {
	base := now.UnixMilli() - int64(sessions) - 1000
	expires := now.Add(30 * 24 * time.Hour).UnixMilli()
	for i := lo; i < hi && i < users; i++ {
		at := session.MakeHLC(base, uint16(i%1000))
		fn(session.Record{User: &session.User{
			Email:       userEmail(i),
			Login:       session.Set(fmt.Sprintf("user%d", i), at, "n0"),
			DisplayName: session.Set(fmt.Sprintf("User %d", i), at, "n0"),
			Verified:    session.Set(session.Verification{OK: true, Method: session.VerifiedRegistration}, at, "n0"),
			Created:     at,
		}})
	}
	for j := max(lo, users); j < hi && j < users+sessions; j++ {
		i := j - users
		fn(session.Record{Session: &session.Session{
			ID:        syntheticSessionID(i),
			Email:     userEmail(i % users),
			Site:      fmt.Sprintf("n%d", i%2),
			IP:        fmt.Sprintf("192.0.2.%d", 1+i%250),
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64) ussync-bench",
			Created:   session.MakeHLC(base+int64(i), 0),
			ExpiresAt: expires,
		}})
	}
}

// syntheticSessionID is the id of the i-th session of syntheticRecords.
func syntheticSessionID(i int) string {
	sum := sha256.Sum256([]byte("ussync-bench-session-" + strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

// fillStore writes syntheticRecords(users, sessions, now) into a new store
// in dir, fillBatch records at a time, and closes it.
func fillStore(ctx context.Context, dir string, users, sessions int, now time.Time, log *slog.Logger) error {
	st, err := session.Open(session.Options{Dir: dir, Logger: log})
	if err != nil {
		return fmt.Errorf("open the store to fill: %w", err)
	}
	total := users + sessions
	batch := make([]session.Record, 0, fillBatch)
	for lo := 0; lo < total && ctx.Err() == nil; lo += fillBatch {
		batch = batch[:0]
		syntheticRange(users, sessions, now, lo, min(lo+fillBatch, total), func(r session.Record) { batch = append(batch, r) })
		if _, err := st.Apply(batch...); err != nil {
			st.Close()
			return fmt.Errorf("fill the store: %w", err)
		}
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("close the filled store: %w", err)
	}
	return ctx.Err()
}

// WritePushPull writes the push/pull table.
func WritePushPull(w io.Writer, r PushPullResult) {
	fmt.Fprintf(w, "\nPUSHPULL  one push/pull between 2 in-sync nodes holding %d sessions and %d users each\n", r.Sessions, r.Users)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET")
	fmt.Fprintf(tw, "bytes sent by n0 (initiator)\t%d\t\n", r.BytesInitiator)
	fmt.Fprintf(tw, "bytes sent by n1\t%d\t\n", r.BytesPeer)
	fmt.Fprintf(tw, "total\t%d B (%.1f KB)\t<= %d KB: %s\n", r.Total, float64(r.Total)/1024, r.Target>>10, sizedVerdict(r.Total <= r.Target, r.Sessions, TargetPushPullSessions))
	fmt.Fprintf(tw, "buckets repaired\t%d\t0 (in sync)\n", r.Repaired)
	fmt.Fprintf(tw, "background\t%d B in a quiet window of the same length (%.3fs), subtracted\t\n", r.Background, r.Seconds)
	fmt.Fprintf(tw, "probes\toff: probe and push/pull intervals set to %v for this scenario\t\n", slowTimer)
	fmt.Fprintf(tw, "filling both stores took\t%.1fs\t\n", r.FillSeconds)
	tw.Flush()
}
