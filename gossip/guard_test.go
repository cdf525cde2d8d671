package gossip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCount counts the records a logger writes at warning and above, by
// message.
type logCount struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (c *logCount) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCount) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[string]int{}
	}
	c.msgs[r.Message]++
	return nil
}
func (c *logCount) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCount) WithGroup(string) slog.Handler      { return c }

// lines returns how many records hold s, and all of them.
func (c *logCount) lines(s string) (n, all int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, k := range c.msgs {
		all += k
		if strings.Contains(m, s) {
			n += k
		}
	}
	return n, all
}

// stranger dials addr over TCP from 127.0.0.2, an address no member has.
func stranger(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the node closed c (a read ends) within d.
func closedByPeer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestGossip_GarbageIsCountedNotLogged: a sender of garbage, over UDP and
// TCP, is counted; the log gets one line for it, not one per packet
// (issue 9, item 10); members are not disturbed.
func TestGossip_GarbageIsCountedNotLogged(t *testing.T) {
	logs := &logCount{}
	key := newKey(t)
	cfg := testConfig(t, "n0", key)
	cfg.Logger = slog.New(logs)
	n0 := startMember(t, cfg)
	n1 := startMember(t, testConfig(t, "n1", key))
	if _, err := n1.g.Join([]string{n0.g.Addr()}); err != nil {
		t.Fatal(err)
	}

	udp, err := net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}, net.UDPAddrFromAddrPort(mustAddrPort(t, n0.g.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	const batches, perBatch = 20, 100
	buf := make([]byte, 1200)
	for i := 0; i < batches; i++ {
		for j := 0; j < perBatch; j++ {
			rand.Read(buf)
			if _, err := udp.Write(buf[:64+j*11]); err != nil {
				t.Fatal(err)
			}
		}
		want := uint64((i + 1) * perBatch)
		waitFor(t, 10*time.Second, "the garbage packets counted", func() bool { return n0.g.Stats().ForeignPackets >= want })
	}
	for i := 0; i < 20; i++ {
		c := stranger(t, n0.g.Addr())
		rand.Read(buf)
		buf[0] = 0 // not memberlist's encrypted stream type
		c.Write(buf)
		if !closedByPeer(c, 10*time.Second) {
			t.Fatal("a garbage stream was kept open")
		}
	}
	waitFor(t, 10*time.Second, "the garbage streams counted", func() bool { return n0.g.Stats().ForeignStreams >= 20 })

	// One line per source: the packets' (host:port) and the streams' (host).
	if n, _ := logs.lines("no installed key decrypts"); n != 2 {
		t.Fatalf("%d lines about the garbage, want 2: %v", n, logs.msgs)
	}
	if n, _ := logs.lines("ecrypt"); n != 2 {
		t.Fatalf("memberlist logged the garbage: %v", logs.msgs)
	}
	h := n0.g.Health()
	if h.KeyMismatch || len(h.Foreign) != 2 || h.Foreign[0].Addr != "127.0.0.2" || h.Foreign[0].Streams != 20 || h.Foreign[1].Packets != batches*perBatch {
		t.Fatalf("health %+v", h)
	}
	login(n1, "after")
	waitFor(t, 5*time.Second, "a login after the garbage", func() bool { return has(n0, "after") })
}

func mustAddrPort(t *testing.T, addr string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// TestGossip_InboundStreamCaps: a stream announcing a message over the
// limit is closed before it is read; strangers get a few streams at once,
// and holding them all does not keep members from syncing.
func TestGossip_InboundStreamCaps(t *testing.T) {
	key := newKey(t)
	cfg := testConfig(t, "n0", key)
	cfg.MaxStrangerStreams = 4
	cfg.TCPTimeout = 30 * time.Second // idle strangers hold their slots
	n0 := startMember(t, cfg)
	n1 := startMember(t, testConfig(t, "n1", key))
	if _, err := n1.g.Join([]string{n0.g.Addr()}); err != nil {
		t.Fatal(err)
	}

	big := stranger(t, n0.g.Addr())
	hdr := []byte{mlEncryptMsg, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], 20<<20) // memberlist would buffer 20 MB
	big.Write(hdr)
	if !closedByPeer(big, 10*time.Second) {
		t.Fatal("an oversized stream was kept open")
	}
	// Its slot is given back after it is counted: the idle strangers below
	// must not race it for the last slot (one was refused so in CI).
	waitFor(t, 5*time.Second, "the oversized stream counted and its slot free", func() bool {
		return n0.g.Stats().StreamsTooLarge == 1 && len(n0.g.guard.strangers) == 0
	})

	var idle []net.Conn
	for i := 0; i < 4; i++ {
		idle = append(idle, stranger(t, n0.g.Addr()))
	}
	// Each stream takes its slot on a goroutine of its own: a stream sent
	// later may take one first. The streams past the cap are sent once the
	// idle ones hold every slot (under load the fifth once took the slot of
	// a fourth not yet scheduled, and was kept open).
	waitFor(t, 5*time.Second, "the idle strangers holding every slot", func() bool { return len(n0.g.guard.strangers) == 4 })
	if got := n0.g.Stats().StreamsRefused; got != 0 {
		t.Fatalf("%d streams refused within the cap", got)
	}
	for i := 0; i < 3; i++ {
		c := stranger(t, n0.g.Addr())
		if !closedByPeer(c, 10*time.Second) {
			t.Fatal("a stranger's stream past the cap was kept open")
		}
	}
	if got := n0.g.Stats().StreamsRefused; got != 3 {
		t.Fatalf("%d streams refused, want 3", got)
	}
	// The members' own streams are not the strangers'.
	unpublished(t, n0, "on-n0")
	if err := n1.g.SyncWith(n0.g.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a member's sync while strangers hold their slots", func() bool { return has(n1, "on-n0") })
	for _, c := range idle {
		c.Close()
	}
}

// TestGossip_OtherKeyIsReported: a node whose key is not the cluster's (it
// missed a rotation) reports itself isolated with a key mismatch, naming
// the join address that answered in another key, and logs it once a minute
// however often it retries; the member it tried hears it too (issue 13,
// item 3).
func TestGossip_OtherKeyIsReported(t *testing.T) {
	ms := startCluster(t, 2)
	logs := &logCount{}
	cfg := testConfig(t, "stale", newKey(t))
	cfg.Join = []string{ms[0].g.Addr()}
	cfg.Logger = slog.New(logs)
	stale := startMember(t, cfg)
	if _, err := stale.g.Join(cfg.Join); err == nil {
		t.Fatal("joined with another key")
	}
	waitFor(t, 10*time.Second, "the retries to be answered in another key", func() bool { return stale.g.Stats().ForeignAnswers >= 5 })
	h := stale.g.Health()
	if !h.Isolated || !h.KeyMismatch || h.Status() != "key_mismatch" || len(h.Foreign) == 0 || !h.Foreign[0].Answered || h.Foreign[0].Addr != ms[0].g.Addr() || !h.Foreign[0].Member {
		t.Fatalf("the stale node's health: %+v", h)
	}
	if r := h.Reason(); !strings.HasPrefix(r, ms[0].g.Addr()+" answers in another cluster key") {
		t.Fatalf("reason %q", r)
	}
	if n, _ := logs.lines("answers in another cluster key"); n != 1 {
		t.Fatalf("%d lines about the other key, want 1: %v", n, logs.msgs)
	}
	if st := ms[0].g.Stats(); st.ForeignStreams == 0 {
		t.Fatalf("the member tried did not count the stale node's streams: %+v", st)
	}
	if h := ms[0].g.Health(); !h.KeyMismatch || h.Isolated {
		t.Fatalf("the member tried: %+v", h)
	}
	if len(ms[0].g.LiveMembers()) != 2 {
		t.Fatal("the stale node got in")
	}
}
