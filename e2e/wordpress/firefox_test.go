//go:build unix

package wordpress

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWordPress_Firefox: the login and logout flows again in Firefox ESR
// (puppeteer-core over WebDriver BiDi, firefox/flows.mjs), with Firefox's
// default Total Cookie Protection: login on A reaches B and C, a plain
// wp_logout() on B logs A and C out.
func TestWordPress_Firefox(t *testing.T) {
	tb := theBed(t)
	ff := lookPaths("firefox-esr", "firefox")
	node := lookPaths("node", "nodejs")
	if ff == "" || node == "" {
		require(t, "no Firefox ESR or no node (apt-get install firefox-esr nodejs npm)")
	}
	dir := filepath.Join(tb.fixD, "..", "firefox")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "puppeteer-core")); err != nil {
		require(t, "puppeteer-core is not installed: run `PUPPETEER_SKIP_DOWNLOAD=1 npm ci` in e2e/wordpress/firefox")
	}
	a := tb.sites[0]
	tb.defaults(t)
	const email = "fay@example.com"
	pass := tb.user(t, a, "fay", email, "subscriber")
	tb.verify(t, a, email)
	arg, _ := json.Marshal(map[string]any{
		"firefox": ff, "sites": []string{tb.sites[0].url, tb.sites[1].url, tb.sites[2].url},
		"login": "fay", "pass": pass, "email": email,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "flows.mjs", string(arg))
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	var res struct {
		OK    bool
		Step  string
		Error string
		Steps []string
	}
	line := strings.TrimSpace(string(out))
	if i := strings.LastIndex(line, "\n"); i >= 0 {
		line = line[i+1:]
	}
	if jerr := json.Unmarshal([]byte(line), &res); jerr != nil {
		t.Fatalf("flows.mjs: %v; output %q; %v", err, out, jerr)
	}
	for _, s := range res.Steps {
		t.Log(s)
	}
	if !res.OK {
		t.Fatalf("Firefox: %s: %s", res.Step, res.Error)
	}
}
