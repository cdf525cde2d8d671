//go:build unix

package wordpress

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// reProblem is a PHP notice, warning, deprecation or error line.
var reProblem = regexp.MustCompile(`(?i)PHP (Deprecated|Notice|Warning|Fatal error|Parse error)`)

// TestWordPress_NoNotices runs last (file order): after every flow above,
// no PHP notice, warning, deprecation or error of the plugin is in any
// site's debug log or PHP error log.
func TestWordPress_NoNotices(t *testing.T) {
	tb := theBed(t)
	for _, s := range tb.sites {
		for _, f := range []string{"debug.log", "php-errors.log"} {
			b, err := os.ReadFile(filepath.Join(s.dir, f))
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if reProblem.MatchString(line) && strings.Contains(line, "/plugins/ussync/") {
					t.Errorf("%s %s: %s", s.name, f, line)
				}
			}
		}
	}
}

// TestWordPress_Uninstall (after every other test: it removes the plugin
// from site C): deleting the plugin removes its options and user meta, and
// keeps the accounts it added.
func TestWordPress_Uninstall(t *testing.T) {
	tb := theBed(t)
	c := tb.sites[2]
	saved := tb.mustPHP(t, c, `return get_option('ussync_settings');`)
	tb.mustPHP(t, c, `update_user_meta(1, 'ussync_added', time()); update_option('ussync_down', array()); return 1;`)
	out := string(tb.mustPHP(t, c, `deactivate_plugins('ussync/ussync.php'); uninstall_plugin('ussync/ussync.php');
global $wpdb;
return array(get_option('ussync_settings', 'gone'), get_option('ussync_down', 'gone'),
	(int) $wpdb->get_var("SELECT COUNT(*) FROM $wpdb->usermeta WHERE meta_key = 'ussync_added'"), (bool) get_userdata(1));`))
	if out != `["gone","gone",0,true]` {
		t.Fatalf("after uninstall: %s", out)
	}
	tb.mustPHP(t, c, "activate_plugin('ussync/ussync.php'); update_option('ussync_settings', json_decode('"+strings.ReplaceAll(string(saved), "'", "\\'")+"', true)); return 1;")
}
