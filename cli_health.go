package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ussync/ussync/client"
)

// ANSI colours of status's health line, on a terminal only.
const (
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[33m"
	ansiReset  = "\x1b[0m"
)

// colour reports whether w is a terminal that takes colours: a character
// device, NO_COLOR (no-color.org) unset, TERM not "dumb".
func colour(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// healthLines are status's lines about the node's health
// (client.GossipHealth): "ok", or the state in capitals, its reason and
// what follows from it. When painted, a degraded node's lines (isolated,
// another key, a full disk, failing closed) are red and the others yellow.
func healthLines(h *client.GossipHealth, painted bool) []string {
	if h == nil || h.Status == "" {
		return []string{"unknown (a node of an older version)"}
	}
	if h.Status == "ok" && !h.FailClosed {
		line := "ok"
		if h.CaughtUpAt != nil {
			line += fmt.Sprintf(" (caught up with %s at %s)", h.CaughtUpWith, h.CaughtUpAt.Format(time.RFC3339))
		}
		return append([]string{line}, freshLines(h)...)
	}
	word := strings.ToUpper(strings.ReplaceAll(h.Status, "_", " "))
	degraded := h.Isolated || h.KeyMismatch || h.StorageFull
	if degraded {
		word = "DEGRADED: " + word
	}
	lines := []string{word + ": " + h.Reason}
	if h.KeyMismatch {
		for _, p := range h.ForeignPeers() {
			lines = append(lines, fmt.Sprintf("  %s speaks another cluster key: compare the key fingerprints below with `ussync status` on that node", p))
		}
	}
	if h.FailClosed {
		lines = append(lines, "  session checks fail closed: active sessions are answered 503 node_isolated (sync.fail_closed_after)")
	} else if h.Isolated || h.CatchingUp {
		lines = append(lines, "  session checks answer from this node's store and say "+client.HeaderNodeState+": "+nodeState(h))
	}
	lines = append(lines, freshLines(h)...)
	if painted {
		c := ansiYellow
		if degraded || h.FailClosed {
			c = ansiRed
		}
		for i := range lines {
			lines[i] = c + lines[i] + ansiReset
		}
	}
	return lines
}

// freshLines say that a node started on an empty data dir refuses old tickets.
func freshLines(h *client.GossipHealth) []string {
	if h.TicketsRefusedUntil == nil {
		return nil
	}
	return []string{fmt.Sprintf("  started on an empty data dir: hand-off tickets issued before the start are refused until %s", h.TicketsRefusedUntil.Format(time.RFC3339))}
}

func nodeState(h *client.GossipHealth) string {
	if h.Isolated {
		return client.NodeStateIsolated
	}
	return client.NodeStateCatchingUp
}

// printHealth writes the health lines after a "health" label, aligned by
// the caller's tabwriter.
func printHealth(w io.Writer, h *client.GossipHealth, painted bool) {
	for i, l := range healthLines(h, painted) {
		label := "health"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "%s\t%s\n", label, l)
	}
}

// memberState is a member's STATE in status's table: its gossip state, and
// its site's or its version's when that keeps it out of hand-offs
// ("alive, site down", "alive, older hand-off").
func memberState(m client.MemberStatus) string {
	switch {
	case m.State == client.MemberAlive && m.HandoffSkipped == "older_version":
		return "alive, older hand-off"
	case m.State == client.MemberAlive && m.SiteState == "down":
		return "alive, site down"
	case m.State == client.MemberAlive && m.SiteState == "stale":
		return "alive, no site report"
	}
	return m.State
}
