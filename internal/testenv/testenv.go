// Package testenv is how ussync's tests find the outside programs they drive
// (Chromium, Firefox, nginx, Caddy, PHP, MariaDB, node) and what they do when
// one is missing. Go's own src/internal/testenv does the same for the go
// command and friends.
//
// The rule, shared by every package of tests: a test that cannot run because
// the machine lacks a program skips, loudly (a banner on stderr that
// `go test ./...` shows even without -v), unless the environment variable
// USSYNC_E2E_REQUIRE is 1 — then it fails, because a skipped browser or proxy
// test proves nothing and CI (.ci/run sets it) must not go green without
// them. -short skips are not affected: they are asked for.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireVar is the environment variable that turns a missing program from
// a skip into a failure when it is "1".
const RequireVar = "USSYNC_E2E_REQUIRE"

// Required reports whether missing programs fail tests (RequireVar is 1).
func Required() bool { return os.Getenv(RequireVar) == "1" }

// Program is an outside program a test needs.
type Program struct {
	// Name is what messages call it ("Chromium").
	Name string
	// Var, when set in the environment, names the binary to use (a path or
	// a name looked up in PATH), before Candidates.
	Var string
	// Candidates are binary names (or absolute paths) tried in order.
	Candidates []string
	// Install says how to get it ("apt-get install -y chromium").
	Install string
}

// The programs ussync's tests drive, with the Debian packages .ci/run
// installs for them.
var (
	Chromium = Program{Name: "Chromium", Var: "USSYNC_CHROMIUM",
		Candidates: []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
			"headless_shell", "headless-shell", "chrome", "/usr/bin/chromium"},
		Install: "apt-get install -y --no-install-recommends chromium"}
	Firefox = Program{Name: "Firefox", Var: "USSYNC_FIREFOX",
		Candidates: []string{"firefox-esr", "firefox"},
		Install:    "apt-get install -y --no-install-recommends firefox-esr"}
	Nginx = Program{Name: "nginx", Var: "USSYNC_NGINX",
		Candidates: []string{"nginx", "/usr/sbin/nginx"},
		Install:    "apt-get install -y --no-install-recommends nginx-light"}
	Caddy = Program{Name: "Caddy", Var: "USSYNC_CADDY",
		Candidates: []string{"caddy", "/usr/bin/caddy"},
		Install:    "apt-get install -y --no-install-recommends caddy"}
	// Certutil (NSS tools) makes a browser profile trust a test's CA.
	Certutil = Program{Name: "certutil (NSS tools)", Var: "USSYNC_CERTUTIL",
		Candidates: []string{"certutil", "/usr/bin/certutil"},
		Install:    "apt-get install -y --no-install-recommends libnss3-tools"}
	PHP = Program{Name: "PHP", Var: "USSYNC_PHP",
		Candidates: []string{"php", "/usr/bin/php"},
		Install:    "apt-get install -y --no-install-recommends php-cli"}
	MariaDB = Program{Name: "MariaDB", Var: "USSYNC_MARIADBD",
		Candidates: []string{"mariadbd", "mysqld", "/usr/sbin/mariadbd", "/usr/sbin/mysqld"},
		Install:    "apt-get install -y --no-install-recommends mariadb-server"}
	Node = Program{Name: "Node.js", Var: "USSYNC_NODE",
		Candidates: []string{"node", "nodejs"},
		Install:    "apt-get install -y --no-install-recommends nodejs npm"}
	SystemdAnalyze = Program{Name: "systemd-analyze", Var: "USSYNC_SYSTEMD_ANALYZE",
		Candidates: []string{"systemd-analyze", "/usr/bin/systemd-analyze"},
		Install:    "apt-get install -y --no-install-recommends systemd"}
	Promtool = Program{Name: "promtool", Var: "USSYNC_PROMTOOL",
		Candidates: []string{"promtool", "/usr/bin/promtool"},
		Install:    "apt-get install -y --no-install-recommends prometheus"}
)

// Find returns the path of p's binary, or "" and what was looked for.
func (p Program) Find() (path, looked string) {
	names := p.Candidates
	if p.Var != "" {
		if v := os.Getenv(p.Var); v != "" {
			names = append([]string{v}, names...)
		}
	}
	for _, n := range names {
		if path, err := exec.LookPath(n); err == nil {
			return path, ""
		}
	}
	looked = strings.Join(names, ", ")
	if p.Var != "" {
		looked = "$" + p.Var + ", " + looked
	}
	return "", looked
}

// Require returns the path of p's binary. When it is missing, the test
// skips with a banner saying what is not tested (untested, e.g. "the nginx
// example in front of real nodes"), or fails under USSYNC_E2E_REQUIRE=1.
func Require(t testing.TB, p Program, untested string) string {
	t.Helper()
	path, looked := p.Find()
	if path != "" {
		return path
	}
	Missing(t, fmt.Sprintf("no %s binary found (looked for %s)", p.Name, looked), untested, p.Install)
	return ""
}

// Missing ends t for want of something the machine lacks: why (what is
// missing), untested (what therefore goes untested), install (how to get
// it). It skips with a banner on stderr, or fails under
// USSYNC_E2E_REQUIRE=1. It does not return.
func Missing(t testing.TB, why, untested, install string) {
	t.Helper()
	bang := strings.Repeat("!", 78)
	verb := "SKIPPING"
	if Required() {
		verb = "FAILING (" + RequireVar + "=1)"
	}
	msg := fmt.Sprintf("\n%s\n!!! %s %s: %s.\n!!! NOT tested on this machine: %s.\n!!! Install it with `%s`.\n%s",
		bang, verb, t.Name(), why, untested, install, bang)
	fmt.Fprintln(os.Stderr, msg)
	if Required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
