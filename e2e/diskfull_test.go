//go:build linux

package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ussync/ussync/internal/testenv"
)

// smallDisk mounts a filesystem of size bytes for the test and returns its
// root: a tmpfs, or, where tmpfs cannot be mounted, an ext4 image on a loop
// device. Neither: the test skips loudly (fails under USSYNC_E2E_REQUIRE=1).
func smallDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "disk")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	tmpfsErr := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size))
	if tmpfsErr == nil {
		t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
		return mnt
	}
	// A loop device: an ext4 image the size of the disk.
	img := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err == nil {
		err = os.Truncate(img, size)
		var dev []byte
		if err == nil {
			err = exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).Run()
		}
		if err == nil {
			dev, err = exec.Command("losetup", "--find", "--show", img).Output()
		}
		if err == nil {
			loop := strings.TrimSpace(string(dev))
			t.Cleanup(func() { exec.Command("losetup", "--detach", loop).Run() })
			if err = syscall.Mount(loop, mnt, "ext4", 0, ""); err == nil {
				t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
				return mnt
			}
		}
		testenv.Missing(t, fmt.Sprintf("cannot mount a small filesystem (tmpfs: %v; loop device: %v)", tmpfsErr, err),
			"a node whose disk fills up", "run the tests as root, or in a container allowed to mount (CAP_SYS_ADMIN)")
	}
	return ""
}

// fill writes a file under dir until the filesystem has no room left, and
// returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create the filler: %v", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n := 1; ; n++ {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
		if n > 1<<14 {
			t.Fatal("fill: the disk never fills")
		}
	}
	// Also the last bytes a smaller write could take.
	for n := 4096; n > 0; n /= 2 {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// TestAgents_DiskFull: the data dir of a real node fills up. Its writes
// answer 503 storage_full (the process does not crash), its reads go on,
// it says so on /healthz, status and metrics, what it acknowledged before
// is kept, and once space returns it writes again and catches up with what
// its peer did meanwhile.
func TestAgents_DiskFull(t *testing.T) {
	disk := smallDisk(t, 160<<20)
	c := newClusterWith(t, 2, func(a *agent) {
		if a.name == "n1" {
			a.dir = filepath.Join(disk, "data")
		}
	})
	n0, n1 := c.agents[0], c.agents[1]
	const ann, bob = "ann@example.com", "bob@example.com"
	c.register(n0, ann)
	before := c.login(n1, ann)

	filler := fill(t, disk)
	// A write on the full node: refused, with a clear code; not a crash.
	var e struct {
		Error struct{ Code, Message string }
	}
	c.eventually(convergeTimeout, "n1 to refuse writes", func() string {
		code, raw, err := c.do(n1, "POST", "/v1/sessions", map[string]string{"email": ann}, &e)
		if err != nil || code != http.StatusServiceUnavailable || e.Error.Code != "storage_full" {
			return fmt.Sprintf("login on the full n1: %d %v %s (process %s)", code, err, raw, n1.cur().describe())
		}
		return ""
	})
	t.Logf("login on the full n1: %s", e.Error.Message)
	code, _, _ := c.do(n1, "PUT", "/v1/users/"+bob, map[string]string{"login": "bob", "verified_via": "registration"}, &e)
	if code != http.StatusServiceUnavailable || e.Error.Code != "storage_full" {
		t.Errorf("PUT on the full n1: %d %+v", code, e)
	}
	// Reads go on; the other node takes writes, n1 cannot apply them yet.
	if got, err := c.check(n1, before); err != nil || got != "200" {
		t.Errorf("the session acknowledged before the disk filled: %q %v", got, err)
	}
	c.must(n0, "PUT", "/v1/users/"+bob, map[string]string{"login": "bob", "verified_via": "registration"}, nil, http.StatusOK)
	during := c.login(n0, bob)
	c.must(n0, "DELETE", "/v1/sessions/"+before, nil, nil, http.StatusOK)

	var h health
	if code, raw, err := c.do(n1, "GET", "/healthz", nil, &h); err != nil || code != http.StatusOK || !h.StorageFull || h.Gossip != "storage_full" || !strings.Contains(h.Reason, "free") {
		t.Errorf("healthz of the full n1: %d %v %s", code, err, raw)
	}
	if m := c.metrics(n1); !strings.Contains(m, "\nussync_store_full 1") || !strings.Contains(m, `ussync_store_writes_refused_total`) {
		t.Errorf("n1's metrics do not say the disk is full")
	}
	if table := c.ussync(n1, "status"); !strings.Contains(table, "storage") {
		t.Errorf("status of the full n1:\n%s", table)
	}

	// Space returns: n1 writes again and catches up.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.eventually(convergeTimeout, "n1 to take writes again", func() string {
		code, raw, err := c.do(n1, "PUT", "/v1/users/carol@example.com", map[string]string{"login": "carol"}, nil)
		if err != nil || code != http.StatusOK {
			return fmt.Sprintf("PUT on n1: %d %v %s", code, err, raw)
		}
		return ""
	})
	// bob, registered on n0 while n1 was full, reaches n1 at once: the
	// refused applies made n1 catch up, and its round starts as soon as
	// the store accepts writes again (not at the next periodic push/pull).
	c.eventually(convergeTimeout, "bob verified on n1", func() string {
		var u struct {
			Verified bool `json:"verified"`
		}
		if code, raw, err := c.do(n1, "GET", "/v1/users/"+bob, nil, &u); err != nil || code != http.StatusOK || !u.Verified {
			return fmt.Sprintf("%d %v %s", code, err, raw)
		}
		return ""
	})
	// n1's administrator vouches for bob (a login travels only from a site
	// bound to the address).
	c.must(n1, "PUT", "/v1/users/"+bob, map[string]string{"verified_via": "admin"}, nil, http.StatusOK)
	after := c.login(n1, bob)
	c.waitSessions([]sessionWant{
		{"ann's, logged out on n0 while n1 was full", before, "410 session_ended logout"},
		{"bob's, logged in on n0 while n1 was full", during, "200"},
		{"bob's, on n1 once space returned", after, "200"},
	}, c.agents...)
	if code, raw, err := c.do(n1, "GET", "/healthz", nil, &h); err != nil || code != http.StatusOK {
		t.Errorf("healthz once space returned: %d %v %s", code, err, raw)
	}

	// What n1 acknowledged is on its disk: a crash and restart keep it.
	c.kill(n1)
	c.restart(n1)
	for _, id := range []string{after, during} {
		if got, err := c.check(n1, id); err != nil || got != "200" {
			t.Errorf("after a restart, n1 answers %q %v for an acknowledged session", got, err)
		}
	}
	for i, p := range n1.runs {
		if out := p.out.String(); strings.Contains(out, "SIGBUS") || strings.Contains(out, "unexpected fault address") {
			t.Errorf("run %d of n1 crashed:\n%s", i+1, out)
		}
	}
}
