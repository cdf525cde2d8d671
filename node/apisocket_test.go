package node_test

import (
	"context"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/node"
	"github.com/ussync/ussync/node/nodetest"
)

// TestAPI_UnixSocket: with api.listen unix:PATH the private API answers on
// a socket of mode 0660 that Go's client dials, a socket a crashed node
// left behind is replaced, and one a live node answers on is refused.
func TestAPI_UnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "ussync-sock-") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	// A stale socket, as a killed node leaves: nothing listens on it.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	c := nodetest.New(t)
	c.Configure = func(i int, cfg *node.Config) { cfg.API.Listen = "unix:" + sock }
	c.Start(1)
	m := c.Members[0]
	if got := m.APIAddr(); got != "unix:"+sock {
		t.Fatalf("APIAddr = %q, want unix:%s", got, sock)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want a socket of 0660", fi.Mode())
	}

	ctx := context.Background()
	for _, base := range []string{"unix://" + sock, "unix:" + sock} {
		api := client.New(base, c.Token)
		verified := "registration"
		if _, err := api.PutUser(ctx, "ann@example.com", client.UserUpdate{VerifiedVia: &verified}); err != nil {
			t.Fatalf("%s: put user: %v", base, err)
		}
		in, err := api.Login(ctx, client.LoginRequest{Email: "ann@example.com", IP: "192.0.2.1"})
		if err != nil {
			t.Fatalf("%s: login: %v", base, err)
		}
		check, err := api.CheckSession(ctx, client.SessionID(in.Token))
		if err != nil || !check.Session.Active {
			t.Fatalf("%s: check: %+v, %v", base, check, err)
		}
	}
	if _, err := client.New("unix://"+sock, "wrong").Status(ctx); client.ErrorCode(err) != client.CodeUnauthorized {
		t.Fatalf("a wrong token over the socket: %v, want %s", err, client.CodeUnauthorized)
	}

	// A second node on the same path: refused, and the first keeps it.
	c2 := nodetest.New(&startFails{T: t})
	c2.Configure = func(i int, cfg *node.Config) { cfg.API.Listen = "unix:" + sock }
	func() {
		defer func() { recover() }()
		c2.Add()
	}()
	if _, err := client.New("unix://"+sock, c.Token).Status(ctx); err != nil {
		t.Fatalf("the first node lost its socket: %v", err)
	}

	c.Close()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket outlives its node: %v", err)
	}
}

// startFails is a nodetest.T whose Fatalf panics with the message, for a
// start that must fail.
type startFails struct{ *testing.T }

func (s *startFails) Fatalf(format string, args ...any) {
	msg := strings.TrimSpace(format)
	if !strings.Contains(msg, "start") {
		s.T.Errorf("unexpected failure: "+format, args...)
	}
	panic("start failed as it should")
}

// TestConfig_APIListenUnix: api.listen takes unix: and a path.
func TestConfig_APIListenUnix(t *testing.T) {
	for _, tc := range []struct {
		listen string
		ok     bool
	}{
		{"unix:/run/ussync/api.sock", true},
		{"unix:///run/ussync/api.sock", true},
		{"unix:", false},
		{"unix:/" + strings.Repeat("x", 120), false},
		{"127.0.0.1:7947", true},
	} {
		cfg := node.DefaultConfig()
		cfg.Node.Name = "a"
		cfg.Site.URL = "https://a.example/"
		cfg.Gossip.Secrets = []string{"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="}
		cfg.API.Token = "token"
		cfg.API.Listen = tc.listen
		err := cfg.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("api.listen %q: %v, want ok %v", tc.listen, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "api.listen") {
			t.Errorf("api.listen %q: %v does not name the key", tc.listen, err)
		}
	}
}
