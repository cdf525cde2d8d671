package node_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
)

// The randomised fault schedule is reproduced from its seed and may run
// longer than CI's default:
//
//	go test ./node -run TestFaults_Schedule -faults.seed=1234 -faults.duration=5m
//
// or USSYNC_FAULTS_SEED and USSYNC_FAULTS_DURATION in the environment.
var (
	faultsSeed     = flag.Uint64("faults.seed", 0, "seed of TestFaults_Schedule (0: a new one, printed)")
	faultsDuration = flag.Duration("faults.duration", 0, "how long TestFaults_Schedule injects faults (default 15s)")
)

// faultsParams returns the seed and duration of the schedule: flags, then
// the environment, then a random seed and 15 s.
func faultsParams(t *testing.T) (uint64, time.Duration) {
	seed, d := *faultsSeed, *faultsDuration
	if seed == 0 {
		if v := os.Getenv("USSYNC_FAULTS_SEED"); v != "" {
			var err error
			if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
				t.Fatalf("USSYNC_FAULTS_SEED: %v", err)
			}
		}
	}
	if seed == 0 {
		seed = rand.Uint64() | 1
	}
	if d == 0 {
		if v := os.Getenv("USSYNC_FAULTS_DURATION"); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil {
				t.Fatalf("USSYNC_FAULTS_DURATION: %v", err)
			}
		}
	}
	if d == 0 {
		d = 15 * time.Second
	}
	return seed, d
}

// maxSkew is the largest clock offset a member gets: two members disagree
// by at most twice that, within the 5 s the cluster tolerates.
const maxSkew = 2 * time.Second

// schedule is one run of TestFaults_Schedule: the cluster, the random
// source, and what the cluster acknowledged, to check once it has healed.
type schedule struct {
	t    *testing.T
	c    *nodetest.Cluster
	rnd  *rand.Rand
	seed uint64

	users     []string          // addresses the test logs in
	renamed   map[string]string // old address -> new, acknowledged
	verified  map[string]bool   // acknowledged admin verifications
	sessions  map[string]string // acknowledged logins: id -> address
	local     map[string]string // those kept on their site (unverified): id -> node
	loggedOut map[string]bool   // acknowledged DELETEs
	// revoked: the sessions the node that acknowledged a "log out
	// everywhere" held before it (they happened before it).
	revoked map[string]string // id -> the logout-everywhere's description
	down    map[int]int       // member -> step it restarts at
	ops     map[string]int    // acknowledged operations by kind
	faults  map[string]int    // faults injected by kind
}

// TestFaults_Schedule runs random logins, logouts, logouts everywhere,
// renames and verifications against 5 in-process nodes while injecting
// partitions, packet and stream loss, delays, dropped messages, crashes
// (Kill) and restarts on the same data dir, with clocks that disagree within
// the allowed skew, the even members pulling by leaves. Then it heals
// everything and checks: every acknowledged write is on every node; no
// session is active anywhere after a "log out everywhere" that happened
// after it, nor after its own logout, nor once its user was moved; every
// node holds the same records.
func TestFaults_Schedule(t *testing.T) {
	if testing.Short() {
		t.Skip("a fault schedule of 5 nodes")
	}
	seed, dur := faultsParams(t)
	t.Logf("fault schedule: seed %d, %s of faults (reproduce: go test ./node -run TestFaults_Schedule -faults.seed=%d -faults.duration=%s)", seed, dur, seed, dur)
	rnd := rand.New(rand.NewPCG(seed, seed>>32|1))

	c := nodetest.New(t)
	c.Seed = seed
	// The even members pull every bucket holding a record by its leaves
	// (anti-entropy protocol 4, which a store pulls so from 16,000
	// records), the odd ones by pairs: both ways, and their answers to
	// each other, under the schedule's faults.
	c.TuneGossip = func(i int, g *gossip.Config) {
		if i%2 == 0 {
			g.LeafPullMin = 1
		}
	}
	s := &schedule{t: t, c: c, rnd: rnd, seed: seed, renamed: map[string]string{}, verified: map[string]bool{},
		sessions: map[string]string{}, local: map[string]string{}, loggedOut: map[string]bool{}, revoked: map[string]string{},
		down: map[int]int{}, ops: map[string]int{}, faults: map[string]int{}}
	for range 5 {
		s.skewClock(c.Add())
	}
	c.WaitMembers(20 * time.Second)
	c.WaitSettled(20 * time.Second)
	for i := range 6 {
		email := fmt.Sprintf("u%d@example.com", i)
		register(t, c, i%5, email)
		s.users = append(s.users, email)
	}
	for i := range 4 { // unverified users: their later admin verification is checked
		email := fmt.Sprintf("v%d@example.com", i)
		callWant(t, c.Members[i], "PUT", "/v1/users/"+email, map[string]string{"login": "v"}, http.StatusOK)
		s.users = append(s.users, email)
	}

	tick := time.NewTicker(5 * time.Millisecond) // the pace of steps, not a wait for gossip
	defer tick.Stop()
	end := time.Now().Add(dur)
	step := 0
	for ; time.Now().Before(end); step++ {
		<-tick.C
		for i, at := range s.down {
			if at <= step {
				delete(s.down, i)
				s.skewClock(c.Members[i])
				c.Restart(i)
				s.faults["restart"]++
			}
		}
		switch p := rnd.Float64(); {
		case p < 0.02:
			s.partition()
		case p < 0.035:
			c.Heal()
			s.faults["heal"]++
		case p < 0.05:
			s.link()
		case p < 0.06:
			c.SetLink(gossip.Link{})
			s.faults["clear links"]++
		case p < 0.07:
			s.dropNext()
		case p < 0.075:
			s.kill(step)
		default:
			s.op()
		}
	}
	t.Logf("%d steps; acknowledged %v; faults %v", step, s.ops, s.faults)

	// Heal everything, bring every member back, and let them converge.
	for i := range s.down {
		s.skewClock(c.Members[i])
		c.Restart(i)
	}
	for _, m := range c.Members {
		m.Faults.Reset()
	}
	c.WaitMembers(60 * time.Second)
	c.WaitConverged(60 * time.Second)
	var byLeaf uint64
	for _, m := range c.Members {
		byLeaf += m.Gossip().Stats().BucketsByLeaf
	}
	t.Logf("buckets pulled by their leaves since each member's last start: %d", byLeaf)
	s.check()
}

