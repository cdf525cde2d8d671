package gossip

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The guard checks what arrives on the gossip port before memberlist sees
// it, so that traffic without the cluster key costs little and says where
// it came from:
//
//   - A packet that none of the installed keys decrypts is dropped and
//     counted here (memberlist would log an ERROR line for each one).
//   - A stream must send its first message within TCPTimeout; a message
//     that is not encrypted, or is longer than maxStreamBytes, closes the
//     stream before anything is buffered (memberlist would buffer up to
//     20 MB for anyone, ~67 MB of memory per stream). One that no key
//     decrypts is counted; if small, memberlist still gets it, so that it
//     answers with an error sealed in this cluster's key and a ussync node
//     on the other side learns it holds another key.
//   - Concurrent inbound streams are capped: MaxInboundStreams for
//     addresses this member knows (members, failed members, join
//     addresses), MaxStrangerStreams for the others, so that strangers can
//     neither exhaust memory nor crowd out the members.
//   - The first answer on a stream this member opened is checked the same
//     way: a join address or member that answers in another key is the sign
//     of a node that missed a key rotation (Health.KeyMismatch).
//
// The checks read memberlist's wire format: an encrypted stream message is
// [10 (encryptMsg)][length uint32][version][nonce 12][ciphertext and tag],
// authenticated with the first five bytes as additional data; an encrypted
// packet is [version][nonce 12][ciphertext and tag], with no additional data
// (this cluster sets no label). Version 0 pads the plaintext; neither
// changes what authenticates.
const (
	// maxStreamBytes is the longest first message a stream may send: the
	// largest gossip message plus room for memberlist's framing, or a
	// push/pull of about 1,500 members (the state is our 2 KiB digest plus
	// some 600 bytes a member).
	maxStreamBytes = MaxMessageBytes + 64<<10
	// foreignAnswerMax is the longest undecryptable stream still handed to
	// memberlist for its error answer (a foreign join is a few KB).
	foreignAnswerMax = 64 << 10

	mlEncryptMsg = 10  // memberlist's encryptMsg type
	mlLabelMsg   = 244 // memberlist's hasLabelMsg type (a label header)
	gcmNonce     = 12
	gcmMinLen    = 1 + gcmNonce + 16
)

// errStreamTooLarge refuses a stream whose first message is over
// maxStreamBytes.
var errStreamTooLarge = errors.New("gossip stream message over the size limit")

// keyCheck holds one AEAD per installed key, primary first.
type keyCheck struct {
	aeads atomic.Pointer[[]cipher.AEAD]
}

func (k *keyCheck) set(keys [][]byte) error {
	aeads := make([]cipher.AEAD, 0, len(keys))
	for _, key := range keys {
		b, err := aes.NewCipher(key)
		if err != nil {
			return fmt.Errorf("gossip key: %w", err)
		}
		a, err := cipher.NewGCM(b)
		if err != nil {
			return fmt.Errorf("gossip key: %w", err)
		}
		aeads = append(aeads, a)
	}
	k.aeads.Store(&aeads)
	return nil
}

// open reports whether one of the keys authenticates msg ([version][nonce]
// [ciphertext and tag]) with aad; scratch is reused for the plaintext.
func (k *keyCheck) open(scratch *[]byte, msg, aad []byte) bool {
	if len(msg) < gcmMinLen || msg[0] > 1 {
		return false
	}
	aeads := k.aeads.Load()
	if aeads == nil {
		return false
	}
	nonce, ct := msg[1:1+gcmNonce], msg[1+gcmNonce:]
	for _, a := range *aeads {
		if cap(*scratch) < len(ct) {
			*scratch = make([]byte, 0, len(ct))
		}
		if _, err := a.Open((*scratch)[:0], nonce, ct, aad); err == nil {
			return true
		}
	}
	return false
}

// plausible reports whether msg looks like an encrypted memberlist message
// (version byte and length), as opposed to noise.
func plausible(msg []byte) bool { return len(msg) >= gcmMinLen && msg[0] <= 1 }

// guard applies the checks above. Its counters go into Stats.
type guard struct {
	keys      keyCheck
	members   chan struct{}
	strangers chan struct{}
	timeout   time.Duration
	known     func(ip netip.Addr) bool
	foreign   *foreignLog
	scratch   []byte // forwardPackets' plaintext buffer (one goroutine)

	packetsRefused, streamsRefused, streamsBusy, streamsTooLarge atomic.Uint64
}

func newGuard(keys [][]byte, maxMembers, maxStrangers int, timeout time.Duration, known func(netip.Addr) bool, foreign *foreignLog) (*guard, error) {
	g := &guard{members: make(chan struct{}, maxMembers), strangers: make(chan struct{}, maxStrangers),
		timeout: timeout, known: known, foreign: foreign}
	if err := g.keys.set(keys); err != nil {
		return nil, err
	}
	return g, nil
}

