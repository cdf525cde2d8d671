package session

import (
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// prefixLocal holds this node's own data, never replicated, never in the
// digest: verification codes, the users this site knows, and the like.
const prefixLocal = 'l'

func localKey(key string) []byte { return append([]byte{prefixLocal}, key...) }

// LocalPut stores a value under key for this node only. A ttl of zero keeps
// it until LocalDelete; otherwise it disappears after ttl.
func (s *Store) LocalPut(key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	if err := s.space.check(); err != nil {
		return err
	}
	e := badger.NewEntry(localKey(key), value)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.SetEntry(e) }); err != nil {
		return fmt.Errorf("local put: %w", err)
	}
	return nil
}

// LocalGet returns the value stored under key, or ErrNotFound.
func (s *Store) LocalGet(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(localKey(key))
		if err != nil {
			return err
		}
		out, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, ErrNotFound
	case errors.Is(err, badger.ErrDBClosed):
		return nil, ErrClosed
	case err != nil:
		return nil, fmt.Errorf("local get: %w", err)
	}
	return out, nil
}

// LocalDelete removes key (no error if absent).
func (s *Store) LocalDelete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	if err := s.space.check(); err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(localKey(key)) }); err != nil {
		return fmt.Errorf("local delete: %w", err)
	}
	return nil
}

// LocalUpdate reads the value under key (nil if absent), lets fn compute the
// new one and stores it, all under the store's write lock: read-modify-write
// without races (attempt counters, rate limits). fn returning a nil value
// deletes the key; an error from fn aborts and is returned.
func (s *Store) LocalUpdate(key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return ErrClosed
	}
	if err := s.space.check(); err != nil {
		return err
	}
	return s.db.Update(func(txn *badger.Txn) error {
		var old []byte
		item, err := txn.Get(localKey(key))
		switch {
		case err == nil:
			if old, err = item.ValueCopy(nil); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		val, err := fn(old)
		if err != nil {
			return err
		}
		if val == nil {
			return txn.Delete(localKey(key))
		}
		e := badger.NewEntry(localKey(key), val)
		if ttl > 0 {
			e = e.WithTTL(ttl)
		}
		return txn.SetEntry(e)
	})
}
