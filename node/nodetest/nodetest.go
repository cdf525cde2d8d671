// Package nodetest runs clusters of real ussync nodes in one process, on
// 127.0.0.1 with ports picked by the kernel, shrunk gossip timers and stores
// in temporary directories: for tests and for `ussync bench`. Links between
// nodes can be cut (Partition) and restored (Heal), or delayed and made lossy
// (SetLink), through each member's gossip.Faults, the one fault-injecting
// layer; nodes can be killed and restarted on their data (at a new gossip
// port: the harness binds port 0). Convergence is judged by records, not
// only digests (WaitConverged).
package nodetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/session"
)

// T is what the harness needs of a test (testing.TB satisfies it; the bench
// command has its own).
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Member is one node of a Cluster.
type Member struct {
	*node.Node
	Index  int
	Dir    string
	Faults *gossip.Faults
	// Observer, when set before the node starts, sees every record a peer's
	// message changed on this node (the bench times propagation with it).
	Observer func([]session.Record)
	// Clock, when set before the node starts (or restarts), is its wall
	// clock (node.Node.Now): tests give members clocks that disagree. It
	// wins over Cluster.Clock.
	Clock func() time.Time
	c     *Cluster
}

// Cluster is a set of nodes sharing one secret and one API token.
type Cluster struct {
	t       T
	base    string
	logMu   sync.RWMutex
	logOff  bool
	Secret  string
	Token   string
	Members []*Member
	HTTP    *http.Client
	// Configure, when set, adjusts each node's config before it starts.
	Configure func(i int, cfg *node.Config)
	// TuneGossip, when set, adjusts each node's gossip config after the
	// harness has shrunk its timers (the bench slows probes and push/pull
	// down to measure one exchange alone).
	TuneGossip func(i int, g *gossip.Config)
	// Quiet drops node logs below warnings (default: warnings and errors
	// only, into the test log).
	LogLevel slog.Level
	// Clock, when set, gives member i its wall clock (node.Node.Now: the
	// clock of its store, its tickets, its sessions' expiry and its gossip
	// probes), read when the member starts: tests put one node's clock
	// ahead or behind the others'. Nil, or a nil func: the real clock.
	Clock func(i int) func() time.Time
	// Seed seeds the random faults (SetLink): member i's Faults get Seed+i,
	// so a run is reproduced by its seed. Set it before adding members.
	Seed uint64
	// Prepare, when set, is called with each new member's empty data
	// directory before its node first starts (the bench copies a filled
	// store into it).
	Prepare func(i int, dir string)
}

func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// New makes an empty cluster; Start adds n running nodes to it.
func New(t T) *Cluster {
	c := &Cluster{
		t:        t,
		base:     t.TempDir(), // before the Close cleanup, so removed after it
		Secret:   random(32),
		Token:    strings.TrimRight(random(24), "="),
		HTTP:     &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		LogLevel: slog.LevelWarn,
	}
	t.Cleanup(c.Close)
	return c
}

// NewCluster starts n joined nodes and waits until each sees all of them.
func NewCluster(t T, n int) *Cluster {
	t.Helper()
	c := New(t)
	c.Start(n)
	return c
}

// Start adds n nodes, each joining the first, and waits for full membership
// and for every node to be settled (WaitSettled).
func (c *Cluster) Start(n int) {
	c.t.Helper()
	for i := 0; i < n; i++ {
		c.Add()
	}
	c.WaitMembers(10 * time.Second)
	c.WaitSettled(10 * time.Second)
}

// WaitSettled waits until no member is catching up and, in a cluster of
// more than one, every member started on an empty data dir knows its name
// is new to the cluster (so it refuses no ticket: see node's freshstore.go).
// A member restarted on a wiped data dir never settles within a ticket TTL:
// do not wait for it.
func (c *Cluster) WaitSettled(d time.Duration) {
	c.t.Helper()
	c.WaitFor(d, "every member caught up and settled", func() bool {
		for _, m := range c.Members {
			h := m.Health()
			if h.CatchingUp || (len(c.Members) > 1 && h.TicketsRefusedUntil != nil) {
				return false
			}
		}
		return true
	})
}

// Add starts one more node that joins the cluster.
func (c *Cluster) Add() *Member {
	c.t.Helper()
	dir, err := os.MkdirTemp(c.base, "node")
	if err != nil {
		c.t.Fatalf("data dir: %v", err)
	}
	if c.Prepare != nil {
		c.Prepare(len(c.Members), dir)
	}
	m := &Member{Index: len(c.Members), Dir: dir, Faults: &gossip.Faults{}, c: c}
	m.Faults.SetSeed(c.Seed + uint64(m.Index))
	c.Members = append(c.Members, m)
	c.start(m)
	return m
}

