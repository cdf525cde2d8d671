package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
	"github.com/valyala/fasthttp"
)

// Kinds of CheckResult rows.
const (
	// CheckClosed: Clients clients each send a check, wait for the answer
	// and send the next (what the target names).
	CheckClosed = "closed"
	// CheckEcho: no node and no HTTP, a bare TCP echo of the check's sizes
	// in the same closed loop: the floor this machine puts under any server.
	CheckEcho = "echo"
	// CheckSocket: one client over the private API's Unix socket (a node of
	// the same cluster with api.listen unix:PATH).
	CheckSocket = "socket"
	// CheckSocketEcho: one client around a bare echo of the check's sizes
	// over a Unix socket: the socket row's floor under any server.
	CheckSocketEcho = "socket-echo"
	// CheckSocketHTTP: the same client (fasthttp's) and net/http's server
	// on a Unix socket, with a handler that writes a canned answer of the
	// check's size: what net/http costs before the node does anything.
	CheckSocketHTTP = "socket-http"
)

// TargetCheckSocketP50 is the one-client check's p50 target over a Unix
// socket.
const TargetCheckSocketP50 = 20 * time.Microsecond

// Sizes of a session check on the wire, for the echo floor: the request
// with its bearer token, and the answer with its headers.
const (
	echoRequestBytes = 180
	echoAnswerBytes  = 420
)

// echoFloor runs k closed-loop clients against a bare TCP echo server on
// loopback for d: each writes echoRequestBytes and reads echoAnswerBytes
// back. No HTTP, no node: what is left is the kernel, the Go scheduler and
// the shared CPUs, a floor no server in this process can go under.
func echoFloor(ctx context.Context, k int, d time.Duration) (CheckResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return CheckResult{Kind: CheckEcho, Clients: k}, fmt.Errorf("echo floor: %w", err)
	}
	return echoOn(ctx, ln, CheckEcho, k, d)
}

// echoOn is echoFloor on the listener ln (TCP or a Unix socket), which it
// closes; kind names the row.
func echoOn(ctx context.Context, ln net.Listener, kind string, k int, d time.Duration) (CheckResult, error) {
	res := CheckResult{Kind: kind, Clients: k}
	var serving sync.WaitGroup
	var connsMu sync.Mutex
	var conns []net.Conn
	serving.Add(1)
	go func() {
		defer serving.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
			serving.Add(1)
			go func() {
				defer serving.Done()
				in, out := make([]byte, echoRequestBytes), make([]byte, echoAnswerBytes)
				for {
					if _, err := io.ReadFull(c, in); err != nil {
						return
					}
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}()
		}
	}()
	defer func() {
		ln.Close()
		connsMu.Lock()
		for _, c := range conns {
			c.Close()
		}
		connsMu.Unlock()
		serving.Wait()
	}()

	all, elapsed, err := closedLoop(ctx, k, d, func(int) func() (bool, error) {
		c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
		if err != nil {
			return func() (bool, error) { return false, err }
		}
		connsMu.Lock()
		conns = append(conns, c) // closed with the server's
		connsMu.Unlock()
		req, ans := make([]byte, echoRequestBytes), make([]byte, echoAnswerBytes)
		return func() (bool, error) {
			if _, err := c.Write(req); err != nil {
				return false, err
			}
			_, err := io.ReadFull(c, ans)
			return err == nil, err
		}
	})
	if err := errors.Join(ctx.Err(), err); err != nil {
		return res, fmt.Errorf("echo floor: %w", err)
	}
	res.Seconds = elapsed.Seconds()
	res.Requests = int64(len(all))
	res.PerSec = float64(len(all)) / elapsed.Seconds()
	res.Latency = summarize(all)
	return res, nil
}

