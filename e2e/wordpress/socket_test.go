//go:build unix

package wordpress

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setAPI restarts site s's node with its private API on a Unix socket
// (api.listen: unix:PATH, the socket in the testbed's directory) or back
// on its loopback port, and points s's plugin at it (api_url unix:PATH or
// http://127.0.0.1:PORT). The node keeps its name, data dir and gossip
// address: to the cluster it is the same member, restarted.
func (tb *testbed) setAPI(t *testing.T, s *site, socket bool) {
	t.Helper()
	tcpCf, tcpAPI := s.nodeCf, s.api
	if strings.HasSuffix(tcpCf, ".sock.yaml") {
		tcpCf = strings.TrimSuffix(tcpCf, ".sock.yaml") + ".yaml"
	}
	if strings.HasPrefix(tcpAPI, "unix:") {
		tcpAPI = s.apiTCP
	}
	s.apiTCP = tcpAPI
	cf, api := tcpCf, tcpAPI
	if socket {
		api = "unix:" + filepath.Join(tb.dir, s.name+"-api.sock")
		cf = strings.TrimSuffix(tcpCf, ".yaml") + ".sock.yaml"
		b, err := os.ReadFile(tcpCf)
		if err != nil {
			t.Fatal(err)
		}
		old := "api:\n  listen: " + tcpAPI + "\n"
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s has no %q", tcpCf, old)
		}
		if err := os.WriteFile(cf, []byte(strings.Replace(string(b), old, "api:\n  listen: "+api+"\n", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if s.nodeCf == cf && s.api == api {
		return
	}
	s.node.stop()
	s.nodeCf, s.api = cf, api
	if err := tb.startNode(s); err != nil {
		t.Fatal(err)
	}
	url := api
	if !socket {
		url = "http://" + api
	}
	tb.mustPHP(t, s, fmt.Sprintf(`$s = get_option('ussync_settings'); $s['connections'][0]['api_url'] = %q; update_option('ussync_settings', $s); delete_option('ussync_down'); return 1;`, url))
}

// onSocket moves site s's node's private API onto a Unix socket for the
// test (setAPI), and back at cleanup.
func (tb *testbed) onSocket(t *testing.T, s *site) {
	t.Helper()
	t.Cleanup(func() { tb.setAPI(t, s, false) })
	tb.setAPI(t, s, true)
}

// TestWordPress_UnixSocket: site C's plugin reaches its node over a Unix
// socket (api.listen: unix:PATH; the plugin's api_url unix:PATH), the
// node's loopback port closed. Its health box says the node answers; a
// login on A reaches C, and a logout on B ends C's session at its next page
// view (the check); a login on C (POST) reaches A, and a logout on C
// (DELETE) ends A's. A socket that is not there: the health box says so,
// and what to look at.
func TestWordPress_UnixSocket(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.defaults(t)
	tb.onSocket(t, c)
	tb.waitHandoffs(t)
	if got := string(tb.mustPHP(t, c, `return get_option('ussync_settings')['connections'][0]['api_url'];`)); !strings.Contains(got, `unix:`) {
		t.Fatalf("C's api_url is %s, not its socket", got)
	}

	admin, _ := clientLogin(t, c, "admin", adminPass, nil)
	_, box := get(t, admin, "GET", c.url+"wp-admin/options-general.php?page=ussync", nil, nil)
	if !strings.Contains(box, `data-health="ok"`) || !strings.Contains(box, `data-binding=`) {
		t.Fatalf("C's health box does not show its node over the socket: %s", truncate(box[max(0, strings.Index(box, "ussync-health")):], 800))
	}

	const email = "una@example.com"
	pass := tb.user(t, a, "una", email, "subscriber")
	tb.verify(t, a, email)
	x := launch(t, "una's browser")
	x.wpLogin(a, "una", pass, false)
	x.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	x.visit(c.url, email)
	x.visit(c.url, email)
	x.visit(b.url, email)
	x.open(b.url + "?e2e=logout")
	x.visit(c.url, "")

	passC := tb.user(t, c, "una-c", "uma@example.com", "subscriber")
	tb.verify(t, c, "uma@example.com")
	y := launch(t, "uma's browser")
	y.wpLogin(c, "una-c", passC, false)
	y.shows("C logged in", func(p page) bool { return strings.HasPrefix(p.Href, c.url) && p.User == "uma@example.com" })
	y.visit(a.url, "uma@example.com")
	y.open(c.url + "?e2e=logout")
	y.visit(a.url, "")

	tb.mustPHP(t, c, fmt.Sprintf(`$s = get_option('ussync_settings'); $s['connections'][0]['api_url'] = %q; update_option('ussync_settings', $s); delete_option('ussync_down'); return 1;`, "unix:"+filepath.Join(tb.dir, "none.sock")))
	_, box = get(t, admin, "GET", c.url+"wp-admin/options-general.php?page=ussync", nil, nil)
	if !strings.Contains(box, `data-health="unreachable"`) || !strings.Contains(box, "none.sock: No such file or directory") || !strings.Contains(box, "api.listen") {
		t.Fatalf("C's health box does not say its socket is missing: %s", truncate(box[max(0, strings.Index(box, "ussync-health")):], 800))
	}
}
