//go:build unix

package wordpress

import (
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// verified reports whether site s's node holds the address as verified.
func (tb *testbed) verified(t *testing.T, s *site, email string) bool {
	t.Helper()
	var rec struct {
		Verified bool `json:"verified"`
	}
	code, err := tb.nodeCall(s, "GET", "/v1/users/"+url.PathEscape(email), nil, &rec)
	if err != nil {
		t.Fatal(err)
	}
	return code == 200 && rec.Verified
}

// uid returns the id of the account with this address on site s.
func (tb *testbed) uid(t *testing.T, s *site, email string) string {
	t.Helper()
	return string(tb.mustPHP(t, s, fmt.Sprintf(`return (string) get_user_by('email', %q)->ID;`, email)))
}

var reBulkNonce = regexp.MustCompile(`id="_wpnonce" name="_wpnonce" value="([0-9a-f]+)"`)

// TestWordPress_VerifyCSRF: the Users list's bulk "Verify e-mail" is not
// reachable by a link without the list's nonce (WordPress itself checks no
// nonce before a plugin's bulk action on users.php), and a user cannot
// verify their own address with the row action, whatever nonce they hold.
// Either would bind the site to an address nobody proved, and the next
// login with it would travel to every site.
func TestWordPress_VerifyCSRF(t *testing.T) {
	tb := theBed(t)
	a := tb.sites[0]
	tb.defaults(t)
	const email = "mal@example.com"
	pass := tb.user(t, a, "mal", email, "subscriber")
	id := strings.Trim(tb.uid(t, a, email), `"`)
	admin, _ := clientLogin(t, a, "admin", adminPass, nil)

	// A link on another site's page, followed by the administrator's browser.
	resp, _ := get(t, admin, "GET", a.url+"wp-admin/users.php?action=ussync_verify&users%5B%5D="+id, nil,
		map[string]string{"Sec-Fetch-Site": "cross-site", "Referer": "http://evil.localhost/"})
	if tb.verified(t, a, email) {
		t.Fatalf("a link without the list's nonce verified %s (answer %d)", email, resp.StatusCode)
	}

	// From the list itself (its nonce), the bulk action works.
	_, list := get(t, admin, "GET", a.url+"wp-admin/users.php", nil, nil)
	m := reBulkNonce.FindStringSubmatch(list)
	if m == nil {
		t.Fatal("no bulk nonce on the Users list")
	}
	resp, _ = get(t, admin, "GET", a.url+"wp-admin/users.php?action=ussync_verify&users%5B%5D="+id+"&_wpnonce="+m[1], nil,
		map[string]string{"Referer": a.url + "wp-admin/users.php"})
	if !tb.verified(t, a, email) {
		t.Fatalf("the bulk verify with the list's nonce did not verify (answer %d)", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); strings.Contains(loc, "action=ussync_verify") {
		t.Fatalf("the bulk verify sends the browser back to itself: %s", loc)
	}
	tb.mustPHP(t, a, fmt.Sprintf(`foreach (Ussync_Settings::nodes() as $n) { $n->put_user(%q, array('verified' => false)); } return 1;`, email))
	if tb.verified(t, a, email) {
		t.Fatal("could not unverify for the next step")
	}

	// The subscriber holds a valid nonce of the row action for themselves
	// (made for their own browser session): still refused.
	mal, _ := clientLogin(t, a, "mal", pass, nil)
	au, _ := url.Parse(a.url)
	var loggedIn string
	for _, c := range mal.Jar.Cookies(au) {
		if strings.HasPrefix(c.Name, "wordpress_logged_in_") {
			loggedIn = c.Value
		}
	}
	if loggedIn == "" {
		t.Fatal("the subscriber's login set no logged-in cookie")
	}
	nonce := strings.Trim(string(tb.mustPHP(t, a, fmt.Sprintf(`$_COOKIE[LOGGED_IN_COOKIE] = urldecode(%q); wp_set_current_user(%s); return wp_create_nonce('ussync_verify_%s');`, loggedIn, id, id))), `"`)
	resp, _ = get(t, mal, "GET", a.url+"wp-admin/admin-post.php?action=ussync_verify&to=1&user="+id+"&_wpnonce="+nonce, nil, nil)
	if tb.verified(t, a, email) {
		t.Fatalf("a subscriber verified their own address as the administrator (answer %d)", resp.StatusCode)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a subscriber's verify answered %d, want 403", resp.StatusCode)
	}
}

// TestWordPress_RolesStayLazy: a user whose role stays on their site (an
// editor) is not carried to another site by the lazy hop, which asks the
// other sites' nodes for the browser's session; their logout still ends
// their session.
func TestWordPress_RolesStayLazy(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.settings(t, map[string]any{"mode": "lazy"})
	t.Cleanup(func() { tb.defaults(t) })
	const email = "elle@example.com"
	pass := tb.user(t, a, "elle", email, "editor")
	tb.user(t, b, "elle-b", email, "subscriber") // a plain account on B
	tb.verify(t, a, email)
	x := launch(t, "elle's browser")
	x.wpLogin(a, "elle", pass, false)
	x.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	if n := tb.activeSessions(t, a, email); n != 1 {
		t.Fatalf("%d active sessions after the editor's login, want 1", n)
	}
	x.visited()
	x.visit(b.url, "")
	asked := false
	for _, u := range x.visited() {
		asked = asked || strings.HasPrefix(u, a.url+"ussync/v1/hop/ask")
	}
	if !asked {
		t.Fatal("B's lazy hop did not ask A: the test proves nothing")
	}
	x.open(a.url + "?e2e=logout")
	x.visit(a.url, "")
	if n := tb.activeSessions(t, a, email); n != 0 {
		t.Fatalf("%d active sessions after the editor's logout", n)
	}
}

// TestWordPress_NoticeOnce: a visitor whose session cookie no node knows
// (stale, or forged) sees the refusal's notice once, and every answer that
// sets or deletes a cookie or shows the notice is uncacheable: a page
// cache never hands it to another visitor.
func TestWordPress_NoticeOnce(t *testing.T) {
	tb := theBed(t)
	b := tb.sites[1]
	tb.defaults(t)
	c := httpClient()
	bu, _ := url.Parse(b.url)
	c.Jar.SetCookies(bu, []*http.Cookie{{Name: "ussync_session", Value: strings.Repeat("A", 43), Path: "/"}})
	shown := 0
	for i := range 3 {
		resp, body := get(t, c, "GET", b.url, nil, map[string]string{"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"})
		notice := strings.Contains(body, `class="ussync-notice"`)
		if notice {
			shown++
		}
		if (notice || len(resp.Header.Values("Set-Cookie")) > 0) && !strings.Contains(resp.Header.Get("Cache-Control"), "no-store") {
			t.Fatalf("view %d: notice %v, cookies %q, with Cache-Control %q", i+1, notice, resp.Header.Values("Set-Cookie"), resp.Header.Get("Cache-Control"))
		}
	}
	if shown != 1 {
		t.Fatalf("the notice was shown on %d of 3 page views, want once", shown)
	}
}

// TestWordPress_HealthBlocked: with WP_HTTP_BLOCK_EXTERNAL (a common
// hardening) and the node's host not in WP_ACCESSIBLE_HOSTS, WordPress
// never sends the plugin's calls: the health box says so and what to add,
// instead of calling the node unreachable.
func TestWordPress_HealthBlocked(t *testing.T) {
	tb := theBed(t)
	c3 := tb.sites[2]
	tb.defaults(t)
	// The testbed allows 127.0.0.1; 127.0.0.2 is loopback too, and blocked.
	_, port, _ := strings.Cut(c3.api, ":")
	tb.mustPHP(t, c3, `$s = get_option('ussync_settings'); $s['connections'][0]['api_url'] = 'http://127.0.0.2:`+port+`'; update_option('ussync_settings', $s); return 1;`)
	t.Cleanup(func() {
		tb.mustPHP(t, c3, `$s = get_option('ussync_settings'); $s['connections'][0]['api_url'] = 'http://`+c3.api+`'; update_option('ussync_settings', $s); delete_option('ussync_down'); return 1;`)
	})
	c, _ := clientLogin(t, c3, "admin", adminPass, nil)
	_, page := get(t, c, "GET", c3.url+"wp-admin/options-general.php?page=ussync", nil, nil)
	if !strings.Contains(page, `data-health="blocked"`) || !strings.Contains(page, "WP_ACCESSIBLE_HOSTS") || !strings.Contains(page, "127.0.0.2") {
		t.Fatalf("the health box does not say WordPress blocks the call and what to add: %s", truncate(page[max(0, strings.Index(page, "ussync-health")):], 600))
	}
}

// TestWordPress_HostCookies: a node whose site is served over https at
// the root of its host names its cookies __Host-… (node/browser.go); the
// plugin, relaying its answers, keeps them instead of dropping them (the
// lazy hop's mark here; the nonce of every hand-off alike). A real node
// with such a site URL, alone (it joins nobody), stands behind site B's
// public path for the test.
func TestWordPress_HostCookies(t *testing.T) {
	tb := theBed(t)
	b := tb.sites[1]
	tb.defaults(t)
	s := &site{name: "site-s"}
	gp, _ := freePort(true)
	ap, _ := freePort(false)
	pp, _ := freePort(false)
	sp, _ := freePort(false)
	s.gossip, s.api, s.public = fmt.Sprintf("127.0.0.1:%d", gp), fmt.Sprintf("127.0.0.1:%d", ap), fmt.Sprintf("127.0.0.1:%d", pp)
	s.url = fmt.Sprintf("https://site-s.localhost:%d/", sp)
	cfg := fmt.Sprintf("node:\n  name: site-s\n  data_dir: %s\n  profile: local\nsite:\n  url: %s\ngossip:\n  bind: %s\n  secret_file: %s\napi:\n  listen: %s\n  token_file: %s\npublic:\n  listen: %s\n  trusted_proxies: [\"127.0.0.1/32\"]\nsync:\n  modes: [chain, lazy]\n",
		filepath.Join(tb.dir, "node-site-s"), s.url, s.gossip, filepath.Join(tb.dir, "secret"), s.api, filepath.Join(tb.dir, "api-token"), s.public)
	if err := tb.startNodeConfig(s, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.node.stop)
	tb.mustPHP(t, b, `$s = get_option('ussync_settings'); $s['connections'][0]['public_url'] = 'http://`+s.public+`'; update_option('ussync_settings', $s); return 1;`)
	t.Cleanup(func() {
		tb.mustPHP(t, b, `$s = get_option('ussync_settings'); $s['connections'][0]['public_url'] = 'http://`+b.public+`'; update_option('ussync_settings', $s); return 1;`)
	})
	resp, body := get(t, httpClient(), "GET", b.url+"ussync/v1/hop?return="+url.QueryEscape(s.url), nil,
		map[string]string{"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none"})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the hop answered %d: %s", resp.StatusCode, truncate(body, 300))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "ussync_checked" && c.Value == "1" {
			return
		}
	}
	t.Fatalf("the node's __Host-ussync_checked did not reach the browser: cookies %q", resp.Header.Values("Set-Cookie"))
}

