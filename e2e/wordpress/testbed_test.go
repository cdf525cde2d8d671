//go:build unix

// Package wordpress tests the WordPress plugin (integrations/wordpress/ussync)
// on real WordPress: three sites on three *.localhost domains, each served by
// PHP's own server with its own database in one MariaDB, each with its own
// `ussync agent` process, real Chromium (third-party cookies blocked, its
// default) and, for the login and logout flows, Firefox ESR. WordPress's and
// the nodes' mail goes to a real SMTP server in the test.
//
// The testbed is built once per run (TestMain, on first use) and shared by
// the tests, which run one after the other: three WordPress installs and a
// database server cost seconds each, and the machine has two cores.
//
// A missing dependency (PHP, MariaDB, WordPress, Chromium, Firefox, node)
// skips the tests loudly, or fails them when USSYNC_E2E_REQUIRE=1 (CI sets
// it). -short skips them.
package wordpress

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/ussync/ussync/internal/eventually"
	"github.com/ussync/ussync/internal/testenv"
)

// Deadlines: generous for a loaded 2-core machine; a healthy run meets them
// in a fraction.
const (
	startTimeout = 60 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// sitesN is the number of WordPress sites (and nodes).
const sitesN = 3

var siteNames = [sitesN]string{"site-a", "site-b", "site-c"}

// bed is the shared testbed.
var bed struct {
	once sync.Once
	err  error
	skip string
	*testbed
}

type testbed struct {
	dir     string
	procs   []*proc
	mysql   string // socket
	sink    *sink
	bin     string
	token   string
	secret  string
	sites   [sitesN]*site
	wpDir   string
	pluginD string
	fixD    string
	logMu   sync.Mutex
	log     bytes.Buffer
}

// site is one WordPress site and its node.
type site struct {
	name   string
	port   int
	url    string // http://site-a.localhost:PORT/
	dir    string
	db     string
	gossip string
	api    string // 127.0.0.1:PORT, or unix:PATH while the node listens on a socket (setAPI)
	apiTCP string // its loopback address while it does
	public string
	node   *proc
	php    *proc
	nodeCf string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bed.testbed != nil {
		bed.testbed.close()
	}
	os.Exit(code)
}

// require reports a missing dependency: a loud skip, or a failure under
// USSYNC_E2E_REQUIRE=1.
func require(t *testing.T, msg string) {
	t.Helper()
	bang := strings.Repeat("!", 78)
	full := fmt.Sprintf("\n%s\n!!! SKIPPING THE WORDPRESS END-TO-END TESTS: %s\n!!! The WordPress plugin is NOT tested end to end on this machine.\n!!! .ci/run installs what they need (apt-get install wordpress mariadb-server php-cli php-mysql php-curl chromium firefox-esr nodejs npm).\n%s", bang, msg, bang)
	if os.Getenv("USSYNC_E2E_REQUIRE") == "1" {
		t.Fatal(full)
	}
	fmt.Fprintln(os.Stderr, full)
	t.Skip(full)
}

// lookPaths returns the first of names found, or "".
func lookPaths(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// theBed returns the shared testbed, starting it on first use.
func theBed(t *testing.T) *testbed {
	t.Helper()
	if testing.Short() {
		t.Skip("WordPress end-to-end test: starts MariaDB, three WordPress sites, three nodes and browsers")
	}
	bed.once.Do(func() {
		for _, dep := range []struct{ what, names string }{
			{"PHP (php-cli)", "php"},
			{"MariaDB (mariadb-server)", "mariadbd mysqld"},
			{"mariadb-install-db (mariadb-server)", "mariadb-install-db mysql_install_db"},
			{"the mysql client (mariadb-client)", "mariadb mysql"},
		} {
			if lookPaths(strings.Fields(dep.names)...) == "" {
				bed.skip = "no " + dep.what + " found"
				return
			}
		}
		if _, err := os.Stat("/usr/share/wordpress/wp-settings.php"); err != nil {
			bed.skip = "no WordPress in /usr/share/wordpress (Debian's wordpress package)"
			return
		}
		if out, err := exec.Command("php", "-r", "echo extension_loaded('mysqli') ? 'y' : 'n';").Output(); err != nil || string(out) != "y" {
			bed.skip = "PHP has no mysqli (php-mysql)"
			return
		}
		bed.testbed, bed.err = start()
	})
	if bed.skip != "" {
		require(t, bed.skip)
	}
	if bed.err != nil {
		t.Fatalf("start the WordPress testbed: %v", bed.err)
	}
	tb := bed.testbed
	t.Cleanup(func() {
		if t.Failed() {
			tb.dumpLogs(t)
		}
	})
	return tb
}

// dumpLogs writes the end of every site's PHP logs and every node's output
// into the failed test's log.
func (tb *testbed) dumpLogs(t *testing.T) {
	tail := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		return strings.Join(lines[max(0, len(lines)-15):], "\n")
	}
	for _, s := range tb.sites {
		for _, f := range []string{"debug.log", "php-errors.log"} {
			if b, err := os.ReadFile(filepath.Join(s.dir, f)); err == nil && len(b) > 0 {
				t.Logf("--- %s %s (end):\n%s", s.name, f, tail(string(b)))
			}
		}
		if s.node != nil {
			t.Logf("--- node %s (end):\n%s", s.name, tail(s.node.output()))
		}
	}
}

// proc is a process the testbed started, in its own process group so that
// it and the workers it forks (php -S) stop together.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

func (tb *testbed) logf(format string, args ...any) {
	tb.logMu.Lock()
	defer tb.logMu.Unlock()
	fmt.Fprintf(&tb.log, format+"\n", args...)
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// spawn starts a process of the testbed.
func (tb *testbed) spawn(name string, env []string, dir string, args ...string) (*proc, error) {
	p := &proc{name: name, out: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Dir = dir
	p.cmd.Env = append(cleanEnv(), env...)
	w := lockedWriter{p.mu, p.out}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	tb.procs = append(tb.procs, p)
	return p, nil
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// stop ends the process's group (the process and the children it forked,
// all started by this testbed) and waits for the process.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// php -S workers may outlive their parent: they are in its group.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "USSYNC_") && !strings.HasPrefix(kv, "PHP_CLI_SERVER") {
			out = append(out, kv)
		}
	}
	return out
}

func (tb *testbed) close() {
	for i := len(tb.procs) - 1; i >= 0; i-- {
		tb.procs[i].stop()
	}
	if tb.sink != nil {
		tb.sink.close()
	}
	if os.Getenv("USSYNC_E2E_KEEP") == "" {
		os.RemoveAll(tb.dir)
	}
}

// freePort returns a loopback TCP port that was free (and, with udp, free
// for UDP too).
func freePort(udp bool) (int, error) { return testenv.FreePort(udp) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// repoRoot is the module's root.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// start builds the whole testbed.
func start() (*testbed, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ussync-wp-e2e-")
	if err != nil {
		return nil, err
	}
	tb := &testbed{dir: dir, token: randomHex(24), wpDir: "/usr/share/wordpress",
		pluginD: filepath.Join(root, "integrations", "wordpress", "ussync"),
		fixD:    filepath.Join(root, "e2e", "wordpress", "fixtures")}
	ok := false
	defer func() {
		if !ok {
			tb.close()
		}
	}()
	steps := []struct {
		name string
		f    func(string) error
	}{
		{"build ussync", tb.build},
		{"start mariadb", tb.startMariaDB},
		{"start the smtp sink", tb.startSink},
		{"start the nodes", tb.startNodes},
		{"install the sites", tb.installSites},
	}
	for _, s := range steps {
		t0 := time.Now()
		if err := s.f(root); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		tb.logf("%s: %v", s.name, time.Since(t0).Round(time.Millisecond))
	}
	ok = true
	return tb, nil
}

func (tb *testbed) build(root string) error {
	tb.bin = filepath.Join(tb.dir, "ussync")
	cmd := exec.Command("go", "build", "-o", tb.bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	out, err := exec.Command(tb.bin, "keygen").Output()
	if err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	tb.secret = strings.TrimSpace(string(out))
	return nil
}

func (tb *testbed) startMariaDB(string) error {
	data := filepath.Join(tb.dir, "mysql")
	tb.mysql = filepath.Join(tb.dir, "mysql.sock")
	install := lookPaths("mariadb-install-db", "mysql_install_db")
	cmd := exec.Command(install, "--no-defaults", "--datadir="+data, "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", install, err, out)
	}
	server := lookPaths("mariadbd", "mysqld")
	p, err := tb.spawn("mariadb", nil, tb.dir, server, "--no-defaults", "--datadir="+data, "--socket="+tb.mysql,
		"--skip-networking", "--user=root", "--pid-file="+filepath.Join(tb.dir, "mysql.pid"),
		"--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin", "--log-error="+filepath.Join(tb.dir, "mysql.err"))
	if err != nil {
		return err
	}
	err = eventually.Err(startTimeout, pollEvery, "mariadb socket", func() error {
		select {
		case <-p.done:
			b, _ := os.ReadFile(filepath.Join(tb.dir, "mysql.err"))
			return fmt.Errorf("mariadb exited: %s", b)
		default:
		}
		return tb.sql("SELECT 1")
	})
	if err != nil {
		return err
	}
	var q strings.Builder
	for _, n := range siteNames {
		fmt.Fprintf(&q, "CREATE DATABASE wp_%s; ", strings.ReplaceAll(n, "-", "_"))
	}
	q.WriteString("CREATE USER 'wp'@'localhost' IDENTIFIED BY 'wp'; GRANT ALL ON *.* TO 'wp'@'localhost';")
	return tb.sql(q.String())
}

func (tb *testbed) sql(q string) error {
	client := lookPaths("mariadb", "mysql")
	out, err := exec.Command(client, "--no-defaults", "--socket="+tb.mysql, "-uroot", "-e", q).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// startNodeConfig writes cfg as s's node config (node-NAME.yaml in the
// testbed's directory) and starts s's node on it.
func (tb *testbed) startNodeConfig(s *site, cfg string) error {
	s.nodeCf = filepath.Join(tb.dir, "node-"+s.name+".yaml")
	if err := os.WriteFile(s.nodeCf, []byte(cfg), 0o600); err != nil {
		return err
	}
	return tb.startNode(s)
}

func (tb *testbed) startNodes(string) error {
	for i, n := range siteNames {
		s := &site{name: n, db: "wp_" + strings.ReplaceAll(n, "-", "_")}
		var err error
		if s.port, err = freePort(false); err != nil {
			return err
		}
		gp, _ := freePort(true)
		ap, _ := freePort(false)
		pp, _ := freePort(false)
		s.gossip, s.api, s.public = fmt.Sprintf("127.0.0.1:%d", gp), fmt.Sprintf("127.0.0.1:%d", ap), fmt.Sprintf("127.0.0.1:%d", pp)
		s.url = fmt.Sprintf("http://%s.localhost:%d/", n, s.port)
		s.dir = filepath.Join(tb.dir, n)
		tb.sites[i] = s
	}
	secret := filepath.Join(tb.dir, "secret")
	tokenF := filepath.Join(tb.dir, "api-token")
	if err := os.WriteFile(secret, []byte(tb.secret+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(tokenF, []byte(tb.token+"\n"), 0o600); err != nil {
		return err
	}
	for i, s := range tb.sites {
		join := ""
		if i > 0 {
			join = fmt.Sprintf("  join: [%q]\n", tb.sites[0].gossip)
		}
		cfg := fmt.Sprintf(`node:
  name: %s
  data_dir: %s
  profile: local
site:
  url: %s
  on_unknown_user: create
gossip:
  bind: %s
%s  secret_file: %s
api:
  listen: %s
  token_file: %s
public:
  listen: %s
  trusted_proxies: ["127.0.0.1/32", "::1/128"]
sync:
  modes: [chain, lazy, iframe]
smtp:
  host: 127.0.0.1
  port: %d
  from: "ussync <no-reply@example.com>"
  starttls: none
  timeout: 5s
verification:
  resend_interval: 0s
  max_sends_per_hour: 100
log:
  level: info
`, s.name, filepath.Join(tb.dir, "node-"+s.name), s.url, s.gossip, join, secret, s.api, tokenF, s.public, tb.sink.port)
		if err := tb.startNodeConfig(s, cfg); err != nil {
			return err
		}
	}
	// Every node lists every other alive.
	return eventually.Err(startTimeout, pollEvery, "membership", func() error {
		for _, s := range tb.sites {
			var st struct {
				Members []struct{ Name, State string }
			}
			if err := tb.nodeGet(s, "/v1/status", &st); err != nil {
				return err
			}
			alive := 0
			for _, m := range st.Members {
				if m.State == "alive" {
					alive++
				}
			}
			if alive != sitesN {
				return fmt.Errorf("%s sees %d alive members", s.name, alive)
			}
		}
		return nil
	})
}

// startNode starts (or restarts) a site's node and waits for its API.
func (tb *testbed) startNode(s *site) error {
	p, err := tb.spawn("node "+s.name, nil, tb.dir, tb.bin, "agent", "--config", s.nodeCf)
	if err != nil {
		return err
	}
	s.node = p
	return eventually.Err(startTimeout, pollEvery, "node "+s.name, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("node exited: %s", p.output())
		default:
		}
		base, c := apiOf(s)
		resp, err := c.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

var apiClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}

// apiOf returns the base URL of site s's node's private API and the
// client that reaches it: loopback TCP, or its Unix socket (s.api
// unix:PATH).
func apiOf(s *site) (string, *http.Client) {
	sock, ok := strings.CutPrefix(s.api, "unix:")
	if !ok {
		return "http://" + s.api, apiClient
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	return "http://localhost", &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", sock) }}}
}

// nodeCall calls a site's node's private API.
func (tb *testbed) nodeCall(s *site, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	base, c := apiOf(s)
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+tb.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, nil
}

func (tb *testbed) nodeGet(s *site, path string, out any) error {
	code, err := tb.nodeCall(s, "GET", path, nil, out)
	if err == nil && code != 200 {
		err = fmt.Errorf("GET %s: %d", path, code)
	}
	return err
}

func copyTree(src, dst string) error {
	out, err := exec.Command("cp", "-rL", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp %s: %v: %s", src, err, out)
	}
	return nil
}

// installSites copies WordPress once per site, writes its wp-config.php,
// serves it, installs it and sets up the plugin.
func (tb *testbed) installSites(string) error {
	for i, s := range tb.sites {
		if i == 0 {
			if err := copyTree(tb.wpDir, s.dir); err != nil {
				return err
			}
			os.Remove(filepath.Join(s.dir, ".htaccess"))
		} else if err := copyTree(tb.sites[0].dir, s.dir); err != nil {
			return err
		}
		wc := filepath.Join(s.dir, "wp-content")
		for _, d := range []string{"mu-plugins", "plugins", "themes"} {
			os.MkdirAll(filepath.Join(wc, d), 0o755)
		}
		if err := copyTree(tb.pluginD, filepath.Join(wc, "plugins", "ussync")); err != nil {
			return err
		}
		if err := copyTree(filepath.Join(tb.fixD, "theme"), filepath.Join(wc, "themes", "e2e")); err != nil {
			return err
		}
		if err := copyTree(filepath.Join(tb.fixD, "e2e-mu.php"), filepath.Join(wc, "mu-plugins", "e2e-mu.php")); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.dir, "wp-config.php"), []byte(tb.wpConfig(s)), 0o644); err != nil {
			return err
		}
		os.WriteFile(filepath.Join(s.dir, "debug.log"), nil, 0o666)
		if err := tb.serve(s); err != nil {
			return err
		}
	}
	for _, s := range tb.sites {
		if err := tb.install(s); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (tb *testbed) wpConfig(s *site) string {
	var salts strings.Builder
	for _, k := range []string{"AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT", "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT"} {
		fmt.Fprintf(&salts, "define('%s', '%s');\n", k, randomHex(32))
	}
	home := strings.TrimSuffix(s.url, "/")
	return fmt.Sprintf(`<?php
define('DB_NAME', '%s');
define('DB_USER', 'wp');
define('DB_PASSWORD', 'wp');
define('DB_HOST', 'localhost:%s');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
%s$table_prefix = 'wp_';
define('WP_HOME', '%s');
define('WP_SITEURL', '%s');
if (file_exists(__DIR__ . '/e2e-extra.php')) { require __DIR__ . '/e2e-extra.php'; }
defined('WP_DEBUG') || define('WP_DEBUG', true);
define('WP_DEBUG_LOG', __DIR__ . '/debug.log');
define('WP_DEBUG_DISPLAY', false);
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('WP_ACCESSIBLE_HOSTS', '*.localhost,127.0.0.1');
define('USSYNC_API_TOKEN', '%s');
// The test machine is shared and overloaded at times: a page view may wait
// longer for its node than the plugin's 1 s default before calling it down.
defined('USSYNC_TIMEOUT') || define('USSYNC_TIMEOUT', 10);
define('E2E_SMTP_PORT', %d);
if (!defined('ABSPATH')) { define('ABSPATH', __DIR__ . '/'); }
require_once ABSPATH . 'wp-settings.php';
`, s.db, tb.mysql, salts.String(), home, home, tb.token, tb.sink.port)
}

// serve starts PHP's built-in server for a site (four workers: WordPress
// calls itself, and one worker would deadlock).
func (tb *testbed) serve(s *site) error {
	workers := "4"
	if runtime.NumCPU() > 4 {
		workers = strconv.Itoa(runtime.NumCPU())
	}
	p, err := tb.spawn("php "+s.name, []string{"PHP_CLI_SERVER_WORKERS=" + workers}, s.dir,
		"php", "-d", "display_errors=0", "-d", "log_errors=1", "-d", "error_log="+filepath.Join(s.dir, "php-errors.log"),
		"-d", "opcache.enable_cli=1", "-S", fmt.Sprintf("127.0.0.1:%d", s.port), "-t", s.dir)
	if err != nil {
		return err
	}
	s.php = p
	// Ready once a worker answers HTTP (not when the port accepts: the
	// parent listens before its workers run).
	return eventually.Err(startTimeout, pollEvery, "php "+s.name, func() error {
		select {
		case <-p.done:
			return fmt.Errorf("php exited: %s", p.output())
		default:
		}
		resp, err := httpClient().Get(fmt.Sprintf("http://127.0.0.1:%d/readme.html", s.port))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readme.html: %d", resp.StatusCode)
		}
		return nil
	})
}

// httpClient resolves *.localhost to 127.0.0.1 (as browsers do; glibc does
// not), keeps cookies, and does not follow redirects.
func httpClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		Transport: &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return d.DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// adminPass is every test administrator's password.
const adminPass = "e2e-admin-pass-1"

func (tb *testbed) install(s *site) error {
	c := httpClient()
	form := url.Values{
		"weblog_title": {strings.ToUpper(s.name[len(s.name)-1:])}, "user_name": {"admin"},
		"admin_password": {adminPass}, "admin_password2": {adminPass}, "pw_weak": {"1"},
		"admin_email": {"admin-" + s.name + "@example.com"}, "blog_public": {"0"}, "language": {""},
	}
	// The install is one request; if its connection breaks (seen once
	// under heavy load, an empty answer from PHP's server), it is asked
	// again: a finished install answers "Already Installed".
	var b []byte
	err := eventually.Err(startTimeout, pollEvery, "install "+s.name, func() error {
		resp, err := c.PostForm(s.url+"wp-admin/install.php?step=2", form)
		if err != nil {
			tb.logf("install %s: %v; php: %s", s.name, err, truncate(s.php.output(), 2000))
			return err
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !(bytes.Contains(b, []byte("Success")) || bytes.Contains(b, []byte("Already Installed"))) {
			return fmt.Errorf("install: %d %s", resp.StatusCode, truncate(string(b), 400))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; php: %s; errors: %s", err, truncate(s.php.output(), 2000), truncate(readFile(filepath.Join(s.dir, "php-errors.log")), 2000))
	}
	_, err = tb.php(s, `
update_option('permalink_structure', '/%postname%/');
update_option('users_can_register', 1);
update_option('blogname', '`+strings.ToUpper(s.name[len(s.name)-1:])+`');
switch_theme('e2e');
$r = activate_plugin('ussync/ussync.php');
if (is_wp_error($r)) { return $r->get_error_message(); }
update_option('ussync_settings', array('connections' => array(array('id'=>'main','label'=>'','api_url'=>'http://`+s.api+`','public_url'=>'http://`+s.public+`','token_file'=>''))));
flush_rewrite_rules(false);
return 'ok';`)
	return err
}

// php runs PHP code inside a site (fixtures/cli.php) and returns the JSON
// of what it returns.
func (tb *testbed) php(s *site, code string) (json.RawMessage, error) {
	cmd := exec.Command("php", "-d", "display_errors=stderr", filepath.Join(tb.fixD, "cli.php"), s.dir)
	cmd.Env = append(cleanEnv(), "E2E_HOME="+strings.TrimSuffix(s.url, "/"))
	cmd.Stdin = strings.NewReader(code)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("php in %s: %v: %s %s", s.name, err, stderr.String(), out)
	}
	return json.RawMessage(out), nil
}

// mustPHP is php for a test.
func (tb *testbed) mustPHP(t *testing.T, s *site, code string) json.RawMessage {
	t.Helper()
	out, err := tb.php(s, code)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// sink is a real SMTP server (emersion/go-smtp) on 127.0.0.1 keeping every
// message: WordPress's and the nodes' mail.
type sink struct {
	port int
	srv  *smtp.Server
	done chan struct{}
	mu   sync.Mutex
	msgs []mailMsg
}

type mailMsg struct {
	To   []string
	Data string
}

func (tb *testbed) startSink(string) error {
	s := &sink{done: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	s.srv.Domain = "sink.localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	go func() { defer close(s.done); s.srv.Serve(ln) }()
	tb.sink = s
	return nil
}

func (s *sink) close() {
	s.srv.Close()
	<-s.done
}

// to returns the messages sent to addr so far.
func (s *sink) to(addr string) []mailMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []mailMsg
	for _, m := range s.msgs {
		for _, r := range m.To {
			if strings.EqualFold(r, addr) {
				out = append(out, m)
			}
		}
	}
	return out
}

type sinkSession struct {
	s  *sink
	to []string
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, mailMsg{To: ss.to, Data: string(b)})
	ss.s.mu.Unlock()
	return nil
}
func (ss *sinkSession) Reset()        { ss.to = nil }
func (ss *sinkSession) Logout() error { return nil }
