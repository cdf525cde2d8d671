package gossip

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

func TestFaults_ZeroValueInjectsNothing(t *testing.T) {
	for _, f := range []*Faults{nil, {}} {
		if lost, d := f.packet("127.0.0.1:1"); lost || d != 0 {
			t.Fatalf("packet: lost %v, delay %v", lost, d)
		}
		if p := f.stream("127.0.0.1:1"); p.fail != nil || p.connect != 0 || p.delay != nil {
			t.Fatalf("stream: %+v", p)
		}
		if f.message(KindRepair, "127.0.0.1:1") || f.refuse("127.0.0.1:1") {
			t.Fatal("a message dropped or refused")
		}
		if f.Stats() != (FaultStats{}) {
			t.Fatalf("stats %+v", f.Stats())
		}
	}
}

// decisions draws n packet decisions on addr.
func decisions(f *Faults, addr string, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		lost, d := f.packet(addr)
		if lost {
			d = -1
		}
		out[i] = d
	}
	return out
}

func TestFaults_SeededAndPerLink(t *testing.T) {
	link := Link{Delay: 50 * time.Millisecond, Jitter: 20 * time.Millisecond, PacketLoss: 0.3}
	mk := func(seed uint64) *Faults {
		f := &Faults{}
		f.SetSeed(seed)
		f.SetLink("", link)
		return f
	}
	a, b, c := mk(7), mk(7), mk(8)
	// b draws on another link in between: a's link does not notice.
	var got, same []time.Duration
	for i := 0; i < 100; i++ {
		got = append(got, decisions(a, "10.0.0.1:7946", 10)...)
		same = append(same, decisions(b, "10.0.0.1:7946", 10)...)
		decisions(b, "10.0.0.2:7946", 3)
	}
	other := decisions(c, "10.0.0.1:7946", 1000)
	if fmt.Sprint(got) != fmt.Sprint(same) {
		t.Fatal("the same seed gave different decisions on a link")
	}
	if fmt.Sprint(got) == fmt.Sprint(other) {
		t.Fatal("another seed gave the same decisions")
	}
	lost := 0
	var sum time.Duration
	for _, d := range got {
		if d < 0 {
			lost++
			continue
		}
		if d < 30*time.Millisecond || d > 70*time.Millisecond {
			t.Fatalf("delay %v outside 50 ms ± 20 ms", d)
		}
		sum += d
	}
	if lost < 250 || lost > 350 {
		t.Fatalf("%d of 1000 packets lost at 30%%", lost)
	}
	if mean := sum / time.Duration(1000-lost); mean < 48*time.Millisecond || mean > 52*time.Millisecond {
		t.Fatalf("mean delay %v", mean)
	}
	if st := a.Stats(); st.PacketsLost != uint64(lost) || st.Delayed != uint64(1000-lost) {
		t.Fatalf("stats %+v, %d lost", st, lost)
	}
}

func TestFaults_CutsRulesAndReset(t *testing.T) {
	f := &Faults{}
	f.Block("a:1")
	if lost, _ := f.packet("a:1"); !lost || f.stream("a:1").fail == nil || !f.refuse("a:1") {
		t.Fatal("a cut link carried traffic")
	}
	if lost, _ := f.packet("b:1"); lost {
		t.Fatal("an uncut link lost a packet")
	}
	f.Heal()
	if lost, _ := f.packet("a:1"); lost {
		t.Fatal("a healed link lost a packet")
	}

	f.DropNext(2, KindPull, "a:1")
	f.DropNext(1, KindAny, "")
	if f.message(KindPull, "b:1") || f.message(KindRepair, "a:1") {
		t.Fatal("a rule matched another address or kind")
	}
	if !f.message(KindPull, "a:1") || !f.message(KindPull, "a:1") || f.message(KindPull, "a:1") {
		t.Fatal("DropNext(2) did not drop exactly two")
	}
	if f.Pending() != 1 {
		t.Fatalf("%d drops pending, want the KindAny one", f.Pending())
	}
	if f.message(KindDelta, "c:1") {
		t.Fatal("a KindAny rule matched a message: it matches the transport's packets and streams")
	}
	if lost, _ := f.packet("c:1"); !lost {
		t.Fatal("the KindAny rule did not drop the next packet")
	}
	f.DropNext(1, KindStream, "")
	if f.stream("c:1").fail == nil {
		t.Fatal("the stream rule did not fail the next stream")
	}

	f.SetLink("", Link{Delay: time.Hour, StreamLoss: 1})
	f.Block("a:1")
	f.DropNext(5, KindRepair, "")
	f.Reset()
	if lost, d := f.packet("a:1"); lost || d != 0 || f.Pending() != 0 {
		t.Fatal("Reset left a fault")
	}
}

