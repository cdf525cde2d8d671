//go:build unix

// Package e2e tests ussync as it is deployed: the built binary, one process
// per node, real sockets on 127.0.0.1 only. Where node's in-process cluster
// tests reach into a node, these only use what an operator and a site have:
// flags, environment, signals, exit codes, stderr and the private API.
//
// They need Unix signals (SIGKILL, SIGTERM, SIGSTOP). They build the binary
// once per run (with -race when the tests run with it) and are skipped under
// -short.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/internal/testenv"
)

// Deadlines of the polls. They are generous: a slow CI machine running the
// race detector must not fail a test that a fast one passes; a healthy
// cluster meets them in a fraction of the time.
const (
	startTimeout    = 20 * time.Second // a process answers /healthz
	membersTimeout  = 30 * time.Second // membership settles (a death takes a probe and a suspicion)
	convergeTimeout = 20 * time.Second // records reach every node
	exitTimeout     = 5 * time.Second  // a node leaves and exits after SIGTERM
	pollInterval    = 50 * time.Millisecond
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// bin is the ussync binary, built once by ussyncBinary for every test.
var bin struct {
	once sync.Once
	dir  string // removed by TestMain
	path string
	err  error
}

// ussyncBinary builds the ussync binary on first use and returns its path.
// It skips the test under -short.
func ussyncBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds the binary and runs nodes as processes")
	}
	bin.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			bin.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			bin.err = errors.New("go env GOMOD: not inside the ussync module")
			return
		}
		if bin.dir, bin.err = os.MkdirTemp("", "ussync-e2e-"); bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "ussync")
		// -buildvcs=auto: stamp the commit when this is a git checkout
		// (TestRelease_Version compares it), whatever GOFLAGS says.
		args := []string{"build", "-buildvcs=auto", "-o", bin.path}
		if raceEnabled() {
			args = append(args, "-race") // the nodes' races matter as much as the test's
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = filepath.Dir(gomod)
		if out, err := cmd.CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatalf("build ussync: %v", bin.err)
	}
	return bin.path
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// cleanEnv is this process's environment without USSYNC_* variables, so a
// developer's own settings never leak into a node under test.
func cleanEnv(extra ...string) []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "USSYNC_") })
	return append(env, extra...)
}

// procAttr makes a child die with the test process where the OS can (Linux's
// parent-death signal): a test that hits -timeout panics without running its
// cleanups, and must not leave nodes behind. The field is set by name because
// it exists only on Linux.
func procAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.SetInt(int64(syscall.SIGKILL))
	}
	return attr
}

// freeAddr returns 127.0.0.1:port with a port free for TCP and, when udp is
// set, for UDP too (testenv.FreePort: below the ephemeral range, so that
// while a node is down no outgoing connection takes its port as a source
// port). Another process may take it before the node binds it: starting
// retries on that.
func freeAddr(t *testing.T, udp bool) string {
	t.Helper()
	port, err := testenv.FreePort(udp)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// logBuffer collects a process's output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is one run of a node's process.
type proc struct {
	cmd  *exec.Cmd
	out  logBuffer     // stdout and stderr
	done chan struct{} // closed once the process has exited and been reaped
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// describe says how the process ended, or that it runs.
func (p *proc) describe() string {
	if !p.exited() {
		return "running"
	}
	return p.cmd.ProcessState.String()
}

// agent is one node, run as `ussync agent`, possibly several times on the
// same data dir and ports.
type agent struct {
	name    string
	dir     string
	gossip  string // 127.0.0.1:port, UDP and TCP
	api     string
	public  string
	siteURL string
	config  string // --config FILE, when not empty
	secret  string // USSYNC_SECRET, when not the cluster's
	join    []string
	// env, when not nil, is the process's USSYNC_* environment instead of
	// the cluster's secret and token (USSYNC_SECRET, USSYNC_API_TOKEN).
	env []string
	// bin, when not empty, is the binary the agent runs instead of the
	// cluster's (another version of ussync).
	bin  string
	runs []*proc
}

// cur is the agent's latest run.
func (a *agent) cur() *proc { return a.runs[len(a.runs)-1] }

func (a *agent) args() []string {
	args := []string{"agent",
		"--name", a.name,
		"--data-dir", a.dir,
		"--profile", "local",
		"--bind", a.gossip,
		"--api", a.api,
		"--public", a.public,
		"--site-url", a.siteURL,
	}
	for _, j := range a.join {
		args = append(args, "--join", j)
	}
	if a.config != "" {
		args = append(args, "--config", a.config)
	}
	return args
}

// cluster is a set of agents sharing a secret and an API token.
type cluster struct {
	t      *testing.T
	bin    string
	secret string
	token  string
	http   *http.Client
	agents []*agent
	setup  func(*agent) // newClusterWith's, or nil
}

// newCluster starts n agents, n1 and the others joining n0, and waits until
// each lists all of them alive.
func newCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return newClusterWith(t, n, nil)
}

// newClusterWith is newCluster with setup called on each agent before it
// starts (its name and data dir set, not its ports), to change its site URL
// or give it a config file.
func newClusterWith(t *testing.T, n int, setup func(*agent)) *cluster {
	t.Helper()
	c := emptyCluster(t, setup)
	for range n {
		c.add()
	}
	c.waitMembers(c.agents, c.agents...)
	return c
}

// emptyCluster is a cluster with its secret and token and no agent yet:
// add them with add, then waitMembers.
func emptyCluster(t *testing.T, setup func(*agent)) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: ussyncBinary(t), token: randomHex(32), setup: setup}
	c.secret = c.keygen()
	c.http = &http.Client{
		Timeout: 5 * time.Second,
		// Never through a proxy: every address here is 127.0.0.1.
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8},
	}
	t.Cleanup(c.http.CloseIdleConnections)
	return c
}