// closedLoop runs k workers for d, from a common start once all are ready.
// prepare(w) readies worker w (its connection, a warm-up) and returns its
// operation, which the worker then calls over and over until d has passed,
// timing each call that reports done. An operation's error stops its worker
// and is returned, with the others', after the run.
func closedLoop(ctx context.Context, k int, d time.Duration, prepare func(w int) func() (done bool, err error)) ([]time.Duration, time.Duration, error) {
	lats := make([][]time.Duration, k)
	errs := make([]error, k)
	var ready, wg sync.WaitGroup
	begin := make(chan struct{})
	var deadline time.Time
	for w := range k {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			op := prepare(w)
			ready.Done()
			<-begin
			own := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				done, err := op()
				if err != nil {
					errs[w] = err
					break
				}
				if done {
					own = append(own, time.Since(t0))
				}
			}
			lats[w] = own
		}()
	}
	ready.Wait()
	start := time.Now()
	deadline = start.Add(d)
	close(begin)
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return all, elapsed, errors.Join(errs...)
}

// CheckResult is the session check (GET /v1/sessions/{id}) under a closed
// loop of Clients concurrent clients, each over a pool of active sessions.
type CheckResult struct {
	// Kind is CheckClosed or CheckEcho.
	Kind     string  `json:"kind"`
	Clients  int     `json:"clients"`
	Pool     int     `json:"pool"`
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	// FirstError is the first failure, if any.
	FirstError string  `json:"first_error,omitempty"`
	PerSec     float64 `json:"requests_per_sec"`
	Latency    Latency `json:"latency"`
	// TargetP99 is the target for Latency.P99 (0: this row is a baseline).
	TargetP99 float64 `json:"target_p99_ms,omitempty"`
	// TargetP50 is the target for Latency.P50 (the socket row).
	TargetP50 float64 `json:"target_p50_ms,omitempty"`
	// Node is the node checked.
	Node string `json:"node"`
}

