package node

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ussync/ussync/crypto"
)

func testSecrets(t *testing.T, n int) []crypto.Secret {
	t.Helper()
	out := make([]crypto.Secret, n)
	for i := range out {
		s, err := crypto.GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

func ringOf(s ...crypto.Secret) *crypto.Keyring { return crypto.NewKeyring(s[0], s[1:]...) }

func fps(s ...crypto.Secret) []string {
	var out []string
	for _, x := range s {
		out = append(out, x.Fingerprint())
	}
	return out
}

// TestKeyring_ConfigChangesApply: the configuration's secrets seed the
// keyring, then apply as changes (install, use, remove) at each load, and
// never undo a change made at run time while they stay the same.
func TestKeyring_ConfigChangesApply(t *testing.T) {
	dir := t.TempDir()
	s := testSecrets(t, 4)
	a, b, c, d := s[0], s[1], s[2], s[3]

	k, ch, err := openKeyring(dir, ringOf(a))
	if err != nil || !ch.Empty() || !slices.Equal(fingerprints(k.ring), fps(a)) {
		t.Fatalf("first start: %v %+v %v", err, ch, fingerprints(k.ring))
	}
	st, err := os.Stat(filepath.Join(dir, keyringFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file: %v %v", err, st)
	}

	// A change at run time (keys install b, use b, remove a), saved.
	k.ring.Install(b)
	if err := k.ring.Use(b.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if err := k.ring.Remove(a.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if err := k.save(); err != nil {
		t.Fatal(err)
	}
	// A restart with the configuration unchanged (still a) keeps it.
	k, ch, err = openKeyring(dir, ringOf(a))
	if err != nil || !ch.Empty() || !slices.Equal(fingerprints(k.ring), fps(b)) {
		t.Fatalf("restart, configuration unchanged: %v %+v %v", err, ch, fingerprints(k.ring))
	}

	// The configuration gains c (second): installed.
	if ch, err = k.reloadConfig(ringOf(a, c)); err != nil || !slices.Equal(ch.Installed, fps(c)) || ch.Used != "" {
		t.Fatalf("add c: %v %+v", err, ch)
	}
	// c first: used; a is not installed again (it was there before).
	if ch, err = k.reloadConfig(ringOf(c, a)); err != nil || ch.Used != c.Fingerprint() || len(ch.Installed) != 0 {
		t.Fatalf("use c: %v %+v", err, ch)
	}
	if got := fingerprints(k.ring); !slices.Equal(got, fps(c, b)) {
		t.Fatalf("after use c: %v", got)
	}
	// d alone: installed and used first, so that c, no longer the
	// primary, is removed.
	if ch, err = k.reloadConfig(ringOf(d)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Installed, fps(d)) || ch.Used != d.Fingerprint() || !slices.Equal(ch.Removed, fps(c)) || len(ch.Kept) != 0 {
		t.Fatalf("d alone: %+v", ch)
	}
	if got := fingerprints(k.ring); !slices.Equal(got, fps(d, b)) {
		t.Fatalf("after d alone: %v", got)
	}

	// Read back from the file.
	k2, ch, err := openKeyring(dir, ringOf(d))
	if err != nil || !ch.Empty() || !slices.Equal(fingerprints(k2.ring), fps(d, b)) {
		t.Fatalf("reopen: %v %+v %v", err, ch, fingerprints(k2.ring))
	}
	raw, _ := os.ReadFile(filepath.Join(dir, keyringFileName))
	if !strings.Contains(string(raw), d.Encode()) || !strings.Contains(string(raw), `"version": 1`) {
		t.Errorf("file: %s", raw)
	}

	// The primary removed from the configuration while no other secret is
	// named there to replace it is kept, and said so.
	k2.ring.Install(a)
	if err := k2.ring.Use(a.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if ch, err = k2.reloadConfig(ringOf(d, a)); err != nil || !slices.Equal(ch.Installed, nil) {
		t.Fatalf("a named: %v %+v", err, ch)
	}
	if ch, err = k2.reloadConfig(ringOf(d)); err != nil || !slices.Equal(ch.Kept, fps(a)) || !slices.Contains(fingerprints(k2.ring), a.Fingerprint()) {
		t.Fatalf("the primary dropped from the configuration: %v %+v %v", err, ch, fingerprints(k2.ring))
	}
}

func TestKeyring_BadFile(t *testing.T) {
	dir := t.TempDir()
	s := testSecrets(t, 1)
	for _, body := range []string{"{", `{"version":2,"keys":["x"]}`, `{"version":1,"keys":[]}`, `{"version":1,"keys":["bad"]}`} {
		if err := os.WriteFile(filepath.Join(dir, keyringFileName), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := openKeyring(dir, ringOf(s...))
		if err == nil || !strings.Contains(err.Error(), "keyring") {
			t.Errorf("%s: %v", body, err)
		}
	}
}
