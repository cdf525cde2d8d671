package session

import (
	"crypto/sha256"
	"encoding/binary"
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