// Check starts three nodes, logs in a pool of 1000 sessions on the first,
// waits for convergence, then runs the session check on the first node in
// a closed loop: first with one client (the baseline: the cost of one
// check), then with opts.CheckClients concurrent clients, each for
// opts.Duration.
func Check(ctx context.Context, opts Options) ([]CheckResult, error) {
	opts = opts.withDefaults()
	const nodes = 3
	var out []CheckResult
	err := withCluster(opts, func(h *harness) error {
		opts.progressf("check: starting %d nodes, and one whose API is a Unix socket", nodes)
		c := newCluster(h, opts)
		sockDir := h.TempDir() // short: sun_path holds 108 bytes
		c.Configure = func(i int, cfg *node.Config) {
			cfg.Sync.Modes = node.DefaultConfig().Sync.Modes
			if i == nodes {
				cfg.API.Listen = "unix:" + filepath.Join(sockDir, "api.sock")
			}
		}
		c.Start(nodes)
		c.Add()
		c.WaitMembers(10 * time.Second)
		cl := newClient(h, c, opts.CheckClients)
		users, err := registerUsers(ctx, c, cl, loadUsers)
		if err != nil {
			return err
		}
		opts.progressf("check: logging in %d sessions", checkPool)
		m := c.Members[0]
		ids := make([]string, checkPool)
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for w := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < len(ids) && errs[w] == nil; i += len(errs) {
					ids[i], errs[w] = cl.login(ctx, m, users[i%len(users)])
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		c.WaitConverged(30 * time.Second)
		paths := make([]string, len(ids))
		for i, id := range ids {
			paths[i] = "/v1/sessions/" + id
		}
		levels := []int{1}
		if opts.CheckClients != 1 {
			levels = append(levels, opts.CheckClients)
		}
		for _, k := range levels {
			opts.progressf("check: %d clients on n0 for %v", k, opts.Duration)
			res, err := checkLoad(ctx, cl, m, paths, k, opts.Duration)
			if err != nil {
				return err
			}
			if k == opts.CheckClients {
				res.TargetP99 = ms(TargetCheckP99)
			}
			out = append(out, res)
		}
		sock, err := checkSocket(ctx, opts, cl, c.Members[nodes], paths, sockDir)
		if err != nil {
			return err
		}
		out = append(out, sock...)
		opts.progressf("check: bare TCP echo, %d clients, for %v", opts.CheckClients, opts.Duration)
		floor, err := echoFloor(ctx, opts.CheckClients, opts.Duration)
		if err != nil {
			return err
		}
		out = append(out, floor)
		return nil
	})
	return out, err
}

// checkSocket runs one client checking sessions on sm, whose API is a Unix
// socket, then the socket's floors (socketFloors, their sockets in dir).
func checkSocket(ctx context.Context, opts Options, cl *client, sm *nodetest.Member, paths []string, dir string) ([]CheckResult, error) {
	opts.progressf("check: 1 client on %s over its Unix socket for %v", sm.Name(), opts.Duration)
	res, err := checkLoad(ctx, cl, sm, paths, 1, opts.Duration)
	if err != nil {
		return nil, err
	}
	res.Kind, res.TargetP50 = CheckSocket, ms(TargetCheckSocketP50)
	opts.progressf("check: the socket's floors, bare echo and net/http, 1 client for %v each", opts.Duration)
	floors, err := socketFloors(ctx, cl, dir, opts.Duration)
	if err != nil {
		return nil, err
	}
	return append([]CheckResult{res}, floors...), nil
}

// checkLoad runs k clients checking sessions on m for d.
func checkLoad(ctx context.Context, cl *client, m *nodetest.Member, paths []string, k int, d time.Duration) (CheckResult, error) {
	const warmup = 20 // requests per client before measuring: connections are up
	res := CheckResult{Kind: CheckClosed, Clients: k, Pool: len(paths), Node: m.Name()}
	var failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	all, elapsed, _ := closedLoop(ctx, k, d, func(w int) func() (bool, error) {
		get := func(path string) bool {
			code, raw, err := cl.call(ctx, m, "GET", path, nil)
			if err == nil && code == http.StatusOK {
				return true
			}
			if ctx.Err() == nil {
				failed.Add(1)
				errOnce.Do(func() {
					if err == nil {
						err = fmt.Errorf("%d %s", code, bytes.TrimSpace(raw))
					}
					firstErr = err
				})
			}
			return false
		}
		i := w * (len(paths) / k)
		for j := 0; j < warmup; j++ {
			get(paths[(i+j)%len(paths)])
		}
		return func() (bool, error) {
			i++
			return get(paths[i%len(paths)]), nil
		}
	})
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.Seconds = elapsed.Seconds()
	res.Requests = int64(len(all))
	res.Errors = failed.Load()
	if firstErr != nil {
		res.FirstError = firstErr.Error()
	}
	res.PerSec = float64(len(all)) / elapsed.Seconds()
	res.Latency = summarize(all)
	return res, nil
}

// WriteCheck writes the session-check table.
func WriteCheck(w io.Writer, rs []CheckResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCHECK  GET /v1/sessions/{id} over %d active sessions, keep-alive, %.1fs per row: TCP on n0 of 4 nodes, the socket on n3 (api.listen unix:PATH)\n", rs[0].Pool, rs[0].Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "LOAD\tCLIENTS\tREQUESTS\tERRORS\tREQ/S\tP50\tP99\tMAX\t TARGET\t")
	var closed *CheckResult
	for i, r := range rs {
		load, target := "TCP, closed loop", "- (baseline: one request at a time)"
		switch r.Kind {
		case CheckEcho:
			load, target = "bare TCP echo, closed loop", "- (this machine's floor: no HTTP, no node)"
		case CheckSocket:
			load = "Unix socket, closed loop"
		case CheckSocketEcho:
			load, target = "bare echo, Unix socket", "- (the socket row's floor: no HTTP, no node)"
		case CheckSocketHTTP:
			load, target = "net/http, canned answer, Unix socket", "- (the socket row's floor with net/http: no node)"
		default:
			closed = &rs[i]
		}
		if r.TargetP99 > 0 {
			// Set for 50 clients: 2 clients' "met" (the smoke's) says nothing.
			target = fmt.Sprintf("p99 <= %g ms: %s", r.TargetP99, sizedVerdict(r.Latency.P99 <= r.TargetP99 && r.Errors == 0, r.Clients, TargetCheckClients))
		}
		if r.TargetP50 > 0 {
			target = fmt.Sprintf("p50 <= %g µs: %s", 1000*r.TargetP50, verdict(r.Latency.P50 <= r.TargetP50 && r.Errors == 0))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t%s\t%s\t%s\t %s\t\n", load, r.Clients, r.Requests, r.Errors, r.PerSec,
			fmtMs(r.Latency.P50), fmtMs(r.Latency.P99), fmtMs(r.Latency.Max), target)
	}
	tw.Flush()
	if closed != nil && closed.PerSec > 0 {
		fmt.Fprintf(w, "  closed loop: mean latency = clients / req/s (Little's law); %d / %.0f = %.3f ms here, whatever the node does\n",
			closed.Clients, closed.PerSec, 1000*float64(closed.Clients)/closed.PerSec)
	}
	for _, r := range rs {
		if r.Kind == CheckEcho && closed != nil && r.PerSec > 0 {
			fmt.Fprintf(w, "  the echo is the floor: the same %d clients around a bare TCP echo of the check's sizes reach p99 %s at %.0f/s;\n"+
				"  an HTTP server in this process cannot go under it\n", r.Clients, fmtMs(r.Latency.P99), r.PerSec)
		}
	}
	rows := map[string]*CheckResult{}
	for i := range rs {
		rows[rs[i].Kind] = &rs[i]
	}
	if sock, std := rows[CheckSocket], rows[CheckSocketHTTP]; sock != nil && std != nil {
		fmt.Fprintf(w, "  over the socket, net/http with a canned answer takes p50 %s: the node's own part of the check is about %s\n",
			fmtMs(std.Latency.P50), fmtMs(sock.Latency.P50-std.Latency.P50))
	}
	for _, r := range rs {
		if r.FirstError != "" {
			fmt.Fprintf(w, "  first error (%s, %d clients): %s\n", r.Kind, r.Clients, r.FirstError)
		}
	}
}

// socketFloors measures, beside the socket row, its floors: one client
// around a bare echo over a Unix socket in dir, then the same client
// against net/http's server on a Unix socket answering a canned check of
// the same size. The node's row less net/http's is what the node adds.
// (fasthttp's server is not measured here: it starts a process-wide clock
// goroutine that never ends, which the bench's leak check refuses.)
func socketFloors(ctx context.Context, cl *client, dir string, d time.Duration) ([]CheckResult, error) {
	eln, err := net.Listen("unix", filepath.Join(dir, "echo.sock"))
	if err != nil {
		return nil, fmt.Errorf("socket echo floor: %w", err)
	}
	echo, err := echoOn(ctx, eln, CheckSocketEcho, 1, d)
	if err != nil {
		return nil, err
	}
	answer := bytes.Repeat([]byte("x"), echoAnswerBytes-150) // less the headers
	std, err := cannedFloor(ctx, cl, filepath.Join(dir, "http.sock"), CheckSocketHTTP, d, func(ln net.Listener) func() {
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Cache-Control", "no-store")
				w.Write(answer)
			}),
			ReadHeaderTimeout: requestTimeout,
		}
		go srv.Serve(ln)
		return func() { srv.Close() }
	})
	if err != nil {
		return nil, err
	}
	return []CheckResult{echo, std}, nil
}

