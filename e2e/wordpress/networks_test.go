//go:build unix

package wordpress

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ussync/ussync/internal/eventually"
)

// secondNetwork starts a second cluster (its own secret) with a node for
// sites A and C, and adds it to their plugin settings as network "net2",
// whose token comes from a file. It is stopped, and the settings put back,
// at cleanup.
func (tb *testbed) secondNetwork(t *testing.T) [2]*site {
	t.Helper()
	secret := filepath.Join(tb.dir, "secret2")
	out := tb.mustRun(t, tb.bin, "keygen")
	if err := os.WriteFile(secret, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenF := filepath.Join(tb.dir, "api-token2")
	if err := os.WriteFile(tokenF, []byte(tb.token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var nodes [2]*site
	for i, s := range []*site{tb.sites[0], tb.sites[2]} {
		gp, _ := freePort(true)
		ap, _ := freePort(false)
		pp, _ := freePort(false)
		n := &site{name: s.name + "-net2", url: s.url, dir: s.dir,
			gossip: fmt.Sprintf("127.0.0.1:%d", gp), api: fmt.Sprintf("127.0.0.1:%d", ap), public: fmt.Sprintf("127.0.0.1:%d", pp)}
		join := ""
		if i > 0 {
			join = fmt.Sprintf("  join: [%q]\n", nodes[0].gossip)
		}
		cfg := fmt.Sprintf("node:\n  name: %s\n  data_dir: %s\n  profile: local\nsite:\n  url: %s\ngossip:\n  bind: %s\n%s  secret_file: %s\napi:\n  listen: %s\n  token_file: %s\npublic:\n  listen: %s\n  trusted_proxies: [\"127.0.0.1/32\"]\nsync:\n  modes: [chain, lazy, iframe]\n",
			n.name, filepath.Join(tb.dir, "node-"+n.name), n.url, n.gossip, join, secret, n.api, tokenF, n.public)
		if err := tb.startNodeConfig(n, cfg); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.node.stop)
		nodes[i] = n
		tb.mustPHP(t, s, fmt.Sprintf(`$s = get_option('ussync_settings');
$s['connections'][1] = array('id' => 'net2', 'label' => 'Partners', 'api_url' => 'http://%s', 'public_url' => 'http://%s', 'token_file' => %q);
update_option('ussync_settings', $s); return 1;`, n.api, n.public, tokenF))
		t.Cleanup(func() {
			tb.mustPHP(t, s, `$s = get_option('ussync_settings'); $s['connections'] = array_slice($s['connections'], 0, 1); update_option('ussync_settings', $s); return 1;`)
		})
	}
	err := eventually.Err(startTimeout, pollEvery, "the second network's membership", func() error {
		var st struct{ Members []struct{ State string } }
		if err := tb.nodeGet(nodes[1], "/v1/status", &st); err != nil {
			return err
		}
		if len(st.Members) != 2 {
			return fmt.Errorf("%d members", len(st.Members))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func (tb *testbed) mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := execOutput(name, args...)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

// TestWordPress_Networks: sites A and C belong to two networks (two
// clusters, a node each), B to the first only. A login on A is carried
// through each network's chain in turn; a logout on C ends the session of
// each network.
func TestWordPress_Networks(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.defaults(t)
	net2 := tb.secondNetwork(t)
	const email = "nell@example.com"
	pass := tb.user(t, a, "nell", email, "subscriber")
	tb.verify(t, a, email)
	tb.verify(t, net2[0], email) // each network has its own register of verified users
	x := launch(t, "nell's browser")
	x.visited()
	x.wpLogin(a, "nell", pass, false)
	x.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	syncs := 0
	for _, u := range x.visited() {
		if strings.HasPrefix(u, c.url+"ussync/v1/sync?") {
			syncs++
		}
	}
	if syncs != 2 {
		t.Fatalf("the login visited C's sync endpoint %d times, want once per network", syncs)
	}
	x.visit(b.url, email)
	x.visit(c.url, email)
	var sids map[string]string
	json.Unmarshal(tb.mustPHP(t, c, fmt.Sprintf(`$u = get_user_by('email', %q);
foreach (WP_Session_Tokens::get_instance($u->ID)->get_all() as $s) { if (!empty($s['ussync']['sids'])) { return $s['ussync']['sids']; } }
return array();`, email)), &sids)
	if sids["main"] == "" || sids["net2"] == "" {
		t.Fatalf("C's WordPress session holds sessions %v, want one of each network", sids)
	}
	x.open(c.url + "?e2e=logout")
	x.visit(a.url, "")
	var r struct {
		Session struct{ Active bool }
	}
	tb.nodeCall(net2[0], "GET", "/v1/sessions/"+url.PathEscape(sids["net2"]), nil, &r)
	if r.Session.Active {
		t.Fatal("the second network's session is still active after the logout")
	}
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return strings.TrimSpace(string(out)), err
}
