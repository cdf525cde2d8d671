package gossip

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ussync/ussync/session"
)

// Wire format: every message starts with a version byte and a kind byte.
// Records travel as JSON (unknown fields are ignored, so later versions may
// add some); the digest is binary, and trailing bytes after it are ignored
// for the same reason.
const (
	wireVersion = 1

	// MaxMessageBytes is the largest message accepted from the wire.
	MaxMessageBytes = 1 << 20
	// MaxChunkBytes bounds one repair or push message; far below memberlist's
	// 20 MB push/pull limit whatever the number of sessions.
	MaxChunkBytes = 256 << 10
)

type kind uint8

const (
	// kindDelta carries records from where they changed (eager push and
	// broadcast): applied, and what is new is rebroadcast.
	kindDelta kind = 1
	// kindRepair carries records sent by anti-entropy: applied only.
	kindRepair kind = 2
	// kindDigest is the push/pull state: the sender's name and digest.
	kindDigest kind = 3
	// kindHashes answers a digest: for each bucket that differs, the
	// sender's (key hash, record hash) pairs, so the receiver sends back only
	// the records the sender lacks or holds in another state.
	kindHashes kind = 4
)

// Decoding errors; each bad message is dropped and counted.
var (
	// errTooShort means a message without its two-byte header.
	errTooShort = errors.New("message too short")
	// errTooLarge means a message over MaxMessageBytes.
	errTooLarge = errors.New("message too large")
	// errVersion means a message from an unknown wire version.
	errVersion = errors.New("unknown wire version")
	// errKind means an unknown message kind.
	errKind = errors.New("unknown message kind")
)

type message struct {
	kind    kind
	records []session.Record
	from    string          // kindDigest
	addr    string          // kindDigest, kindHashes: the sender's gossip host:port, if given
	digest  *session.Digest // kindDigest
	buckets []bucketHashes  // kindHashes
}

// bucketHashes are one bucket's records as a peer holds them: key hash to
// record hash (the record's digest contribution).
type bucketHashes struct {
	bucket uint8
	hashes map[uint64]uint64
}

// hashEntryBytes is the wire size of one (key hash, record hash) pair.
const hashEntryBytes = 16

// encodeRecord is the wire form of one record, reused for every peer.
func encodeRecord(r session.Record) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("gossip: encode record: %v", err)) // plain structs: cannot fail
	}
	return b
}

// encodeRecords frames already-encoded records as one message.
func encodeRecords(k kind, recs [][]byte) []byte {
	n := 8
	for _, r := range recs {
		n += len(r) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, wireVersion, byte(k))
	b = append(b, `{"r":[`...)
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	return append(b, "]}"...)
}

// chunkRecords frames records into messages of at most MaxChunkBytes (a
// record larger than that goes alone).
func chunkRecords(k kind, recs [][]byte) [][]byte {
	var out [][]byte
	start, size := 0, 0
	for i, r := range recs {
		if i > start && size+len(r)+1 > MaxChunkBytes-16 {
			out = append(out, encodeRecords(k, recs[start:i]))
			start, size = i, 0
		}
		size += len(r) + 1
	}
	if start < len(recs) {
		out = append(out, encodeRecords(k, recs[start:]))
	}
	return out
}