// loggedIn reports whether client c is logged in on site s (its profile
// page answers instead of sending it to wp-login.php).
func loggedIn(t *testing.T, c *http.Client, s *site) bool {
	t.Helper()
	resp, _ := get(t, c, "GET", s.url+"wp-admin/profile.php", nil, nil)
	return resp.StatusCode == http.StatusOK
}

var reLostPassword = regexp.MustCompile(`https?://[^\s<>"]+wp-login\.php\?action=lostpassword`)

// TestWordPress_PreAccountTakeover: an attacker registers the victim's
// address on site B first, with a password of their choosing, and stays
// logged in there. B never proves the mailbox. The victim logs in on A
// (which proved it) and the chain logs them into that account on B: the
// hand-off is B's first proof of the address, so the account's password
// is reset and the attacker's session on B ends before the victim's
// browser is let in. The victim is told, by a notice and by mail. A later
// hand-off, B being bound now, resets nothing.
func TestWordPress_PreAccountTakeover(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.defaults(t)
	const email = "vic@example.com"

	// The attacker's account on B, and their session there.
	mallory := tb.user(t, b, "vic-b", email, "subscriber")
	attacker, _ := clientLogin(t, b, "vic-b", mallory, nil)
	if !loggedIn(t, attacker, b) {
		t.Fatal("the attacker's login on B failed")
	}
	if tb.mustPHP(t, b, fmt.Sprintf(`return WP_Application_Passwords::create_new_application_password(get_user_by('email', %q)->ID, array('name' => 'mal'))[0] ? 1 : 0;`, email)) == nil {
		t.Fatal("no application password")
	}

	// The victim's own account on A, whose address A proved.
	pass := tb.user(t, a, "vic", email, "subscriber")
	tb.verify(t, a, email)
	vic := launch(t, "the victim's browser")
	vic.wpLogin(a, "vic", pass, false)
	vic.shows("A logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
	pb := vic.visit(b.url, email)
	if pb.Login != "vic-b" {
		t.Fatalf("B logged the victim into %q, want vic-b", pb.Login)
	}
	if !strings.Contains(pb.Text, "password was reset") {
		t.Errorf("B's first page says nothing of the reset: %q", pb.Text)
	}

	if loggedIn(t, attacker, b) {
		t.Error("the attacker's session on B survived the victim's arrival")
	}
	if c, _ := clientLogin(t, b, "vic-b", mallory, nil); loggedIn(t, c, b) {
		t.Error("the attacker's password still works on B")
	}
	if n := string(tb.mustPHP(t, b, fmt.Sprintf(`return count(WP_Application_Passwords::get_user_application_passwords(get_user_by('email', %q)->ID));`, email))); n != "0" {
		t.Errorf("%s application passwords left on the account", n)
	}
	link := tb.waitMail(t, email, reLostPassword, 1)
	if !strings.HasPrefix(link, b.url) {
		t.Errorf("the mail links to %s, want B's lost-password page", link)
	}
	vic.visit(b.url, email) // the victim stays logged in on B
	if !strings.Contains(readFile(filepath.Join(b.dir, "debug.log"))+readFile(filepath.Join(b.dir, "php-errors.log")), "arrived by a hand-off before this site had proved their address") {
		t.Error("B's log does not record the reset")
	}

	// B is bound now: the victim sets a password there, and a login from
	// A in another browser keeps it.
	newPass := "Vic-own-Strong-pw-4!"
	tb.mustPHP(t, b, fmt.Sprintf(`wp_set_password(%q, get_user_by('email', %q)->ID); return 1;`, newPass, email))
	other := launch(t, "the victim's other browser")
	other.wpLogin(a, "vic", pass, false)
	other.shows("A logged in", func(p page) bool { return p.User == email })
	other.visit(b.url, email)
	if c, _ := clientLogin(t, b, "vic-b", newPass, nil); !loggedIn(t, c, b) {
		t.Error("a hand-off to a bound site reset the password the victim set")
	}
}

// TestWordPress_HostSessionCookie: on a site at an https root the
// plugin's own session cookie is __Host-ussync_session, which a sibling
// subdomain cannot plant (login CSRF); the cookie under its old name is
// still read for one transition, and only when the __Host- one is absent.
// A site over http, or under a path, keeps the plain name.
func TestWordPress_HostSessionCookie(t *testing.T) {
	tb := theBed(t)
	b := tb.sites[1]
	tb.defaults(t)
	out := string(tb.mustPHP(t, b, `$conn = Ussync_Util::check_connection((array) Ussync_Settings::value('connections')[0])[0];
$plain = new Ussync_Node($conn, 0, '');
add_filter('home_url', static fn($u) => preg_replace('#^http:#', 'https:', $u));
$n = new Ussync_Node($conn, 0, '');
$old = str_repeat('o', 43); $new = str_repeat('n', 43);
$_COOKIE = array('ussync_session' => $old);
$legacy = $n->token_cookie();
$_COOKIE = array('ussync_session' => $old, '__Host-ussync_session' => $new);
$both = $n->token_cookie();
return array($plain->cookie, $n->cookie, $legacy === $old, $both === $new);`))
	if out != `["ussync_session","__Host-ussync_session",true,true]` {
		t.Fatalf("[http name, https root name, old name read, __Host- wins] = %s", out)
	}
}
