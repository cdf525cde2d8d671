//go:build unix

package wordpress

// The bootstrap's work that a page view no longer repeats: the
// translations and the rewrite rule (Ussync_Plugin::boot).

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestWordPress_Translations: the plugin's strings are translated from a
// .mo file in its own languages/ folder, and a language pack in
// wp-content/languages/plugins/ comes first, as load_plugin_textdomain
// has it. The plugin no longer looks for the file on every init: it tells
// WordPress where its translations are, and WordPress loads them when a
// string is first translated (Ussync_Plugin::textdomain). Seen on a real
// page: the admin bar's "Log out everywhere" of a logged-in front page.
func TestWordPress_Translations(t *testing.T) {
	tb := theBed(t)
	a := tb.sites[0]
	tb.defaults(t)
	own := filepath.Join(a.dir, "wp-content", "plugins", "ussync", "languages", "ussync-de_DE.mo")
	pack := filepath.Join(a.dir, "wp-content", "languages", "plugins", "ussync-de_DE.mo")
	// WordPress takes a site language only if it is installed: an empty
	// core file for de_DE stands in for one.
	core := filepath.Join(a.dir, "wp-content", "languages", "de_DE.mo")
	mo := func(path, text string) {
		t.Helper()
		out := tb.mustPHP(t, a, fmt.Sprintf(`wp_mkdir_p(dirname(%q));
$mo = new MO();
$mo->set_header('Content-Type', 'text/plain; charset=UTF-8');
if (%q !== '') { $mo->add_entry(new Translation_Entry(array('singular' => 'Log out everywhere', 'translations' => array(%q)))); }
return $mo->export_to_file(%q) ? 1 : 'not written';`, path, text, text, path))
		if string(out) != "1" {
			t.Fatalf("write %s: %s", path, out)
		}
	}
	t.Cleanup(func() {
		tb.mustPHP(t, a, fmt.Sprintf(`update_option('WPLANG', ''); @unlink(%q); @unlink(%q); @unlink(%q); return 1;`, own, pack, core))
	})
	c, _ := clientLogin(t, a, "admin", adminPass, nil)
	label := func() string {
		t.Helper()
		_, page := get(t, c, "GET", a.url, nil, nil)
		i := strings.Index(page, `id="ussync-bar-logout-everywhere"`)
		if i < 0 {
			t.Fatalf("the front page has no \"Log out everywhere\" in its admin bar: %s", truncate(page, 500))
		}
		rest := page[i:]
		return rest[strings.Index(rest, ">")+1 : strings.Index(rest, "</button>")]
	}

	if got := label(); got != "Log out everywhere" {
		t.Fatalf("in English the admin bar says %q", got)
	}
	mo(core, "")
	mo(own, "Überall abmelden (Plugin)")
	if out := tb.mustPHP(t, a, `update_option('WPLANG', 'de_DE'); return get_option('WPLANG');`); string(out) != `"de_DE"` {
		t.Fatalf("the site's language is %s, not de_DE", out)
	}
	if got := label(); got != "Überall abmelden (Plugin)" {
		t.Fatalf("with the plugin's own de_DE file the admin bar says %q", got)
	}
	mo(pack, "Überall abmelden (Sprachpaket)")
	if got := label(); got != "Überall abmelden (Sprachpaket)" {
		t.Fatalf("with a language pack beside the plugin's own file the admin bar says %q, not the pack's", got)
	}
}

// TestWordPress_RewriteRule: the rule of <site>/ussync/v1/… is first among
// WordPress's rewrite rules while the plugin is active, also after another
// flush (the Permalinks screen's), and gone once it is deactivated: the
// plugin adds it when WordPress builds its rules (rewrite_rules_array), not
// on every init, and takes its filter out before deactivation rebuilds
// them (before, the rule added at init in the same request stayed).
func TestWordPress_RewriteRule(t *testing.T) {
	tb := theBed(t)
	c := tb.sites[2]
	first := func() string {
		t.Helper()
		out := tb.mustPHP(t, c, `$r = get_option('rewrite_rules'); return is_array($r) && $r ? array_key_first($r) . ' => ' . reset($r) : '';`)
		return string(out)
	}
	const want = `"^ussync\/v1\/(bind|chain|sync|whoami|logout|auth|hop|hop\/ask|hop\/done|verify|healthz)\/?$ => index.php?ussync_endpoint=$matches[1]"`
	if got := first(); got != want {
		t.Fatalf("the first rewrite rule is %s, want %s", got, want)
	}
	tb.mustPHP(t, c, `flush_rewrite_rules(false); return 1;`)
	if got := first(); got != want {
		t.Fatalf("after a flush the first rewrite rule is %s", got)
	}
	t.Cleanup(func() {
		tb.mustPHP(t, c, `activate_plugin('ussync/ussync.php'); return 1;`)
		// The node found the site's health URL gone meanwhile: wait until
		// every node hands browsers to every site again.
		tb.waitHandoffs(t)
	})
	tb.mustPHP(t, c, `deactivate_plugins('ussync/ussync.php'); return 1;`)
	if out := tb.mustPHP(t, c, `foreach ((array) get_option('rewrite_rules') as $q) { if (str_contains($q, 'ussync_endpoint')) { return 'still there'; } } return 'gone';`); string(out) != `"gone"` {
		t.Fatalf("after deactivation the rule is %s", out)
	}
	tb.mustPHP(t, c, `activate_plugin('ussync/ussync.php'); return 1;`)
	if got := first(); got != want {
		t.Fatalf("after activation the first rewrite rule is %s", got)
	}
}
