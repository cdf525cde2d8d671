package gossip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Queries: a request asked of every live member, each answering the asker
// directly, for cluster-wide operations such as the keyring's (node's
// `ussync keys`). memberlist has no request/response of its own; Serf
// builds its queries on user messages, disseminated by gossip because its
// clusters are large. A ussync cluster is a family of websites (tens of
// members), so a query goes straight to each live member over
// SendReliable (TCP, encrypted with the cluster key like all gossip), and
// each answer comes back the same way to the asker, which waits for every
// member it asked until its context ends. The asker answers itself too,
// without the network.
//
// A query is sent only to members that advertise that they answer queries
// (meta "q", from this version on): older members are listed as
// Unsupported, never sent a message kind they would count as bad
// (docs/compatibility.md). Payloads may hold secrets (a key being
// installed): they are never logged.

// queryInDepth bounds the queries waiting for the handler; more are dropped
// (the asker sees no answer from this member).
const queryInDepth = 64

// Query is a request a member asked of every member.
type Query struct {
	// From is the name of the member that asked.
	From string
	// Name says what is asked, e.g. "keys.install".
	Name string
	// Payload is the asker's, for the handler to decode. It may hold a
	// secret: never log it.
	Payload []byte
}

// QueryHandler answers a query on this member: a payload for the asker, or
// an error (its text is sent back). It runs on one goroutine, one query at
// a time, and may block briefly (a file write).
type QueryHandler func(q Query) ([]byte, error)

// QueryAnswer is one member's answer.
type QueryAnswer struct {
	Payload []byte
	// Err is the handler's error text, "" when it succeeded.
	Err string
}

// QueryResult is what a query gathered.
type QueryResult struct {
	// Asked are the members the query was sent to, this one included:
	// every live member that answers queries.
	Asked []string
	// Answers are the answers received, by member name.
	Answers map[string]QueryAnswer
	// SendErrors are the members the query could not be sent to.
	SendErrors map[string]string
	// Unsupported are the live members of a version that answers no
	// queries (not asked).
	Unsupported []Member
}

// Missing lists the asked members that neither answered nor failed to be
// sent to: they did not answer in time.
func (r QueryResult) Missing() []string {
	var out []string
	for _, name := range r.Asked {
		if _, ok := r.Answers[name]; ok {
			continue
		}
		if _, ok := r.SendErrors[name]; ok {
			continue
		}
		out = append(out, name)
	}
	return out
}

// wire forms of a query and an answer, after the two header bytes.
type queryWire struct {
	ID       string `json:"id"`
	From     string `json:"from"`
	Addr     string `json:"a,omitempty"` // the asker's gossip host:port, where the answer goes
	Name     string `json:"n"`
	Payload  []byte `json:"p,omitempty"`
	Deadline int64  `json:"dl"` // Unix ms: an answer after it is useless
}

type answerWire struct {
	ID      string `json:"id"`
	From    string `json:"from"`
	Payload []byte `json:"p,omitempty"`
	Err     string `json:"e,omitempty"`
}

// queryBook is a member's queries in flight and the queue of queries to
// answer.
type queryBook struct {
	mu      sync.Mutex
	pending map[string]chan answerWire // by query id
	in      chan queryWire
}

func newQueryBook() *queryBook {
	return &queryBook{pending: map[string]chan answerWire{}, in: make(chan queryWire, queryInDepth)}
}

// encodeQuery and encodeAnswer frame the wire forms.
func encodeQuery(q queryWire) []byte {
	b, _ := json.Marshal(q) // plain types: cannot fail
	return append([]byte{wireVersion, byte(kindQuery)}, b...)
}

func encodeAnswer(a answerWire) []byte {
	b, _ := json.Marshal(a)
	return append([]byte{wireVersion, byte(kindAnswer)}, b...)
}

