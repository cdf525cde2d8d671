//go:build unix

package wordpress

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ussync/ussync/internal/eventually"
)

// TestWordPress_NodeSlow: a node that accepts connections but does not
// answer (stopped with SIGSTOP). The first page view waits for the
// plugin's timeout (1 s, its default here), marks the node down and logs
// it once; the next page views do not call it. Failing open, the user
// stays logged in; failing closed, pages show a visitor until the node
// answers, and the WordPress session survives it.
func TestWordPress_NodeSlow(t *testing.T) {
	tb := theBed(t)
	b := tb.sites[1]
	tb.defaults(t)
	const email = "sven@example.com"
	pass := tb.user(t, b, "sven", email, "subscriber")
	tb.verify(t, b, email)
	extra := filepath.Join(b.dir, "e2e-extra.php")
	if err := os.WriteFile(extra, []byte("<?php define('USSYNC_TIMEOUT', 1);\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(extra) })
	const outage = `network "main" did not answer`
	logged := strings.Count(siteLogs(b), outage)
	x := launch(t, "sven's browser")
	x.wpLogin(b, "sven", pass, false)
	x.shows("B logged in", func(p page) bool { return p.User == email })

	pid := b.node.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			syscall.Kill(pid, syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)
	down := func() bool {
		return string(tb.mustPHP(t, b, `$d = get_option('ussync_down'); return is_array($d) && isset($d['main']) && $d['main'] > time();`)) == "true"
	}
	for i := range 3 {
		t0 := time.Now()
		x.visit(b.url, email) // fail open
		t.Logf("page view %d with the node stopped: %v", i+1, time.Since(t0).Round(time.Millisecond))
		if !down() {
			t.Fatal("the node that did not answer is not marked down")
		}
	}
	if n := strings.Count(siteLogs(b), outage) - logged; n != 1 {
		t.Fatalf("the outage was logged %d times, want once", n)
	}

	// Failing closed: a visitor's page meanwhile, the user again once the node answers.
	tb.mustPHP(t, b, `$s = get_option('ussync_settings'); $s['fail'] = 'closed'; update_option('ussync_settings', $s); return 1;`)
	x.visit(b.url, "")
	resume()
	tb.mustPHP(t, b, `delete_option('ussync_down'); return 1;`)
	x.visit(b.url, email)
}

// siteLogs is a site's PHP logs (debug.log, then the PHP error log), which
// only grow.
func siteLogs(s *site) string {
	return readFile(filepath.Join(s.dir, "php-errors.log")) + readFile(filepath.Join(s.dir, "debug.log"))
}

// TestWordPress_OutageLoggedOnceConcurrently: PHP workers that all loaded
// their options before any of them found the node down (page views that
// waited for it together) log the outage once. Each read the down-mark,
// found none and logged: "the outage was logged 2 times" in NodeSlow
// under load. Eight workers, held at a barrier after WordPress loaded,
// fail at once on a node that refuses connections.
func TestWordPress_OutageLoggedOnceConcurrently(t *testing.T) {
	tb := theBed(t)
	c := tb.sites[2]
	tb.defaults(t)
	dir := t.TempDir()
	logf, start := filepath.Join(dir, "php.log"), filepath.Join(dir, "go")
	tb.mustPHP(t, c, `delete_option('ussync_down'); return 1;`)
	t.Cleanup(func() { tb.mustPHP(t, c, `delete_option('ussync_down'); return 1;`) })
	const workers = 8
	errs := make(chan error, workers)
	for i := range workers {
		go func() {
			_, err := tb.php(c, fmt.Sprintf(`ini_set('error_log', %q);
$n = Ussync_Settings::nodes()[0];
$n->api_url = 'http://127.0.0.1:1';
touch(%q);
while (!file_exists(%q)) { usleep(2000); }
$n->check(str_repeat('a', 64));
return 1;`, logf, filepath.Join(dir, fmt.Sprintf("ready%d", i)), start))
			errs <- err
		}()
	}
	eventually.True(t, 60*time.Second, "every worker at the barrier", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "ready*"))
		return len(m) == workers
	})
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(readFile(logf), `network "main" did not answer`); n != 1 {
		t.Fatalf("%d workers failing at once logged the outage %d times, want once:\n%s", workers, n, readFile(logf))
	}
}
