package bench

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/session"
)

// The footprint scenario: what a million sessions cost a node in memory
// and on disk, and how long its store takes to open after a restart.

// Targets of the footprint scenario.
const (
	TargetRSSPerSession  = 1024 // bytes of resident memory
	TargetDiskPerSession = 500  // bytes on disk
	TargetOpen           = 5 * time.Second
	// TargetFootprintSessions is the store's size the targets above are
	// set for.
	TargetFootprintSessions = 1_000_000
)

// footprintChecks is how many session checks run after the open, so that
// what a serving node keeps warm is counted.
const footprintChecks = 10_000

// FootprintResult is one store of Sessions sessions.
type FootprintResult struct {
	Sessions int `json:"sessions"`
	Users    int `json:"users"`
	// FillSeconds is how long writing the records took.
	FillSeconds float64 `json:"fill_seconds"`
	// Disk is the store's size on disk once closed (every file of the data
	// directory).
	Disk int64 `json:"disk_bytes"`
	// OpenSeconds is how long session.Open took on the closed store (a
	// node's restart: the store is what takes time).
	OpenSeconds float64 `json:"open_seconds"`
	// RSS and Heap are what the open store added to this process's
	// resident set and Go heap, after footprintChecks session checks;
	// RSSAfter the resident set then.
	RSS      int64 `json:"rss_bytes"`
	Heap     int64 `json:"heap_bytes"`
	RSSAfter int64 `json:"rss_after_bytes"`
}

// Footprint fills a store with opts.FootprintSessions sessions (one user per
// five), closes it, measures it on disk, opens it again (timed), reads
// footprintChecks sessions and measures what the open store holds in
// memory.
func Footprint(ctx context.Context, opts Options) (FootprintResult, error) {
	opts = opts.withDefaults()
	res := FootprintResult{Sessions: opts.FootprintSessions, Users: max(1, opts.FootprintSessions/5)}
	err := withCluster(opts, func(h *harness) error {
		dir := h.TempDir()
		quiet := slog.New(slog.DiscardHandler)
		opts.progressf("footprint: writing %d sessions and %d users", res.Sessions, res.Users)
		start := time.Now()
		now := time.Now()
		if err := fillStore(ctx, dir, res.Users, res.Sessions, now, quiet); err != nil {
			return err
		}
		res.FillSeconds = time.Since(start).Seconds()
		var err error
		if res.Disk, err = dirSize(dir); err != nil {
			return err
		}
		heap0, rss0 := settledHeap()
		opts.progressf("footprint: opening the store")
		start = time.Now()
		st, err := session.Open(session.Options{Dir: dir, Logger: quiet})
		if err != nil {
			return err
		}
		res.OpenSeconds = time.Since(start).Seconds()
		defer st.Close()
		var ids []string
		syntheticRange(res.Users, res.Sessions, now, res.Users, res.Users+min(res.Sessions, footprintChecks), func(r session.Record) {
			ids = append(ids, r.Session.ID)
		})
		for i := range footprintChecks {
			if _, err := st.Session(ids[i%len(ids)]); err != nil {
				return fmt.Errorf("read a session back: %w", err)
			}
		}
		heap1, rss1 := settledHeap()
		res.RSS, res.Heap, res.RSSAfter = rss1-rss0, heap1-heap0, rss1
		return ctx.Err()
	})
	return res, err
}

// dirSize sums the sizes of the files under dir (allocated blocks, as du
// counts them, where the OS says).
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += allocated(info)
		return nil
	})
	return n, err
}

// WriteFootprint writes the footprint table.
func WriteFootprint(w io.Writer, r FootprintResult) {
	fmt.Fprintf(w, "\nFOOTPRINT  one store of %d sessions and %d users (filled in %.1fs)\n", r.Sessions, r.Users, r.FillSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tPER SESSION\tTARGET")
	per := func(b int64) float64 { return float64(b) / float64(max(1, r.Sessions)) }
	fmt.Fprintf(tw, "disk\t%s\t%.0f B\t<= %d B: %s\n", mib(r.Disk), per(r.Disk), TargetDiskPerSession,
		sizedVerdict(per(r.Disk) <= TargetDiskPerSession, r.Sessions, TargetFootprintSessions))
	rssVerdict := sizedVerdict(per(r.RSS) <= TargetRSSPerSession, r.Sessions, TargetFootprintSessions)
	if r.RSS <= 0 || r.Heap <= 0 {
		// The process gave back more than the store took: memory of the
		// scenarios before this one, returned to the OS meanwhile.
		rssVerdict = "NOT MEASURED (the process returned other scenarios' memory meanwhile: run --scenario footprint alone)"
	}
	fmt.Fprintf(tw, "resident memory of the open store\t%s (Go heap %s; process %s)\t%.0f B\t<= %d B: %s\n", mib(r.RSS), mib(r.Heap), mib(r.RSSAfter),
		per(r.RSS), TargetRSSPerSession, rssVerdict)
	fmt.Fprintf(tw, "open after a restart\t%.2fs\t\t<= %.0fs: %s\n", r.OpenSeconds, TargetOpen.Seconds(),
		sizedVerdict(r.OpenSeconds <= TargetOpen.Seconds(), r.Sessions, TargetFootprintSessions))
	tw.Flush()
	fmt.Fprintf(w, "  memory: the process's resident set and Go heap after opening the store and %d session checks, less before (garbage collected and returned to the OS each time)\n", footprintChecks)
}

// allocated is a file's size on disk: its allocated blocks where the OS
// says (a sparse or preallocated file), else its length.
func allocated(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return info.Size()
}