// skewClock gives m a clock off by up to maxSkew, for its next start.
func (s *schedule) skewClock(m *nodetest.Member) {
	off := time.Duration(s.rnd.Int64N(int64(2*maxSkew))) - maxSkew
	m.Clock = func() time.Time { return time.Now().Add(off) }
}

// live returns the members that run.
func (s *schedule) live() []*nodetest.Member {
	var out []*nodetest.Member
	for i, m := range s.c.Members {
		if _, down := s.down[i]; !down {
			out = append(out, m)
		}
	}
	return out
}

func (s *schedule) pick() *nodetest.Member {
	l := s.live()
	return l[s.rnd.IntN(len(l))]
}

// partition cuts the members into two random groups (Heal undoes it).
func (s *schedule) partition() {
	var a, b []int
	for i := range s.c.Members {
		if s.rnd.IntN(2) == 0 {
			a = append(a, i)
		} else {
			b = append(b, i)
		}
	}
	s.c.Partition(a, b)
	s.faults["partition"]++
}

// link sets random delay, jitter and loss on every link.
func (s *schedule) link() {
	s.c.SetLink(gossip.Link{
		Delay:      time.Duration(s.rnd.IntN(30)) * time.Millisecond,
		Jitter:     time.Duration(s.rnd.IntN(10)) * time.Millisecond,
		PacketLoss: s.rnd.Float64() * 0.2,
		StreamLoss: s.rnd.Float64() * 0.1,
	})
	s.faults["link"]++
}

// dropNext drops the next few messages of a random kind one member sends.
func (s *schedule) dropNext() {
	kinds := []gossip.Kind{gossip.KindPushPull, gossip.KindDelta, gossip.KindPull, gossip.KindRepair, gossip.KindStream}
	k := kinds[s.rnd.IntN(len(kinds))]
	s.pick().Faults.DropNext(1+s.rnd.IntN(5), k, "")
	s.faults["drop "+k.String()]++
}

// kill crashes a member (at most two down at once); it restarts on its
// data dir some steps later.
func (s *schedule) kill(step int) {
	if len(s.down) >= 2 {
		return
	}
	m := s.pick()
	s.c.Kill(m.Index)
	s.down[m.Index] = step + 20 + s.rnd.IntN(200)
	s.faults["kill"]++
}

