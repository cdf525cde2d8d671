package session

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Listing limits.
const (
	// DefaultListLimit is the page size when a listing asks for none.
	DefaultListLimit = 50
	// MaxListLimit is the largest page a listing returns.
	MaxListLimit = 500
	// maxListScan bounds the index entries one page reads. A filter that
	// matches few sessions (a rare site, active sessions among a long
	// history) returns a short page, or an empty one, with a cursor to go on
	// from: a page costs at most this many entries, never the whole store.
	maxListScan = 20_000
)

// indexVersion names the layout of the listing indexes; a store opened
// with an older one (or none) rebuilds them at Open.
// Version 3 dropped the index by end (store.go) and put the session's end
// in the entries.
const indexVersion = "3"

var metaIndexKey = []byte{prefixMeta, 'i', 'n', 'd', 'e', 'x'}

// SessionFilter selects sessions for the admin listing.
type SessionFilter struct {
	Email  string // only this user's sessions ("" = everyone's); normalized
	Site   string // only sessions created at this node ("" = all)
	Active bool   // only sessions active now
	Oldest bool   // oldest first (default: newest first)
	After  string // opaque cursor from the previous page ("" = first page)
	Limit  int    // page size: default 50, at most 500
}

// Index entries. Both session indexes (by user, and of every session) hold,
// beside the key that orders them, what the listing and the sweeper filter
// on, so a session the filter refuses costs one index entry, not a record
// read:
//
//	<end ms:8> <flags:1> <site>
//
// The end is the time from which the session's retention runs
// (sweepEnd): its expiry, never before its creation. (Index version 2 held
// the expiry there; entries written by earlier builds of version 3 hold an
// ended session's end, and the sweeper writes them again when it meets
// them.)
const (
	entryEnded = 1 << iota // the session has ended
	entryLocal             // the session stays on its own site
)

func encodeEntry(s *Session) []byte {
	e := make([]byte, 0, 9+len(s.Site))
	e = binary.BigEndian.AppendUint64(e, uint64(sweepEnd(s)))
	var flags byte
	if s.Ended != 0 {
		flags |= entryEnded
	}
	if s.Local {
		flags |= entryLocal
	}
	return append(append(e, flags), s.Site...)
}

// indexEntry is a decoded entry.
type indexEntry struct {
	end   int64
	ended bool
	site  []byte
}

func decodeEntry(v []byte) (indexEntry, bool) {
	if len(v) < 9 {
		return indexEntry{}, false
	}
	return indexEntry{
		end:   int64(binary.BigEndian.Uint64(v)),
		ended: v[8]&entryEnded != 0,
		site:  v[9:],
	}, true
}

// allKey is the session's key in the index of every session.
func allKey(sess *Session) []byte {
	k := make([]byte, 0, 1+8+len(sess.ID))
	k = append(k, prefixAll)
	k = binary.BigEndian.AppendUint64(k, ^uint64(sess.Created))
	return append(k, sess.ID...)
}

func userIndexKey(email string) []byte {
	return append([]byte{prefixUserIndex}, email...)
}

// userSessionsPrefix is the prefix of a user's entries in the by-user index.
func userSessionsPrefix(email string) []byte {
	return append(append([]byte{prefixIndex}, email...), 0)
}

// upgradeIndexes builds the listing indexes of a store written before they
// existed (or with an older layout), once: one pass over every record. It
// deletes index version 2's index by end first.
func (s *Store) upgradeIndexes() error {
	var have []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaIndexKey)
		if err != nil {
			return err
		}
		have, err = item.ValueCopy(nil)
		return err
	})
	if err == nil && string(have) == indexVersion {
		return nil
	}
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("read index version: %w", err)
	}
	if err := s.space.check(); err != nil {
		return fmt.Errorf("build the listing indexes: %w", err)
	}
	if err := s.dropOldEndIndex(); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var r Record
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &r) }); err != nil {
				return fmt.Errorf("decode record %q: %w", it.Item().Key()[2:], err)
			}
			var err error
			switch {
			case r.User != nil:
				err = wb.Set(userIndexKey(r.User.Email), nil)
			case r.Session != nil:
				ent := encodeEntry(r.Session)
				if err = wb.Set(indexKey(r.Session), ent); err == nil {
					err = wb.Set(allKey(r.Session), ent)
				}
			}
			if err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err == nil {
		err = wb.Set(metaIndexKey, []byte(indexVersion))
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("build listing indexes: %w", err)
	}
	if n > 0 {
		s.log.Info("built the listing indexes", "records", n)
	}
	return nil
}

// dropOldEndIndex deletes index version 2's index by end, if the store has
// one (DropPrefix stops the writes and flushes: not for a new store).
func (s *Store) dropOldEndIndex() error {
	any := false
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixEnd}})
		defer it.Close()
		it.Rewind()
		any = it.Valid()
		return nil
	})
	if err == nil && any {
		err = s.db.DropPrefix([]byte{prefixEnd})
	}
	if err != nil {
		return fmt.Errorf("delete the index by end: %w", err)
	}
	return nil
}

// EncodeCursor and DecodeCursor turn an index position (the session's
// creation time and id) into the opaque cursor of a listing and back.
func encodeCursor(pos []byte) string { return base64.RawURLEncoding.EncodeToString(pos) }