// Query asks every live member that answers queries, this one included,
// and waits for their answers until all have answered or ctx ends (give it
// a deadline). It returns what it gathered; the error is only for a query
// that could not be made at all.
func (g *Gossip) Query(ctx context.Context, name string, payload []byte) (QueryResult, error) {
	res := QueryResult{Answers: map[string]QueryAnswer{}, SendErrors: map[string]string{}}
	if g.ctx.Err() != nil {
		return res, errors.New("query: gossip is stopped")
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return res, fmt.Errorf("query: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	q := queryWire{ID: hex.EncodeToString(id[:]), From: g.cfg.Name, Addr: g.addr, Name: name, Payload: payload, Deadline: deadline.UnixMilli()}

	g.nodesMu.RLock()
	var peers []memberlist.Node
	for _, n := range g.nodes {
		m := memberOf(&n, "alive")
		switch {
		case n.Name == g.cfg.Name:
		case m.Queries:
			peers = append(peers, n)
		default:
			res.Unsupported = append(res.Unsupported, m)
		}
	}
	g.nodesMu.RUnlock()

	answers := make(chan answerWire, len(peers)+1)
	failed := make(chan string, len(peers))
	g.queries.mu.Lock()
	g.queries.pending[q.ID] = answers
	g.queries.mu.Unlock()
	defer func() {
		g.queries.mu.Lock()
		delete(g.queries.pending, q.ID)
		g.queries.mu.Unlock()
	}()

	res.Asked = append(res.Asked, g.cfg.Name)
	go func() { answers <- g.answer(q) }()
	msg := encodeQuery(q)
	var sendMu sync.Mutex
	for i := range peers {
		n := peers[i]
		res.Asked = append(res.Asked, n.Name)
		go func() {
			if err := g.list.SendReliable(&n, msg); err != nil {
				sendMu.Lock()
				res.SendErrors[n.Name] = err.Error()
				sendMu.Unlock()
				failed <- n.Name
			}
		}()
	}
	for want := len(res.Asked); want > 0; {
		select {
		case a := <-answers:
			if _, dup := res.Answers[a.From]; dup || !contains(res.Asked, a.From) {
				continue
			}
			res.Answers[a.From] = QueryAnswer{Payload: a.Payload, Err: a.Err}
			want--
		case <-failed:
			want--
		case <-ctx.Done():
			want = 0
		case <-g.ctx.Done():
			want = 0
		}
	}
	sendMu.Lock()
	defer sendMu.Unlock()
	errs := make(map[string]string, len(res.SendErrors))
	for k, v := range res.SendErrors {
		errs[k] = v
	}
	res.SendErrors = errs
	return res, nil
}

// askerNode is where q's answer goes: the asker as a live member, else the
// address it gave (it may be suspected here while it waits).
func (g *Gossip) askerNode(q queryWire) (memberlist.Node, bool) {
	g.nodesMu.RLock()
	n, ok := g.nodes[q.From]
	g.nodesMu.RUnlock()
	if ok {
		return n, true
	}
	host, port, err := net.SplitHostPort(q.Addr)
	if err != nil {
		return memberlist.Node{}, false
	}
	ip := net.ParseIP(host)
	p, err := strconv.ParseUint(port, 10, 16)
	if ip == nil || err != nil {
		return memberlist.Node{}, false
	}
	return memberlist.Node{Name: q.From, Addr: ip, Port: uint16(p)}, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// answer runs the handler on q.
func (g *Gossip) answer(q queryWire) answerWire {
	a := answerWire{ID: q.ID, From: g.cfg.Name}
	if g.cfg.QueryHandler == nil {
		a.Err = "this member answers no queries"
		return a
	}
	p, err := g.cfg.QueryHandler(Query{From: q.From, Name: q.Name, Payload: q.Payload})
	if err != nil {
		a.Err = err.Error()
	} else {
		a.Payload = p
	}
	return a
}

// receiveQuery queues a query from a peer for the handler; a full queue
// drops it (the asker sees no answer).
func (g *Gossip) receiveQuery(q queryWire) {
	select {
	case g.queries.in <- q:
	default:
		g.stats.dropped.Add(1)
		g.log.Warn("drop a query: too many waiting", "peer", q.From, "query", q.Name)
	}
}

// receiveAnswer hands an answer to the query waiting for it, if any.
func (g *Gossip) receiveAnswer(a answerWire) {
	g.queries.mu.Lock()
	ch := g.queries.pending[a.ID]
	g.queries.mu.Unlock()
	if ch == nil {
		return // late, or not ours
	}
	select {
	case ch <- a:
	default:
	}
}

// queryLoop answers the peers' queries, one at a time, sending each
// answer straight back to the member that asked.
func (g *Gossip) queryLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case q := <-g.queries.in:
			if time.Now().UnixMilli() > q.Deadline {
				continue // the asker has stopped waiting
			}
			a := g.answer(q)
			n, ok := g.askerNode(q)
			if !ok {
				g.log.Warn("cannot answer a query: the asker is not a member and gave no address", "peer", q.From, "query", q.Name)
				continue
			}
			if err := g.list.SendReliable(&n, encodeAnswer(a)); err != nil {
				g.log.Warn("send a query's answer", "peer", q.From, "query", q.Name, "err", err)
			}
		}
	}
}
