package node

import (
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// BenchmarkAPI_SessionCheckSocket measures GET /v1/sessions/{id} from one
// client over the private API's Unix socket, one request at a time, as the
// bench's check scenario does (a lean HTTP client: the time is the
// server's). "floor" is net/http's own cost on the same socket: a handler
// that writes a fixed answer of the check's size.
func BenchmarkAPI_SessionCheckSocket(b *testing.B) {
	e := newAPIEnv(b)
	s := e.login(b, "bench@example.com", true)
	run := func(b *testing.B, h http.Handler, path string) {
		sock := filepath.Join(b.TempDir(), "api.sock")
		ln, err := listenAPI("unix:" + sock)
		if err != nil {
			b.Fatal(err)
		}
		// The node's server settings (node.go): its timeouts cost each request.
		srv := &http.Server{Handler: newHostGuard(h, "unix:"+sock, nil, slog.New(slog.DiscardHandler)), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go srv.Serve(newLimitListener(ln, 1024, false))
		defer srv.Close()
		hc := &fasthttp.HostClient{Addr: "localhost", MaxConns: 1, NoDefaultUserAgentHeader: true,
			Dial: func(string) (net.Conn, error) { return net.Dial("unix", sock) }}
		defer hc.CloseIdleConnections()
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://localhost" + path)
		req.Header.Set("Authorization", "Bearer "+testAPIToken)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := hc.Do(req, resp); err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode() != http.StatusOK {
				b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
			}
		}
	}
	b.Run("check", func(b *testing.B) { run(b, e.srv.Config.Handler, "/v1/sessions/"+s.Session.ID) })
	b.Run("floor", func(b *testing.B) {
		body := make([]byte, 420)
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}), "/")
	})
}

// BenchmarkAPI_SocketLeanFloor is the floor of a leaner HTTP server than
// net/http on the same socket (fasthttp's, the fixed answer of
// SessionCheckSocket's floor): what the check could approach by serving
// the socket without net/http (README, "Check over the socket").
func BenchmarkAPI_SocketLeanFloor(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 420)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.Write(body)
	}}
	go srv.Serve(ln)
	defer srv.Shutdown()
	hc := &fasthttp.HostClient{Addr: "localhost", MaxConns: 1, NoDefaultUserAgentHeader: true,
		Dial: func(string) (net.Conn, error) { return net.Dial("unix", sock) }}
	defer hc.CloseIdleConnections()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.SetRequestURI("http://localhost/")
	b.ReportAllocs()
	for b.Loop() {
		if err := hc.Do(req, resp); err != nil {
			b.Fatal(err)
		}
	}
}
