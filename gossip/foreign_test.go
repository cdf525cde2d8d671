package gossip

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestForeignLog_LinesCapped: packets from a thousand source ports (or
// spoofed addresses) write at most maxForeignLines lines a minute, and
// the next window's first line says how many were left out; every packet
// is still counted.
func TestForeignLog_LinesCapped(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newForeignLog(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	for i := range 1000 {
		f.note(fmt.Sprintf("203.0.113.7:%d", 1024+i), true, false)
	}
	if n := strings.Count(buf.String(), "level=WARN"); n != maxForeignLines {
		t.Fatalf("%d lines for 1000 sources in a minute, want %d", n, maxForeignLines)
	}
	if got := f.packets.Load(); got != 1000 {
		t.Fatalf("%d packets counted, want 1000", got)
	}
	buf.Reset()
	now = now.Add(foreignLogEvery)
	f.note("203.0.113.8:7946", true, false)
	if !strings.Contains(buf.String(), fmt.Sprintf("sources_left_out_before=%d", 1000-maxForeignLines)) {
		t.Fatalf("the next window's line does not say what was left out: %s", buf.String())
	}
}
