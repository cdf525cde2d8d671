//go:build unix

package node_test

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// TestFiles_DataDirPrivate: whatever modes the data dir and its files had
// (a dir made by hand 0755, a restored file 0644), and whatever modes
// Badger gives the files it creates (0644 under umask 022), after start the
// dir and every directory in it are 0700 and every file 0600.
func TestFiles_DataDirPrivate(t *testing.T) {
	old := syscall.Umask(0o022) // what a shell usually has; Badger's files come out 0644
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, "old", "stray"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := nodetest.New(t)
	c.Configure = func(_ int, cfg *node.Config) { cfg.Node.DataDir = dir }
	c.Start(1)
	register(t, c, 0, "ann@example.com")
	login(t, c.Members[0], "ann@example.com")

	check := func(when string) {
		t.Helper()
		files := 0
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			} else {
				files++
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s: %s is %04o, want %04o", when, path, got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files < 3 {
			t.Fatalf("%s: %d files in the data dir: Badger's are missing", when, files)
		}
	}
	check("after start")
	c.Kill(0)
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, "old", "stray"), 0o666)
	c.Restart(0)
	check("after a restart")
}

// TestFiles_SecretPermissions: a secret file open to its group or others is
// logged (the node starts); under node.strict_permissions the node refuses
// to start, naming the file, and starts once the file is 0600 (or 0640 and
// owned by root, as PostgreSQL allows its key file).
func TestFiles_SecretPermissions(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(secret, 0o644)
	start := func(strict bool) (string, error) {
		t.Helper()
		cfg := node.DefaultConfig()
		cfg.Node.Name, cfg.Node.DataDir, cfg.Site.URL = "x", t.TempDir(), "http://x.localhost/"
		cfg.Node.Profile = "local"
		cfg.Gossip.Bind, cfg.API.Listen, cfg.Public.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.Gossip.SecretFile, cfg.API.Token = secret, "0123456789abcdef0123"
		cfg.Node.StrictPermissions = strict
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		var log lockedBuffer
		n, err := node.New(cfg, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		err = n.Start(t.Context())
		n.Close(t.Context())
		return log.String(), err
	}

	log, err := start(false)
	if err != nil {
		t.Fatalf("a 0644 secret without strict_permissions: %v", err)
	}
	if !strings.Contains(log, "a secret file is open to other users") || !strings.Contains(log, "gossip.secret_file") || !strings.Contains(log, "0644") {
		t.Errorf("no warning naming the file and its mode:\n%s", log)
	}

	_, err = start(true)
	if !errors.Is(err, node.ErrLoosePermissions) || !strings.Contains(err.Error(), "gossip.secret_file "+secret+" is 0644") {
		t.Fatalf("a 0644 secret under strict_permissions: %v, want ErrLoosePermissions naming it", err)
	}

	os.Chmod(secret, 0o600)
	if log, err := start(true); err != nil || strings.Contains(log, "open to other users") {
		t.Fatalf("a 0600 secret under strict_permissions: %v\n%s", err, log)
	}

	// 0640: the packaged layout (root:ussync) when root owns the file, a
	// file its group may read otherwise.
	os.Chmod(secret, 0o640)
	_, err = start(true)
	if os.Getuid() == 0 && err != nil {
		t.Fatalf("a 0640 secret root owns, under strict_permissions: %v", err)
	}
	if os.Getuid() != 0 && !errors.Is(err, node.ErrLoosePermissions) {
		t.Fatalf("a 0640 secret a user owns, under strict_permissions: %v", err)
	}
	os.Chmod(secret, 0o660)
	if _, err := start(true); !errors.Is(err, node.ErrLoosePermissions) {
		t.Fatalf("a 0660 secret under strict_permissions: %v", err)
	}
}
