package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/ussync/ussync/crypto"
)

// The node's keyring of cluster secrets, and how it is kept.
//
// As Consul keeps its gossip keyring in <data_dir>/serf/local.keyring, a
// node keeps its keyring in its data dir (keyringFileName, 0600, the
// secrets in base64 like the secret file: never logged, never in a
// backup), so that the keys installed, used and removed at run time
// (`ussync keys ...`) outlive a restart.
//
// The configuration's secrets (gossip.secret_file, gossip.secrets,
// USSYNC_SECRET) seed the keyring on the node's first start. After that,
// what counts is how the configuration changes: at each start and each
// reload (SIGHUP) the node compares the configuration's secrets with those
// it held at the previous load (their fingerprints are kept beside the
// keyring) and applies the difference as the keys commands would, locally:
//
//   - a secret added to the configuration is installed;
//   - a new first secret (primary) is used;
//   - a secret removed from the configuration is removed from the keyring,
//     unless it is the keyring's primary (a warning says so).
//
// So the old way of rotating (edit the secret file on every node, reload
// each, three times) still works, and a rotation done at run time is not
// undone by a restart whose secret file still holds the old key: that file
// did not change. `ussync status` and --print-config show both.

// keyringFileName is the keyring's file in the data dir.
const keyringFileName = "keyring.json"

// keyringState is the keyring file.
type keyringState struct {
	// Version is the file's format, 1.
	Version int `json:"version"`
	// Keys are the secrets, base64, primary first.
	Keys []string `json:"keys"`
	// Config are the fingerprints of the configuration's secrets at the
	// last load, primary first.
	Config []string `json:"config"`
}

// keyringChange is what loading the configuration's secrets did.
type keyringChange struct {
	Installed []string // fingerprints
	Used      string   // the fingerprint made primary, or ""
	Removed   []string
	// Kept are secrets removed from the configuration but kept because
	// they are the keyring's primary.
	Kept []string
}

// Empty reports whether the load changed nothing.
func (c keyringChange) Empty() bool {
	return len(c.Installed) == 0 && c.Used == "" && len(c.Removed) == 0
}

// nodeKeyring is the node's crypto.Keyring and its file. Changes are
// serialized; the keyring itself is safe for concurrent use.
type nodeKeyring struct {
	ring *crypto.Keyring
	path string

	mu     sync.Mutex
	config []string // fingerprints of the configuration's secrets at the last load
}

// openKeyring loads the keyring of dataDir, or makes it from config (the
// configuration's secrets) on a first start, then applies the change of
// the configuration since the last load. It writes the file back.
func openKeyring(dataDir string, config *crypto.Keyring) (*nodeKeyring, keyringChange, error) {
	k, ch, _, err := loadKeyring(dataDir, config)
	if err != nil {
		return nil, ch, err
	}
	return k, ch, k.saveLocked()
}

// loadKeyring is openKeyring without writing anything: the keyring a start
// with config would run with, and whether it is made from config alone
// (fresh: no keyring file yet).
func loadKeyring(dataDir string, config *crypto.Keyring) (k *nodeKeyring, ch keyringChange, fresh bool, err error) {
	k = &nodeKeyring{path: filepath.Join(dataDir, keyringFileName)}
	b, err := os.ReadFile(k.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		k.ring = crypto.NewKeyring(config.Primary(), config.Secrets()[1:]...)
		k.config = fingerprints(config)
		return k, keyringChange{}, true, nil
	case err != nil:
		return nil, keyringChange{}, false, fmt.Errorf("read keyring: %w", err)
	}
	var st keyringState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != 1 || len(st.Keys) == 0 {
		return nil, keyringChange{}, false, fmt.Errorf("keyring %s: not a keyring file of this version; move it away to start from the configuration's secrets", k.path)
	}
	var secrets []crypto.Secret
	for i, text := range st.Keys {
		s, err := crypto.ParseSecret(text)
		if err != nil {
			return nil, keyringChange{}, false, fmt.Errorf("keyring %s: key %d: %w", k.path, i+1, err)
		}
		secrets = append(secrets, s)
	}
	k.ring = crypto.NewKeyring(secrets[0], secrets[1:]...)
	k.config = st.Config
	return k, k.applyConfigLocked(config), false, nil
}

