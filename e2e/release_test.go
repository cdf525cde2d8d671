//go:build unix

package e2e

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ussync/ussync/internal/testenv"
)

// versionOf runs `bin version` and returns its "key value" lines.
func versionOf(t *testing.T, bin string) map[string]string {
	t.Helper()
	cmd := exec.Command(bin, "version")
	cmd.Env = cleanEnv()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, " ")
		m[k] = v
	}
	return m
}

// advertised is the version a one-node cluster of bin shows in its status,
// for itself and in its member list.
func advertised(t *testing.T, bin string) (self, member string) {
	t.Helper()
	c := newClusterWith(t, 0, nil)
	c.bin = bin
	a := c.add()
	var st struct {
		Version string `json:"version"`
		Members []struct {
			Version string `json:"version"`
		} `json:"members"`
	}
	c.must(a, "GET", "/v1/status", nil, &st, http.StatusOK)
	if len(st.Members) != 1 {
		t.Fatalf("members: %+v", st.Members)
	}
	return st.Version, st.Members[0].Version
}

// TestRelease_HostArch: scripts/release.sh builds this machine's archive: a
// static binary (CGO off) stamped with the version, the commit and the build
// date, which it prints and advertises, beside the docs and examples, and a
// SHA256SUMS that matches.
func TestRelease_HostArch(t *testing.T) {
	ussyncBinary(t) // skips under -short; the cluster below needs it built
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Missing(t, "no git (release.sh stamps the commit with it)", "scripts/release.sh", "apt-get install -y git")
	}
	root := moduleRoot(t)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("not a git checkout (%v)", err), "scripts/release.sh", "run the tests in a clone of the repository")
	}
	out := t.TempDir()
	const version = "9.8.7-e2e"
	cmd := exec.Command("bash", filepath.Join(root, "scripts/release.sh"),
		"--version", version, "--arch", runtime.GOARCH, "--out", out, "--allow-dirty")
	cmd.Env = cleanEnv("SOURCE_DATE_EPOCH=1795000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, b)
	}

	name := fmt.Sprintf("ussync_%s_linux_%s", version, runtime.GOARCH)
	archive := filepath.Join(out, name+".tar.gz")
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if want := hex.EncodeToString(sum[:]) + "  " + name + ".tar.gz\n"; string(sums) != want {
		t.Fatalf("SHA256SUMS:\n%s\nwant:\n%s", sums, want)
	}

	// Unpack, and check what the archive holds.
	dir := t.TempDir()
	gz, err := gzip.NewReader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 1795000000 {
			t.Errorf("%s: owner %d:%d, time %v; want 0:0 at SOURCE_DATE_EPOCH", h.Name, h.Uid, h.Gid, h.ModTime)
		}
		files[h.Name] = true
		if h.Typeflag != tar.TypeReg {
			continue
		}
		path := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	for _, f := range []string{"ussync", "README.md", "CHANGELOG.md", "cluster.yaml", "install.sh",
		"docs/operations.md", "examples/nginx/ussync-site.conf", "examples/caddy/Caddyfile", "examples/systemd/ussync.service"} {
		if !files[name+"/"+f] {
			t.Errorf("the archive lacks %s/%s", name, f)
		}
	}
	bin := filepath.Join(dir, name, "ussync")

	// CGO off: a static binary, no ELF interpreter.
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the release binary is dynamically linked (has PT_INTERP): was CGO on?")
		}
	}
	ef.Close()

	v := versionOf(t, bin)
	if v["ussync"] != version || v["commit"] != strings.TrimSpace(string(head)) || v["built"] != "2026-11-18T11:06:40Z" ||
		v["go"] != runtime.Version() || v["platform"] != "linux/"+runtime.GOARCH {
		t.Errorf("ussync version of the release binary: %v", v)
	}
	if self, member := advertised(t, bin); self != version || member != version {
		t.Errorf("the release node advertises %q (status) and %q (member list), want %q", self, member, version)
	}
}

// TestRelease_UnstampedVersion: a plain `go build` (the e2e binary) prints a
// development version naming its commit when the toolchain could record it
// (a git checkout whose .git is a directory: the go command does not see
// worktrees), and advertises that same version.
func TestRelease_UnstampedVersion(t *testing.T) {
	bin := ussyncBinary(t)
	v := versionOf(t, bin)
	root := moduleRoot(t)
	if fi, err := os.Stat(filepath.Join(root, ".git")); err == nil && fi.IsDir() {
		head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
		if err == nil {
			sha := strings.TrimSpace(string(head))
			if c, _, _ := strings.Cut(v["commit"], " "); c != sha || !strings.Contains(v["ussync"], "+"+sha[:12]) {
				t.Errorf("unstamped build of %s: %v", sha, v)
			}
		}
	} else if v["commit"] != "unknown" {
		t.Errorf("no VCS information to read, yet: %v", v)
	}
	if _, ok := v["built"]; ok {
		t.Errorf("an unstamped build claims a build date: %v", v)
	}
	if self, member := advertised(t, bin); self != v["ussync"] || member != v["ussync"] {
		t.Errorf("the node advertises %q (status) and %q (member list); ussync version says %q", self, member, v["ussync"])
	}
}
