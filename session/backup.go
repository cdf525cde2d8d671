package session

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Backups: a consistent copy of a whole store, taken while the node serves
// (one read transaction: a snapshot of one instant, whatever is written
// meanwhile), and a restore into an empty data directory.
//
// Everything the store holds is in it: the replicated records, their
// indexes, the node-local data (the users this site knows, pending
// verification codes, the API tokens' hashes, the activity history, the
// members remembered from the last run) and the replay cache of tickets,
// each entry with its expiry, so that a ticket redeemed before the backup
// cannot be redeemed again after a restore within its lifetime. The
// node's keyring (a file beside the store) is not: a backup holds no
// cluster secret.
//
// The file:
//
//	"ussync backup v1\n"             magic line, readable with head -1
//	gzip stream of:
//	  uvarint len, header (JSON)     BackupInfo
//	  entries, each:
//	    'e', uvarint len, key, uvarint len, value, uvarint expiry (Unix s, 0: none)
//	  'z', uvarint entries, uvarint users, uvarint sessions   the trailer
//
// A backup is complete only with its trailer and counts that match, and
// gzip's CRC checks the bytes: a truncated or damaged file is refused.

// backupMagic starts every backup file.
const backupMagic = "ussync backup v1\n"

// Tags of the backup stream.
const (
	backupEntry   = 'e'
	backupTrailer = 'z'
)

// maxBackupField bounds a key or value read from a backup (a record is a
// few hundred bytes; Badger's own limit on a value is far above).
const maxBackupField = 16 << 20

// ErrBadBackup means a backup file is not one, or is truncated or damaged.
var ErrBadBackup = errors.New("not a complete ussync backup")

// ErrNotEmpty means a restore was asked into a data directory that holds
// something.
var ErrNotEmpty = errors.New("the data directory is not empty")

// BackupInfo is a backup's header.
type BackupInfo struct {
	// Node is the name of the node the store belongs to.
	Node string `json:"node"`
	// Software is the version of ussync that wrote it.
	Software string `json:"software"`
	// CreatedAt is when the snapshot was taken.
	CreatedAt time.Time `json:"created_at"`
	// Users and Sessions are the store's counts when the backup started
	// (for progress: the trailer has the exact ones).
	Users    int `json:"users"`
	Sessions int `json:"sessions"`
}

// BackupCounts counts a backup's entries: every key of the store, and the
// records among them.
type BackupCounts struct {
	Entries  int64 // keys of every kind
	Users    int64 // user records
	Sessions int64 // session records
}

func (c *BackupCounts) add(key []byte) {
	c.Entries++
	if len(key) > 2 && key[0] == prefixRecord {
		switch key[2] {
		case 'u':
			c.Users++
		case 's':
			c.Sessions++
		}
	}
}

// backupProgressEvery is how many entries pass between two progress calls.
const backupProgressEvery = 1000

// Backup writes a consistent copy of the whole store to w (see the format
// above), info as its header (CreatedAt and the counts are filled in). It
// reads one snapshot, so the node may serve and write meanwhile. progress,
// when not nil, is called every so many entries with the counts so far,
// from Backup's goroutine. It returns the counts written.
func (s *Store) Backup(w io.Writer, info BackupInfo, progress func(BackupCounts)) (BackupCounts, error) {
	var counts BackupCounts
	info.CreatedAt = s.now().UTC()
	info.Users, info.Sessions = s.Counts()
	if _, err := io.WriteString(w, backupMagic); err != nil {
		return counts, fmt.Errorf("backup: %w", err)
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return counts, err
	}
	bw := bufio.NewWriterSize(zw, 64<<10)
	hdr, err := json.Marshal(info)
	if err != nil {
		return counts, err
	}
	var num [binary.MaxVarintLen64]byte
	putField := func(b []byte) {
		bw.Write(num[:binary.PutUvarint(num[:], uint64(len(b)))])
		bw.Write(b)
	}
	putField(hdr)
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		bw.WriteByte(backupEntry)
		putField(item.Key())
		if err := item.Value(func(v []byte) error { putField(v); return nil }); err != nil {
			return counts, fmt.Errorf("backup: read %q: %w", item.Key(), err)
		}
		bw.Write(num[:binary.PutUvarint(num[:], item.ExpiresAt())])
		counts.add(item.Key())
		if progress != nil && counts.Entries%backupProgressEvery == 0 {
			progress(counts)
		}
	}
	bw.WriteByte(backupTrailer)
	for _, n := range []int64{counts.Entries, counts.Users, counts.Sessions} {
		bw.Write(num[:binary.PutUvarint(num[:], uint64(n))])
	}
	if err := bw.Flush(); err != nil {
		return counts, fmt.Errorf("backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return counts, fmt.Errorf("backup: %w", err)
	}
	if progress != nil {
		progress(counts)
	}
	return counts, nil
}

// BackupEntry is one key of a backup, as ReadBackup hands it over. Key and
// Value are valid only during the call.
type BackupEntry struct {
	Key, Value []byte
	// ExpiresAt is the entry's expiry in Unix seconds, 0 for none.
	ExpiresAt uint64
}

