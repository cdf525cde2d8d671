package node

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/session"
)

// siteUsers is the set of users this site knows, and which of them it was
// told of by a ticket only (new users its backend has not acknowledged).
// It is node-local: kept under the store's local keys, never gossiped. A
// user is known once the site's backend has PUT them, or they have held a
// session here: a login on this node, or a ticket redeemed here. A user
// first known by a ticket is new until the backend PUTs it (or logs it in
// here); the sessions redeemed for it meanwhile say "new_user": true. It is
// safe for concurrent use.
type siteUsers struct {
	store *session.Store

	once    sync.Once
	loadErr error
	count   atomic.Int64 // len(mu.pending): the session check's fast path
	// acked holds emails known to be acknowledged, up to maxAcked of them:
	// acknowledged is final, and every login asks (a store read each).
	acked  sync.Map
	nAcked atomic.Int64
	// writeMu serializes acknowledge and redeemed, so that a redemption
	// racing an acknowledgement cannot flag the user new again after it.
	writeMu sync.Mutex
	mu      struct {
		sync.Mutex
		pending map[string]pendingUser // by session id
	}
}

// pendingUser is a session redeemed here for a user not yet acknowledged.
type pendingUser struct {
	email string
	until time.Time // the session's expiry: the entry goes with it
}

// Local keys of the known-user set.
const (
	keyKnown   = "known/"    // + email -> "" (acknowledged) or "new"
	keyNewUser = "new-user/" // + session id -> email, until the session expires
	knownNew   = "new"
)

func newSiteUsers(st *session.Store) *siteUsers { return &siteUsers{store: st} }

// load reads the pending sessions from the store, once.
func (k *siteUsers) load() error {
	k.once.Do(func() {
		now := k.store.Now()
		k.mu.Lock()
		defer k.mu.Unlock()
		k.mu.pending = map[string]pendingUser{}
		k.loadErr = k.store.LocalScan(keyNewUser, func(key string, v []byte, expires time.Time) error {
			if expires.IsZero() || expires.After(now) {
				k.mu.pending[strings.TrimPrefix(key, keyNewUser)] = pendingUser{email: string(v), until: expires}
			}
			return nil
		})
		k.count.Store(int64(len(k.mu.pending)))
	})
	return k.loadErr
}

// known reports whether this site knows the user. A user without a mark
// who has a session created on this node (name) is known too: history from
// before the marks existed (the next redemption marks it).
func (k *siteUsers) known(email, name string) (bool, error) {
	_, err := k.store.LocalGet(keyKnown + email)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, session.ErrNotFound) {
		return false, err
	}
	return k.loggedInHere(email, name)
}

// loggedInHere reports whether the user has a session created on this node.
func (k *siteUsers) loggedInHere(email, name string) (bool, error) {
	page, _, err := k.store.ListSessions(session.SessionFilter{Email: email, Site: name, Limit: 1})
	return len(page) > 0, err
}

// acknowledge marks the user known and no longer new: the site's backend
// has PUT it, or logged it in here.
func (k *siteUsers) acknowledge(email string) error {
	if _, ok := k.acked.Load(email); ok {
		return nil
	}
	if v, err := k.store.LocalGet(keyKnown + email); err == nil && len(v) == 0 {
		k.remember(email)
		return nil // the common case: known already, no write
	}
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	return k.acknowledgeLocked(email)
}

// maxAcked bounds siteUsers.acked (about 10 MB); past it, the store answers.
const maxAcked = 100_000

func (k *siteUsers) remember(email string) {
	if k.nAcked.Load() < maxAcked {
		if _, had := k.acked.LoadOrStore(email, struct{}{}); !had {
			k.nAcked.Add(1)
		}
	}
}

func (k *siteUsers) acknowledgeLocked(email string) error {
	if err := k.store.LocalPut(keyKnown+email, nil, 0); err != nil {
		return err
	}
	k.remember(email)
	if err := k.load(); err != nil {
		return err
	}
	k.mu.Lock()
	var done []string
	for id, p := range k.mu.pending {
		if p.email == email {
			done = append(done, id)
			delete(k.mu.pending, id)
		}
	}
	k.count.Store(int64(len(k.mu.pending)))
	k.mu.Unlock()
	for _, id := range done {
		if err := k.store.LocalDelete(keyNewUser + id); err != nil {
			return err
		}
	}
	return nil
}

// redeemed records that a session of the user was redeemed here (node
// name) and reports whether the user is new to this site (unknown until
// now, or not yet acknowledged); a new user's session stays flagged until
// then.
func (k *siteUsers) redeemed(s *session.Session, name string) (bool, error) {
	k.writeMu.Lock()
	defer k.writeMu.Unlock()
	v, err := k.store.LocalGet(keyKnown + s.Email)
	switch {
	case err == nil && string(v) != knownNew:
		return false, nil
	case errors.Is(err, session.ErrNotFound):
		if here, err := k.loggedInHere(s.Email, name); err != nil {
			return false, err
		} else if here {
			return false, k.acknowledgeLocked(s.Email)
		}
	case err != nil:
		return false, err
	}
	if err := k.load(); err != nil {
		return false, err
	}
	until := time.UnixMilli(s.ExpiresAt)
	ttl := until.Sub(k.store.Now()) + time.Minute
	if err := k.store.LocalPut(keyNewUser+s.ID, []byte(s.Email), max(ttl, time.Minute)); err != nil {
		return false, err
	}
	if err := k.store.LocalPut(keyKnown+s.Email, []byte(knownNew), 0); err != nil {
		return false, err
	}
	k.mu.Lock()
	k.mu.pending[s.ID] = pendingUser{email: s.Email, until: until}
	k.count.Store(int64(len(k.mu.pending)))
	k.mu.Unlock()
	return true, nil
}

// isNew reports whether the session was redeemed here for a user the
// site's backend has not acknowledged yet. It costs nothing while no
// session is pending (the session check calls it on every page view).
func (k *siteUsers) isNew(id string) bool {
	if k.load() != nil || k.count.Load() == 0 {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.mu.pending[id]
	if ok && !p.until.IsZero() && !k.store.Now().Before(p.until) {
		delete(k.mu.pending, id) // expired: the store's copy goes by its TTL
		k.count.Store(int64(len(k.mu.pending)))
		return false
	}
	return ok
}
