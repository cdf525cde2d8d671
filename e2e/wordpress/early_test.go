//go:build unix

package wordpress

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestWordPress_StepsAnsweredEarly: the health URL and the hand-off steps
// that need nothing of WordPress but the settings and the cookies (bind,
// chain, the lazy hop's, whoami) are answered as soon as the plugin is
// loaded, before init (the e2e must-use plugin marks every answer that
// went through init), still no-store and with the node's answer; a sync
// step, which logs the browser into WordPress, still waits for the whole
// of WordPress (README "Performance").
func TestWordPress_StepsAnsweredEarly(t *testing.T) {
	tb := theBed(t)
	a := tb.sites[0]
	tb.defaults(t)
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", a.url+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, c := range []struct {
		path   string
		status int
		early  bool
	}{
		{"ussync/v1/healthz", 200, true},
		{"ussync/v1/bind?h=not-a-state", 400, true},
		{"ussync/v1/chain?h=not-a-state", 400, true},
		{"ussync/v1/hop/ask?h=not-a-request", 400, true},
		{"ussync/v1/sync?t=not-a-ticket&next=" + a.url, 303, false}, // refused, sent on to next
		{"", 200, false}, // a page
	} {
		resp, body := get(c.path, "Origin", tb.sites[1].url[:len(tb.sites[1].url)-1])
		if resp.StatusCode != c.status {
			t.Errorf("/%s: %d, want %d: %s", c.path, resp.StatusCode, c.status, truncate(body, 300))
		}
		if early := resp.Header.Get("X-E2E-Init") == ""; early != c.early {
			t.Errorf("/%s: answered before init %v, want %v", c.path, early, c.early)
		}
		if c.path == "" {
			continue
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("/%s: Cache-Control %q", c.path, cc)
		}
	}
	// The health URL answers a member site's page with CORS, as the node does.
	resp, body := get("ussync/v1/healthz", "Origin", strings.TrimSuffix(tb.sites[1].url, "/"))
	if resp.Header.Get("Access-Control-Allow-Origin") != strings.TrimSuffix(tb.sites[1].url, "/") || !strings.Contains(body, `"ok"`) {
		t.Errorf("healthz from B: %v %s", resp.Header, body)
	}
}
