package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ussync/ussync/gossip"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/ussync/ussync/session"
	"go.yaml.in/yaml/v3"
)

// The catchup scenario's newcomer in a process of its own: the ussync
// binary run as `ussync agent --config FILE`, joining the in-process
// cluster over loopback, so that its memory is measured apart from the
// cluster's (the process's peak resident set, /proc/<pid>/status VmHWM).
// It is watched from outside, as an operator would: GET /healthz (its
// digest's fingerprint and its health) and GET /metrics (what it sent),
// on its private API's Unix socket.

// Ways the catchup scenario runs its newcomer (Options.CatchupNewcomer).
const (
	// NewcomerProcess runs the newcomer as `ussync agent` in a process of
	// its own (Options.Agent is the binary): its peak memory is its own.
	NewcomerProcess = "process"
	// NewcomerInProcess runs the newcomer in this process beside the
	// cluster's nodes, as a nodetest member: its memory is not told apart
	// from theirs, but a CPU profile of the catch-up (CatchupCPUProfile)
	// holds its samples too.
	NewcomerInProcess = "inprocess"
)

// ParseNewcomer checks a newcomer mode name.
func ParseNewcomer(s string) error {
	if s != NewcomerProcess && s != NewcomerInProcess {
		return fmt.Errorf("newcomer %q: want %s or %s", s, NewcomerProcess, NewcomerInProcess)
	}
	return nil
}

const (
	// agentStartTimeout bounds the wait for the agent's private API to
	// answer after the process starts.
	agentStartTimeout = 30 * time.Second
	// agentStopTimeout bounds the wait for the agent to leave and close its
	// store after SIGTERM (the agent's own shutdown takes at most 10 s),
	// before it is killed.
	agentStopTimeout = 30 * time.Second
)

// agentProfile is the agent's node.profile closest to the bench's timer
// set: the same memberlist profile for lan and wan; for test (nodetest's
// shrunk timers, which no agent configuration offers) memberlist's local
// profile.
func agentProfile(timers string) string {
	switch timers {
	case TimersLAN:
		return string(gossip.ProfileLAN)
	case TimersWAN:
		return string(gossip.ProfileWAN)
	default:
		return string(gossip.ProfileLocal)
	}
}

// agentProc is a newcomer running as `ussync agent` in a child process.
// Its methods may be called from one goroutine at a time.
type agentProc struct {
	name string
	cmd  *exec.Cmd
	// data is its store's directory, in the temporary directory of its
	// config, secret and token files and API socket (the harness removes
	// it after the process is gone).
	data string
	http *http.Client
	log  *tailWriter
	// done is closed once the process has exited; waitErr is then why.
	done    chan struct{}
	waitErr error
	stopped sync.Once
}

// startAgent writes a configuration for node name joining the cluster c
// (every member's gossip address), runs opts.Agent (this program if
// empty) as `agent --config FILE` and waits until its private API answers.
// The harness kills the process, by its PID, at cleanup whatever happens;
// the process also dies with this one where the OS allows (Linux's
// parent-death signal). The error says why it did not start, with the
// agent's last line of error output if it exited.
func startAgent(ctx context.Context, h *harness, c *nodetest.Cluster, opts Options, name string) (*agentProc, error) {
	bin := opts.Agent
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the ussync binary to run the newcomer: %w", err)
		}
		bin = exe
	}
	dir := h.TempDir()
	a := &agentProc{name: name, data: filepath.Join(dir, "data"), done: make(chan struct{}),
		log: &tailWriter{prefix: name + ": ", h: h}}
	sock := filepath.Join(dir, "api.sock")
	if err := writeAgentConfig(dir, name, a.data, sock, c, opts.Timers); err != nil {
		return nil, err
	}
	a.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	h.Cleanup(a.http.CloseIdleConnections)

	cmd := exec.Command(bin, "agent", "--config", filepath.Join(dir, "cluster.yaml"))
	// A developer's USSYNC_* settings would override the file (a secret, a
	// port): the child gets none of them.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "USSYNC_") })
	cmd.Stdout, cmd.Stderr = a.log, a.log
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run the newcomer %s agent: %w", bin, err)
	}
	a.cmd = cmd
	go func() {
		a.waitErr = cmd.Wait()
		close(a.done)
	}()
	// Registered after TempDir: cleanups run last first, so the process is
	// gone before its directory is removed.
	h.Cleanup(a.kill)

	deadline := time.Now().Add(agentStartTimeout)
	for {
		_, _, err := a.state(ctx)
		if err == nil {
			return a, nil
		}
		select {
		case <-a.done:
			return nil, fmt.Errorf("the newcomer (%s agent) exited at start: %v%s", bin, a.waitErr, a.log.last())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			a.kill()
			return nil, fmt.Errorf("the newcomer (%s agent) did not answer on %s within %v: %v%s", bin, sock, agentStartTimeout, err, a.log.last())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// writeAgentConfig writes into dir the configuration (cluster.yaml), secret
// and API token files of an agent named name that keeps its store in data,
// serves its private API on the Unix socket sock, and joins every member of
// c under the agent profile closest to the bench's timers.
func writeAgentConfig(dir, name, data, sock string, c *nodetest.Cluster, timers string) error {
	var join []string
	for _, m := range c.Members {
		join = append(join, m.GossipAddr())
	}
	conf, err := yaml.Marshal(map[string]map[string]any{
		"node":   {"name": name, "data_dir": data, "profile": agentProfile(timers)},
		"site":   {"url": "http://" + name + ".localhost/", "health_url": node.HealthOff},
		"gossip": {"bind": "127.0.0.1:0", "join": join, "secret_file": filepath.Join(dir, "secret")},
		"api":    {"listen": "unix:" + sock, "token_file": filepath.Join(dir, "api-token")},
		"public": {"listen": "127.0.0.1:0"},
		"log":    {"level": "error"},
	})
	if err != nil {
		return fmt.Errorf("write the newcomer's configuration: %w", err)
	}
	for f, content := range map[string]string{"secret": c.Secret + "\n", "api-token": c.Token + "\n", "cluster.yaml": string(conf)} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o600); err != nil {
			return fmt.Errorf("write the newcomer's %s: %w", f, err)
		}
	}
	return nil
}

