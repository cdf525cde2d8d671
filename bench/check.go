package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Kinds of CheckResult rows.
const (
	// CheckClosed: Clients clients each send a check, wait for the answer
	// and send the next (what the target names).
	CheckClosed = "closed"
	// CheckEcho: no node and no HTTP, a bare TCP echo of the check's sizes
	// in the same closed loop: the floor this machine puts under any server.
	CheckEcho = "echo"
)

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
	res := CheckResult{Kind: CheckEcho, Clients: k}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, fmt.Errorf("echo floor: %w", err)
	}
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
		c, err := net.Dial("tcp", ln.Addr().String())
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