// followClient is an HTTP client for a browser's redirects across
// *.localhost sites (dialled on the loopback), without a browser: each URL
// it is redirected to is appended to *visited, and it stops after 20. jar
// may be nil (every cookie dropped).
func followClient(jar http.CookieJar, visited *[]string) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Jar:     jar,
		Timeout: 20 * time.Second,
		Transport: &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if _, port, err := net.SplitHostPort(addr); err == nil {
				addr = net.JoinHostPort("127.0.0.1", port) // *.localhost is the loopback
			}
			return dialer.DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			*visited = append(*visited, req.URL.String())
			if len(via) >= 20 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// keygen runs `ussync keygen` and returns the secret it printed.
func (c *cluster) keygen() string {
	c.t.Helper()
	cmd := exec.Command(c.bin, "keygen")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("ussync keygen: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// add starts one more agent, joining n0, and waits for its /healthz. Ports
// are picked free; if another process took one meanwhile, it retries with
// others.
func (c *cluster) add() *agent {
	c.t.Helper()
	i := len(c.agents)
	a := &agent{
		name: fmt.Sprintf("n%d", i),
		dir:  c.t.TempDir(), // removed after the process is killed (cleanups run last first)
	}
	if i > 0 {
		a.join = []string{c.agents[0].gossip}
	}
	if c.setup != nil {
		c.setup(a)
	}
	ownSite := a.siteURL == ""
	c.agents = append(c.agents, a)
	c.t.Cleanup(func() { c.stop(a) })
	for attempt := 1; ; attempt++ {
		a.gossip, a.api, a.public = freeAddr(c.t, true), freeAddr(c.t, false), freeAddr(c.t, false)
		if ownSite {
			// The site is the node's public listener itself, under its own
			// host name (*.localhost is the loopback): the site check passes.
			_, port, _ := net.SplitHostPort(a.public)
			a.siteURL = fmt.Sprintf("http://site-%d.localhost:%s/", i, port)
		}
		err := c.start(a)
		if err == nil {
			return a
		}
		if attempt == 3 || !strings.Contains(a.cur().out.String(), "address already in use") {
			c.t.Fatalf("start %s: %v", a.name, err)
		}
		c.t.Logf("start %s: a port was taken meanwhile; retrying with other ports", a.name)
	}
}

// start runs a's process with a's flags and waits until it answers /healthz.
// It fails if the process exits first.
func (c *cluster) start(a *agent) error {
	c.t.Helper()
	p := &proc{done: make(chan struct{})}
	binary := c.bin
	if a.bin != "" {
		binary = a.bin
	}
	p.cmd = exec.Command(binary, a.args()...)
	secret := c.secret
	if a.secret != "" {
		secret = a.secret
	}
	p.cmd.Env = cleanEnv("USSYNC_SECRET="+secret, "USSYNC_API_TOKEN="+c.token)
	if a.env != nil {
		p.cmd.Env = cleanEnv(a.env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("run %s: %v", a.name, err)
	}
	a.runs = append(a.runs, p)
	go func() {
		p.cmd.Wait() // the exit status is read from ProcessState
		close(p.done)
	}()

	return eventually.Err(startTimeout, pollInterval, "GET /healthz at "+a.api, func() error {
		if p.exited() {
			return eventually.Stop(fmt.Errorf("the process exited before answering (%s)", p.describe()))
		}
		code, _, err := c.do(a, "GET", "/healthz", nil, nil)
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
}

// restart starts a again on the same data dir, ports and flags.
func (c *cluster) restart(a *agent) {
	c.t.Helper()
	if !a.cur().exited() {
		c.t.Fatalf("restart %s: it is still running", a.name)
	}
	if err := c.start(a); err != nil {
		c.t.Fatalf("restart %s: %v", a.name, err)
	}
}

// signal sends sig to a's running process.
func (c *cluster) signal(a *agent, sig os.Signal) {
	c.t.Helper()
	if err := a.cur().cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("send %v to %s: %v", sig, a.name, err)
	}
}

// kill SIGKILLs a's process, as a crash or the OOM killer would, and reaps it.
func (c *cluster) kill(a *agent) {
	c.t.Helper()
	p := a.cur()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		c.t.Fatalf("kill %s: %v", a.name, err)
	}
	<-p.done
}

// stop kills a's process if it still runs, then checks every run's output
// for panics and data races, and logs it if the test failed. It is a's
// cleanup, and runs whatever happened.
func (c *cluster) stop(a *agent) {
	for _, p := range a.runs {
		if !p.exited() {
			p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				c.t.Errorf("%s (pid %d) did not exit after SIGKILL", a.name, p.cmd.Process.Pid)
			}
		}
	}
	for i, p := range a.runs {
		out := p.out.String()
		for _, bad := range []string{"DATA RACE", "panic:", "goroutine "} {
			if strings.Contains(out, bad) {
				c.t.Errorf("%s, run %d: the output holds %q", a.name, i+1, bad)
			}
		}
		if c.t.Failed() {
			c.t.Logf("%s, run %d (%s), output:\n%s", a.name, i+1, p.describe(), out)
		}
	}
}

// do calls a's private API with the bearer token: body (when not nil) is
// sent as JSON, and a JSON answer is decoded into out (when not nil). It
// returns the status and the raw answer; an error means no answer came.
func (c *cluster) do(a *agent, method, path string, body, out any) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatalf("encode %s %s: %v", method, path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+a.api+path, r)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode the answer: %w", err)
		}
	}
	return resp.StatusCode, raw, nil
}

