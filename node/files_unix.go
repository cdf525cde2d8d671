//go:build unix

package node

import (
	"os"
	"syscall"
)

// ownedByRoot reports whether root owns the file fi describes.
func ownedByRoot(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == 0
}
