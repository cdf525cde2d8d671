package session

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
)

// Digest summarizes a store for anti-entropy: for each of the Buckets
// buckets, the XOR of a 64-bit hash of every record in it. Two stores with
// the same records have the same digest; a bucket that differs names the
// records to repair. The XOR makes the digest cheap to keep up to date: a
// write XORs the old record's hash out and the new one's in.
type Digest [Buckets]uint64

// Diff lists the buckets in which d and o differ.
func (d *Digest) Diff(o *Digest) []uint8 {
	var out []uint8
	for i := range d {
		if d[i] != o[i] {
			out = append(out, uint8(i))
		}
	}
	return out
}

// Fingerprint names d in 16 hex characters: the first 8 bytes of the
// SHA-256 of its buckets (little-endian). Two stores whose fingerprints
// are equal have, but for a 2^-64 chance, the same digest, so (as far as
// the digest tells) the same records: what an operator, or the bench
// watching a node in another process, compares across nodes (GET /healthz
// "digest").
func (d *Digest) Fingerprint() string {
	var b [Buckets * 8]byte
	for i, v := range d {
		binary.LittleEndian.PutUint64(b[i*8:], v)
	}
	sum := sha256.Sum256(b[:])
	return hex.EncodeToString(sum[:8])
}

// Leaves is the number of leaves each bucket is split into below the
// digest: a Merkle level of one step (as Cassandra's and Riak's repair
// trees split a range), kept by the store as the digest is. A leaf's hash
// is the XOR of its records' hashes, so a bucket's is the XOR of its
// leaves, and leaves folded by XOR in runs of 2^k give the same split at a
// coarser resolution (LeafHashes.Fold). Anti-entropy compares the leaves
// of a bucket that differs and lists the records of the leaves that differ
// only, not the whole bucket (gossip/doc.go, "Anti-entropy").
const Leaves = 1024

// LeafBits is log2(Leaves).
const LeafBits = 10

// LeafHashes are one bucket's leaves.
type LeafHashes [Leaves]uint64

// Fold returns the leaves at resolution 2^bits (bits ≤ LeafBits): leaf i of
// the result is the XOR of leaves i·2^(LeafBits-bits) to
// (i+1)·2^(LeafBits-bits)-1, the leaf LeafOf(key)>>(LeafBits-bits) of
// every key in it.
func (l *LeafHashes) Fold(bits uint8) []uint64 {
	bits = min(bits, LeafBits)
	out := make([]uint64, 1<<bits)
	shift := LeafBits - bits
	for i, h := range l {
		out[i>>shift] ^= h
	}
	return out
}

// KeyHash names a record key in 64 bits: its FNV-1a hash (hash/fnv's
// New64a, without its allocation: anti-entropy computes it for every key
// of the buckets it walks). Anti-entropy's pairs carry it, and a key's
// leaf is its top bits (LeafOf).
func KeyHash[K string | []byte](key K) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= prime64
	}
	return h
}

// LeafOf is the leaf of a record key within its bucket (BucketOf), in
// [0, Leaves): the top LeafBits bits of KeyHash, not of the SHA-256 that
// places the key in its bucket (four times the work, for every key of a
// bucket walked).
func LeafOf[K string | []byte](key K) uint16 {
	return uint16(KeyHash(key) >> (64 - LeafBits))
}

// locate is a key's bucket and leaf.
func locate(key string) (uint8, uint16) { return BucketOf(key), LeafOf(key) }

// recordHash is the digest contribution of one record, from its key and its
// canonical encoding.
func recordHash(key string, enc []byte) uint64 {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(enc)
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Dominates returns the hash (its digest contribution) of a state of e's
// record that e's state provably dominates, one a peer may hold: the alive
// form of an ended session (the same session, not ended: ended wins over
// alive, JoinSession), the state a peer on the other side of a partition
// holds of a session logged out on this side. A peer holding that state
// has nothing e lacks; anti-entropy tells it so, and it sends nothing back
// that the merge would only discard. ok is false for every other record.
func (e BucketEntry) Dominates() (h uint64, ok bool) {
	if len(e.Key) == 0 || e.Key[0] != 's' || !bytes.Contains(e.Enc, endedField) {
		return 0, false
	}
	if enc, ok := aliveEnc(e.Enc); ok {
		return recordHash(e.Key, enc), true
	}
	var r Record
	if err := json.Unmarshal(e.Enc, &r); err != nil || r.Session == nil || r.Session.Ended == 0 || r.Session.Local {
		return 0, false
	}
	alive := *r.Session
	alive.Ended, alive.EndReason = 0, ""
	enc, err := json.Marshal(Record{Session: &alive})
	if err != nil {
		return 0, false
	}
	return recordHash(e.Key, enc), true
}

// endedField is in the encoding of every ended session.
var endedField = []byte(`"ended":`)

// aliveEnc cuts the end out of the stored encoding of an ended session
// that is not local, without decoding it: json.Marshal writes a Record's
// session as {"s":{…,"ended":N,"reason":"…"}} (Ended and EndReason are its
// last fields but Local, all omitted when empty), so its alive form is the
// same bytes up to ,"ended": and then }}. ,"ended": cannot occur inside a
// string, whose quotes are escaped. It reports false for anything not
// exactly of that shape; the caller then decodes the record.
func aliveEnc(enc []byte) ([]byte, bool) {
	const ended, reason = `,"ended":`, `,"reason":"`
	i := bytes.Index(enc, []byte(ended))
	if i < 0 || !bytes.HasPrefix(enc, []byte(`{"s":{`)) {
		return nil, false
	}
	k := i + len(ended)
	for k < len(enc) && enc[k] >= '0' && enc[k] <= '9' {
		k++
	}
	if k == i+len(ended) || enc[i+len(ended)] == '0' {
		return nil, false
	}
	rest := enc[k:]
	if !bytes.Equal(rest, []byte("}}")) {
		if !bytes.HasPrefix(rest, []byte(reason)) {
			return nil, false
		}
		str := rest[len(reason):]
		n := 0
		for n < len(str) && str[n] != '"' {
			if str[n] == '\\' {
				n++
			}
			n++
		}
		if n >= len(str) || !bytes.Equal(str[n+1:], []byte("}}")) {
			return nil, false
		}
	}
	out := make([]byte, 0, i+2)
	return append(append(out, enc[:i]...), "}}"...), true
}
