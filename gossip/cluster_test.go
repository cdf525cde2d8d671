package gossip

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/session"
)

// testLogger writes into t.Log, so a failing test shows its cluster's story.
// It stops at cleanup: memberlist goroutines that outlive Shutdown by a
// moment must not log into a finished test.
func testLogger(t testing.TB) *slog.Logger { return testLoggerAt(t, testLogLevel) }

// testLoggerAt is testLogger at another level: debugLogs, for a test whose
// failure needs the whole story (members joining, failing, alive messages
// heard, push/pulls).
func testLoggerAt(t testing.TB, level slog.Level) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() { // registered first, so it runs after the members close
		w.mu.Lock()
		w.off = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type tWriter struct {
	t   testing.TB
	mu  sync.RWMutex
	off bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.off {
		w.t.Log(string(bytes.TrimSpace(p)))
	}
	return len(p), nil
}

func newKey(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

type member struct {
	g      *Gossip
	store  *session.Store
	faults *Faults
	cfg    Config
	dir    string
	// free, when set, reads the free space of the store's disk
	// (session.Options.FreeSpace): tests fill and free it.
	free func(string) (uint64, error)
}

// testConfig shrinks memberlist's timers so failures are noticed in well
// under a second.
func testConfig(t testing.TB, name string, key []byte) Config {
	c := DefaultConfig(ProfileLocal)
	c.Name = name
	c.BindAddr = "127.0.0.1:0"
	c.Keys = [][]byte{key}
	c.SiteURL = "http://" + name + ".localhost/"
	c.Version = "test"
	c.Shrink()
	c.Logger = testLogger(t)
	return c
}

func startMember(t testing.TB, cfg Config) *member {
	t.Helper()
	if cfg.Faults == nil {
		cfg.Faults = &Faults{}
	}
	m := &member{cfg: cfg, dir: t.TempDir(), faults: cfg.Faults}
	m.start(t)
	return m
}

// start runs m on its data directory and config.
func (m *member) start(t testing.TB) {
	t.Helper()
	st, err := session.Open(session.Options{Dir: m.dir, Logger: m.cfg.Logger, FreeSpace: m.free})
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(m.cfg, st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Close()
		st.Close()
	})
	m.g, m.store = g, st
}

// kill stops m as a crash would: no leave.
func (m *member) kill() {
	m.g.Close()
	m.store.Close()
}

// restart starts m again on its data after kill: at its old gossip address,
// or, with moved set, at a new one. It joins the addresses given. It first
// makes m forget the members it remembers, so that m does not resync with
// them itself: what reaches it is what its peers send.
func (m *member) restart(t testing.TB, moved bool, join ...string) {
	t.Helper()
	if moved {
		m.cfg.BindAddr = "127.0.0.1:0"
	} else {
		m.cfg.BindAddr = m.g.Addr()
	}
	m.cfg.Join = join
	forgetMembers(t, m.dir)
	m.start(t)
	if len(join) > 0 {
		if _, err := m.g.Join(join); err != nil {
			t.Fatal(err)
		}
	}
}

func startCluster(t testing.TB, n int) []*member {
	t.Helper()
	key := newKey(t)
	var ms []*member
	for i := 0; i < n; i++ {
		m := startMember(t, testConfig(t, fmt.Sprintf("n%d", i), key))
		if i > 0 {
			if _, err := m.g.Join([]string{ms[0].g.Addr()}); err != nil {
				t.Fatal(err)
			}
		}
		ms = append(ms, m)
	}
	waitFor(t, 5*time.Second, "all members alive", func() bool {
		for _, m := range ms {
			if len(m.g.LiveMembers()) != n {
				return false
			}
		}
		return true
	})
	return ms
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	eventually.True(t, d, what, cond)
}

// deadToGossip reports whether m has held each of peers failed (not left)
// for longer than memberlist's GossipToTheDeadTime: memberlist has stopped
// gossiping to them, and only the reconnect loop heals the split.
func deadToGossip(m *member, peers ...*member) bool {
	m.g.failedMu.Lock()
	defer m.g.failedMu.Unlock()
	for _, p := range peers {
		f := m.g.failed[p.g.cfg.Name]
		if f == nil || f.left || m.g.store.Now().Sub(f.since) <= m.g.cfg.GossipToTheDeadTime {
			return false
		}
	}
	return true
}

var testNow = time.Now()

var testLogLevel = slog.LevelWarn

func login(m *member, id string) session.Record {
	s := session.Session{ID: id, Email: "ann@example.com", Site: m.g.cfg.Name, Created: m.store.Clock().Now(), ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
	r := session.Record{Session: &s}
	changed, err := m.store.Apply(r)
	if err != nil {
		panic(err)
	}
	m.g.Publish(changed)
	return r
}

func logout(m *member, id string) {
	s, err := m.store.Session(id)
	if err != nil {
		panic(err)
	}
	s.Ended, s.EndReason = m.store.Clock().Now(), session.EndLogout
	changed, err := m.store.Apply(session.Record{Session: &s})
	if err != nil {
		panic(err)
	}
	m.g.Publish(changed)
}

// converged reports whether ms hold the same replicated records (differ).
func converged(ms []*member) bool { return differ(ms) == "" }

// differ says how ms do not hold the same replicated records yet, or ""
// once they do (session.Differ: digests, then every record). A digest
// blind to some records agrees anyway: judged by digests alone, no cluster
// test noticed user records dropped from the digest (issue 13, item 10).
func differ(ms []*member) string {
	names := make([]string, len(ms))
	stores := make([]*session.Store, len(ms))
	for i, m := range ms {
		names[i], stores[i] = m.g.cfg.Name, m.store
	}
	return session.Differ(names, stores)
}

func hasEnded(m *member, id string) bool {
	s, err := m.store.Session(id)
	return err == nil && s.Ended != 0
}

func TestGossip_PublishReachesAll(t *testing.T) {
	ms := startCluster(t, 4)
	login(ms[1], "s1")
	waitFor(t, 5*time.Second, "login on every member", func() bool {
		for _, m := range ms {
			if _, err := m.store.Session("s1"); err != nil {
				return false
			}
		}
		return true
	})
	logout(ms[3], "s1")
	waitFor(t, 5*time.Second, "logout on every member", func() bool {
		for _, m := range ms {
			if !hasEnded(m, "s1") {
				return false
			}
		}
		return true
	})
	if st := ms[0].g.Stats(); st.DeltasReceived == 0 || st.DeltasApplied == 0 {
		t.Fatalf("stats show no deltas: %+v", st)
	}
	members := ms[0].g.Members()
	if len(members) != 4 || members[2].SiteURL != "http://n2.localhost/" || members[2].State != "alive" {
		t.Fatalf("members = %+v", members)
	}
}

func TestGossip_LocalSessionsStayHome(t *testing.T) {
	ms := startCluster(t, 2)
	s := session.Session{ID: "local", Email: "ann@example.com", Site: "n0", Created: ms[0].store.Clock().Now(), ExpiresAt: testNow.Add(time.Hour).UnixMilli(), Local: true}
	changed, _ := ms[0].store.Apply(session.Record{Session: &s})
	ms[0].g.Publish(changed)
	marker := login(ms[0], "marker") // sent after: once it arrives, the local one would have too
	waitFor(t, 5*time.Second, "marker", func() bool { _, err := ms[1].store.Session(marker.Session.ID); return err == nil })
	// A second marker, in the local session's own anti-entropy bucket and
	// not published: only a repair of that bucket carries it, and once it
	// has arrived that repair is done, and it would have carried the local
	// session too.
	var id string
	for i := 0; id == ""; i++ {
		if c := fmt.Sprintf("repair-%d", i); session.BucketOf("s"+c) == session.BucketOf("s"+s.ID) {
			id = c
		}
	}
	repair := session.Session{ID: id, Email: "bo@example.com", Site: "n0", Created: ms[0].store.Clock().Now(), ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
	if _, err := ms[0].store.Apply(session.Record{Session: &repair}); err != nil {
		t.Fatal(err)
	}
	if err := ms[1].g.SyncWith(ms[0].g.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the repair of the local session's bucket", func() bool { _, err := ms[1].store.Session(id); return err == nil })
	if _, err := ms[1].store.Session("local"); err == nil {
		t.Fatal("a local session travelled")
	}
}

func TestGossip_NewMemberCatchesUpByAntiEntropy(t *testing.T) {
	// 4,000 sessions fill every one of the 256 buckets (about 16 each), so
	// the pull is the 32 parts of a full store's, paced by pullWindow, as
	// with a million; more records only make each part slower under -race.
	const n = 4_000
	key := newKey(t)
	ms := []*member{startMember(t, testConfig(t, "n0", key)), startMember(t, testConfig(t, "n1", key))}
	var recs []session.Record
	for i := 0; i < n; i++ {
		s := session.Session{ID: fmt.Sprintf("%064x", i), Email: fmt.Sprintf("u%d@example.com", i%500), Site: "n0", Created: ms[0].store.Clock().Now(), ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
		recs = append(recs, session.Record{Session: &s})
	}
	// Straight into both stores, not published: only anti-entropy can move
	// them. Both are filled before they meet: filled while members, the
	// second pulled from the first what the test was writing into it, a
	// repair the new member's then waited behind under load.
	for _, m := range ms {
		if _, err := m.store.Apply(recs...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ms[1].g.Join([]string{ms[0].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "n1 to hold what n0 holds", func() bool { return ms[1].store.Digest() == ms[0].store.Digest() })
	pulledBefore := []uint64{ms[0].g.Stats().BucketsRepaired, ms[1].g.Stats().BucketsRepaired}
	late := startMember(t, testConfig(t, "late", ms[0].g.cfg.Keys[0]))
	start := time.Now()
	t.Cleanup(func() { // the story of a failure: how far it got, and how
		_, sessions := late.store.Counts()
		t.Logf("after %v: the new member holds %d sessions; its stats %+v; n0's %+v; n1's %+v", time.Since(start), sessions, late.g.Stats(), ms[0].g.Stats(), ms[1].g.Stats())
	})
	if _, err := late.g.Join([]string{ms[0].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the new member to hold every session", func() bool {
		_, sessions := late.store.Counts()
		return sessions == n && late.store.Digest() == ms[0].store.Digest()
	})
	if st := ms[0].g.Stats(); st.RecordsRepaired == 0 && ms[1].g.Stats().RecordsRepaired == 0 {
		t.Fatal("no records were repaired, yet the member caught up")
	}
	// The new member started empty and said so (digestFresh): the others
	// pulled nothing back from it while it filled (they pulled every
	// bucket it had begun to fill, and it read them all to answer).
	for i, m := range ms {
		if got := m.g.Stats().BucketsRepaired; got != pulledBefore[i] {
			t.Errorf("%s pulled %d buckets from the new member while it caught up", m.g.cfg.Name, got-pulledBefore[i])
		}
	}
}

func TestGossip_PartitionHeals(t *testing.T) {
	ms := startCluster(t, 3)
	a, b, c := ms[0], ms[1], ms[2]
	login(a, "before")
	waitFor(t, 5*time.Second, "before on all", func() bool { return converged(ms) })

	// {a} | {b, c}
	a.faults.Block(b.g.Addr(), c.g.Addr())
	b.faults.Block(a.g.Addr())
	c.faults.Block(a.g.Addr())
	waitFor(t, 10*time.Second, "each side to see the other dead", func() bool {
		return len(a.g.LiveMembers()) == 1 && len(b.g.LiveMembers()) == 2 && len(c.g.LiveMembers()) == 2
	})
	waitFor(t, 10*time.Second, "each side past GossipToTheDeadTime, after which memberlist alone never heals", func() bool {
		return deadToGossip(a, b, c) && deadToGossip(b, a) && deadToGossip(c, a)
	})
	logout(a, "before")
	login(b, "during-b")
	waitFor(t, 5*time.Second, "during-b on c", func() bool { _, err := c.store.Session("during-b"); return err == nil })
	logout(c, "during-b")
	login(c, "during-c")
	waitFor(t, 5*time.Second, "b and c to agree", func() bool { return converged(ms[1:]) })
	if hasEnded(b, "before") {
		t.Fatal("the logout crossed the partition")
	}

	for _, m := range ms {
		m.faults.Heal()
	}
	waitFor(t, 15*time.Second, "the partition to heal and converge", func() bool {
		return len(a.g.LiveMembers()) == 3 && converged(ms)
	})
	for _, m := range ms {
		if !hasEnded(m, "before") || !hasEnded(m, "during-b") || hasEnded(m, "during-c") {
			t.Fatalf("%s: wrong state after heal", m.g.cfg.Name)
		}
	}
	if a.g.Stats().Reconnects+b.g.Stats().Reconnects+c.g.Stats().Reconnects == 0 {
		t.Fatal("healed without any reconnect: the test did not partition for long enough")
	}
}

func TestGossip_OtherSecretCannotJoinOrInject(t *testing.T) {
	ms := startCluster(t, 2)
	intruder := startMember(t, testConfig(t, "intruder", newKey(t)))
	if _, err := intruder.g.Join([]string{ms[0].g.Addr()}); err == nil {
		t.Fatal("a node with another secret joined")
	}
	// Send a forged login straight at the member, encrypted with the wrong
	// key, over both UDP and TCP.
	forged := session.Session{ID: "forged", Email: "ann@example.com", Site: "x", Created: 1, ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
	msg := encodeRecords(kindDelta, "intruder", [][]byte{encodeRecord(session.Record{Session: &forged})})
	to := &memberlist.Node{Name: "n0", Addr: ms[0].g.list.LocalNode().Addr, Port: ms[0].g.list.LocalNode().Port}
	_ = intruder.g.list.SendBestEffort(to, msg)
	_ = intruder.g.list.SendReliable(to, msg)
	// Then a real message from a real member, sent after the forged ones.
	login(ms[1], "real")
	waitFor(t, 5*time.Second, "the real login", func() bool { _, err := ms[0].store.Session("real"); return err == nil })
	if _, err := ms[0].store.Session("forged"); err == nil {
		t.Fatal("a forged session was accepted")
	}
	if len(ms[0].g.Members()) != 2 {
		t.Fatalf("the intruder is listed: %+v", ms[0].g.Members())
	}
	for _, m := range intruder.g.LiveMembers() {
		if m.Name != "intruder" {
			t.Fatalf("the intruder sees member %s", m.Name)
		}
	}
}

func TestGossip_BadMessagesAreCountedNotFatal(t *testing.T) {
	ms := startCluster(t, 2)
	to := ms[0].g.member("n0")
	for _, junk := range [][]byte{{0xff}, {1, 1, '{'}, {1, 99}, append([]byte{1, 1}, bytes.Repeat([]byte("["), 5000)...)} {
		if err := ms[1].g.list.SendReliable(to, junk); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "bad messages counted", func() bool { return ms[0].g.Stats().BadMessages >= 4 })
	login(ms[1], "after")
	waitFor(t, 5*time.Second, "a good message after the junk", func() bool { _, err := ms[0].store.Session("after"); return err == nil })
}

func TestGossip_LeaveIsNotFailure(t *testing.T) {
	ms := startCluster(t, 3)
	if err := ms[2].g.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	ms[2].g.Close()
	waitFor(t, 5*time.Second, "n2 listed as left", func() bool {
		for _, m := range ms[0].g.Members() {
			if m.Name == "n2" {
				return m.State == "left"
			}
		}
		return false
	})
	if due := ms[0].g.dueFailed(time.Now().Add(time.Hour)); len(due) != 0 {
		t.Fatalf("a member that left is retried: %+v", due)
	}
}

// TestGossip_LeftMemberForgotten: a member that left stays listed "left"
// for TombstoneTimeout (Serf's tombstone), then is forgotten: it was
// remembered until the node restarted, so `ussync keys` exited 3 naming it
// for good (issue 10).
func TestGossip_LeftMemberForgotten(t *testing.T) {
	listed := func(m *member, name string) (string, bool) {
		for _, x := range m.g.Members() {
			if x.Name == name {
				return x.State, true
			}
		}
		return "", false
	}
	t.Run("at the default, after a day", func(t *testing.T) {
		ms := startCluster(t, 2)
		if err := ms[1].g.Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		ms[1].g.Close()
		waitFor(t, 5*time.Second, "n1 listed as left", func() bool { s, _ := listed(ms[0], "n1"); return s == "left" })
		now := ms[0].g.store.Now()
		ms[0].g.dueFailed(now.Add(23 * time.Hour))
		if s, ok := listed(ms[0], "n1"); !ok || s != "left" {
			t.Fatalf("n1 forgotten within the day: %q %v", s, ok)
		}
		ms[0].g.dueFailed(now.Add(24*time.Hour + time.Minute))
		if s, ok := listed(ms[0], "n1"); ok {
			t.Fatalf("n1 still listed %q a day after it left", s)
		}
	})
	t.Run("by the reconnect loop", func(t *testing.T) {
		key := newKey(t)
		var ms []*member
		for i := range 2 {
			cfg := testConfig(t, fmt.Sprintf("n%d", i), key)
			cfg.TombstoneTimeout = 300 * time.Millisecond
			ms = append(ms, startMember(t, cfg))
		}
		if _, err := ms[1].g.Join([]string{ms[0].g.Addr()}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "n1 alive on n0", func() bool { s, _ := listed(ms[0], "n1"); return s == "alive" })
		if err := ms[1].g.Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		ms[1].g.Close()
		waitFor(t, 10*time.Second, "n1 listed as left, then forgotten", func() bool { _, ok := listed(ms[0], "n1"); return !ok })
	})
}

// TestGossip_RepairSendsOnlyWhatDiffers: two members that agree on
// thousands of sessions but one missing and one ended repair those two, not
// the buckets they sit in.
func TestGossip_RepairSendsOnlyWhatDiffers(t *testing.T) {
	// Periodic push/pull off: the one round counted is SyncWith's.
	key := newKey(t)
	var ms []*member
	for i := 0; i < 2; i++ {
		cfg := testConfig(t, fmt.Sprintf("n%d", i), key)
		cfg.PushPullInterval = time.Hour
		ms = append(ms, startMember(t, cfg))
	}
	if _, err := ms[1].g.Join([]string{ms[0].g.Addr()}); err != nil {
		t.Fatal(err)
	}
	a, b := ms[0], ms[1]
	var recs []session.Record
	for i := 0; i < 5000; i++ {
		s := session.Session{ID: fmt.Sprintf("%064x", i), Email: "ann@example.com", Site: "n0", Created: a.store.Clock().Now(), ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
		recs = append(recs, session.Record{Session: &s})
	}
	for _, m := range ms {
		if _, err := m.store.Apply(recs...); err != nil {
			t.Fatal(err)
		}
	}
	// Quiet: the same digests, and no round in flight. A round a member's
	// flap started while the stores were filling (a push/pull reads the
	// digest of what is committed so far) may still be sending repairs
	// once the digests agree; counted after, they would be charged to the
	// round below.
	waitFor(t, 10*time.Second, "a quiet cluster", func() bool {
		return converged(ms) && !a.g.rounds.pending("") && !b.g.rounds.pending("")
	})
	before := a.g.Stats().RecordsRepaired + b.g.Stats().RecordsRepaired
	extra := session.Session{ID: "extra", Email: "ann@example.com", Site: "n0", Created: a.store.Clock().Now(), ExpiresAt: testNow.Add(time.Hour).UnixMilli()}
	ended := *recs[42].Session
	ended.Ended, ended.EndReason = b.store.Clock().Now(), session.EndLogout
	if _, err := a.store.Apply(session.Record{Session: &extra}); err != nil { // not published
		t.Fatal(err)
	}
	if _, err := b.store.Apply(session.Record{Session: &ended}); err != nil {
		t.Fatal(err)
	}
	if err := a.g.SyncWith(b.g.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "repair", func() bool { return converged(ms) && hasEnded(a, ended.ID) })
	// a sends "extra" and its alive copy of the ended one; b sends its ended
	// copy. Whole buckets would be ~80 records.
	if sent := a.g.Stats().RecordsRepaired + b.g.Stats().RecordsRepaired - before; sent < 2 || sent > 4 {
		t.Fatalf("%d records repaired for 2 differences among 5001", sent)
	}
}

// forgetMembers deletes the members a stopped member remembers.
func forgetMembers(t testing.TB, dir string) {
	t.Helper()
	st, err := session.Open(session.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.LocalDelete(snapshotKey); err != nil {
		t.Fatal(err)
	}
}

// Addr is set before memberlist starts (its listeners call LocalState, which
// sends it, at once); it must still be the address memberlist advertises.
func TestGossip_AddrIsAdvertisedAddress(t *testing.T) {
	m := startMember(t, testConfig(t, "n0", newKey(t)))
	ln := m.g.list.LocalNode()
	want := net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	if got := m.g.Addr(); got != want || strings.HasSuffix(got, ":0") {
		t.Fatalf("Addr() = %q, memberlist advertises %q", got, want)
	}
}

// TestGossip_LeaveReachesPeersOverTCP: a member whose every gossip packet
// is lost as it leaves is still listed as left, not failed: the metadata
// saying it leaves goes to each live member by a push/pull (pushLeaving),
// not only in an alive message gossiped by UDP. Periodic push/pull is off,
// so nothing else could carry it.
func TestGossip_LeaveReachesPeersOverTCP(t *testing.T) {
	ms := startSlowCluster(t, 3, nil)
	ms[2].faults.SetLink("", Link{PacketLoss: 1})
	if err := ms[2].g.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	ms[2].g.Close()
	waitFor(t, 15*time.Second, "n2 listed as left on n0 and n1", func() bool {
		return stateOf(ms[0], "n2") == "left" && stateOf(ms[1], "n2") == "left"
	})
}

// TestGossip_LargeUserRevocationGossipedAsDelta: a member that learns the
// revocation of a user forty sites know queues for gossip the delta it
// received, not the merged user, which is larger than a packet and which
// memberlist never gossips. Gossip and probes are held off (slowGossip), so
// nothing drains the queue before it is read; the delta comes by push.
func TestGossip_LargeUserRevocationGossipedAsDelta(t *testing.T) {
	a, b := slowGossip(t, nil)
	at := a.store.Clock().Now()
	u := session.User{Email: "ann@example.com", Created: at, Login: session.Set("ann", at, "n0"), Sites: map[string]session.SiteBinding{}}
	for i := range 40 {
		u.Sites[fmt.Sprintf("site-%02d", i)] = session.SiteBinding{Known: at}
	}
	for _, m := range []*member{a, b} {
		if _, err := m.store.Apply(session.Record{User: &u}); err != nil {
			t.Fatal(err)
		}
	}
	revoked := *session.RevokeAll(u, true, nil, a.store.Clock().Now())[0].User
	if _, err := a.store.Apply(session.Record{User: &revoked}); err != nil {
		t.Fatal(err)
	}
	d := session.RevocationDelta(revoked)
	a.g.PublishWithDeltas(nil, []session.Record{{User: &d}})
	waitFor(t, 5*time.Second, "the revocation on n1", func() bool {
		got, err := b.store.User(u.Email)
		return err == nil && got.RevokedBefore == revoked.RevokedBefore
	})
	if got, _ := b.store.User(u.Email); len(got.Sites) != 40 || got.Login.V != "ann" {
		t.Errorf("n1's user after the delta: %d sites, login %q: the delta must keep what it does not carry", len(got.Sites), got.Login.V)
	}
	var sizes []int
	found := false
	for _, msg := range b.g.queue.GetBroadcasts(0, 1<<20) {
		m, err := decodeMessage(msg)
		if err != nil {
			t.Fatalf("a queued broadcast does not decode: %v", err)
		}
		for _, r := range m.records {
			if r.User != nil && r.User.Email == u.Email && r.User.RevokedBefore == revoked.RevokedBefore {
				sizes = append(sizes, len(msg))
				found = found || len(msg) <= bestEffortMax
			}
		}
	}
	if !found {
		t.Fatalf("n1 queued the revocation for gossip in messages of %v bytes: none fits a packet (%d), so gossip would never carry it", sizes, bestEffortMax)
	}
}

// smallReceived sends on the latest received state of a record that fits
// in a packet, even when a larger state of it came after (a whole user and
// its revocation delta in one batch).
func TestSmallReceived(t *testing.T) {
	whole := session.User{Email: "ann@example.com", RevokedBefore: 9, Sites: map[string]session.SiteBinding{}}
	for i := range 40 {
		whole.Sites[fmt.Sprintf("site-%02d", i)] = session.SiteBinding{Known: 1 << 50}
	}
	d := session.RevocationDelta(whole)
	other := session.User{Email: "bob@example.com"}
	recs := []session.Record{{User: &d}, {User: &other}, {User: &whole}}
	enc, ok := smallReceived(recs, "uann@example.com")
	if want := encodeRecord(session.Record{User: &d}); !ok || string(enc) != string(want) {
		t.Fatalf("got %q, %v; want the delta %q", enc, ok, want)
	}
	if _, ok := smallReceived(recs[2:], "uann@example.com"); ok {
		t.Fatal("the whole user alone is larger than a packet: nothing to send on")
	}
}
