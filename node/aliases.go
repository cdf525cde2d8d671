package node

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// aliases are the cookie tokens this site minted when it accepted a
// hand-off ticket (docs/handoff.md, "Each site its own cookie"): a ticket
// carries a session's id, never a token, and the site that redeems it
// mints a token of its own and keeps sha256(token) → session id. The session
// check stays GET /v1/sessions/{sha256(cookie)} on every site; a token
// minted here means nothing to any other site, so whoever sees a ticket
// (every member of its route) or one site's cookie cannot use it elsewhere.
//
// Aliases are node-local (the store's local keys, never gossiped): one per
// session and site, they would multiply the replicated state by the number
// of sites. A data dir lost loses them: that site's browsers present a
// cookie the node no longer knows (404), and get a session there again by
// the next hand-off (lazy mode asks at once) or log-in. The session itself,
// and every other site's cookie, are unaffected. Each entry expires with its
// session. It is safe for concurrent use.
type aliases struct {
	store *session.Store
	mu    sync.RWMutex
	// m caches resolved aliases (alias → session id, in hex), at most
	// maxCachedAliases: the session check reads it on every page view.
	m map[[32]byte]string
}

const (
	// keyAlias + hex alias -> raw session id (32 bytes), until the session
	// expires.
	keyAlias = "alias/"
	// maxCachedAliases bounds aliases.m (about 15 MB); past it an entry
	// is dropped at random, and read again from the store when needed.
	maxCachedAliases = 100_000
)

func newAliases(st *session.Store) *aliases {
	return &aliases{store: st, m: map[[32]byte]string{}}
}

// key decodes a session id (64 hex characters) for the cache.
func aliasKey(id string) ([32]byte, bool) {
	var k [32]byte
	if !crypto.ValidSessionID(id) {
		return k, false
	}
	_, err := hex.Decode(k[:], []byte(id))
	return k, err == nil
}

// mint makes a new cookie token for session sid on this site, valid until
// the session expires, and returns it.
func (a *aliases) mint(sid string, expires time.Time) (string, error) {
	token, alias, err := crypto.NewToken()
	if err != nil {
		return "", err
	}
	sk, ok := aliasKey(sid)
	if !ok {
		return "", fmt.Errorf("alias: %q is not a session id", sid)
	}
	// Badger's TTL only cleans up: the session's own state decides.
	ttl := expires.Sub(a.store.Now())
	if err := a.store.LocalPut(keyAlias+alias, sk[:], max(ttl, 0)+time.Minute); err != nil {
		return "", fmt.Errorf("store alias: %w", err)
	}
	ak, _ := aliasKey(alias)
	a.remember(ak, sid)
	return token, nil
}

func (a *aliases) remember(ak [32]byte, sid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.m) >= maxCachedAliases {
		for k := range a.m {
			delete(a.m, k)
			break
		}
	}
	a.m[ak] = sid
}

// cached returns the session an alias stands for when it is in memory: a
// map lookup, what the hot path of the session check pays for aliases.
func (a *aliases) cached(id string) (string, bool) {
	ak, ok := aliasKey(id)
	if !ok {
		return "", false
	}
	a.mu.RLock()
	sid, ok := a.m[ak]
	a.mu.RUnlock()
	return sid, ok
}

// lookup returns the session an alias stands for, from memory or the
// store; ok is false when id is no alias of this site.
func (a *aliases) lookup(id string) (string, bool, error) {
	if sid, ok := a.cached(id); ok {
		return sid, true, nil
	}
	ak, ok := aliasKey(id)
	if !ok {
		return "", false, nil
	}
	v, err := a.store.LocalGet(keyAlias + id)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read alias: %w", err)
	case len(v) != 32:
		return "", false, nil
	}
	sid := hex.EncodeToString(v)
	a.remember(ak, sid)
	return sid, true, nil
}