// fingerprints lists a keyring's fingerprints, primary first.
func fingerprints(kr *crypto.Keyring) []string {
	var out []string
	for _, ki := range kr.Keys() {
		out = append(out, ki.Fingerprint)
	}
	return out
}

// reloadConfig applies the change of the configuration's secrets since the
// last load, and saves the keyring.
func (k *nodeKeyring) reloadConfig(config *crypto.Keyring) (keyringChange, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch := k.applyConfigLocked(config)
	return ch, k.saveLocked()
}

// applyConfigLocked installs, uses and removes what the configuration's
// secrets gained, moved and lost since the last load.
func (k *nodeKeyring) applyConfigLocked(config *crypto.Keyring) keyringChange {
	var ch keyringChange
	now := fingerprints(config)
	held := map[string]bool{}
	for _, fp := range fingerprints(k.ring) {
		held[fp] = true
	}
	for _, s := range config.Secrets() {
		fp := s.Fingerprint()
		if !slices.Contains(k.config, fp) && !held[fp] {
			k.ring.Install(s)
			ch.Installed = append(ch.Installed, fp)
		}
	}
	if len(k.config) == 0 || now[0] != k.config[0] {
		if k.ring.Keys()[0].Fingerprint != now[0] {
			if !held[now[0]] && !slices.Contains(ch.Installed, now[0]) {
				k.ring.Install(config.Primary())
				ch.Installed = append(ch.Installed, now[0])
			}
			_ = k.ring.Use(now[0]) // installed just above if it was not
			ch.Used = now[0]
		}
	}
	for _, fp := range k.config {
		if slices.Contains(now, fp) {
			continue
		}
		switch err := k.ring.Remove(fp); {
		case err == nil:
			ch.Removed = append(ch.Removed, fp)
		case errors.Is(err, crypto.ErrRemovePrimary):
			ch.Kept = append(ch.Kept, fp)
		}
	}
	k.config = now
	return ch
}

// saveLocked writes the keyring file: a new file, renamed over the old one.
func (k *nodeKeyring) saveLocked() error {
	st := keyringState{Version: 1, Config: k.config}
	for _, s := range k.ring.Secrets() {
		st.Keys = append(st.Keys, s.Encode())
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	tmp := k.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, k.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save keyring: %w", err)
	}
	return nil
}

// save writes the keyring file after a change made at run time.
func (k *nodeKeyring) save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.saveLocked()
}

// configFingerprints are the configuration's secrets at the last load.
func (k *nodeKeyring) configFingerprints() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.config)
}

// install adds s (keys install) and saves the keyring; changed is false
// when it was there already.
func (k *nodeKeyring) install(s crypto.Secret) (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if slices.Contains(fingerprints(k.ring), s.Fingerprint()) {
		return false, nil
	}
	k.ring.Install(s)
	return true, k.saveLocked()
}

// use makes the key of fp the primary (keys use) and saves the keyring. A
// key not installed here is an error: install it everywhere first.
func (k *nodeKeyring) use(fp string) (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := fingerprints(k.ring)
	switch {
	case !slices.Contains(keys, fp):
		return false, fmt.Errorf("key %s is not installed here: install it on every member first (ussync keys install)", fp)
	case keys[0] == fp:
		return false, nil
	}
	if err := k.ring.Use(fp); err != nil {
		return false, err
	}
	return true, k.saveLocked()
}

// remove drops the key of fp (keys remove) and saves the keyring. The
// primary is refused; a key not installed here is no change.
func (k *nodeKeyring) remove(fp string) (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := fingerprints(k.ring)
	switch {
	case !slices.Contains(keys, fp):
		return false, nil
	case keys[0] == fp:
		return false, fmt.Errorf("key %s is the primary here: make another key primary first (ussync keys use): %w", fp, ErrKeyPrimary)
	}
	if err := k.ring.Remove(fp); err != nil {
		return false, err
	}
	return true, k.saveLocked()
}