// packet reports whether an inbound packet may go on to memberlist.
func (g *guard) packet(buf []byte, from net.Addr) bool {
	if g.keys.open(&g.scratch, buf, nil) {
		return true
	}
	g.packetsRefused.Add(1)
	g.foreign.note(addrString(from), true, plausible(buf) || len(buf) > 0 && buf[0] == mlLabelMsg)
	return false
}

func addrString(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// stream checks an inbound stream. It blocks until the stream's first
// message has arrived (at most timeout): call it on its own goroutine. It
// returns the connection to hand to memberlist (which replays what was
// read, and frees the stream's slot on Close), or nil if the stream was
// refused and closed.
func (g *guard) stream(c net.Conn) net.Conn {
	ip := remoteIP(c)
	slots := g.strangers
	if ip.IsValid() && g.known(ip) {
		slots = g.members
	}
	select {
	case slots <- struct{}{}:
	default:
		g.streamsBusy.Add(1)
		c.Close()
		return nil
	}
	release := func() { <-slots }
	c.SetReadDeadline(time.Now().Add(g.timeout))
	first, err := readFirst(c, maxStreamBytes)
	switch {
	case errors.Is(err, errStreamTooLarge):
		// The slot is free before the stream is counted: whoever reads the
		// count may rely on it.
		release()
		c.Close()
		g.streamsTooLarge.Add(1)
		g.foreign.note(ip.String(), false, false)
		return nil
	case err != nil:
		// Closed or too slow before a whole message: nothing to tell anyone.
	case first[0] != mlEncryptMsg:
		g.streamsRefused.Add(1)
		g.foreign.note(ip.String(), false, first[0] == mlLabelMsg || first[0] < mlEncryptMsg)
	case !g.keys.open(new([]byte), first[5:], first[:5]):
		g.streamsRefused.Add(1)
		g.foreign.note(ip.String(), false, plausible(first[5:]))
		if len(first) <= foreignAnswerMax {
			c.SetReadDeadline(time.Time{})
			return &replayConn{Conn: c, pre: first, release: release}
		}
	default:
		c.SetReadDeadline(time.Time{})
		return &replayConn{Conn: c, pre: first, release: release}
	}
	release()
	c.Close()
	return nil
}

// readFirst reads one memberlist stream message: the five-byte header and
// the payload it announces (for an encrypted message; any other type is
// returned with its header alone). It returns what it read, complete or not.
func readFirst(c net.Conn, limit int) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:1]); err != nil {
		return nil, err
	}
	if hdr[0] != mlEncryptMsg {
		return hdr[:1], nil
	}
	if n, err := io.ReadFull(c, hdr[1:]); err != nil {
		return hdr[:1+n], err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n > limit {
		return hdr[:], errStreamTooLarge
	}
	// Grown as bytes arrive: a sender must send what it announces to make
	// this member hold it.
	buf := make([]byte, 5, 5+min(n, 64<<10))
	copy(buf, hdr[:])
	for len(buf) < 5+n {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(5+n, 2*cap(buf)))
			copy(nb, buf)
			buf = nb
		}
		m, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < 5+n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// replayConn hands memberlist the bytes the guard read, then the rest of
// the stream; closing it frees the stream's slot.
type replayConn struct {
	net.Conn
	pre     []byte
	release func()
	once    sync.Once
}

func (r *replayConn) Read(b []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(b, r.pre)
		r.pre = r.pre[n:]
		return n, nil
	}
	return r.Conn.Read(b)
}

func (r *replayConn) Close() error {
	r.once.Do(func() {
		if r.release != nil {
			r.release()
		}
	})
	return r.Conn.Close()
}

// checkedConn checks the first answer on a stream this member opened.
type checkedConn struct {
	net.Conn
	g    *guard
	addr string
	once sync.Once
	pre  []byte
	err  error
}

func (g *guard) outbound(c net.Conn, addr string) net.Conn {
	return &checkedConn{Conn: c, g: g, addr: addr}
}

func (c *checkedConn) Read(b []byte) (int, error) {
	c.once.Do(c.check)
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

func (c *checkedConn) check() {
	first, err := readFirst(c.Conn, maxStreamBytes)
	c.pre, c.err = first, err
	switch {
	case errors.Is(err, errStreamTooLarge):
		c.g.streamsTooLarge.Add(1)
		c.pre = nil
	case err != nil:
	case first[0] != mlEncryptMsg:
		// memberlist without encryption, or not memberlist.
		c.g.foreign.answered(c.addr)
	case c.g.keys.open(new([]byte), first[5:], first[:5]):
		c.g.foreign.clear(c.addr)
	default:
		c.g.foreign.answered(c.addr)
	}
}
