//go:build unix

package wordpress

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// settings sets the plugin's settings on every site (keys of the
// ussync_settings option; the rest keep their defaults).
func (tb *testbed) settings(t *testing.T, kv map[string]any) {
	t.Helper()
	b, _ := json.Marshal(kv)
	for _, s := range tb.sites {
		tb.mustPHP(t, s, fmt.Sprintf(`$s = get_option('ussync_settings');
$s = array_merge(array_intersect_key($s, array('connections' => 1)), json_decode(%q, true));
update_option('ussync_settings', $s);
delete_option('ussync_down');
return 1;`, string(b)))
	}
}

// defaults puts the plugin's default settings back on every site (chain).
func (tb *testbed) defaults(t *testing.T) {
	t.Helper()
	tb.settings(t, map[string]any{})
}

// user creates a WordPress user on a site (if missing) and returns its
// password.
func (tb *testbed) user(t *testing.T, s *site, login, email, role string) string {
	t.Helper()
	pass := "pw-" + login + "-1"
	tb.mustPHP(t, s, fmt.Sprintf(`if (get_user_by('email', %q)) { return 1; }
$id = wp_insert_user(array('user_login' => %q, 'user_email' => %q, 'user_pass' => %q, 'role' => %q, 'display_name' => %q));
return is_wp_error($id) ? $id->get_error_message() : $id;`, email, login, email, pass, role, login))
	return pass
}

// verify marks an address verified in the cluster (an administrator's
// verify, through site s's node).
func (tb *testbed) verify(t *testing.T, s *site, email string) {
	t.Helper()
	code, err := tb.nodeCall(s, "PUT", "/v1/users/"+url.PathEscape(email), map[string]any{"verified_via": "admin"}, nil)
	if err != nil || code != 200 {
		t.Fatalf("verify %s: %d %v", email, code, err)
	}
}

// userOn returns what site s knows of the account with this address:
// login, roles ("" when there is none).
func (tb *testbed) userOn(t *testing.T, s *site, email string) (login, roles string) {
	t.Helper()
	out := tb.mustPHP(t, s, fmt.Sprintf(`$u = get_user_by('email', %q); return $u ? array($u->user_login, implode(',', $u->roles)) : array('', '');`, email))
	var r [2]string
	json.Unmarshal(out, &r)
	return r[0], r[1]
}

// TestWordPress_Chain: the flows in chain mode, in Chromium with
// third-party cookies blocked: a login on A reaches B and C (C adds the
// user as a subscriber), a plain wp_logout() on B logs A and C out, and a
// password change on C logs the user out everywhere else.
func TestWordPress_Chain(t *testing.T) {
	tb := theBed(t)
	a, b, c := tb.sites[0], tb.sites[1], tb.sites[2]
	tb.defaults(t)
	const email = "ada@example.com"
	pass := tb.user(t, a, "ada", email, "subscriber")
	tb.user(t, b, "ada-b", email, "subscriber") // B knows her under another name
	tb.verify(t, a, email)

	ada := launch(t, "ada's browser")

	t.Run("login_on_A_reaches_B_and_C", func(t *testing.T) {
		ada.T = t
		ada.visited()
		ada.wpLogin(a, "ada", pass, false)
		ada.shows("A's home page, logged in", func(p page) bool { return strings.HasPrefix(p.Href, a.url) && p.User == email })
		went := strings.Join(ada.visited(), "\n")
		for _, s := range []*site{b, c} {
			if !strings.Contains(went, s.url+"ussync/v1/sync?") {
				t.Fatalf("the login did not go through %s's sync endpoint:\n%s", s.name, went)
			}
		}
		pb := ada.visit(b.url, email)
		if pb.Login != "ada-b" {
			t.Fatalf("B logged Ada into account %q, want her own account ada-b (matched by address, never by name)", pb.Login)
		}
		pc := ada.visit(c.url, email)
		if pc.Roles != "subscriber" {
			t.Fatalf("C added Ada with roles %q, want subscriber", pc.Roles)
		}
		if login, roles := tb.userOn(t, c, email); login != "ada" || roles != "subscriber" {
			t.Fatalf("C's account for Ada: login %q roles %q", login, roles)
		}
		// A login without "Remember me" ends with the browser on every site.
		for _, s := range []*site{a, b, c} {
			for name, ck := range ada.cookies(s.url) {
				if (strings.HasPrefix(name, "wordpress_") || name == "ussync_session") && !ck.Session {
					t.Fatalf("%s: cookie %s outlives the browser (expires %v) after a login without Remember me", s.name, name, ck.Expires)
				}
			}
		}
	})

	t.Run("plain_wp_logout_on_B_logs_out_A_and_C", func(t *testing.T) {
		ada.T = t
		ada.open(b.url + "?e2e=logout")
		ada.visit(b.url, "")
		ada.visit(a.url, "")
		ada.visit(c.url, "")
	})

	t.Run("password_change_on_C_logs_out_everywhere_else", func(t *testing.T) {
		ada.T = t
		other := launch(t, "ada's other browser")
		other.wpLogin(a, "ada", pass, false)
		other.shows("A logged in", func(p page) bool { return p.User == email })
		other.visit(b.url, email)

		// C added Ada with a random password; she set her own (as with
		// "Lost your password?") and logs in there.
		tb.mustPHP(t, c, fmt.Sprintf(`wp_set_password(%q, get_user_by('email', %q)->ID); return 1;`, pass, email))
		ada.wpLogin(c, "ada", pass, true)
		ada.shows("C logged in", func(p page) bool { return strings.HasPrefix(p.Href, c.url) && p.User == email })
		ada.visit(a.url, email)
		ada.open(c.url + "wp-admin/profile.php")
		ada.setPassword("Pw-ada-2-Strong-x9!")
		ada.submit("#submit")
		ada.visit(c.url, email) // this browser stays logged in on C
		ada.visit(a.url, "")    // and is logged out elsewhere
		ada.visit(b.url, "")
		other.visit(a.url, "") // as is every other browser
		other.visit(b.url, "")
	})
}

// TestWordPress_Seed: the seed plugin's unauthenticated logout URL and its
// nonce-less ?action=logout have no equivalent: a GET cannot log anyone out.
func TestWordPress_Seed(t *testing.T) {
	tb := theBed(t)
	a, b := tb.sites[0], tb.sites[1]
	tb.defaults(t)
	const email = "sam@example.com"
	pass := tb.user(t, a, "sam", email, "subscriber")
	tb.verify(t, a, email)
	sam := launch(t, "sam's browser")
	sam.wpLogin(a, "sam", pass, false)
	sam.visit(b.url, email)
	for _, u := range []string{a.url + "ussync/v1/logout", a.url + "ussync/v1/logout?everywhere=1", a.url + "wp-login.php?action=logout"} {
		sam.open(u)
	}
	sam.visit(a.url, email)
	sam.visit(b.url, email)
	// The public logout refuses a cross-site POST without a member origin.
	c := httpClient()
	req, _ := http.NewRequest("POST", a.url+"ussync/v1/logout?everywhere=1", nil)
	req.Header.Set("Origin", "http://evil.localhost")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "csrf") {
		t.Fatalf("a cross-site logout answered %d %s, want 403 csrf", resp.StatusCode, body)
	}
}

var reCode = regexp.MustCompile(`\b(\d{6})\b`)