// encodeDigest frames a push/pull state: name, digest, then (added later,
// so optional on the wire) the sender's gossip address.
func encodeDigest(from, addr string, d *session.Digest) []byte {
	name, ad := clip255(from), clip255(addr)
	b := make([]byte, 0, 4+len(name)+8*session.Buckets+len(ad))
	b = append(b, wireVersion, byte(kindDigest), byte(len(name)))
	b = append(b, name...)
	for _, h := range d {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	b = append(b, byte(len(ad)))
	return append(b, ad...)
}

// encodeHashes frames bucket hashes in messages of at most MaxChunkBytes; a
// bucket too large for one message is split over several (the receiver then
// sends a few records twice, which merging absorbs).
func encodeHashes(from, addr string, groups []bucketHashes) [][]byte {
	name, ad := clip255(from), clip255(addr)
	head := func() []byte {
		b := make([]byte, 0, 4+len(name)+len(ad)+1024)
		b = append(b, wireVersion, byte(kindHashes), byte(len(name)))
		b = append(b, name...)
		b = append(b, byte(len(ad)))
		return append(b, ad...)
	}
	var out [][]byte
	msg := head()
	for _, g := range groups {
		pairs := make([][2]uint64, 0, len(g.hashes))
		for k, h := range g.hashes {
			pairs = append(pairs, [2]uint64{k, h})
		}
		for {
			room := (MaxChunkBytes - len(msg) - 5) / hashEntryBytes
			if room <= 0 {
				out, msg = append(out, msg), head()
				continue
			}
			n := min(room, len(pairs))
			msg = append(msg, g.bucket)
			msg = binary.BigEndian.AppendUint32(msg, uint32(n))
			for _, e := range pairs[:n] {
				msg = binary.BigEndian.AppendUint64(msg, e[0])
				msg = binary.BigEndian.AppendUint64(msg, e[1])
			}
			if pairs = pairs[n:]; len(pairs) == 0 {
				break // an empty bucket is sent too: the peer then sends all of its
			}
			out, msg = append(out, msg), head()
		}
	}
	return append(out, msg)
}

func clip255(s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return []byte(s)
}

// decodeMessage parses one message. It never panics and keeps no reference
// to b.
func decodeMessage(b []byte) (message, error) {
	if len(b) > MaxMessageBytes {
		return message{}, errTooLarge
	}
	if len(b) < 2 {
		return message{}, errTooShort
	}
	if b[0] != wireVersion {
		return message{}, fmt.Errorf("%w %d", errVersion, b[0])
	}
	m := message{kind: kind(b[1])}
	body := b[2:]
	switch m.kind {
	case kindDelta, kindRepair:
		var rb struct {
			Records []session.Record `json:"r"`
		}
		if err := json.Unmarshal(body, &rb); err != nil {
			return message{}, fmt.Errorf("decode records: %w", err)
		}
		m.records = rb.Records
	case kindDigest:
		if len(body) < 1 || len(body) < 1+int(body[0])+8*session.Buckets {
			return message{}, fmt.Errorf("decode digest: %w", errTooShort)
		}
		n := int(body[0])
		m.from = string(body[1 : 1+n])
		var d session.Digest
		for i := range d {
			d[i] = binary.BigEndian.Uint64(body[1+n+8*i:])
		}
		m.digest = &d
		if rest := body[1+n+8*session.Buckets:]; len(rest) > 0 && len(rest) >= 1+int(rest[0]) {
			m.addr = string(rest[1 : 1+int(rest[0])])
		}
	case kindHashes:
		return decodeHashes(m, body)
	default:
		return message{}, fmt.Errorf("%w %d", errKind, m.kind)
	}
	return m, nil
}

func decodeHashes(m message, body []byte) (message, error) {
	short := fmt.Errorf("decode hashes: %w", errTooShort)
	str := func() (string, bool) {
		if len(body) < 1 || len(body) < 1+int(body[0]) {
			return "", false
		}
		s := string(body[1 : 1+int(body[0])])
		body = body[1+int(body[0]):]
		return s, true
	}
	var ok bool
	if m.from, ok = str(); !ok {
		return message{}, short
	}
	if m.addr, ok = str(); !ok {
		return message{}, short
	}
	for len(body) > 0 {
		if len(body) < 5 {
			return message{}, short
		}
		g := bucketHashes{bucket: body[0]}
		n := int(binary.BigEndian.Uint32(body[1:5]))
		body = body[5:]
		if n > len(body)/hashEntryBytes {
			return message{}, short
		}
		g.hashes = make(map[uint64]uint64, n)
		for i := 0; i < n; i++ {
			g.hashes[binary.BigEndian.Uint64(body)] = binary.BigEndian.Uint64(body[8:])
			body = body[hashEntryBytes:]
		}
		m.buckets = append(m.buckets, g)
	}
	return m, nil
}