// ReadBackup reads and checks a whole backup from r: its header (handed to
// header, when not nil, before any entry), every entry (handed to each,
// when not nil; an error from each stops the read and is returned) and its
// trailer, whose counts must match the entries read. progress, when not
// nil, is called every so many entries. A file that is not a backup, or is
// truncated or damaged, is ErrBadBackup.
func ReadBackup(r io.Reader, header func(BackupInfo), each func(BackupEntry) error, progress func(BackupCounts)) (BackupInfo, BackupCounts, error) {
	var (
		info   BackupInfo
		counts BackupCounts
	)
	br := bufio.NewReader(r)
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != backupMagic {
		return info, counts, fmt.Errorf("%w: no %q line at the start", ErrBadBackup, backupMagic[:len(backupMagic)-1])
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return info, counts, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	zr.Multistream(false)
	in := bufio.NewReaderSize(zr, 64<<10)
	bad := func(what string, err error) error {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %s: %v", ErrBadBackup, what, err)
		}
		return fmt.Errorf("%w: %s (the file is truncated or damaged)", ErrBadBackup, what)
	}
	field := func(buf []byte) ([]byte, error) {
		n, err := binary.ReadUvarint(in)
		if err != nil {
			return nil, err
		}
		if n > maxBackupField {
			return nil, fmt.Errorf("a field of %d bytes", n)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		_, err = io.ReadFull(in, buf)
		return buf, err
	}
	hdr, err := field(nil)
	if err != nil {
		return info, counts, bad("header", err)
	}
	if err := json.Unmarshal(hdr, &info); err != nil {
		return info, counts, bad("header", err)
	}
	if header != nil {
		header(info)
	}
	var key, val []byte
	for {
		tag, err := in.ReadByte()
		if err != nil {
			return info, counts, bad("no trailer", err)
		}
		if tag == backupTrailer {
			break
		}
		if tag != backupEntry {
			return info, counts, bad(fmt.Sprintf("unknown tag %#x after %d entries", tag, counts.Entries), nil)
		}
		if key, err = field(key); err != nil {
			return info, counts, bad("entry key", err)
		}
		if val, err = field(val); err != nil {
			return info, counts, bad("entry value", err)
		}
		exp, err := binary.ReadUvarint(in)
		if err != nil {
			return info, counts, bad("entry expiry", err)
		}
		if each != nil {
			if err := each(BackupEntry{Key: key, Value: val, ExpiresAt: exp}); err != nil {
				return info, counts, err
			}
		}
		counts.add(key)
		if progress != nil && counts.Entries%backupProgressEvery == 0 {
			progress(counts)
		}
	}
	var want [3]uint64
	for i := range want {
		if want[i], err = binary.ReadUvarint(in); err != nil {
			return info, counts, bad("trailer", err)
		}
	}
	if want != [3]uint64{uint64(counts.Entries), uint64(counts.Users), uint64(counts.Sessions)} {
		return info, counts, bad(fmt.Sprintf("the trailer counts %d entries (%d users, %d sessions), the file holds %d (%d, %d)",
			want[0], want[1], want[2], counts.Entries, counts.Users, counts.Sessions), nil)
	}
	// Read to the end of the gzip stream: that checks its CRC.
	if _, err := in.ReadByte(); !errors.Is(err, io.EOF) {
		return info, counts, bad("data after the trailer", err)
	}
	if progress != nil {
		progress(counts)
	}
	return info, counts, nil
}

// Restore writes the backup read from r into dir, a data directory that
// must be empty or missing (ErrNotEmpty otherwise: a restore never mixes
// with a store, and a running node's directory is never empty). Entries
// whose expiry has passed are left out. The backup is checked as it is
// read (ReadBackup); on any error dir is emptied again. At the end the
// store is opened, as a node would, and its counts compared with the
// backup's. opts are the store's options (Dir and InMemory are set here);
// header and progress are as ReadBackup's.
func Restore(dir string, r io.Reader, opts Options, header func(BackupInfo), progress func(BackupCounts)) (BackupInfo, BackupCounts, error) {
	var counts BackupCounts
	if err := emptyDir(dir); err != nil {
		return BackupInfo{}, counts, err
	}
	opts.Dir, opts.InMemory = dir, false
	s, err := Open(opts)
	if err != nil {
		return BackupInfo{}, counts, err
	}
	// The entries go straight into Badger: the store's digest and counts
	// stay those of an empty store, which Close must not save (state.go).
	s.unsaved = true
	wb := s.db.NewWriteBatch()
	now := s.now()
	info, counts, err := ReadBackup(r, header, func(e BackupEntry) error {
		ent := badger.NewEntry(append([]byte(nil), e.Key...), append([]byte(nil), e.Value...))
		if e.ExpiresAt != 0 {
			ttl := time.Unix(int64(e.ExpiresAt), 0).Sub(now)
			if ttl <= 0 {
				return nil
			}
			ent = ent.WithTTL(ttl)
		}
		if err := wb.SetEntry(ent); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return nil
	}, progress)
	if err == nil {
		err = wb.Flush()
	} else {
		wb.Cancel()
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkRestored(opts, counts)
	}
	if err != nil {
		clearDir(dir)
		return info, counts, err
	}
	return info, counts, nil
}

// checkRestored opens the restored store and compares its counts with the
// backup's.
func checkRestored(opts Options, counts BackupCounts) error {
	s, err := Open(opts)
	if err != nil {
		return fmt.Errorf("open the restored store: %w", err)
	}
	defer s.Close()
	users, sessions := s.Counts()
	if int64(users) != counts.Users || int64(sessions) != counts.Sessions {
		return fmt.Errorf("restore: the restored store holds %d users and %d sessions, the backup %d and %d", users, sessions, counts.Users, counts.Sessions)
	}
	return nil
}

// emptyDir checks that dir is empty or missing, and makes it (0700).
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("restore: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("restore into %s: %w (it holds %s%s): restore into a new directory, or stop the node and move this one away",
			dir, ErrNotEmpty, entries[0].Name(), map[bool]string{true: " and more", false: ""}[len(entries) > 1])
	}
	return nil
}

// clearDir removes what a failed restore wrote into dir, leaving it empty.
func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