// must is do that fails the test unless a's answer has status want.
func (c *cluster) must(a *agent, method, path string, body, out any, want int) {
	c.t.Helper()
	code, raw, err := c.do(a, method, path, body, out)
	if err != nil || code != want {
		c.t.Fatalf("%s %s on %s: %d %v %s; want %d", method, path, a.name, code, err, raw, want)
	}
}

// eventually polls cond until it returns "" (done) or timeout passes; then it
// fails the test with what and cond's last answer (why not yet).
func (c *cluster) eventually(timeout time.Duration, what string, cond func() string) {
	c.t.Helper()
	eventually.DoneEvery(c.t, timeout, pollInterval, what, cond)
}

// statusAnswer is the part of GET /v1/status these tests read.
type statusAnswer struct {
	Node    string `json:"node"`
	Members []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		State   string `json:"state"`
		SiteURL string `json:"site_url"`
	} `json:"members"`
}

// states returns the state of each member a lists, by name.
func (c *cluster) states(a *agent) (map[string]string, error) {
	var st statusAnswer
	code, raw, err := c.do(a, "GET", "/v1/status", nil, &st)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK || st.Node != a.name {
		return nil, fmt.Errorf("status: %d %s", code, raw)
	}
	m := map[string]string{}
	for _, mb := range st.Members {
		m[mb.Name] = mb.State
	}
	return m, nil
}

