//go:build unix

package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ussync/ussync/internal/testenv"
)

// installRun runs scripts/install.sh into root with args.
func installRun(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(moduleRoot(t), "scripts", "install.sh"), "--root", root}, args...)...)
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh: %v\n%s", err, out)
	}
	return string(out)
}

// treeOf lists every file under root with its mode, owner and content hash
// (contents in full for small text files), for comparing two installs.
func treeOf(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		entry := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			entry += fmt.Sprintf(" %x", b)
		}
		rel, _ := filepath.Rel(root, path)
		tree[rel] = entry
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// idOf is the numeric id of name in root's etc/passwd or etc/group.
func idOf(t *testing.T, root, file, name string) (id string, fields []string) {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields = strings.Split(sc.Text(), ":")
		if fields[0] == name {
			return fields[2], fields
		}
	}
	t.Fatalf("no %s in %s/etc/%s", name, root, file)
	return "", nil
}

// TestInstall_Root: scripts/install.sh into a temporary root makes the user,
// the files with their modes and owners, a configuration the node accepts,
// and the unit that systemd-analyze verifies; a second run changes nothing.
// The node is then started as the unit starts it, reading its secret from a
// systemd credentials directory.
func TestInstall_Root(t *testing.T) {
	bin := ussyncBinary(t)
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the tests do not run as root (install.sh sets owners, even under --root)",
			"scripts/install.sh and the systemd unit", "run the tests as root, as CI does")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		testenv.Missing(t, "no useradd", "scripts/install.sh and the systemd unit", "apt-get install -y passwd")
	}
	root := t.TempDir()
	out := installRun(t, root, "--binary", bin, "--name", "site-a", "--site-url", "https://site-a.example", "--join", "192.0.2.7:7946")
	t.Logf("install.sh:\n%s", out)
	first := treeOf(t, root)
	if out := installRun(t, root, "--binary", bin, "--name", "other", "--site-url", "https://other.example/"); !strings.Contains(out, "done") {
		t.Fatalf("second run: %s", out)
	}
	second := treeOf(t, root)
	for path, e := range first {
		if second[path] != e {
			t.Errorf("the second run changed %s:\n%s\n->\n%s", path, e, second[path])
		}
	}
	for path := range second {
		if _, ok := first[path]; !ok && !strings.HasSuffix(path, "-") { // useradd's backups
			t.Errorf("the second run added %s", path)
		}
	}

	uid, user := idOf(t, root, "passwd", "ussync")
	gid, _ := idOf(t, root, "group", "ussync")
	if user[5] != "/var/lib/ussync" || user[6] != "/usr/sbin/nologin" || user[3] != gid {
		t.Errorf("ussync user: %q", user)
	}
	for _, f := range []struct {
		path, mode, owner string
	}{
		{"usr/local/bin/ussync", "-rwxr-xr-x", "0:0"},
		{"etc/ussync", "drwxr-x---", "0:" + gid},
		{"etc/ussync/cluster.yaml", "-rw-r-----", "0:" + gid},
		// Only root reads them: the unit hands them to the node as credentials.
		{"etc/ussync/secret", "-rw-------", "0:0"},
		{"etc/ussync/api-token", "-rw-------", "0:0"},
		{"var/lib/ussync", "drwx------", uid + ":" + gid},
		{"etc/systemd/system/ussync.service", "-rw-r--r--", "0:0"},
	} {
		fi, err := os.Stat(filepath.Join(root, f.path))
		if err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid); got != f.mode+" "+f.owner {
			t.Errorf("%s: %s, want %s %s", f.path, got, f.mode, f.owner)
		}
	}
	secret, _ := os.ReadFile(filepath.Join(root, "etc/ussync/secret"))
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(secret))); err != nil || len(raw) != 32 {
		t.Errorf("the secret is not 32 bytes of base64: %v", err)
	}
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/ussync.service"))
	example, _ := os.ReadFile(filepath.Join(moduleRoot(t), "examples/systemd/ussync.service"))
	if string(unit) != string(example) {
		t.Error("the installed unit differs from examples/systemd/ussync.service")
	}
	conf, _ := os.ReadFile(filepath.Join(root, "etc/ussync/cluster.yaml"))
	for _, want := range []string{"  name: site-a\n", "  url: https://site-a.example/\n", "  join:\n    - 192.0.2.7:7946\n\n",
		"  advertise: \"\"\n", "  secret_file: /etc/ussync/secret\n", "  token_file: /etc/ussync/api-token\n", "  host: \"\"\n"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("cluster.yaml lacks %q", want)
		}
	}

	t.Run("systemd_analyze_verify", func(t *testing.T) {
		analyze := testenv.Require(t, testenv.SystemdAnalyze, "the systemd unit's syntax")
		systemdVerify(t, analyze, root)
	})

	t.Run("node_starts_as_the_unit_starts_it", func(t *testing.T) {
		unitStart(t, root, string(unit))
	})
}

