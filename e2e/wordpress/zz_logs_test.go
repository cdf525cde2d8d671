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
