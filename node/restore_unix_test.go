//go:build unix

package node_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ussync/ussync/node"
)

// TestBackup_RestoreFilesPrivate restores under a permissive umask: the
// restored store (e-mail addresses, session ids) is the node's alone at
// once, 0700 and 0600, not only from the node's next start.
func TestBackup_RestoreFilesPrivate(t *testing.T) {
	raw := seedBackup(t, 2, 2)
	dir := filepath.Join(t.TempDir(), "data")
	old := syscall.Umask(0o022) // a shell's usual umask: Badger's files would come out 0644
	defer syscall.Umask(old)
	if _, _, err := node.Restore(dir, bytes.NewReader(raw), nil, nil); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s is %04o, want %04o", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