// waitMembers waits until every agent of on lists exactly the agents of
// want, all alive, with their addresses and site URLs.
func (c *cluster) waitMembers(want []*agent, on ...*agent) {
	c.t.Helper()
	c.eventually(membersTimeout, fmt.Sprintf("%d alive members on every node", len(want)), func() string {
		for _, a := range on {
			var st statusAnswer
			code, raw, err := c.do(a, "GET", "/v1/status", nil, &st)
			if err != nil || code != http.StatusOK {
				return fmt.Sprintf("status of %s: %d %v %s", a.name, code, err, raw)
			}
			if len(st.Members) != len(want) {
				return fmt.Sprintf("%s lists %+v", a.name, st.Members)
			}
			for i, w := range want { // members are sorted by name
				m := st.Members[i]
				if m.Name != w.name || m.State != "alive" || m.Address != w.gossip || m.SiteURL != w.siteURL {
					return fmt.Sprintf("%s lists %+v", a.name, m)
				}
			}
		}
		return ""
	})
}

// waitState waits until every agent of on lists who in state.
func (c *cluster) waitState(who *agent, state string, on ...*agent) {
	c.t.Helper()
	c.eventually(membersTimeout, fmt.Sprintf("%s %s on the others", who.name, state), func() string {
		for _, a := range on {
			m, err := c.states(a)
			if err != nil {
				return fmt.Sprintf("%s: %v", a.name, err)
			}
			if m[who.name] != state {
				return fmt.Sprintf("%s lists %s as %q", a.name, who.name, m[who.name])
			}
		}
		return ""
	})
}

// register creates a verified user on a and waits until every running agent
// knows it verified (a login elsewhere before that stays local, rightly);
// every other running agent's administrator then vouches for it
// (verified_via: admin), so that a login on any site travels
// (docs/security.md: a login travels from a site bound to the address).
func (c *cluster) register(a *agent, email string) {
	c.t.Helper()
	c.must(a, "PUT", "/v1/users/"+email, map[string]string{"login": strings.Split(email, "@")[0], "display_name": email, "verified_via": "registration"}, nil, http.StatusOK)
	defer func() {
		for _, o := range c.agents {
			if o != a {
				c.must(o, "PUT", "/v1/users/"+email, map[string]string{"verified_via": "admin"}, nil, http.StatusOK)
			}
		}
	}()
	c.eventually(convergeTimeout, email+" verified on every node", func() string {
		for _, o := range c.agents {
			var u struct {
				Verified bool `json:"verified"`
			}
			if code, raw, err := c.do(o, "GET", "/v1/users/"+email, nil, &u); err != nil || code != http.StatusOK || !u.Verified {
				return fmt.Sprintf("%s: %d %v %s", o.name, code, err, raw)
			}
		}
		return ""
	})
}

// login logs email in on a and returns the session id.
func (c *cluster) login(a *agent, email string) string {
	c.t.Helper()
	var ans struct {
		Session struct {
			ID     string `json:"id"`
			Site   string `json:"site"`
			Active bool   `json:"active"`
		} `json:"session"`
		Token  string `json:"token"`
		Synced bool   `json:"synced"`
	}
	c.must(a, "POST", "/v1/sessions", map[string]string{"email": email, "ip": "127.0.0.1", "user_agent": "ussync-e2e"}, &ans, http.StatusCreated)
	if len(ans.Session.ID) != 64 || ans.Token == "" || !ans.Synced || !ans.Session.Active || ans.Session.Site != a.name {
		c.t.Fatalf("login %s on %s: answer %+v", email, a.name, ans)
	}
	return ans.Session.ID
}

