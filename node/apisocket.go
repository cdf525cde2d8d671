package node

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"
)

// The private API on a Unix socket: `api.listen: unix:/run/ussync/api.sock`.
// A site's backend on the same host then reaches its node without TCP
// (PHP's curl with CURLOPT_UNIX_SOCKET_PATH, Go's client with
// "unix:///run/ussync/api.sock"), and who may call is also who may open the
// socket: it is created with mode 0660, owned by the user and group the node
// runs as (README, "The private API on a Unix socket").

// unixPrefix marks a Unix socket path in api.listen.
const unixPrefix = "unix:"

// socketMode is the socket's permissions: the node's user and group.
const socketMode fs.FileMode = 0o660

// socketPath returns the path of a "unix:" listen address, and whether it
// is one.
func socketPath(listen string) (string, bool) {
	p, ok := strings.CutPrefix(listen, unixPrefix)
	return strings.TrimPrefix(p, "//"), ok
}

// validateAPIListen checks api.listen: host:port, or unix: and a path.
func validateAPIListen(listen string) error {
	p, ok := socketPath(listen)
	if !ok {
		return hostPort(listen, true)
	}
	switch {
	case p == "":
		return fmt.Errorf("%q: no socket path after unix:", listen)
	case len(p) > 104:
		// sun_path holds 108 bytes on Linux, 104 on the BSDs.
		return fmt.Errorf("%q: a socket path is at most 104 bytes", listen)
	}
	return nil
}

// listenAPI opens the private API's listener: TCP, or a Unix socket made
// with mode 0660. A socket file left by a node that did not close (a crash)
// is replaced; one a live node answers on is an error, as a port in use is.
func listenAPI(listen string) (net.Listener, error) {
	p, ok := socketPath(listen)
	if !ok {
		return net.Listen("tcp", listen)
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", p)
		}
		if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: a process is listening on it", p)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove the stale socket %s: %w", p, err)
		}
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(p, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod %s: %w", p, err)
	}
	return ln, nil
}