// cannedFloor serves a canned check answer with serve (which starts a
// server on the listener and returns its stop) on a Unix socket at path,
// and runs one client of cl against it for d.
func cannedFloor(ctx context.Context, cl *client, path, kind string, d time.Duration, serve func(net.Listener) func()) (CheckResult, error) {
	res := CheckResult{Kind: kind, Clients: 1}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return res, fmt.Errorf("%s floor: %w", kind, err)
	}
	defer serve(ln)()
	hc := cl.unixClient(path)
	all, elapsed, err := closedLoop(ctx, 1, d, func(int) func() (bool, error) {
		get := func() (bool, error) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://localhost/v1/sessions/floor")
			req.Header.Set("Authorization", cl.auth)
			if err := hc.DoTimeout(req, resp, requestTimeout); err != nil {
				return false, err
			}
			return resp.StatusCode() == http.StatusOK, nil
		}
		for range 20 { // warm-up, as checkLoad's
			get()
		}
		return get
	})
	if err := errors.Join(ctx.Err(), err); err != nil {
		return res, fmt.Errorf("%s floor: %w", kind, err)
	}
	res.Seconds, res.Requests = elapsed.Seconds(), int64(len(all))
	res.PerSec = float64(len(all)) / elapsed.Seconds()
	res.Latency = summarize(all)
	return res, nil
}
