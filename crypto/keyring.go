package crypto

import (
	"crypto/cipher"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/chacha20poly1305"
)

// Keyring holds the cluster secrets: one primary, used to seal and sign, and
// any number of others, still accepted when opening and checking. Rotation
// follows Serf and Consul: Install the new secret on every node, Use it
// (make it primary) on every node, then Remove the old one.
//
// A Keyring is safe for concurrent use. It prints and logs only
// fingerprints. Build one with NewKeyring or ParseKeyring; the zero Keyring
// is not usable.
type Keyring struct {
	mu struct {
		sync.RWMutex
		keys []*ringKey // primary first; entries are immutable once built
	}
}

// ringKey is one secret with everything derived from it, computed once.
type ringKey struct {
	secret Secret
	fp     string                // Fingerprint()
	id     [fingerprintSize]byte // ticket key id: the fingerprint's bytes
	gossip [32]byte
	ticket cipher.AEAD
	code   [32]byte
}

func newRingKey(s Secret) *ringKey {
	k := &ringKey{secret: s, gossip: s.derive32(labelGossip), code: s.derive32(labelCode)}
	copy(k.id[:], s.derive(labelFingerprint, fingerprintSize))
	k.fp = s.Fingerprint()
	tk := s.derive32(labelTicket)
	aead, err := chacha20poly1305.NewX(tk[:])
	if err != nil { // only for a key of the wrong size
		panic("crypto: chacha20poly1305: " + err.Error())
	}
	k.ticket = aead
	return k
}

// KeyInfo describes one secret of a keyring without revealing it.
type KeyInfo struct {
	// Fingerprint is the secret's Fingerprint.
	Fingerprint string
	// Primary is true for the secret used to seal and sign.
	Primary bool
}

// NewKeyring returns a keyring with primary as its primary secret and others
// installed beside it. Duplicates are dropped.
func NewKeyring(primary Secret, others ...Secret) *Keyring {
	k := &Keyring{}
	k.mu.keys = []*ringKey{newRingKey(primary)}
	for _, s := range others {
		k.Install(s)
	}
	return k
}

// ParseKeyring parses secrets (see ParseSecret) separated by newlines and/or
// commas. Blank lines and lines starting with '#' are ignored; the first
// secret is the primary; duplicates are dropped. Text with no secret is
// ErrNoSecret. Errors name the position of a bad secret, never its text.
func ParseKeyring(text string) (*Keyring, error) {
	var secrets []Secret
	n := 0
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for field := range strings.SplitSeq(line, ",") {
			if strings.TrimSpace(field) == "" {
				continue
			}
			n++
			s, err := ParseSecret(field)
			if err != nil {
				return nil, fmt.Errorf("parse keyring: secret %d (line %d): %w", n, i+1, err)
			}
			secrets = append(secrets, s)
		}
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("parse keyring: %w", ErrNoSecret)
	}
	return NewKeyring(secrets[0], secrets[1:]...), nil
}

// Primary returns the primary secret.
func (k *Keyring) Primary() Secret {
	return k.primary().secret
}

// Secrets returns every secret, primary first. The slice is the caller's.
func (k *Keyring) Secrets() []Secret {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]Secret, len(k.mu.keys))
	for i, rk := range k.mu.keys {
		out[i] = rk.secret
	}
	return out
}

// Keys describes every secret, primary first.
func (k *Keyring) Keys() []KeyInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]KeyInfo, len(k.mu.keys))
	for i, rk := range k.mu.keys {
		out[i] = KeyInfo{Fingerprint: rk.fp, Primary: i == 0}
	}
	return out
}

// Install adds s as a non-primary secret. It is a no-op if s is already in
// the keyring.
func (k *Keyring) Install(s Secret) {
	rk := newRingKey(s) // derive outside the lock
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.indexLocked(rk.fp) >= 0 {
		return
	}
	k.mu.keys = append(k.mu.keys, rk)
}

// Use makes the secret with the given fingerprint the primary. The fingerprint
// may be upper case or carry the "secret:" prefix String prints. An unknown
// fingerprint is ErrUnknownKey.
func (k *Keyring) Use(fingerprint string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.indexLocked(fingerprint)
	if i < 0 {
		return fmt.Errorf("use key: %w", ErrUnknownKey)
	}
	rk := k.mu.keys[i]
	k.mu.keys = slices.Insert(slices.Delete(k.mu.keys, i, i+1), 0, rk)
	return nil
}

// Remove removes the secret with the given fingerprint. Removing the primary
// is ErrRemovePrimary; an unknown fingerprint is ErrUnknownKey.
func (k *Keyring) Remove(fingerprint string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.indexLocked(fingerprint)
	switch {
	case i < 0:
		return fmt.Errorf("remove key: %w", ErrUnknownKey)
	case i == 0:
		return fmt.Errorf("remove key: %w", ErrRemovePrimary)
	}
	k.mu.keys = slices.Delete(k.mu.keys, i, i+1)
	return nil
}

// GossipKeys returns the memberlist encryption keys: 32-byte AES-256 keys
// derived with HKDF-SHA256 (label "ussync gossip v1"), one per secret, primary
// first, and the primary's alone. primary is all[0]. The slices are the
// caller's (suitable for memberlist.NewKeyring(all, primary)).
func (k *Keyring) GossipKeys() (primary []byte, all [][]byte) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	all = make([][]byte, len(k.mu.keys))
	for i, rk := range k.mu.keys {
		all[i] = slices.Clone(rk.gossip[:])
	}
	return all[0], all
}

// String returns "keyring(primary secret:<fingerprint>, N secrets)".
func (k *Keyring) String() string {
	keys := k.Keys()
	return fmt.Sprintf("keyring(primary secret:%s, %d secrets)", keys[0].Fingerprint, len(keys))
}

// GoString returns the same as String.
func (k *Keyring) GoString() string { return k.String() }

// Format writes String for every fmt verb.
func (k *Keyring) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LogValue implements slog.LogValuer: the primary's fingerprint and every
// fingerprint.
func (k *Keyring) LogValue() slog.Value {
	keys := k.Keys()
	fps := make([]string, len(keys))
	for i, ki := range keys {
		fps[i] = ki.Fingerprint
	}
	return slog.GroupValue(
		slog.String("primary", fps[0]),
		slog.Any("keys", fps),
	)
}

func (k *Keyring) primary() *ringKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.mu.keys[0]
}

// snapshot returns the current keys, primary first. Entries are immutable,
// so the caller may use them without the lock.
func (k *Keyring) snapshot() []*ringKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Clone(k.mu.keys)
}

// indexLocked returns the index of the key with the fingerprint, or -1.
func (k *Keyring) indexLocked(fingerprint string) int {
	fp := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(fingerprint)), "secret:")
	for i, rk := range k.mu.keys {
		if rk.fp == fp {
			return i
		}
	}
	return -1
}
