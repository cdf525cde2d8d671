package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"
	"time"
)

// TargetListPage is the admin list's target: one page in at most this long
// with a million sessions in the store.
const TargetListPage = 50 * time.Millisecond

// listRounds is how many calls each row of the list scenario times.
const listRounds = 300

// ListResult is the admin listing with opts.ListSessions sessions in one
// node's store: each row times one kind of call over the private API.
type ListResult struct {
	Sessions    int     `json:"sessions"`
	Users       int     `json:"users"`
	FillSeconds float64 `json:"fill_seconds"`
	// SettleSeconds is how long the node took to go quiet after the fill
	// (Badger compacting what was written) before the pages were timed.
	SettleSeconds float64   `json:"settle_seconds"`
	Rows          []ListRow `json:"rows"`
	TargetMs      float64   `json:"target_ms"`
}

// ListRow is one kind of listing call.
type ListRow struct {
	Call    string  `json:"call"`
	Latency Latency `json:"latency"`
}

// List fills one node's store with opts.ListSessions sessions (one user per
// hundred), then times pages of GET /v1/sessions (first page, following
// cursors deep into the list, one user's filter) and one user's history.
// It is long on purpose: one scenario's steps in the order they run,
// sharing the figures they measure; split, the story would be spread out.
func List(ctx context.Context, opts Options) (ListResult, error) {
	opts = opts.withDefaults()
	res := ListResult{Sessions: opts.ListSessions, Users: max(1, opts.ListSessions/100), TargetMs: ms(TargetListPage)}
	err := withCluster(opts, func(h *harness) error {
		c := newCluster(h, opts)
		c.Start(1)
		m := c.Members[0]
		opts.progressf("list: writing %d sessions of %d users", res.Sessions, res.Users)
		start := time.Now()
		recs := syntheticRecords(res.Users, res.Sessions, time.Now())
		for lo := 0; lo < len(recs) && ctx.Err() == nil; lo += fillBatch {
			if _, err := m.Store().Apply(recs[lo:min(lo+fillBatch, len(recs))]...); err != nil {
				return fmt.Errorf("fill the store: %w", err)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		res.FillSeconds = time.Since(start).Seconds()
		// A million records just written leave Badger compacting for a few
		// seconds, which on two cores puts pages at 100 ms: time the
		// listing, not the import.
		opts.progressf("list: waiting for the node to go quiet")
		start = time.Now()
		if err := settle(ctx, settleTimeout); err != nil {
			return err
		}
		res.SettleSeconds = time.Since(start).Seconds()
		cl := newClient(h, c, 1)

		type page struct {
			Sessions []json.RawMessage `json:"sessions"`
			Next     string            `json:"next"`
		}
		timeCalls := func(name string, next func(i int) string) error {
			var ds []time.Duration
			cursor := ""
			for i := 0; i < listRounds && ctx.Err() == nil; i++ {
				path := next(i)
				if cursor != "" {
					path += "&after=" + url.QueryEscape(cursor)
				}
				t0 := time.Now()
				raw, err := cl.expect(ctx, m, 200, "GET", path, nil)
				ds = append(ds, time.Since(t0))
				if err != nil {
					return err
				}
				var p page
				if err := json.Unmarshal(raw, &p); err != nil {
					return fmt.Errorf("decode %s: %w", path, err)
				}
				if len(p.Sessions) == 0 && p.Next == "" && i == 0 {
					return fmt.Errorf("%s: empty list", path)
				}
				if name == "next pages, newest first (following cursors)" {
					cursor = p.Next
				}
			}
			res.Rows = append(res.Rows, ListRow{Call: name, Latency: summarize(ds)})
			return ctx.Err()
		}
		opts.progressf("list: timing pages")
		for _, row := range []struct {
			name string
			path func(i int) string
		}{
			{"first page of 50, newest first", func(int) string { return "/v1/sessions?state=all&limit=50" }},
			{"next pages, newest first (following cursors)", func(int) string { return "/v1/sessions?state=all&limit=50" }},
			{"first page of 50, oldest first", func(int) string { return "/v1/sessions?state=all&order=oldest&limit=50" }},
			{"one user's sessions, filtered list", func(i int) string {
				return "/v1/sessions?state=all&limit=50&email=" + url.QueryEscape(userEmail(i%res.Users))
			}},
			{"one user's history (GET /v1/users/{email}/sessions?state=all)", func(i int) string {
				return "/v1/users/" + url.PathEscape(userEmail(i%res.Users)) + "/sessions?state=all"
			}},
		} {
			if err := timeCalls(row.name, row.path); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// Quiet: this process used under quietCPU of one CPU over quietWindow.
const (
	quietWindow   = 500 * time.Millisecond
	quietCPU      = 0.1
	settleTimeout = 2 * time.Minute
)

// settle waits until this process has been quiet for one window, or for at
// most timeout (then it goes on: the figures will show the rest).
func settle(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		cpu0 := processCPU()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quietWindow):
		}
		if float64(processCPU()-cpu0) < quietCPU*float64(quietWindow) {
			return nil
		}
	}
	return nil
}

// WriteList writes the list scenario's table.
func WriteList(w io.Writer, r ListResult) {
	fmt.Fprintf(w, "\nLIST  admin listing over the private API with %d sessions of %d users in the store (filled in %.1fs, quiet %.1fs later), %d calls per row\n",
		r.Sessions, r.Users, r.FillSeconds, r.SettleSeconds, listRounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CALL\tP50\tP99\tMAX\tTARGET\t")
	for _, row := range r.Rows {
		l := row.Latency
		fmt.Fprintf(tw, "%s\t%.3f ms\t%.3f ms\t%.3f ms\tp99 <= %.0f ms: %s\t\n", row.Call, l.P50, l.P99, l.Max, r.TargetMs, verdict(l.P99 <= r.TargetMs))
	}
	tw.Flush()
}