func TestFaults_ConcurrentUse(t *testing.T) {
	f := &Faults{}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := fmt.Sprintf("10.0.0.%d:1", i)
			for j := 0; j < 500; j++ {
				switch j % 6 {
				case 0:
					f.SetLink(addr, Link{Delay: time.Millisecond, Jitter: time.Millisecond, PacketLoss: 0.5, StreamLoss: 0.5})
				case 1:
					f.packet(addr)
				case 2:
					if p := f.stream(addr); p.delay != nil {
						p.delay()
					}
				case 3:
					f.DropNext(1, KindRepair, addr)
					f.message(KindRepair, addr)
				case 4:
					f.Block(addr)
					f.refuse(addr)
					f.Unblock(addr)
				case 5:
					f.Stats()
				}
			}
		}()
	}
	wg.Wait()
}

// TestFaults_DelayedStream: a delayed stream's writer does not wait for the
// delay; the bytes arrive late, whole and in order, and so does the answer.
func TestFaults_DelayedStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var want bytes.Buffer
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&want, "message %d;", i)
	}
	got := make(chan []byte, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, want.Len())
				n, _ := io.ReadFull(c, b)
				got <- b[:n]
				c.Write([]byte("ack"))
			}()
		}
	}()
	dial := func(delay time.Duration) (*delayedConn, chan struct{}) {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		abort := make(chan struct{})
		return newDelayedConn(raw, func() time.Duration { return delay }, abort), abort
	}

	// An hour's delay: fifty writes return, and nothing arrives.
	slow, abort := dial(time.Hour)
	for i := 0; i < 50; i++ {
		if _, err := slow.Write([]byte(fmt.Sprintf("message %d;", i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-got:
		t.Fatal("the bytes arrived before their delay")
	default:
	}
	close(abort) // the transport shuts down: the queue is dropped
	slow.Close()

	c, abort := dial(20 * time.Millisecond)
	defer close(abort)
	for i := 0; i < 50; i++ {
		if _, err := c.Write([]byte(fmt.Sprintf("message %d;", i))); err != nil {
			t.Fatal(err)
		}
	}
	for done := false; !done; {
		select {
		case b := <-got:
			if len(b) == 0 {
				continue // the aborted stream's
			}
			if !bytes.Equal(b, want.Bytes()) {
				t.Fatalf("got %q", b)
			}
			done = true
		case <-time.After(10 * time.Second):
			t.Fatal("the delayed bytes never arrived")
		}
	}
	ack, err := io.ReadAll(c)
	if err != nil || string(ack) != "ack" {
		t.Fatalf("read %q, %v", ack, err)
	}
	c.Close()
}

// TestGossip_FaultyLinks: a cluster whose every link delays, jitters and
// loses packets and streams still converges; the faults were applied.
func TestGossip_FaultyLinks(t *testing.T) {
	key := newKey(t)
	var ms []*member
	for i := 0; i < 3; i++ {
		cfg := testConfig(t, fmt.Sprintf("n%d", i), key)
		cfg.ProbeTimeout = 400 * time.Millisecond // above the round trip
		cfg.ProbeInterval = time.Second
		cfg.Faults = &Faults{}
		cfg.Faults.SetSeed(uint64(i))
		cfg.Faults.SetLink("", Link{Delay: 40 * time.Millisecond, Jitter: 20 * time.Millisecond, PacketLoss: 0.05, StreamLoss: 0.05})
		m := startMember(t, cfg)
		if i > 0 {
			// A join may be lost; it is tried again.
			waitFor(t, 10*time.Second, "a join", func() bool { _, err := m.g.Join([]string{ms[0].g.Addr()}); return err == nil })
		}
		ms = append(ms, m)
	}
	waitFor(t, 20*time.Second, "all members alive", func() bool {
		for _, m := range ms {
			if len(m.g.LiveMembers()) != 3 {
				return false
			}
		}
		return true
	})
	for i := 0; i < 20; i++ {
		login(ms[i%3], fmt.Sprintf("s%d", i))
	}
	waitFor(t, 30*time.Second, "s0 on n1", func() bool { return has(ms[1], "s0") })
	logout(ms[1], "s0")
	waitFor(t, 30*time.Second, "convergence over faulty links", func() bool {
		for _, m := range ms {
			for i := 0; i < 20; i++ {
				if !has(m, fmt.Sprintf("s%d", i)) {
					return false
				}
			}
			if !hasEnded(m, "s0") {
				return false
			}
		}
		return converged(ms)
	})
	var st FaultStats
	for _, m := range ms {
		s := m.faults.Stats()
		st.Delayed += s.Delayed
		st.PacketsLost += s.PacketsLost
	}
	if st.Delayed == 0 || st.PacketsLost == 0 {
		t.Fatalf("the faults were not applied: %+v", st)
	}
}
