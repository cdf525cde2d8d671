package gossip

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport wraps memberlist's NetTransport: it counts the bytes this node
// sends, applies Faults (cuts, delays, loss, drops) to what it sends, and
// passes what arrives through the guard (keys, sizes, stream caps) before
// memberlist sees it.
type transport struct {
	inner   *memberlist.NetTransport
	faults  *Faults
	guard   *guard
	packets chan *memberlist.Packet
	streams chan net.Conn
	sent    atomic.Uint64 // bytes written, packets and streams
	done    chan struct{}
	ctx     context.Context // cancelled with done
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	timersMu sync.Mutex
	timers   map[*time.Timer]struct{} // delayed packets not sent yet
}

func newTransport(inner *memberlist.NetTransport, faults *Faults, gd *guard) *transport {
	t := &transport{inner: inner, faults: faults, guard: gd, done: make(chan struct{}),
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), timers: map[*time.Timer]struct{}{}}
	t.ctx, t.cancel = context.WithCancel(context.Background())
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
			if p.From != nil && t.faults.refuse(p.From.String()) {
				continue
			}
			if t.guard != nil && !t.guard.packet(p.Buf, p.From) {
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
			if t.guard == nil {
				t.handOver(&countingConn{Conn: c, n: &t.sent})
				continue
			}
			// The guard waits for the stream's first message: not here.
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				stop := context.AfterFunc(t.ctx, func() { c.Close() }) // do not wait out a slow sender at shutdown
				ok := t.guard.stream(&countingConn{Conn: c, n: &t.sent})
				stop()
				if ok != nil {
					t.handOver(ok)
				}
			}()
		case <-t.done:
			return
		}
	}
}

func (t *transport) handOver(c net.Conn) {
	select {
	case t.streams <- c:
	case <-t.done:
		c.Close()
	}
}

func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	lost, delay := t.faults.packet(addr)
	if lost {
		return time.Now(), nil // lost on the way, as UDP would be
	}
	t.sent.Add(uint64(len(b)))
	if delay <= 0 {
		return t.inner.WriteTo(b, addr)
	}
	cp := bytes.Clone(b) // memberlist reuses b
	t.later(delay, func() { t.inner.WriteTo(cp, addr) })
	return time.Now(), nil
}

// later runs fn after d from a timer, unless the transport shuts down first.
func (t *transport) later(d time.Duration, fn func()) {
	t.timersMu.Lock()
	defer t.timersMu.Unlock()
	select {
	case <-t.done:
		return
	default:
	}
	var tm *time.Timer
	tm = time.AfterFunc(d, func() {
		t.timersMu.Lock()
		_, live := t.timers[tm]
		delete(t.timers, tm)
		t.timersMu.Unlock()
		if live {
			fn()
		}
	})
	t.timers[tm] = struct{}{}
}

func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packets }

func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	plan := t.faults.stream(addr)
	if plan.connect > 0 {
		wait := min(plan.connect, timeout)
		tm := time.NewTimer(wait)
		select {
		case <-tm.C:
		case <-t.done:
			tm.Stop()
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: net.ErrClosed}
		}
		if plan.connect >= timeout {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
		}
		timeout -= plan.connect
	}
	if plan.fail != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: plan.fail}
	}
	c, err := t.inner.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	var conn net.Conn = &countingConn{Conn: c, n: &t.sent}
	if plan.delay != nil {
		conn = newDelayedConn(conn, plan.delay, t.done)
	}
	if t.guard != nil {
		conn = t.guard.outbound(conn, addr)
	}
	return conn, nil
}

func (t *transport) StreamCh() <-chan net.Conn { return t.streams }

func (t *transport) Shutdown() error {
	err := t.inner.Shutdown()
	t.timersMu.Lock()
	close(t.done)
	for tm := range t.timers {
		tm.Stop()
	}
	t.timers = nil
	t.timersMu.Unlock()
	t.cancel()
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
