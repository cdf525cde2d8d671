package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The node's files: its data dir is its own (0700, files 0600), and the
// files that hold secrets must not be open to other users
// (docs/security.md, "Files").

// Modes of the data dir and of what it holds.
const (
	dataDirMode  fs.FileMode = 0o700
	dataFileMode fs.FileMode = 0o600
)

// ErrLoosePermissions is wrapped by Start's error when node.strict_permissions
// is set and a file holding a secret may be read or written by its group or
// by others.
var ErrLoosePermissions = errors.New("a secret file is open to other users")

// secretFiles are the files of cfg that hold a secret, by config key.
func (c Config) secretFiles() [][2]string {
	var out [][2]string
	for _, f := range [][2]string{
		{"gossip.secret_file", c.Gossip.SecretFile},
		{"api.token_file", c.API.TokenFile},
		{"admin.password_file", c.Admin.PasswordFile},
		{"smtp.password_file", c.SMTP.PasswordFile},
		{"public.tls_key", c.Public.TLSKey},
	} {
		if f[1] != "" {
			out = append(out, f)
		}
	}
	return out
}

// looseSecret reports whether a secret file is open to other users: any
// permission for others, or for its group, or write permission for its
// group. As PostgreSQL does for its key file, a file root owns may be
// readable by its group (0640 root:ussync, the packaged layout: root
// writes it, the ussync group reads it).
func looseSecret(fi os.FileInfo) bool {
	mode := fi.Mode().Perm()
	if ownedByRoot(fi) {
		return mode&0o037 != 0
	}
	return mode&0o077 != 0
}

// checkSecretFiles looks at the mode of every secret file the config names
// (following symbolic links, as reading them does). A file open to other
// users (looseSecret) is logged as a warning, or, under
// node.strict_permissions, is an error wrapping ErrLoosePermissions that
// names every such file. A file that cannot be read is left to the code
// that reads it, which says why.
func (n *Node) checkSecretFiles() error {
	var loose []string
	for _, f := range n.cfg.secretFiles() {
		fi, err := os.Stat(f[1])
		if err != nil {
			continue
		}
		mode := fi.Mode().Perm()
		if !looseSecret(fi) {
			continue
		}
		loose = append(loose, fmt.Sprintf("%s %s is %04o", f[0], f[1], mode))
		if !n.cfg.Node.StrictPermissions {
			n.log.Warn("a secret file is open to other users: chmod 600 it (node.strict_permissions refuses to start)",
				"key", f[0], "file", f[1], "mode", fmt.Sprintf("%04o", mode))
		}
	}
	if len(loose) > 0 && n.cfg.Node.StrictPermissions {
		return fmt.Errorf("%w (node.strict_permissions): %s; chmod 600 them", ErrLoosePermissions, strings.Join(loose, ", "))
	}
	return nil
}

// secureDataDir creates the data dir if missing and makes it and everything
// in it the node's own: directories 0700, files 0600, whatever their modes
// were (a dir made by hand, a restored backup, files Badger created with
// 0644). Symbolic links are left alone. It returns how many modes it
// changed.
func secureDataDir(dir string) (int, error) {
	if err := os.MkdirAll(dir, dataDirMode); err != nil {
		return 0, fmt.Errorf("create data dir: %w", err)
	}
	root, err := filepath.EvalSymlinks(dir) // a data dir that is a link: secure its target
	if err != nil {
		return 0, fmt.Errorf("secure data dir %s: %w", dir, err)
	}
	changed := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != root {
				return nil // removed under us (Badger compacting)
			}
			return err
		}
		want := dataFileMode
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return nil
		case d.IsDir():
			want = dataDirMode
		case !d.Type().IsRegular():
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm() == want {
			return nil
		}
		if err := os.Chmod(path, want); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		changed++
		return nil
	})
	if err != nil {
		return changed, fmt.Errorf("secure data dir %s: %w", dir, err)
	}
	return changed, nil
}
