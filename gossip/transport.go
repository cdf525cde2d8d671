package gossip

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Faults cuts links between members, for tests of partitions: a node whose
// Faults blocks an address sends nothing to it, neither packets nor streams,
// and drops packets from it. Blocking both directions (each side's Faults
// blocks the other) makes a partition. The zero value blocks nothing; it is
// safe for concurrent use.
type Faults struct {
	mu      sync.RWMutex
	blocked map[string]bool
}

// Block cuts the links to the given gossip addresses (host:port).
func (f *Faults) Block(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blocked == nil {
		f.blocked = map[string]bool{}
	}
	for _, a := range addrs {
		f.blocked[a] = true
	}
}

// Heal restores every link.
func (f *Faults) Heal() {
	f.mu.Lock()
	f.blocked = nil
	f.mu.Unlock()
}

func (f *Faults) cut(addr string) bool {
	if f == nil {
		return false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.blocked[addr]
}

var errCut = errors.New("link cut by fault injection")

// transport wraps memberlist's NetTransport to count the bytes this node
// sends and, in tests, to cut links.
type transport struct {
	inner   *memberlist.NetTransport
	faults  *Faults
	packets chan *memberlist.Packet
	streams chan net.Conn
	sent    atomic.Uint64 // bytes written, packets and streams
	done    chan struct{}
	wg      sync.WaitGroup
}

func newTransport(inner *memberlist.NetTransport, faults *Faults) *transport {
	t := &transport{inner: inner, faults: faults, done: make(chan struct{}),
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn)}
	t.wg.Add(2)
	go t.forwardPackets()
	go t.forwardStreams()
	return t
}

func (t *transport) forwardPackets() {
	defer t.wg.Done()
	for {
		select {
		case p := <-t.inner.PacketCh():
			if p.From != nil && t.faults.cut(p.From.String()) {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *transport) forwardStreams() {
	defer t.wg.Done()
	for {
		select {
		case c := <-t.inner.StreamCh():
			select {
			case t.streams <- &countingConn{Conn: c, n: &t.sent}:
			case <-t.done:
				c.Close()
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.faults.cut(addr) {
		return time.Now(), nil // lost on the way, as UDP would
	}
	t.sent.Add(uint64(len(b)))
	return t.inner.WriteTo(b, addr)
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	if t.faults.cut(addr) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errCut}
	}
	c, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &t.sent}, nil
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

func (t *transport) Shutdown() error {
	err := t.inner.Shutdown()
	close(t.done)
	t.wg.Wait()
	return err
}

type countingConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(uint64(n))
	return n, err
}
