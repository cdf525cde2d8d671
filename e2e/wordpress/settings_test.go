//go:build unix

package wordpress

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

var (
	reNonce      = regexp.MustCompile(`name="_wpnonce" value="([0-9a-f]+)"`)
	reOptionPage = regexp.MustCompile(`name=["']option_page["'] value=["']ussync["']`)
)

// TestWordPress_Settings: Settings → ussync shows the node's health (its
// members and their sites, that it serves this site) and says clearly when
// the node is unreachable; the form saves through the Settings API and
// refuses a bad connection without losing the good one. The API token
// never appears on the page.
func TestWordPress_Settings(t *testing.T) {
	tb := theBed(t)
	c3 := tb.sites[2]
	tb.defaults(t)
	c, _ := clientLogin(t, c3, "admin", adminPass, nil)
	_, page := get(t, c, "GET", c3.url+"wp-admin/options-general.php?page=ussync", nil, nil)
	if !strings.Contains(page, `data-health="ok"`) || !strings.Contains(page, "It serves this site") {
		t.Fatalf("the health box does not say the node answers and serves this site: %s", truncate(page, 500))
	}
	for _, s := range tb.sites {
		if !strings.Contains(page, s.url) {
			t.Fatalf("the health box does not list %s", s.url)
		}
	}
	if strings.Contains(page, tb.token) {
		t.Fatal("the settings page shows the API token")
	}
	// This site's binding, for the administrator's own address: bound once
	// the site proved it (here an administrator's verify through its node).
	admin := "admin-" + c3.name + "@example.com"
	if !strings.Contains(page, `data-binding="`) || !strings.Contains(page, admin) {
		t.Fatalf("the health box does not show the binding of %s: %s", admin, truncate(page[max(0, strings.Index(page, "ussync-health")):], 800))
	}
	tb.verify(t, c3, admin)
	t.Cleanup(func() {
		tb.nodeCall(c3, "PUT", "/v1/users/"+url.PathEscape(admin), map[string]any{"verified": false}, nil)
	})
	if _, page := get(t, c, "GET", c3.url+"wp-admin/options-general.php?page=ussync", nil, nil); !strings.Contains(page, `data-binding="bound"`) {
		t.Fatalf("the health box does not say this site is bound to %s once it proved it: %s", admin, truncate(page[max(0, strings.Index(page, "data-binding")):], 400))
	}
	if !strings.Contains(page, "USSYNC_API_TOKEN") {
		t.Fatal("the settings page does not say where the token comes from")
	}
	loc := reOptionPage.FindStringIndex(page)
	if loc == nil {
		t.Fatal("no Settings API form")
	}
	nonce := reNonce.FindStringSubmatch(page[loc[0]:])[1]
	save := func(v url.Values) {
		v.Set("option_page", "ussync")
		v.Set("action", "update")
		v.Set("_wpnonce", nonce)
		v.Set("_wp_http_referer", "/wp-admin/options-general.php?page=ussync")
		resp, body := get(t, c, "POST", c3.url+"wp-admin/options.php", v, nil)
		if resp.StatusCode != 302 {
			t.Fatalf("saving the settings answered %d: %s", resp.StatusCode, truncate(body, 300))
		}
	}
	conn := func(v url.Values, api string) {
		v.Set("ussync_settings[connections][0][id]", "main")
		v.Set("ussync_settings[connections][0][api_url]", api)
		v.Set("ussync_settings[connections][0][public_url]", "http://"+c3.public)
	}
	v := url.Values{"ussync_settings[mode]": {"lazy"}, "ussync_settings[unknown_user]": {"reject"}, "ussync_settings[fail]": {"closed"},
		"ussync_settings[second_factor]": {"local"}, "ussync_settings[blocked_roles][]": {"administrator"}}
	conn(v, "http://"+c3.api)
	save(v)
	got := string(tb.mustPHP(t, c3, `$s = get_option('ussync_settings'); return array($s['mode'], $s['unknown_user'], $s['fail'], implode(',', $s['blocked_roles']), $s['connections'][0]['api_url']);`))
	if want := `["lazy","reject","closed","administrator","http:\/\/` + c3.api + `"]`; got != want {
		t.Fatalf("saved settings %s, want %s", got, want)
	}
	v = url.Values{"ussync_settings[mode]": {"chain"}}
	conn(v, "ftp://nowhere")
	save(v)
	if got := string(tb.mustPHP(t, c3, `return get_option('ussync_settings')['connections'][0]['api_url'];`)); got != `"http:\/\/`+c3.api+`"` {
		t.Fatalf("a bad connection replaced the good one: %s", got)
	}
	tb.defaults(t)

	// The node unreachable: said clearly.
	tb.mustPHP(t, c3, `$s = get_option('ussync_settings'); $s['connections'][0]['api_url'] = 'http://127.0.0.1:9'; update_option('ussync_settings', $s); return 1;`)
	t.Cleanup(func() {
		tb.mustPHP(t, c3, `$s = get_option('ussync_settings'); $s['connections'][0]['api_url'] = 'http://`+c3.api+`'; update_option('ussync_settings', $s); delete_option('ussync_down'); return 1;`)
	})
	_, page = get(t, c, "GET", c3.url+"wp-admin/options-general.php?page=ussync", nil, nil)
	if !strings.Contains(page, `data-health="unreachable"`) || !strings.Contains(page, "is unreachable") {
		t.Fatalf("the health box does not say the node is unreachable: %s", truncate(page, 500))
	}
}
