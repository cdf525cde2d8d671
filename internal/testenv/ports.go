package testenv

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ports holds the loopback ports FreePort handed out, never the same one
// twice in this process.
var ports struct {
	sync.Mutex
	given map[int]bool
}

// PortRange is where FreePort picks ports: below the kernel's ephemeral
// range (/proc/sys/net/ipv4/ip_local_port_range), so that no outgoing
// connection of any process on the machine takes the port as its source
// port between FreePort's answer and the program's bind. (A port the
// kernel picked, closed and bound again later is in that range: the
// WordPress testbed's php -S once failed "Address already in use" so.)
func PortRange() (lo, hi int) {
	lo, hi = 10000, 32768 // Linux's default ephemeral range starts at 32768, macOS's at 49152
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	return lo, hi
}

// FreePort returns a loopback port (127.0.0.1) that is free for TCP now
// and, when udp is set, for UDP too (memberlist binds both on its gossip
// port), picked at random in PortRange, and never returned before in this
// process. Another test on the machine may still bind it first: a program
// started on it should be retried on another port when its bind fails.
func FreePort(udp bool) (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	lo, hi := PortRange()
	for range 1000 {
		port := 0 // the kernel's pick, if the ephemeral range leaves no room below it
		if hi-lo >= 1000 {
			port = lo + rand.IntN(hi-lo)
		}
		if ports.given[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := ln.Addr().(*net.TCPAddr)
		free := !ports.given[addr.Port]
		if free && udp {
			pc, err := net.ListenPacket("udp", addr.String())
			if free = err == nil; free {
				pc.Close()
			}
		}
		ln.Close()
		if free {
			ports.given[addr.Port] = true
			return addr.Port, nil
		}
	}
	return 0, errors.New("find a free port: none in 1000 tries")
}