func decodeCursor(c string) ([]byte, error) {
	pos, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(pos) < 9 || len(pos) > 8+128 {
		return nil, fmt.Errorf("%w: %q", ErrBadCursor, c)
	}
	return pos, nil
}

// ListSessions returns one page of sessions in creation order (newest first
// unless f.Oldest) and the cursor of the next page ("" when there is none).
// It reads an index, so a page costs the same with a million sessions: a
// page reads at most a bounded number of index entries, so a filter that
// matches few of them may return fewer than f.Limit sessions (even none)
// with a cursor to go on from. Paging is stable: a cursor is a position in
// the order, so sessions added or ended meanwhile never make a page repeat
// or skip one that was there before (a new session sorts first, newest;
// one that reaches this node late from a peer sorts by its creation time).
// A cursor that does not decode is ErrBadCursor.
func (s *Store) ListSessions(f SessionFilter) (page []Session, next string, err error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var pos []byte
	if f.After != "" {
		if pos, err = decodeCursor(f.After); err != nil {
			return nil, "", err
		}
	}
	prefix := []byte{prefixAll}
	if f.Email != "" {
		prefix = userSessionsPrefix(f.Email)
	}
	now := s.now()
	users := map[string]User{} // for the active filter
	userOf := func(email string) (User, error) {
		if u, ok := users[email]; ok {
			return u, nil
		}
		u, err := s.User(email)
		if errors.Is(err, ErrNotFound) {
			u, err = User{Email: email}, nil
		}
		users[email] = u
		return u, err
	}

	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: f.Oldest})
		defer it.Close()
		seek := append(bytes.Clone(prefix), pos...)
		if pos == nil && f.Oldest {
			seek = append(seek, bytes.Repeat([]byte{0xff}, 9)...) // past the last entry
		}
		var last []byte // the position of the last entry read
		scanned := 0
		for it.Seek(seek); it.Valid(); it.Next() {
			key := it.Item().Key()
			p := key[len(prefix):]
			if len(p) < 9 || (pos != nil && bytes.Equal(p, pos)) {
				continue
			}
			if scanned == maxListScan {
				// Out of budget: the next page goes on after the last entry
				// read (those before it are on this page or did not match).
				next = encodeCursor(last)
				return nil
			}
			scanned++
			last = append(last[:0], p...)
			id := string(p[8:])
			var ent indexEntry
			err := it.Item().Value(func(v []byte) error {
				var ok bool
				ent, ok = decodeEntry(v)
				if !ok {
					ent.end = 1<<63 - 1 // an entry of an old layout: judge by the record
				}
				return nil
			})
			if err != nil {
				return err
			}
			if f.Site != "" && ent.site != nil && string(ent.site) != f.Site {
				continue
			}
			if f.Active && (ent.ended || ent.expiredAt(now)) {
				continue
			}
			sess, ok, err := s.sessionIn(txn, id)
			if err != nil {
				return err
			}
			if !ok || (f.Site != "" && sess.Site != f.Site) {
				continue
			}
			if f.Active {
				u, err := userOf(sess.Email)
				if err != nil {
					return err
				}
				if sess.StateIn(u, s.Site(sess.Site), now) != StateActive {
					continue
				}
			}
			if len(page) == limit {
				// One more matches: there is a next page, from the last one shown.
				next = encodeCursor(allKeyPos(&page[len(page)-1]))
				return nil
			}
			page = append(page, sess)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	return page, next, nil
}

// allKeyPos is the session's position in either session index.
func allKeyPos(sess *Session) []byte { return allKey(sess)[1:] }

// sessionIn reads a session through the cache, or else in txn; ok is false
// when it is gone (swept since the index was read).
func (s *Store) sessionIn(txn *badger.Txn, id string) (Session, bool, error) {
	if r, ok := s.cache.get("s" + id); ok && r.Session != nil {
		return *r.Session, true, nil
	}
	r, _, err := getRecord(txn, recordKey("s"+id))
	if errors.Is(err, ErrNotFound) || (err == nil && r.Session == nil) {
		return Session{}, false, nil
	}
	if err != nil {
		return Session{}, false, err
	}
	return *r.Session, true, nil
}

// ListUsers returns one page of users in e-mail order, starting after the
// given e-mail ("" = first page), and the cursor of the next page ("" when
// there is none). limit is as for ListSessions.
func (s *Store) ListUsers(after string, limit int) (page []User, next string, err error) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	prefix := []byte{prefixUserIndex}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(append(bytes.Clone(prefix), after...)); it.Valid(); it.Next() {
			email := string(it.Item().Key()[1:])
			if email == after {
				continue
			}
			if len(page) == limit {
				next = page[len(page)-1].Email
				return nil
			}
			u, err := s.userIn(txn, email)
			if err != nil {
				return err
			}
			page = append(page, u)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	return page, next, nil
}

func (s *Store) userIn(txn *badger.Txn, email string) (User, error) {
	if r, ok := s.cache.get("u" + email); ok && r.User != nil {
		return *r.User, nil
	}
	r, _, err := getRecord(txn, recordKey("u"+email))
	if err == nil && r.User == nil {
		err = ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("read user: %w", err)
	}
	return *r.User, nil
}

// expiredAt reports whether an index entry's session is past its expiry.
// (Its end is its expiry while it has not ended, or its creation, if that
// is later: a session that expires before it is created is expired.)
func (e indexEntry) expiredAt(now time.Time) bool { return now.UnixMilli() >= e.end }