func (c *Cluster) config(m *Member) node.Config {
	cfg := node.DefaultConfig()
	cfg.Node.Name = fmt.Sprintf("n%d", m.Index)
	cfg.Node.DataDir = m.Dir
	cfg.Node.Profile = string(gossip.ProfileLocal)
	cfg.Site.URL = fmt.Sprintf("http://site-%d.localhost/", m.Index)
	// No site answers at these URLs: no site check, unless a test sets one.
	cfg.Site.HealthURL = node.HealthOff
	cfg.Gossip.Bind = "127.0.0.1:0"
	cfg.Gossip.Secrets = []string{c.Secret}
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.Token = c.Token
	cfg.Public.Listen = "127.0.0.1:0"
	// Every hand-off mode, so login answers carry both sync URLs and a chain.
	cfg.Sync.Modes = []string{client.ModeChain, client.ModeLazy, client.ModeIframe}
	cfg.Version = "test"
	for _, o := range c.Members {
		if o != m && o.Node != nil && o.GossipAddr() != "" {
			cfg.Gossip.Join = []string{o.GossipAddr()}
			break
		}
	}
	if c.Configure != nil {
		c.Configure(m.Index, &cfg)
	}
	return cfg
}

func (c *Cluster) start(m *Member) {
	c.t.Helper()
	cfg := c.config(m)
	if err := cfg.Validate(); err != nil {
		c.t.Fatalf("config of %s: %v", cfg.Node.Name, err)
	}
	log := slog.New(slog.NewTextHandler(logWriter{c}, &slog.HandlerOptions{Level: c.LogLevel}))
	n, err := node.New(cfg, log)
	if err != nil {
		c.t.Fatalf("new node: %v", err)
	}
	n.Now = m.Clock
	if n.Now == nil && c.Clock != nil {
		n.Now = c.Clock(m.Index)
	}
	n.TuneGossip = func(g *gossip.Config) {
		g.Shrink()
		g.Faults = m.Faults
		g.Observer = func(recs []session.Record) {
			if m.Observer != nil {
				m.Observer(recs)
			}
		}
		if c.TuneGossip != nil {
			c.TuneGossip(m.Index, g)
		}
	}
	// Every goroutine the node starts carries its name as the profile
	// label "node", so a CPU profile of a cluster in one process tells the
	// nodes apart (the bench's per-node CPU figures).
	pprof.Do(context.Background(), pprof.Labels("node", cfg.Node.Name), func(ctx context.Context) {
		err = n.Start(ctx)
	})
	if err != nil {
		n.Close(context.Background())
		c.t.Fatalf("start %s: %v", cfg.Node.Name, err)
	}
	m.Node = n
}

// Config returns the configuration member i starts with (Configure
// applied, validated): change it and hand it to the member's Reload.
func (c *Cluster) Config(i int) node.Config {
	c.t.Helper()
	cfg := c.config(c.Members[i])
	if err := cfg.Validate(); err != nil {
		c.t.Fatalf("config of n%d: %v", i, err)
	}
	return cfg
}

// CallAs is Call with another bearer token than the cluster's.
func (m *Member) CallAs(token, method, path string, body, out any) int {
	m.c.t.Helper()
	code, raw := m.callRaw(token, method, path, body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			m.c.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return code
}

// Kill stops member i as a crash would: no leave, no drain.
func (c *Cluster) Kill(i int) { c.Members[i].Kill() }

// Restart starts member i again on its data directory (after Kill or Stop).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(c.Members[i])
}

// Partition cuts every link between the groups of member indexes given;
// members in no group keep all their links.
func (c *Cluster) Partition(groups ...[]int) {
	group := map[int]int{}
	for g, idx := range groups {
		for _, i := range idx {
			group[i] = g + 1
		}
	}
	for _, a := range c.Members {
		for _, b := range c.Members {
			if ga, gb := group[a.Index], group[b.Index]; ga != 0 && gb != 0 && ga != gb {
				a.Faults.Block(b.GossipAddr())
			}
		}
	}
}

// SetLink gives every link between members the faults l (delay, jitter,
// loss; see gossip.Faults), in both directions: each member applies l to
// what it sends. The zero Link restores perfect links; Heal leaves links
// alone.
func (c *Cluster) SetLink(l gossip.Link) {
	for _, m := range c.Members {
		m.Faults.SetLink("", l)
	}
}

// Heal removes every cut (Partition).
func (c *Cluster) Heal() {
	for _, m := range c.Members {
		m.Faults.Heal()
	}
}

