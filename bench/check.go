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
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				errs[w] = err
				ready.Done()
				return
			}
			defer c.Close()
			req, ans := make([]byte, echoRequestBytes), make([]byte, echoAnswerBytes)
			ready.Done()
			<-begin
			own := make([]time.Duration, 0, 1<<15)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					errs[w] = err
					return
				}
				if _, err := io.ReadFull(c, ans); err != nil {
					errs[w] = err
					return
				}
				own = append(own, time.Since(t0))
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
	if err := errors.Join(ctx.Err(), errors.Join(errs...)); err != nil {
		return res, fmt.Errorf("echo floor: %w", err)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.Seconds = elapsed.Seconds()
	res.Requests = int64(len(all))
	res.PerSec = float64(len(all)) / elapsed.Seconds()
	res.Latency = summarize(all)
	return res, nil
}
