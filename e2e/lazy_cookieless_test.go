package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/demo"
)

// TestDemo_LazyCookieless: a client that keeps no cookie at all (a crawler,
// a privacy mode that refuses them) visits a lazy-mode site. It has no
// session and no ussync_checked after the round of the sites; the node
// marks the return URL (client.HopMark), so the site shows its page instead
// of sending it round again, and again (issue 13, item 6).
func TestDemo_LazyCookieless(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a demo of three nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := demo.Run(ctx, demo.Options{Mode: client.ModeLazy, Version: "e2e", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start the demo: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	a := d.Sites()[0]

	var visited []string
	hc := followClient(nil, &visited) // no jar: every cookie is dropped
	resp, err := hc.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hops := 0
	for _, u := range visited {
		if strings.Contains(u, "/ussync/v1/hop?") {
			hops++
		}
	}
	if resp.StatusCode != http.StatusOK || hops != 1 {
		t.Fatalf("a cookie-less client on a lazy site: %d after %d redirects, %d through the hop: %q", resp.StatusCode, len(visited), hops, visited)
	}
}
