package session

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fillStore writes n users, each with a session, one Apply per pair (one
// transaction), stamped by the store's clock.
func fillStore(t *testing.T, s *Store, from, n int) {
	t.Helper()
	if _, err := s.Apply(pairs(s, from, n)...); err != nil {
		t.Fatal(err)
	}
}

// pairs are n users, each with a session.
func pairs(s *Store, from, n int) []Record {
	recs := make([]Record, 0, 2*n)
	for i := from; i < from+n; i++ {
		email := fmt.Sprintf("user%d@example.com", i)
		at := s.Clock().Now()
		recs = append(recs,
			Record{User: &User{Email: email, Created: at, Login: Set("u", at, "n0")}},
			Record{Session: &Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "n0", Created: at, ExpiresAt: s.Now().Add(time.Hour).UnixMilli()}})
	}
	return recs
}

// TestBackup_RestoreRoundTrip: a restored store holds every record (same
// digest), the node-local data with its expiries, and the replay cache.
func TestBackup_RestoreRoundTrip(t *testing.T) {
	mt := NewManualClock(time.Now())
	src := openStore(t, t.TempDir(), mt.Now)
	defer src.Close()
	fillStore(t, src, 0, 300)
	if err := src.LocalPut("kept", []byte("forever"), 0); err != nil {
		t.Fatal(err)
	}
	if err := src.LocalPut("brief", []byte("an hour"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if first, err := src.UseOnce("ticket-1", mt.Now().Add(time.Minute)); err != nil || !first {
		t.Fatal(first, err)
	}

	var buf bytes.Buffer
	var calls atomic.Int64
	counts, err := src.Backup(&buf, BackupInfo{Node: "n0", Software: "test"}, func(BackupCounts) { calls.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	if counts.Users != 300 || counts.Sessions != 300 || counts.Entries < 600 || calls.Load() == 0 {
		t.Fatalf("counts %+v, %d progress calls", counts, calls.Load())
	}
	if !strings.HasPrefix(buf.String(), "ussync backup v1\n") {
		t.Fatalf("no magic line: %q", buf.String()[:20])
	}

	dir := filepath.Join(t.TempDir(), "restored")
	info, got, err := Restore(dir, bytes.NewReader(buf.Bytes()), Options{Now: mt.Now}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != counts || info.Node != "n0" || info.Software != "test" || info.Users != 300 || info.CreatedAt.IsZero() {
		t.Fatalf("restore: %+v %+v", info, got)
	}
	dst := openStore(t, dir, mt.Now)
	defer dst.Close()
	if dst.Digest() != src.Digest() {
		t.Error("the restored digest differs")
	}
	if u, s := dst.Counts(); u != 300 || s != 300 {
		t.Errorf("counts %d %d", u, s)
	}
	if sess, err := dst.UserSessions("user7@example.com", false, 0); err != nil || len(sess) != 1 {
		t.Errorf("a user's sessions through the index: %v %v", sess, err)
	}
	if v, err := dst.LocalGet("kept"); err != nil || string(v) != "forever" {
		t.Errorf("local: %q %v", v, err)
	}
	var exp time.Time
	dst.LocalScan("brief", func(_ string, _ []byte, e time.Time) error { exp = e; return nil })
	if exp.IsZero() || exp.Sub(mt.Now()) > time.Hour+time.Minute || exp.Before(mt.Now()) {
		t.Errorf("the local entry's expiry: %v", exp)
	}
	if first, err := dst.UseOnce("ticket-1", mt.Now().Add(time.Minute)); err != nil || first {
		t.Errorf("a ticket redeemed before the backup opens again after the restore: %v %v", first, err)
	}

	// A restore never goes into a directory that holds something.
	if _, _, err := Restore(dir, bytes.NewReader(buf.Bytes()), Options{}, nil, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("restore into a store: %v", err)
	}
}

// TestBackup_Damaged: a truncated or altered backup is refused and leaves
// the directory empty.
func TestBackup_Damaged(t *testing.T) {
	src := openStore(t, t.TempDir(), nil)
	defer src.Close()
	fillStore(t, src, 0, 50)
	var buf bytes.Buffer
	if _, err := src.Backup(&buf, BackupInfo{Node: "n0"}, nil); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	flipped := bytes.Clone(full)
	flipped[len(flipped)/2] ^= 0x40
	for name, b := range map[string][]byte{
		"truncated":       full[:len(full)-30],
		"cut in half":     full[:len(full)/2],
		"a flipped bit":   flipped,
		"not a backup":    []byte("hello\n"),
		"only the magic":  []byte("ussync backup v1\n"),
		"another version": append([]byte("ussync backup v2\n"), full[17:]...),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, _, err := Restore(dir, bytes.NewReader(b), Options{}, nil, nil)
			if !errors.Is(err, ErrBadBackup) {
				t.Errorf("restore: %v", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the directory holds %d entries after a failed restore", len(entries))
			}
			if _, _, err := ReadBackup(bytes.NewReader(b), nil, nil, nil); !errors.Is(err, ErrBadBackup) {
				t.Errorf("read: %v", err)
			}
		})
	}
}

// TestBackup_ConsistentWhileWriting: a backup taken while writers commit
// holds whole transactions only: every session's user, written in the same
// Apply, is in it.
func TestBackup_ConsistentWhileWriting(t *testing.T) {
	src := openStore(t, t.TempDir(), nil)
	defer src.Close()
	fillStore(t, src, 0, 2000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 2000; ; i += 10 {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := src.Apply(pairs(src, i, 10)...); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var buf bytes.Buffer
	counts, err := src.Backup(&buf, BackupInfo{Node: "n0"}, nil)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if counts.Users != counts.Sessions || counts.Users < 2000 {
		t.Errorf("a backup taken during writes holds %d users and %d sessions", counts.Users, counts.Sessions)
	}
	dir := t.TempDir()
	if _, _, err := Restore(dir, &buf, Options{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t, dir, nil)
	defer dst.Close()
	for i := range int(counts.Sessions) {
		if _, err := dst.User(fmt.Sprintf("user%d@example.com", i)); err != nil {
			t.Fatalf("user %d of %d: %v", i, counts.Sessions, err)
		}
	}
}
