package gossip

import (
	"bytes"
	"net"
	"os"
	"sync"
	"time"
)

// delayedConn delays both directions of a stream this member opened, as a
// long link would (see Faults). A write returns at once, as it does into a
// kernel's socket buffer; a pump writes it to the real connection once its
// delay has passed, in order. What the peer sends is read by a goroutine
// that stamps each chunk with its arrival time plus a delay; Read hands a
// chunk over only once that time has come. Close returns at once: the pump
// flushes what is queued, then closes the real connection.
type delayedConn struct {
	net.Conn
	delay func() time.Duration
	abort <-chan struct{} // the transport shutting down

	wmu    sync.Mutex
	wq     []delayedChunk
	wlast  time.Time
	werr   error
	closed bool
	wake   chan struct{}

	rmu      sync.Mutex // serializes Read; guards the fields below
	rstart   sync.Once
	rch      chan delayedChunk
	rnext    *delayedChunk
	rcur     []byte
	rerr     error
	dlMu     sync.Mutex
	deadline time.Time
	done     chan struct{} // closed by Close
	once     sync.Once
}

type delayedChunk struct {
	at   time.Time
	data []byte
	err  error
}

func newDelayedConn(c net.Conn, delay func() time.Duration, abort <-chan struct{}) *delayedConn {
	d := &delayedConn{Conn: c, delay: delay, abort: abort, wake: make(chan struct{}, 1),
		rch: make(chan delayedChunk, 64), done: make(chan struct{})}
	go d.pump()
	return d
}

func (d *delayedConn) Write(b []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.werr != nil {
		return 0, d.werr
	}
	if d.closed {
		return 0, net.ErrClosed
	}
	at := time.Now().Add(d.delay())
	if at.Before(d.wlast) {
		at = d.wlast
	}
	d.wlast = at
	d.wq = append(d.wq, delayedChunk{at: at, data: bytes.Clone(b)})
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return len(b), nil
}

// pump writes the queued chunks when due, then closes the connection once
// Close was called and the queue is empty (or at once if the transport
// shuts down).
func (d *delayedConn) pump() {
	defer d.Conn.Close()
	for {
		d.wmu.Lock()
		if len(d.wq) == 0 {
			closed := d.closed
			d.wmu.Unlock()
			if closed {
				return
			}
			select {
			case <-d.wake:
				continue
			case <-d.abort:
				return
			}
		}
		c := d.wq[0]
		d.wmu.Unlock()
		if wait := time.Until(c.at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-d.abort:
				t.Stop()
				return
			}
		}
		_, err := d.Conn.Write(c.data)
		d.wmu.Lock()
		d.wq = d.wq[1:]
		if err != nil {
			d.werr, d.wq = err, nil
		}
		d.wmu.Unlock()
	}
}

// read is the reader goroutine: it stamps what arrives and queues it.
func (d *delayedConn) read() {
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := d.Conn.Read(buf)
		at := time.Now().Add(d.delay())
		if at.Before(last) {
			at = last
		}
		last = at
		if n > 0 {
			select {
			case d.rch <- delayedChunk{at: at, data: bytes.Clone(buf[:n])}:
			case <-d.done:
				return
			}
		}
		if err != nil {
			select {
			case d.rch <- delayedChunk{at: at, err: err}:
			case <-d.done:
			}
			return
		}
	}
}

func (d *delayedConn) Read(b []byte) (int, error) {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	d.rstart.Do(func() { go d.read() })
	d.dlMu.Lock()
	dl := d.deadline
	d.dlMu.Unlock()
	var expire <-chan time.Time
	if !dl.IsZero() && len(d.rcur) == 0 {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expire = t.C
	}
	for len(d.rcur) == 0 && d.rerr == nil {
		if d.rnext == nil {
			select {
			case c := <-d.rch:
				d.rnext = &c
			case <-expire:
				return 0, os.ErrDeadlineExceeded
			case <-d.done:
				return 0, net.ErrClosed
			}
		}
		if wait := time.Until(d.rnext.at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-expire:
				t.Stop()
				return 0, os.ErrDeadlineExceeded
			case <-d.done:
				t.Stop()
				return 0, net.ErrClosed
			}
		}
		d.rcur, d.rerr, d.rnext = d.rnext.data, d.rnext.err, nil
	}
	if len(d.rcur) == 0 {
		return 0, d.rerr
	}
	n := copy(b, d.rcur)
	d.rcur = d.rcur[n:]
	return n, nil
}

// Close returns at once; the pump flushes the queued writes and closes the
// real connection.
func (d *delayedConn) Close() error {
	d.once.Do(func() {
		close(d.done)
		d.wmu.Lock()
		d.closed = true
		d.wmu.Unlock()
		select {
		case d.wake <- struct{}{}:
		default:
		}
	})
	return nil
}

// SetDeadline sets the read deadline this conn enforces and the real
// connection's write deadline (the pump's writes).
func (d *delayedConn) SetDeadline(t time.Time) error {
	d.SetReadDeadline(t)
	return d.Conn.SetWriteDeadline(t)
}

// SetReadDeadline is enforced by Read; the reader goroutine reads without
// one until the connection closes.
func (d *delayedConn) SetReadDeadline(t time.Time) error {
	d.dlMu.Lock()
	d.deadline = t
	d.dlMu.Unlock()
	return nil
}