// systemdVerify checks the unit installed under root offline: systemd-analyze
// verify needs the targets the unit depends on, copied from this machine's
// systemd, and prints (without failing) what it ignores, so any output fails.
func systemdVerify(t *testing.T, analyze, root string) {
	t.Helper()
	units := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.MkdirAll(units, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{"/lib/systemd/system/*.target", "/lib/systemd/system/*.slice"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if fi, err := os.Stat(m); err != nil || !fi.Mode().IsRegular() {
				continue
			}
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(units, filepath.Base(m)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The unit's other programs (ExecReload's /bin/kill) are the system's,
	// which a real root has: copy them in.
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/ussync.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(unit), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(k, "Exec") {
			continue
		}
		prog := strings.Fields(v)[0]
		if _, err := os.Stat(filepath.Join(root, prog)); err == nil {
			continue
		}
		b, err := os.ReadFile(prog)
		if err != nil {
			t.Fatalf("%s: the unit runs %s, which this machine lacks: %v", k, prog, err)
		}
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(prog)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, prog), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(analyze, "verify", "--root="+root, "/etc/systemd/system/ussync.service").CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// For information, and a floor: systemd's own exposure score (0 to 10).
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", "--root="+root, "ussync.service").CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("systemd-analyze security: %s", lines[len(lines)-1])
	if err != nil {
		t.Fatalf("systemd-analyze security over 2.0: %v\n%s", err, out)
	}
}

// unitStart runs the node the way the installed unit does: its ExecStart
// and Environment lines, %d (the credentials directory) holding copies of
// the secret and token as LoadCredential makes them, and the installed
// cluster.yaml with its paths moved under root and its ports on loopback.
// Then it reloads the node as ExecReload does (SIGHUP).
func unitStart(t *testing.T, root, unit string) {
	t.Helper()
	creds := t.TempDir()
	var argv, env []string
	for _, line := range strings.Split(unit, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.ReplaceAll(v, "%d", creds)
		switch k {
		case "ExecStart":
			argv = strings.Fields(v)
		case "Environment":
			env = append(env, v)
		case "LoadCredential":
			id, src, _ := strings.Cut(v, ":")
			b, err := os.ReadFile(filepath.Join(root, src))
			if err != nil {
				t.Fatalf("LoadCredential=%s: %v", v, err)
			}
			if err := os.WriteFile(filepath.Join(creds, id), b, 0o400); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(argv) < 2 || argv[0] != "/usr/local/bin/ussync" {
		t.Fatalf("ExecStart: %q", argv)
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc/ussync/cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The secret and the token must come from the credentials directory
	// (USSYNC_SECRET_FILE, USSYNC_API_TOKEN_FILE): the config's secret_file
	// and token_file point nowhere.
	moved := strings.NewReplacer(
		"/etc/ussync/secret", filepath.Join(root, "etc/ussync/no-such-secret"),
		"/etc/ussync/api-token", filepath.Join(root, "etc/ussync/no-such-token"),
		"/etc/ussync/", filepath.Join(root, "etc/ussync")+"/",
		"/var/lib/ussync", t.TempDir(),
		// No traffic leaves loopback: the join address given at install goes.
		"  join:\n    - 192.0.2.7:7946\n", "  join: []\n",
	).Replace(string(conf))
	confPath := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(confPath, []byte(moved), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, a := range argv {
		if a == "/etc/ussync/cluster.yaml" {
			argv[i] = confPath
		}
	}
	var reloadArgv []string
	for _, line := range strings.Split(unit, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecReload="); ok {
			reloadArgv = strings.Fields(v)
		}
	}
	if len(reloadArgv) != 3 || reloadArgv[1] != "-HUP" || reloadArgv[2] != "$MAINPID" {
		t.Fatalf("ExecReload: %q, want kill -HUP $MAINPID", reloadArgv)
	}
	token, err := os.ReadFile(filepath.Join(creds, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: filepath.Join(root, argv[0]), token: strings.TrimSpace(string(token)), http: &http.Client{Transport: &http.Transport{Proxy: nil}}}
	t.Cleanup(c.http.CloseIdleConnections)
	a := &agent{name: "site-a"}
	a.gossip, a.api, a.public = freeAddr(t, true), freeAddr(t, false), freeAddr(t, false)
	p := &proc{done: make(chan struct{})}
	args := append(argv[1:], "--profile", "local", "--bind", a.gossip, "--api", a.api, "--public", a.public)
	p.cmd = exec.Command(c.bin, args...)
	p.cmd.Env = cleanEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = procAttr()
	a.runs = append(a.runs, p)
	t.Cleanup(func() { c.stop(a) })
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	c.eventually(startTimeout, "the node to answer its status with the installed token", func() string {
		if p.exited() {
			t.Fatalf("the node exited: %s\n%s", p.describe(), p.out.String())
		}
		var st struct {
			Node    string `json:"node"`
			SiteURL string `json:"site_url"`
		}
		code, raw, err := c.do(a, "GET", "/v1/status", nil, &st)
		if err != nil || code != http.StatusOK {
			return fmt.Sprintf("%d %v %s", code, err, raw)
		}
		if st.Node != "site-a" || st.SiteURL != "https://site-a.example/" {
			return fmt.Sprintf("status %+v", st)
		}
		return ""
	})

	// The operator's CLI on the machine reads the installed token file
	// through USSYNC_API_TOKEN_FILE (root reads it: 0600 root) and asks the
	// node for its keyring: the one secret install.sh made.
	cmd := exec.Command(c.bin, "keys", "list", "--api", "http://"+a.api)
	cmd.Env = cleanEnv("USSYNC_API_TOKEN_FILE=" + filepath.Join(root, "etc/ussync/api-token"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "keys held by 1 member: 1 answered\n") || !strings.Contains(string(out), " 1/1 ") {
		t.Errorf("ussync keys list with USSYNC_API_TOKEN_FILE: %v\n%s", err, out)
	}

	// systemctl reload: ExecReload's kill -HUP, with the credentials as they
	// are. The node reads the same configuration again: nothing to apply,
	// no error, and the token still works.
	reload := exec.Command(reloadArgv[0], reloadArgv[1], strconv.Itoa(p.cmd.Process.Pid))
	if out, err := reload.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", reload, err, out)
	}
	c.eventually(startTimeout, "the reload in the node's status", func() string {
		var st struct {
			Reload *struct {
				Applied []string `json:"applied"`
				Restart []string `json:"restart"`
				Error   string   `json:"error"`
			} `json:"reload"`
		}
		code, raw, err := c.do(a, "GET", "/v1/status", nil, &st)
		if err != nil || code != http.StatusOK {
			return fmt.Sprintf("%d %v %s", code, err, raw)
		}
		if st.Reload == nil {
			return "no reload yet"
		}
		if st.Reload.Error != "" || len(st.Reload.Applied) != 0 || len(st.Reload.Restart) != 0 {
			t.Fatalf("reload: %s", raw)
		}
		return ""
	})
}
