package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// backupSessions is the size of the store TestBackup_RestoreLargeNode
// backs up and restores: 100,000 sessions, or 10,000 under the race
// detector, which makes the in-process cluster some ten times slower (the
// race-checked run proves the same code paths; .ci/run also runs the test
// at full size without it).
func backupSessions() int {
	if raceEnabled() {
		return 10_000
	}
	return 100_000
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// seedBackup makes a store of users×perUser sessions and returns its
// backup: the starting state of every node of the test, restored into
// their data dirs (far quicker than merging the records into each).
func seedBackup(t *testing.T, users, perUser int) []byte {
	t.Helper()
	st, err := session.Open(session.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now, at := st.Now(), st.Clock().Now()
	batch := make([]session.Record, 0, 4096)
	flush := func() {
		if _, err := st.Apply(batch...); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for u := range users {
		email := fmt.Sprintf("seed%d@example.com", u)
		batch = append(batch, session.Record{User: &session.User{Email: email, Created: at,
			Verified: session.Set(session.Verification{OK: true, Method: session.VerifiedRegistration}, at, "n0")}})
		for s := range perUser {
			batch = append(batch, session.Record{Session: &session.Session{
				ID: fmt.Sprintf("%016x%048x", u, s), Email: email, Site: "n0", IP: "192.0.2.1",
				Created: at, ExpiresAt: now.Add(24 * time.Hour).UnixMilli()}})
			if len(batch) == cap(batch) {
				flush()
			}
		}
	}
	flush()
	var buf bytes.Buffer
	if _, err := st.Backup(&buf, session.BackupInfo{Node: "seed"}, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBackup_RestoreLargeNode backs up a node of 100,000 sessions through
// its private API while logins go on, loses its data dir, restores the
// backup into an empty one, and checks the node rejoins and converges,
// catching up on a logout and a login made after the backup.
func TestBackup_RestoreLargeNode(t *testing.T) {
	start := time.Now()
	seeded := seedBackup(t, backupSessions()/100, 100)
	t.Logf("seeded %d sessions in %s", backupSessions(), time.Since(start))
	dirs := make([]string, 3)
	for i := range dirs {
		dirs[i] = filepath.Join(t.TempDir(), "data")
		if i == 0 {
			if _, _, err := node.Restore(dirs[i], bytes.NewReader(seeded), nil, nil); err != nil {
				t.Fatal(err)
			}
		} else if err := os.CopyFS(dirs[i], os.DirFS(dirs[0])); err != nil { // a closed store's files are the store
			t.Fatal(err)
		}
	}
	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) { cfg.Node.DataDir = dirs[i] }
	c.Start(3)
	n0, n1 := c.Members[0], c.Members[1]
	c.WaitConverged(30 * time.Second)
	t.Logf("three nodes of %d sessions up in %s", backupSessions(), time.Since(start))
	register(t, c, 0, "ann@example.com")
	before := login(t, n0, "ann@example.com")
	waitAll(t, c, before.Session.ID, http.StatusOK, "")

	// Logins go on on n0 during the backup of n1 (a few: each lands in a
	// bucket anti-entropy must then repair on n1).
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		logins   atomic.Int64
		loginErr atomic.Value
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := client.New("http://"+n0.APIAddr(), c.Token)
		for logins.Load() < 20 {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := cl.Login(context.Background(), client.LoginRequest{Email: "ann@example.com"}); err != nil {
				loginErr.Store(err)
				return
			}
			logins.Add(1)
		}
	}()
	var buf bytes.Buffer
	size, err := client.New("http://"+n1.APIAddr(), c.Token).Backup(context.Background(), &buf)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if e := loginErr.Load(); e != nil {
		t.Fatalf("a login during the backup: %v", e)
	}
	info, counts, err := node.ReadBackup(bytes.NewReader(buf.Bytes()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if counts.Sessions < int64(backupSessions())+1 || counts.Users != int64(backupSessions()/100+1) || info.Node != "n1" || size != int64(buf.Len()) {
		t.Fatalf("backup of %d bytes: %+v %+v", size, info, counts)
	}
	t.Logf("backup of %d sessions (%d logins meanwhile): %d bytes", counts.Sessions, logins.Load(), size)
	var act activityAnswer
	n1.Call("GET", "/v1/activity", nil, &act)
	if !hasActivity(act.Activity, "config", "store.backup", "") {
		t.Errorf("the backup is not in n1's activity: %+v", act.Activity)
	}

	// n1 loses its data dir; meanwhile a logout and a login happen.
	c.Kill(1)
	if err := os.RemoveAll(dirs[1]); err != nil {
		t.Fatal(err)
	}
	if code := n0.Call("DELETE", "/v1/sessions/"+before.Session.ID, nil, nil); code != http.StatusOK {
		t.Fatalf("logout: %d", code)
	}
	after := login(t, n0, "ann@example.com")

	// A restore refuses a directory that holds anything.
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := node.Restore(busy, bytes.NewReader(buf.Bytes()), nil, nil); !errors.Is(err, node.ErrNotEmpty) {
		t.Fatalf("restore into a non-empty dir: %v", err)
	}
	_, restored, err := node.Restore(dirs[1], bytes.NewReader(buf.Bytes()), nil, nil)
	if err != nil || restored != counts {
		t.Fatalf("restore: %+v %v", restored, err)
	}

	c.Restart(1)
	c.WaitMembers(20 * time.Second)
	c.WaitConverged(60 * time.Second)
	for id, want := range map[string]int{before.Session.ID: http.StatusGone, after.Session.ID: http.StatusOK} {
		if code, _ := checkOn(t, n1, id); code != want {
			t.Errorf("session %s on the restored n1: %d, want %d", id[:8], code, want)
		}
	}
	if _, s := n1.Store().Counts(); s < backupSessions() {
		t.Errorf("the restored n1 holds %d sessions", s)
	}
}