// call sends one request to m and reports whether it was acknowledged
// (2xx); the answer goes into out. Errors are not acknowledgements: a
// member may be partitioned, or refuse.
func (s *schedule) call(m *nodetest.Member, method, path string, body, out any) bool {
	code, raw := m.CallRaw(method, path, body)
	if code/100 != 2 {
		return false
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return true
}

// op runs one random operation on a random live member.
func (s *schedule) op() {
	m := s.pick()
	email := s.users[s.rnd.IntN(len(s.users))]
	switch p := s.rnd.Float64(); {
	case p < 0.4:
		var a loginAnswer
		if s.call(m, "POST", "/v1/sessions", map[string]any{"email": email, "ip": "192.0.2.1", "user_agent": "faults"}, &a) {
			s.sessions[a.Session.ID] = email
			if !a.Synced {
				s.local[a.Session.ID] = m.Name()
			}
			s.ops["login"]++
		}
	case p < 0.6:
		if len(s.sessions) == 0 {
			return
		}
		ids := slices.Sorted(mapKeys(s.sessions))
		id := ids[s.rnd.IntN(len(ids))]
		if s.call(m, "DELETE", "/v1/sessions/"+id, nil, nil) {
			s.loggedOut[id] = true
			s.ops["logout"]++
		}
	case p < 0.75:
		// What this member holds of the user now happened before the
		// logout everywhere it is about to acknowledge.
		var known struct{ Sessions []client.SessionInfo }
		if !s.call(m, "GET", "/v1/users/"+email+"/sessions?state=all", nil, &known) {
			return
		}
		if s.call(m, "POST", "/v1/users/"+email+"/logout-everywhere", nil, nil) {
			for _, x := range known.Sessions {
				s.revoked[x.ID] = fmt.Sprintf("logout everywhere of %s on %s", email, m.Name())
			}
			s.ops["logout everywhere"]++
		}
	case p < 0.85:
		if _, done := s.renamed[email]; done || strings.HasPrefix(email, "r") || len(s.renamed) >= 3 {
			return
		}
		to := fmt.Sprintf("r%d@example.com", len(s.renamed))
		if s.call(m, "POST", "/v1/users/"+email+"/rename", map[string]string{"new_email": to}, nil) {
			s.renamed[email] = to
			s.users = append(s.users, to)
			s.ops["rename"]++
		}
	default:
		if _, moved := s.renamed[email]; moved || strings.HasPrefix(email, "r") {
			return
		}
		if s.call(m, "PUT", "/v1/users/"+email, map[string]string{"verified_via": "admin"}, nil) {
			s.verified[email] = true
			s.ops["verification"]++
		}
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// check verifies the invariants on every member (all running, converged).
func (s *schedule) check() {
	t := s.t
	for _, m := range s.c.Members {
		st := m.Store()
		now := st.Now()
		user := func(email string) session.User {
			u, err := st.User(email)
			if err != nil {
				t.Fatalf("%s lacks the user %s: %v", m.Name(), email, err)
			}
			return u
		}
		for id, email := range s.sessions {
			if home := s.local[id]; home != "" && home != m.Name() {
				continue // kept on its site: never travels
			}
			sess, err := st.Session(id)
			if err != nil || sess.Email != email {
				t.Errorf("%s lacks the acknowledged login %s of %s: %+v %v", m.Name(), id[:8], email, sess, err)
				continue
			}
			state := sess.StateIn(user(email), st.Site(sess.Site), now)
			active := state == session.StateActive
			switch {
			case active && s.loggedOut[id]:
				t.Errorf("%s: session %s of %s is active after its acknowledged logout", m.Name(), id[:8], email)
			case active && s.revoked[id] != "":
				t.Errorf("%s: session %s of %s is active after a %s that happened after it", m.Name(), id[:8], email, s.revoked[id])
			case active && s.renamed[email] != "":
				t.Errorf("%s: session %s of %s is active after its user was moved to %s", m.Name(), id[:8], email, s.renamed[email])
			}
		}
		for from, to := range s.renamed {
			if u := user(from); u.MovedTo.V != to {
				t.Errorf("%s: %s moved to %q, want %q", m.Name(), from, u.MovedTo.V, to)
			}
			user(to)
		}
		for email := range s.verified {
			if s.renamed[email] != "" {
				continue // a move unverifies the old address
			}
			if u := user(email); !u.Verified.V.OK {
				t.Errorf("%s: %s is not verified after an acknowledged verification", m.Name(), email)
			}
		}
	}
	if why := s.c.RecordsDiffer(); why != "" {
		t.Errorf("records differ: %s", why)
	}
	if t.Failed() {
		t.Logf("reproduce: go test ./node -run TestFaults_Schedule -faults.seed=%d", s.seed)
	}
}