// WaitMembers waits until every member sees every member alive. On
// timeout it says what each member that did not sees: the members it holds
// alive and its health, the story a membership fault needs.
func (c *Cluster) WaitMembers(d time.Duration) {
	c.t.Helper()
	eventually.Done(c.t, d, "full membership", func() string {
		var why []string
		for _, m := range c.Members {
			live := m.Gossip().LiveMembers()
			if len(live) == len(c.Members) {
				continue
			}
			names := make([]string, len(live))
			for i, l := range live {
				names[i] = l.Name + "@" + l.Addr
			}
			why = append(why, fmt.Sprintf("%s sees %v alive; health %+v", m.Name(), names, m.Gossip().Health()))
		}
		return strings.Join(why, "\n")
	})
}

// Converged reports whether every member has the same digest: the cheap
// test, which the bench times. WaitConverged also compares the records.
func (c *Cluster) Converged() bool {
	d := c.Members[0].Store().Digest()
	for _, m := range c.Members[1:] {
		if m.Store().Digest() != d {
			return false
		}
	}
	return true
}

// RecordsDiffer is Differ over every member: the first difference found,
// or "" if they hold the same records. It reads whole stores: for tests.
func (c *Cluster) RecordsDiffer() string { return Differ(c.Members...) }

// Differ says how ms do not hold the same replicated records yet, or ""
// once they do (session.Differ): the one meaning of "converged" that
// WaitConverged and the bench share.
func Differ(ms ...*Member) string {
	names := make([]string, len(ms))
	stores := make([]*session.Store, len(ms))
	for i, m := range ms {
		names[i], stores[i] = m.Name(), m.Store()
	}
	return session.Differ(names, stores)
}

// WaitConverged waits until every member has the same digest and the same
// records, or fails the test after d saying which differ.
func (c *Cluster) WaitConverged(d time.Duration) {
	c.t.Helper()
	eventually.Done(explaining{c.t, c.Members}, d, "convergence", func() string { return Differ(c.Members...) })
}

// Explain is session.Explain over ms: why they have not converged, in
// detail (every record of every store read once), for a test or a bench
// that gave up waiting.
func Explain(ms ...*Member) string {
	names := make([]string, len(ms))
	stores := make([]*session.Store, len(ms))
	for i, m := range ms {
		names[i], stores[i] = m.Name(), m.Store()
	}
	return session.Explain(names, stores, 10)
}

// explaining is a T whose Fatalf adds Explain(ms...) to the message: a wait
// for convergence that gives up says what differs, not only that the
// digests do.
type explaining struct {
	T
	ms []*Member
}

func (e explaining) Fatalf(format string, args ...any) {
	e.T.Helper()
	e.T.Fatalf(format+"%s", append(args, Explain(e.ms...))...)
}

// WaitFor polls cond until it holds, or fails the test after d
// (eventually.True).
func (c *Cluster) WaitFor(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	eventually.True(c.t, d, what, cond)
}

// Close stops every member (it runs at cleanup on its own).
func (c *Cluster) Close() {
	for _, m := range c.Members {
		if m.Node != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			m.Node.Close(ctx)
			cancel()
		}
	}
	c.logMu.Lock()
	c.logOff = true
	c.logMu.Unlock()
}

// Call sends a request to member's private API with the cluster's token and
// decodes the JSON answer into out (if not nil). It returns the status code.
func (m *Member) Call(method, path string, body any, out any) int {
	m.c.t.Helper()
	code, raw := m.CallRaw(method, path, body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			m.c.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return code
}

// CallRaw is Call without decoding.
func (m *Member) CallRaw(method, path string, body any) (int, []byte) {
	m.c.t.Helper()
	return m.callRaw(m.c.Token, method, path, body)
}

func (m *Member) callRaw(token, method, path string, body any) (int, []byte) {
	m.c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			m.c.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+m.APIAddr()+path, rd)
	if err != nil {
		m.c.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.c.HTTP.Do(req)
	if err != nil {
		m.c.t.Fatalf("%s %s on %s: %v", method, path, m.Name(), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		m.c.t.Fatalf("read answer: %v", err)
	}
	return resp.StatusCode, raw
}

// logWriter writes into the test log until the cluster is closed; memberlist
// goroutines that outlive Shutdown by a moment must not log into a finished
// test.
type logWriter struct{ c *Cluster }

func (w logWriter) Write(p []byte) (int, error) {
	w.c.logMu.RLock()
	defer w.c.logMu.RUnlock()
	if !w.c.logOff {
		w.c.t.Logf("%s", bytes.TrimSpace(p))
	}
	return len(p), nil
}
