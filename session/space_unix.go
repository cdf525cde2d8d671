//go:build unix

package session

import "syscall"

// freeBytes returns the bytes of dir's filesystem available to this
// process's user.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
