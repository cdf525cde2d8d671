package node

import (
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ussync/ussync/session"
)

// Backups (docs/operations.md, "Backup and restore"): GET /v1/backup
// streams a consistent copy of the running node's store (Badger's
// directory is locked by the running process, so the copy comes through
// it), and Restore writes one into an empty data directory while the node
// is stopped. The format and what is in it are session's (session.Backup).

// BackupCounts and BackupInfo are session's, for the CLI.
type (
	BackupCounts = session.BackupCounts
	BackupInfo   = session.BackupInfo
)

// ErrBadBackup and ErrNotEmpty are session's refusals of a restore.
var (
	ErrBadBackup = session.ErrBadBackup
	ErrNotEmpty  = session.ErrNotEmpty
)

// Backup writes a consistent copy of the node's store to w (see
// session.Store.Backup) and logs it. It returns the counts written and
// the first error of the store's read or of w (session.ErrClosed once
// the node is closing): then w holds a backup without its trailer, which
// ReadBackup refuses.
func (n *Node) Backup(w io.Writer) (BackupCounts, error) {
	start := time.Now()
	counts, err := n.store.Backup(w, BackupInfo{Node: n.cfg.Node.Name, Software: n.cfg.Version}, nil)
	if err != nil {
		return counts, err
	}
	n.log.Info("backup taken", "entries", counts.Entries, "users", counts.Users, "sessions", counts.Sessions,
		"took", time.Since(start).Round(time.Millisecond))
	return counts, nil
}

// backup is GET /v1/backup: the store, streamed. A failure once the answer
// has begun aborts the connection: the client sees a backup without its
// trailer, which it refuses.
func (a *api) backup(w http.ResponseWriter, r *http.Request) error {
	if a.Backup == nil {
		return refuse(errUnavailable, "this node takes no backups")
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="ussync-%s-%s.backup"`,
		a.svc.Name, time.Now().UTC().Format("20060102T150405Z")))
	w.WriteHeader(http.StatusOK)
	if _, err := a.Backup(w); err != nil {
		a.Log.Error("backup failed", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// ReadBackup reads and checks a backup (session.ReadBackup) without
// writing it anywhere: what `ussync backup` does to the stream it saves.
// A stream that is not a whole, intact backup is ErrBadBackup; r's own
// errors are returned as they come.
func ReadBackup(r io.Reader, header func(BackupInfo), progress func(BackupCounts)) (BackupInfo, BackupCounts, error) {
	return session.ReadBackup(r, header, nil, progress)
}

// Restore writes the backup read from r into dataDir, which must be empty
// or missing (ErrNotEmpty): see session.Restore. When run as root into a
// directory owned by another user (systemd's StateDirectory, owned by
// User=), the restored files are given to that owner, so that the node can
// open them. The keyring is not in a backup: the node's next start seeds
// it from the configuration's secrets. Errors: ErrNotEmpty, ErrBadBackup
// (dataDir is emptied again), and the file system's (creating or chowning
// dataDir).
func Restore(dataDir string, r io.Reader, header func(BackupInfo), progress func(BackupCounts)) (BackupInfo, BackupCounts, error) {
	uid, gid, owned := dirOwner(dataDir)
	info, counts, err := session.Restore(dataDir, r, session.Options{}, header, progress)
	if err != nil {
		return info, counts, err
	}
	// The store holds e-mail addresses and session ids: the node's alone
	// from now, not only from its next start (Badger's files come out
	// 0666 less the umask).
	if _, err := secureDataDir(dataDir); err != nil {
		return info, counts, err
	}
	if owned && os.Geteuid() == 0 && (uid != 0 || gid != 0) {
		err := filepath.WalkDir(dataDir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
		if err != nil {
			return info, counts, fmt.Errorf("give the restored files to the data directory's owner: %w", err)
		}
	}
	return info, counts, nil
}

// dirOwner returns the owner of dir, if it exists.
func dirOwner(dir string) (uid, gid int, ok bool) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
