//go:build unix

package wordpress

import (
	"io"
	"strings"
	"testing"
)

// TestWordPress_Sites: the three sites answer with the e2e theme, the
// plugin is active on each, and no PHP notice or deprecation of the plugin
// reached a debug log.
func TestWordPress_Sites(t *testing.T) {
	tb := theBed(t)
	c := httpClient()
	for _, s := range tb.sites {
		resp, err := c.Get(s.url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `data-user=""`) {
			t.Fatalf("%s answered %d: %s", s.url, resp.StatusCode, truncate(string(b), 300))
		}
		out := tb.mustPHP(t, s, `return is_plugin_active('ussync/ussync.php');`)
		if string(out) != "true" {
			t.Fatalf("%s: the plugin is not active: %s", s.name, out)
		}
	}
}