// state reads the agent's GET /healthz: its digest's fingerprint, and
// whether it says it has caught up (its health "ok": neither catching up
// nor isolated).
func (a *agentProc) state(ctx context.Context) (digest string, caughtUp bool, err error) {
	var h struct {
		Gossip string `json:"gossip"`
		Digest string `json:"digest"`
	}
	if err := a.get(ctx, "/healthz", func(r io.Reader) error { return json.NewDecoder(r).Decode(&h) }); err != nil {
		return "", false, err
	}
	if h.Digest == "" {
		return "", false, errors.New("GET /healthz: no digest (an agent older than this bench)")
	}
	return h.Digest, h.Gossip == "ok", nil
}

// sent reads from the agent's GET /metrics the gossip bytes it has sent
// (ussync_gossip_bytes_sent_total) and the records its anti-entropy sent
// (ussync_antientropy_records_sent_total) since it started.
func (a *agentProc) sent(ctx context.Context) (bytes int64, records uint64, err error) {
	want := map[string]float64{"ussync_gossip_bytes_sent_total": -1, "ussync_antientropy_records_sent_total": -1}
	err = a.get(ctx, "/metrics", func(r io.Reader) error {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			name, v, ok := strings.Cut(sc.Text(), " ")
			if _, asked := want[name]; !ok || !asked {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			want[name] = f
		}
		return sc.Err()
	})
	if err != nil {
		return 0, 0, err
	}
	for name, v := range want {
		if v < 0 {
			return 0, 0, fmt.Errorf("GET /metrics: no %s", name)
		}
	}
	return int64(want["ussync_gossip_bytes_sent_total"]), uint64(want["ussync_antientropy_records_sent_total"]), nil
}

func (a *agentProc) get(ctx context.Context, path string, read func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://localhost"+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := read(resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// peakRSS is the process's peak resident set (VmHWM of
// /proc/<pid>/status) while it still runs; ok is false where there is no
// /proc (not Linux) or once it has exited.
func (a *agentProc) peakRSS() (int64, bool) {
	n := procStatusOf(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid), "VmHWM")
	return n, n > 0
}

// stop asks the agent to leave and close its store (SIGTERM), and kills it
// if it has not exited within agentStopTimeout. It reports whether it
// exited of itself, cleanly.
func (a *agentProc) stop() (clean bool, err error) {
	select {
	case <-a.done:
		return false, fmt.Errorf("the newcomer had exited: %v%s", a.waitErr, a.log.last())
	default:
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		a.kill()
		return false, fmt.Errorf("stop the newcomer: %w", err)
	}
	select {
	case <-a.done:
		if a.waitErr != nil {
			return false, fmt.Errorf("the newcomer's shutdown: %v%s", a.waitErr, a.log.last())
		}
		return true, nil
	case <-time.After(agentStopTimeout):
		a.kill()
		return false, fmt.Errorf("the newcomer did not exit within %v of SIGTERM: killed", agentStopTimeout)
	}
}

// exited returns an error saying why the process exited, or nil while it
// runs.
func (a *agentProc) exited() error {
	select {
	case <-a.done:
		return fmt.Errorf("the newcomer exited: %v%s", a.waitErr, a.log.last())
	default:
		return nil
	}
}

// kill kills the process by its PID, unless it has exited, and waits for
// it. It may be called any number of times.
func (a *agentProc) kill() {
	a.stopped.Do(func() {
		select {
		case <-a.done:
			return
		default:
		}
		_ = a.cmd.Process.Kill()
		<-a.done
	})
}

// openStore opens the store of the stopped agent; the caller closes it.
func (a *agentProc) openStore() (*session.Store, error) {
	st, err := session.Open(session.Options{Dir: a.data, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("open the newcomer's store: %w", err)
	}
	return st, nil
}

// tailWriter forwards the agent's output, line by line, into the harness's
// log, and keeps the last line for an error message.
type tailWriter struct {
	prefix string
	h      *harness
	mu     sync.Mutex
	part   []byte
	line   string
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, p...)
	for {
		i := slices.Index(w.part, '\n')
		if i < 0 {
			break
		}
		if l := strings.TrimSpace(string(w.part[:i])); l != "" {
			w.line = l
			w.h.Logf("%s%s", w.prefix, l)
		}
		w.part = w.part[i+1:]
	}
	if len(w.part) > 64<<10 {
		w.part = w.part[:0]
	}
	return len(p), nil
}

// last is ": " and the last line the agent wrote, or "".
func (w *tailWriter) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.line
	if p := strings.TrimSpace(string(w.part)); p != "" {
		l = p
	}
	if l == "" {
		return ""
	}
	return ": " + l
}