// check returns a's answer to the session check of id, as "200", "404
// not_found" or "410 <error code> <end reason>"; "" with an error when a
// did not answer.
func (c *cluster) check(a *agent, id string) (string, error) {
	var ans struct {
		Session struct {
			EndReason string `json:"end_reason"`
		} `json:"session"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	code, raw, err := c.do(a, "GET", "/v1/sessions/"+id, nil, &ans)
	switch {
	case err != nil:
		return "", err
	case code == http.StatusOK:
		return "200", nil
	case code == http.StatusGone:
		return fmt.Sprintf("410 %s %s", ans.Error.Code, ans.Session.EndReason), nil
	case code == http.StatusNotFound:
		return "404 " + ans.Error.Code, nil
	}
	return "", fmt.Errorf("unexpected answer %d %s", code, raw)
}

// sessionWant is the answer every node must eventually give for a session.
type sessionWant struct {
	what string
	id   string
	want string // as check returns it
}

// waitSessions waits until every agent of on gives each session its wanted
// answer.
func (c *cluster) waitSessions(wants []sessionWant, on ...*agent) {
	c.t.Helper()
	c.eventually(convergeTimeout, "every node to give every session its answer", func() string {
		for _, w := range wants {
			for _, a := range on {
				got, err := c.check(a, w.id)
				if err != nil {
					return fmt.Sprintf("%s: %s: %v", w.what, a.name, err)
				}
				if got != w.want {
					return fmt.Sprintf("%s: %s answers %q, want %q", w.what, a.name, got, w.want)
				}
			}
		}
		return ""
	})
}

func TestAgents_KillRestartConverges(t *testing.T) {
	c := newCluster(t, 3)
	n0, n1, n2 := c.agents[0], c.agents[1], c.agents[2]
	const ann, bob = "ann@example.com", "bob@example.com"
	c.register(n0, ann)
	c.register(n1, bob)

	annOn0, annOn1 := c.login(n0, ann), c.login(n1, ann)
	bobOn0, bobOn1 := c.login(n0, bob), c.login(n1, bob)
	c.waitSessions([]sessionWant{
		{"ann on n0", annOn0, "200"},
		{"ann on n1", annOn1, "200"},
		{"bob on n0", bobOn0, "200"},
		{"bob on n1", bobOn1, "200"},
	}, c.agents...)

	// A login n2 acknowledged, then a crash before anything else happens.
	annOn2 := c.login(n2, ann)
	c.kill(n2)
	killed := time.Now()
	c.waitState(n2, "dead", n0, n1)
	t.Logf("n0 and n1 saw n2 dead %s after the kill", time.Since(killed).Round(time.Millisecond))

	// While n2 is down: a logout, a login and a logout everywhere.
	c.must(n0, "DELETE", "/v1/sessions/"+annOn0, nil, nil, http.StatusOK)
	annNew := c.login(n1, ann)
	var ended struct {
		Ended int `json:"ended"`
	}
	c.must(n1, "POST", "/v1/users/"+bob+"/logout-everywhere", nil, &ended, http.StatusOK)
	if ended.Ended != 2 {
		t.Fatalf("logout-everywhere of bob ended %d sessions, want 2", ended.Ended)
	}

	func() {
		// n2 keeps what it acknowledged. Freeze n0 and n1 so that the restarted n2 can learn nothing: what
		// it answers comes from its own store, which outlived the SIGKILL.
		c.signal(n0, syscall.SIGSTOP)
		c.signal(n1, syscall.SIGSTOP)
		defer c.signal(n1, syscall.SIGCONT)
		defer c.signal(n0, syscall.SIGCONT)
		c.restart(n2)
		for _, w := range []sessionWant{
			{"ann on n0", annOn0, "200"}, // n2 cannot know of the logout yet
			{"ann on n1", annOn1, "200"},
			{"bob on n0", bobOn0, "200"},
			{"bob on n1", bobOn1, "200"},
			{"ann on n2, acknowledged just before the kill", annOn2, "200"},
			{"ann on n1, logged in while n2 was down", annNew, "404 not_found"}, // n2 is cut off indeed
		} {
			if got, err := c.check(n2, w.id); err != nil || got != w.want {
				t.Errorf("%s: the restarted n2 answers %q %v, want %q", w.what, got, err, w.want)
			}
		}
	}()

	restarted := time.Now()
	c.waitMembers(c.agents, c.agents...)
	t.Logf("all alive again %s after n0 and n1 resumed", time.Since(restarted).Round(time.Millisecond))
	c.waitSessions([]sessionWant{
		{"ann on n0, logged out while n2 was down", annOn0, "410 session_ended logout"},
		{"ann on n1", annOn1, "200"},
		{"bob on n0, logged out everywhere while n2 was down", bobOn0, "410 session_ended logout_everywhere"},
		{"bob on n1, logged out everywhere while n2 was down", bobOn1, "410 session_ended logout_everywhere"},
		{"ann on n2, acknowledged just before the kill", annOn2, "200"},
		{"ann on n1, logged in while n2 was down", annNew, "200"},
	}, c.agents...)
	t.Logf("n2 converged %s after n0 and n1 resumed", time.Since(restarted).Round(time.Millisecond))
}

func TestAgents_SigtermLeaves(t *testing.T) {
	c := newCluster(t, 3)
	n0, n1, n2 := c.agents[0], c.agents[1], c.agents[2]

	p := n2.cur()
	start := time.Now()
	c.signal(n2, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		t.Fatalf("n2 still runs %s after SIGTERM", exitTimeout)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("n2 ended with %s after SIGTERM, want exit status 0", p.describe())
	}
	t.Logf("n2 left and exited in %s", time.Since(start).Round(time.Millisecond))

	// A node that said goodbye is "left", not a failure to chase.
	c.eventually(convergeTimeout, "n0 and n1 to list n2 as left", func() string {
		for _, a := range []*agent{n0, n1} {
			m, err := c.states(a)
			if err != nil {
				return fmt.Sprintf("%s: %v", a.name, err)
			}
			if m[n2.name] != "left" || m[n0.name] != "alive" || m[n1.name] != "alive" {
				return fmt.Sprintf("%s lists %v", a.name, m)
			}
		}
		return ""
	})
}

func TestAgents_BadInput(t *testing.T) {
	binary := ussyncBinary(t)
	secret := "USSYNC_SECRET=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
	token := "USSYNC_API_TOKEN=" + randomHex(16)

	// args returns valid agent flags, but for api (the private API address).
	args := func(t *testing.T, api string) []string {
		return []string{"agent", "--name", "bad", "--data-dir", t.TempDir(), "--profile", "local",
			"--bind", "127.0.0.1:0", "--api", api, "--public", "127.0.0.1:0", "--site-url", "http://bad.localhost/"}
	}
	tests := []struct {
		name string
		// setup returns the command line and environment; it may hold
		// resources until the test ends.
		setup func(t *testing.T) (args, env []string)
		want  string // in the error line
	}{
		{"bad flag", func(t *testing.T) ([]string, []string) {
			return append(args(t, "127.0.0.1:0"), "--bogus"), []string{secret, token}
		}, "bogus"},
		{"unknown key in the config file", func(t *testing.T) ([]string, []string) {
			path := filepath.Join(t.TempDir(), "cluster.yaml")
			if err := os.WriteFile(path, []byte("node:\n  name: bad\n  colour: blue\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return append(args(t, "127.0.0.1:0"), "--config", path), []string{secret, token}
		}, `unknown key "colour"`},
		{"missing secret", func(t *testing.T) ([]string, []string) {
			return args(t, "127.0.0.1:0"), []string{token}
		}, "no cluster secret"},
		{"API port in use", func(t *testing.T) ([]string, []string) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return args(t, ln.Addr().String()), []string{secret, token}
		}, "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args, env := tt.setup(t)
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, args...) // killed if it outlives the deadline
			cmd.Env = cleanEnv(env...)
			cmd.SysProcAttr = procAttr()
			var stdout, stderr logBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after %s; stderr:\n%s", startTimeout, stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Errorf("ended with %v, want exit status 2", err)
			}
			out := stderr.String()
			if !strings.HasPrefix(out, "ussync: ") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Errorf("stderr is not one line starting %q:\n%s", "ussync: ", out)
			}
			for _, bad := range []string{"goroutine", "panic"} {
				if strings.Contains(out, bad) {
					t.Errorf("stderr holds %q:\n%s", bad, out)
				}
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("stderr does not say %q:\n%s", tt.want, out)
			}
			if s := stdout.String(); s != "" {
				t.Errorf("stdout: %q", s)
			}
			t.Logf("%s; stderr: %s", cmd.ProcessState, strings.TrimSpace(out))
		})
	}
}
