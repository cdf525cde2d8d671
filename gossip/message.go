package gossip

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/ussync/ussync/session"
)

// Wire format: every message starts with a version byte and a kind byte.
// Records travel as JSON (unknown fields are ignored, so later versions may
// add some); the digest is binary, and trailing bytes after it are ignored
// for the same reason.
const (
	wireVersion = 1

	// aeProto is the anti-entropy protocol this version speaks, sent after
	// the address in its digest. 1 (or nothing): the peer sends kindHashes
	// and answers them with untagged repairs. 2: it also understands
	// kindPull and answers it with repairs tagged with the pull's round, so
	// the puller knows when the round is complete. 3: its digest may carry
	// flags after the protocol (digestFresh), and it honors a peer's. 4:
	// it answers kindLeaves with kindDiffer and kindLeafPull with tagged
	// repairs (a pull by the digest's leaves, for buckets of many
	// records).
	aeProto = 4

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
	// the records the sender lacks or holds in another state. Sent to peers
	// of aeProto 1; the answer is not tagged.
	kindHashes kind = 4
	// kindPull is kindHashes with a round: a round id and this message's
	// part of the round, so that the receiver tags its repairs and the
	// sender can tell when it holds everything it asked for.
	kindPull kind = 5
	// kindQuery asks a member a question (query.go); kindAnswer carries its
	// answer back. Both are JSON. Sent only to members whose metadata says
	// they answer queries.
	kindQuery  kind = 6
	kindAnswer kind = 7
	// kindPush is an eager push that asks to be acknowledged: a kindDelta
	// whose two-byte header is followed by a sequence number (8 bytes, big
	// endian) and the sender's name (1 byte of length, then the name), so
	// that a receiver can acknowledge a copy it drops unread. Each try of
	// a push goes under a new number (peer); a receiver takes a try of a
	// push it took as a copy (recentMessages), and acknowledges it under
	// its own number. Sent only to members whose metadata says they
	// acknowledge pushes (meta.Acks).
	kindPush kind = 8
	// kindAck acknowledges pushes once their records are applied: the
	// acknowledging member's name (1 byte of length, then the name) and
	// up to maxAcks sequence numbers of 8 bytes, big endian.
	kindAck kind = 9
	// kindLeaves is a part of a pull (sent to peers of aeProto 4) for
	// buckets the puller holds many records of: each bucket's leaves
	// (session.Leaves, folded to 2^bits of them) instead of the pairs of
	// every record. Framed as kindPull (name, address, round, part,
	// parts), then for each bucket: the bucket, bits (at most
	// session.LeafBits) and 2^bits hashes of 8 bytes, big endian. It is
	// answered with kindDiffer.
	kindLeaves kind = 10
	// kindDiffer answers kindLeaves: for each bucket, the leaves that
	// differ, tagged as a repair is with the round and the part (in one
	// chunk, chunk 0 of 1: a bitmap per bucket, at most 128 bytes; the
	// buckets are those the part asked, each once, at the bits it sent,
	// else the answer is refused: receiveDiffer): the sender's name
	// (1 byte of length, then the name), the round (8 bytes), the part,
	// the chunk and the number of chunks (4 bytes each), then leaf sets.
	// A leaf set is the bucket, bits, and a bitmap of 2^bits bits (leaf i
	// is bit i%8 of byte i/8), at least one byte.
	kindDiffer kind = 11
	// kindLeafPull is the pull of a part by leaves (to peers of aeProto
	// 4), once the leaves that differ are known: for each bucket a leaf
	// set, then the (key hash, record hash) pairs of the puller's records
	// in those leaves (a count of 4 bytes, then 16 bytes a pair), then the
	// pairs of states they provably cover (session.BucketEntry.Dominates:
	// the alive form of a session the puller holds ended), likewise. Framed
	// as kindPull but for the number of parts: the part is a number of the
	// round of its own. The answer is the records of those leaves whose
	// hash is neither listed for their key: tagged repairs.
	kindLeafPull kind = 12
)

// maxAcks bounds the sequence numbers of one kindAck (8 KiB of them).
const maxAcks = 1024

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
	// errTag means a pull or repair whose round numbering is impossible
	// (a part or chunk index not below the count).
	errTag = errors.New("bad round numbering")
)

type message struct {
	kind    kind
	records []session.Record
	from    string          // the sender's name: every kind (records: when it names one)
	addr    string          // kindDigest, kindHashes, kindPull: the sender's gossip host:port, if given
	digest  *session.Digest // kindDigest
	proto   uint8           // kindDigest: the sender's aeProto (1 when absent)
	fresh   bool            // kindDigest: the sender says digestFresh
	buckets []bucketHashes  // kindHashes, kindPull
	leaves  []bucketLeaves  // kindLeaves
	differ  []leafSet       // kindDiffer
	pulls   []leafPull      // kindLeafPull
	part    partOf          // kindPull, kindLeaves, kindLeafPull (no parts): which part of which round
	tag     *repairTag      // kindRepair answering a kindPull or kindLeafPull; kindDiffer
	query   *queryWire      // kindQuery
	answer  *answerWire     // kindAnswer
	seq     uint64          // kindPush: the number to acknowledge
	acks    []uint64        // kindAck: the pushes acknowledged
}

// partOf names one message of a pull round: the round's id, this message's
// index and the number of messages in the round.
type partOf struct {
	round       uint64
	part, parts uint32
}

// repairTag ties a repair chunk to the pull it answers: the pull's round and
// part, this chunk's index and, on the part's last chunk only, the number
// of chunks answering that part (zero on the others: the answer goes out as
// it is read). A last chunk is sent even when empty.
type repairTag struct {
	Round  uint64
	Part   uint32
	Chunk  uint32
	Chunks uint32
}

// bucketHashes are one bucket's records as a peer holds them: key hash to
// record hash (the record's digest contribution).
type bucketHashes struct {
	bucket uint8
	hashes map[uint64]uint64
}

// hashEntryBytes is the wire size of one (key hash, record hash) pair.
const hashEntryBytes = 16

// bucketLeaves are one bucket's leaves as a puller holds them, at 2^bits
// of them (session.LeafHashes.Fold).
type bucketLeaves struct {
	bucket uint8
	bits   uint8
	hashes []uint64
}

// leafSet names leaves of one bucket, at 2^bits of them: a bitmap.
type leafSet struct {
	bucket uint8
	bits   uint8
	set    []byte // (2^bits+7)/8 bytes
}

func newLeafSet(bucket, bits uint8) leafSet {
	return leafSet{bucket: bucket, bits: bits, set: make([]byte, (1<<bits+7)/8)}
}

func (l leafSet) has(i int) bool { return l.set[i/8]&(1<<(i%8)) != 0 }
func (l leafSet) add(i int)      { l.set[i/8] |= 1 << (i % 8) }

// holds reports whether the set names the leaf of key.
func (l leafSet) holds(key []byte) bool {
	return l.has(int(session.LeafOf(key) >> (session.LeafBits - l.bits)))
}

// leafPull is one bucket of a kindLeafPull: the leaves pulled, the pairs of
// the puller's records in them, and the pairs of states those cover.
type leafPull struct {
	leafSet
	hashes map[uint64]uint64
	covers map[uint64]uint64
}

// encodeRecord is the wire form of one record, reused for every peer.
func encodeRecord(r session.Record) []byte {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("gossip: encode record: %v", err)) // plain structs: cannot fail
	}
	return b
}

// encodeRecords frames already-encoded records as one message sent by the
// member named from.
func encodeRecords(k kind, from string, recs [][]byte) []byte {
	return encodeTagged(k, from, recs, nil)
}

// encodePush turns a kindDelta message from packRecords into the kindPush
// message numbered seq, sent by the member named from (at most 255 bytes).
func encodePush(seq uint64, from string, delta []byte) []byte {
	b := make([]byte, 0, len(delta)+10+len(from))
	b = append(b, wireVersion, byte(kindPush))
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, byte(len(from)))
	b = append(b, from...)
	return append(b, delta[2:]...)
}

// renumberPush returns a copy of the kindPush message msg (encodePush's)
// numbered seq: a push sent again goes under a number of its own (peer).
// msg itself is left as it is, since a copy of it may still be on its way.
func renumberPush(msg []byte, seq uint64) []byte {
	b := slices.Clone(msg)
	binary.BigEndian.PutUint64(b[2:10], seq)
	return b
}

// pushHeader reads a kindPush message's sequence number and sender without
// decoding its records, so that a copy dropped unread is acknowledged too.
func pushHeader(b []byte) (seq uint64, from string, body []byte, ok bool) {
	if len(b) < 11 || b[0] != wireVersion || kind(b[1]) != kindPush || len(b) < 11+int(b[10]) {
		return 0, "", nil, false
	}
	n := int(b[10])
	return binary.BigEndian.Uint64(b[2:]), string(b[11 : 11+n]), b[11+n:], true
}

// encodeAck acknowledges seqs (at most maxAcks) on behalf of the member
// named from (at most 255 bytes).
func encodeAck(from string, seqs []uint64) []byte {
	b := make([]byte, 0, 3+len(from)+8*len(seqs))
	b = append(b, wireVersion, byte(kindAck), byte(len(from)))
	b = append(b, from...)
	for _, s := range seqs {
		b = binary.BigEndian.AppendUint64(b, s)
	}
	return b
}

// encodeTagged frames records as one message, with the sender's name and
// the repair tag when given: {"f":"n1","r":[...],"q":[round,part,chunk,chunks]}.
// Versions that do not know "f" or "q" ignore them.
func encodeTagged(k kind, from string, recs [][]byte, tag *repairTag) []byte {
	n := 8 + tagRoom + fromRoom
	for _, r := range recs {
		n += len(r) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, wireVersion, byte(k), '{')
	if from != "" && len(from) <= 255 {
		name, _ := json.Marshal(from) // a string: cannot fail
		b = append(b, `"f":`...)
		b = append(b, name...)
		b = append(b, ',')
	}
	b = append(b, `"r":[`...)
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	b = append(b, ']')
	if tag != nil {
		b = append(b, `,"q":[`...)
		b = strconv.AppendUint(b, tag.Round, 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(tag.Part), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(tag.Chunk), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, uint64(tag.Chunks), 10)
		b = append(b, ']')
	}
	return append(b, '}')
}

// tagRoom is the most a repair tag adds to a message, fromRoom the most the
// sender's name does (a node name is at most 64 characters).
const (
	tagRoom  = 64
	fromRoom = 72
)

// chunkRecords frames records sent by from into messages of at most
// MaxChunkBytes (a record larger than that goes alone).
func chunkRecords(k kind, from string, recs [][]byte) [][]byte {
	var out [][]byte
	for _, c := range chunkBounds(recs) {
		out = append(out, encodeRecords(k, from, recs[c[0]:c[1]]))
	}
	return out
}

// packRecords frames records into at most max messages of at most size
// bytes each, in order, or returns nil if they do not fit (a record larger
// than size alone does not).
func packRecords(k kind, from string, recs [][]byte, size, max int) [][]byte {
	var out [][]byte
	start, n := 0, 0
	frame := 10 // version, kind, {"r":[ and ]}
	if from != "" && len(from) <= 255 {
		name, _ := json.Marshal(from) // a string: cannot fail
		frame += len(name) + 5        // "f":…,
	}
	for i, r := range recs {
		if frame+len(r) > size {
			return nil
		}
		if i > start && n+len(r)+1 > size-frame {
			if len(out) == max-1 {
				return nil
			}
			out = append(out, encodeRecords(k, from, recs[start:i]))
			start, n = i, 0
		}
		n += len(r) + 1
	}
	if start < len(recs) {
		if len(out) == max {
			return nil
		}
		out = append(out, encodeRecords(k, from, recs[start:]))
	}
	return out
}

// chunkBounds splits recs into runs whose framing stays under
// MaxChunkBytes (a record larger than that goes alone).
func chunkBounds(recs [][]byte) [][2]int {
	var out [][2]int
	start, size := 0, 0
	for i, r := range recs {
		if i > start && size+len(r)+1 > MaxChunkBytes-16-tagRoom-fromRoom {
			out = append(out, [2]int{start, i})
			start, size = i, 0
		}
		size += len(r) + 1
	}
	if start < len(recs) {
		out = append(out, [2]int{start, len(recs)})
	}
	return out
}

// encodeDigest frames a push/pull state: name, digest, then (added later,
// so optional on the wire) the sender's gossip address, its aeProto and
// its digest flags (digestFresh; the byte is left out when none is set).
func encodeDigest(from, addr string, d *session.Digest) []byte {
	return encodeDigestProto(from, addr, d, aeProto, 0)
}

// Digest flags, a byte after the aeProto (older versions ignore it).
const (
	// digestFresh says the sender started on an empty store and is
	// catching up: what it holds came from its peers, or was pushed by it
	// as it was written, so a peer that is not catching up itself gains
	// nothing by pulling from it until it has caught up (a pull of a
	// store of a million records lists 16 MB of hashes, and the newcomer
	// reads its whole store to answer, while it is busiest).
	digestFresh uint8 = 1 << 0
)

func encodeDigestProto(from, addr string, d *session.Digest, proto, flags uint8) []byte {
	name, ad := clip255(from), clip255(addr)
	b := make([]byte, 0, 5+len(name)+8*session.Buckets+len(ad))
	b = append(b, wireVersion, byte(kindDigest), byte(len(name)))
	b = append(b, name...)
	for _, h := range d {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	b = append(b, byte(len(ad)))
	b = append(b, ad...)
	b = append(b, proto)
	if flags != 0 {
		b = append(b, flags)
	}
	return b
}

// encodeHashes frames bucket hashes in messages of at most MaxChunkBytes; a
// bucket too large for one message is split over several (the receiver then
// sends a few records twice, which merging absorbs).
func encodeHashes(from, addr string, groups []bucketHashes) [][]byte {
	return encodeGroups(kindHashes, from, addr, 0, groups)
}

// pullPartBuckets is the most buckets one part of a pull asks for, so that
// the answer comes in parts the puller can pace (pullWindow).
const pullPartBuckets = 8

// encodePull is encodeHashes for a peer of aeProto 2: every message names
// the round and its part of it (the parts are numbered once all are
// framed). A part holds at most pullPartBuckets buckets.
func encodePull(from, addr string, round uint64, groups []bucketHashes) [][]byte {
	var msgs [][]byte
	for lo := 0; lo < len(groups) || lo == 0; lo += pullPartBuckets {
		msgs = append(msgs, encodeGroups(kindPull, from, addr, round, groups[lo:min(lo+pullPartBuckets, len(groups))])...)
	}
	numberParts(msgs)
	return msgs
}

// encodeRound frames a whole pull round for a peer of aeProto 4: the pull
// parts of the buckets listed by pairs, then the kindLeaves parts of the
// buckets listed by leaves, at most pullPartBuckets buckets each, numbered
// together.
func encodeRound(from, addr string, round uint64, pairs []bucketHashes, leaves []bucketLeaves) [][]byte {
	var msgs [][]byte
	for lo := 0; lo < len(pairs); lo += pullPartBuckets {
		msgs = append(msgs, encodeGroups(kindPull, from, addr, round, pairs[lo:min(lo+pullPartBuckets, len(pairs))])...)
	}
	for lo := 0; lo < len(leaves); lo += pullPartBuckets {
		msgs = append(msgs, encodeLeaves(from, addr, round, leaves[lo:min(lo+pullPartBuckets, len(leaves))]))
	}
	numberParts(msgs)
	return msgs
}

// numberParts writes each message's part and the number of parts into the
// header of kindPull and kindLeaves messages (after the name, the address
// and the round).
func numberParts(msgs [][]byte) {
	for i, m := range msgs {
		off := 3 + int(m[2])
		off += 1 + int(m[off]) + 8
		binary.BigEndian.PutUint32(m[off:], uint32(i))
		binary.BigEndian.PutUint32(m[off+4:], uint32(len(msgs)))
	}
}

// pullHead starts a kindPull, kindLeaves or kindLeafPull message: name,
// address and round, then the part and, but for kindLeafPull (whose part
// is given), room for the number of parts: numberParts fills both in.
func pullHead(k kind, from, addr string, round uint64, part uint32, size int) []byte {
	name, ad := clip255(from), clip255(addr)
	b := make([]byte, 0, 20+len(name)+len(ad)+size)
	b = append(b, wireVersion, byte(k), byte(len(name)))
	b = append(b, name...)
	b = append(b, byte(len(ad)))
	b = append(b, ad...)
	b = binary.BigEndian.AppendUint64(b, round)
	b = binary.BigEndian.AppendUint32(b, part)
	if k != kindLeafPull {
		b = append(b, 0, 0, 0, 0)
	}
	return b
}

// encodeLeaves frames one kindLeaves part (at most pullPartBuckets
// buckets of at most session.Leaves leaves: 64 KiB); numberParts numbers
// it.
func encodeLeaves(from, addr string, round uint64, groups []bucketLeaves) []byte {
	n := 0
	for _, g := range groups {
		n += 2 + 8*len(g.hashes)
	}
	b := pullHead(kindLeaves, from, addr, round, 0, n)
	for _, g := range groups {
		b = append(b, g.bucket, g.bits)
		for _, h := range g.hashes {
			b = binary.BigEndian.AppendUint64(b, h)
		}
	}
	return b
}

// leavesAsked reads back the buckets a kindLeaves message of this member's
// asks and the bits it sent each at: the answer (kindDiffer) may name
// those only.
func leavesAsked(msg []byte) map[uint8]uint8 {
	r := &wireReader{b: msg[2:]}
	r.str()
	r.str()
	r.take(8 + 4 + 4) // round, part, parts
	out := map[uint8]uint8{}
	for !r.short && len(r.b) > 0 {
		bucket, bits := r.u8(), r.u8()
		if r.take(8 << bits); !r.short {
			out[bucket] = bits
		}
	}
	return out
}

// encodeDiffer frames a kindDiffer message: the leaf sets, tagged.
func encodeDiffer(from string, tag repairTag, sets []leafSet) []byte {
	name := clip255(from)
	b := make([]byte, 0, 3+len(name)+20+len(sets)*130)
	b = append(b, wireVersion, byte(kindDiffer), byte(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, tag.Round)
	b = binary.BigEndian.AppendUint32(b, tag.Part)
	b = binary.BigEndian.AppendUint32(b, tag.Chunk)
	b = binary.BigEndian.AppendUint32(b, tag.Chunks)
	for _, l := range sets {
		b = appendLeafSet(b, l)
	}
	return b
}

func appendLeafSet(b []byte, l leafSet) []byte {
	b = append(b, l.bucket, l.bits)
	return append(b, l.set...)
}

// leafPullBytes is the wire size of a kindLeafPull bucket of n pairs and c
// covered states at 2^bits leaves.
func leafPullBytes(bits uint8, n, c int) int {
	return 2 + (1<<bits+7)/8 + 8 + hashEntryBytes*(n+c)
}

// maxLeafPullBytes bounds the buckets of one kindLeafPull message: the
// caller splits a larger pull over several, by leaves.
const maxLeafPullBytes = MaxChunkBytes - 600

// encodeLeafPull frames one kindLeafPull message, numbered part of the
// round.
func encodeLeafPull(from, addr string, round uint64, part uint32, pulls []leafPull) []byte {
	n := 0
	for _, p := range pulls {
		n += leafPullBytes(p.bits, len(p.hashes), len(p.covers))
	}
	b := pullHead(kindLeafPull, from, addr, round, part, n)
	for _, p := range pulls {
		b = appendLeafSet(b, p.leafSet)
		for _, m := range []map[uint64]uint64{p.hashes, p.covers} {
			b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
			for k, h := range m {
				b = binary.BigEndian.AppendUint64(b, k)
				b = binary.BigEndian.AppendUint64(b, h)
			}
		}
	}
	return b
}

func encodeGroups(k kind, from, addr string, round uint64, groups []bucketHashes) [][]byte {
	name, ad := clip255(from), clip255(addr)
	head := func() []byte {
		b := make([]byte, 0, 20+len(name)+len(ad)+1024)
		b = append(b, wireVersion, byte(k), byte(len(name)))
		b = append(b, name...)
		b = append(b, byte(len(ad)))
		b = append(b, ad...)
		if k == kindPull {
			b = binary.BigEndian.AppendUint64(b, round)
			b = append(b, 0, 0, 0, 0, 0, 0, 0, 0) // part and parts, set by encodePull
		}
		return b
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
	case kindPush:
		seq, from, rest, ok := pushHeader(b)
		if !ok {
			return message{}, fmt.Errorf("decode push: %w", errTooShort)
		}
		var rb struct {
			Records []session.Record `json:"r"`
		}
		if err := json.Unmarshal(rest, &rb); err != nil {
			return message{}, fmt.Errorf("decode records: %w", err)
		}
		m.seq, m.from, m.records = seq, from, rb.Records
	case kindAck:
		if len(body) < 1 || len(body) < 1+int(body[0]) {
			return message{}, fmt.Errorf("decode ack: %w", errTooShort)
		}
		n := int(body[0])
		m.from, body = string(body[1:1+n]), body[1+n:]
		if len(body)%8 != 0 || len(body)/8 > maxAcks {
			return message{}, fmt.Errorf("decode ack: %d bytes of sequence numbers: %w", len(body), errTooShort)
		}
		for ; len(body) > 0; body = body[8:] {
			m.acks = append(m.acks, binary.BigEndian.Uint64(body))
		}
	case kindDelta, kindRepair:
		var rb struct {
			From    string           `json:"f"`
			Records []session.Record `json:"r"`
			Tag     []uint64         `json:"q"`
		}
		if err := json.Unmarshal(body, &rb); err != nil {
			return message{}, fmt.Errorf("decode records: %w", err)
		}
		m.records = rb.Records
		if len(rb.From) <= 255 {
			m.from = rb.From
		}
		if m.kind == kindRepair && rb.Tag != nil {
			if len(rb.Tag) != 4 || rb.Tag[1] > math.MaxUint32 || rb.Tag[2] > math.MaxUint32 || rb.Tag[3] > math.MaxUint32 || rb.Tag[3] != 0 && rb.Tag[2] >= rb.Tag[3] {
				return message{}, fmt.Errorf("decode records: %w", errTag)
			}
			m.tag = &repairTag{Round: rb.Tag[0], Part: uint32(rb.Tag[1]), Chunk: uint32(rb.Tag[2]), Chunks: uint32(rb.Tag[3])}
		}
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
		m.proto = 1
		if rest := body[1+n+8*session.Buckets:]; len(rest) > 0 && len(rest) >= 1+int(rest[0]) {
			m.addr = string(rest[1 : 1+int(rest[0])])
			if rest = rest[1+int(rest[0]):]; len(rest) > 0 && rest[0] > 1 {
				m.proto = rest[0]
			}
			if len(rest) > 1 {
				m.fresh = rest[1]&digestFresh != 0
			}
		}
	case kindHashes, kindPull:
		return decodeHashes(m, body)
	case kindLeaves, kindLeafPull:
		return decodeLeafParts(m, body)
	case kindDiffer:
		return decodeDiffer(m, body)
	case kindQuery:
		var q queryWire
		if err := json.Unmarshal(body, &q); err != nil || q.ID == "" || q.From == "" {
			return message{}, fmt.Errorf("decode query: %w", errors.Join(err, errTooShort))
		}
		m.query = &q
	case kindAnswer:
		var a answerWire
		if err := json.Unmarshal(body, &a); err != nil || a.ID == "" || a.From == "" {
			return message{}, fmt.Errorf("decode answer: %w", errors.Join(err, errTooShort))
		}
		m.answer = &a
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
	if m.kind == kindPull {
		if len(body) < 16 {
			return message{}, short
		}
		m.part = partOf{round: binary.BigEndian.Uint64(body), part: binary.BigEndian.Uint32(body[8:]), parts: binary.BigEndian.Uint32(body[12:])}
		body = body[16:]
		if m.part.part >= m.part.parts {
			return message{}, fmt.Errorf("decode pull: %w", errTag)
		}
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

// wireReader reads the binary parts of a message; a read past the end sets
// short and yields zeros.
type wireReader struct {
	b     []byte
	short bool
}

func (r *wireReader) take(n int) []byte {
	if r.short || n < 0 || len(r.b) < n {
		r.short = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *wireReader) str() string {
	if n := r.take(1); n != nil {
		return string(r.take(int(n[0])))
	}
	return ""
}

func (r *wireReader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *wireReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *wireReader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// leafSet reads a leaf set.
func (r *wireReader) leafSet() (leafSet, error) {
	bucket, bits := r.u8(), r.u8()
	if r.short {
		return leafSet{}, errTooShort
	}
	if bits > session.LeafBits {
		return leafSet{}, fmt.Errorf("%d bits of leaves, at most %d: %w", bits, session.LeafBits, errTooLarge)
	}
	set := r.take((1<<bits + 7) / 8)
	if r.short {
		return leafSet{}, errTooShort
	}
	return leafSet{bucket: bucket, bits: bits, set: slices.Clone(set)}, nil
}

// pairs reads a count and that many (key hash, record hash) pairs.
func (r *wireReader) pairs() map[uint64]uint64 {
	n := r.u32()
	if r.short || uint64(n) > uint64(len(r.b)/hashEntryBytes) {
		r.short = true
		return nil
	}
	out := make(map[uint64]uint64, n)
	for range n {
		k := r.u64()
		out[k] = r.u64()
	}
	return out
}

// decodeLeafParts reads a kindLeaves or kindLeafPull message.
func decodeLeafParts(m message, body []byte) (message, error) {
	what := "leaves"
	if m.kind == kindLeafPull {
		what = "leaf pull"
	}
	r := &wireReader{b: body}
	m.from, m.addr = r.str(), r.str()
	m.part.round, m.part.part = r.u64(), r.u32()
	if m.kind == kindLeaves {
		m.part.parts = r.u32()
		if !r.short && m.part.part >= m.part.parts {
			return message{}, fmt.Errorf("decode %s: %w", what, errTag)
		}
	}
	for !r.short && len(r.b) > 0 {
		if m.kind == kindLeafPull {
			l, err := r.leafSet()
			if err != nil {
				return message{}, fmt.Errorf("decode %s: %w", what, err)
			}
			p := leafPull{leafSet: l, hashes: r.pairs()}
			p.covers = r.pairs()
			m.pulls = append(m.pulls, p)
			continue
		}
		bucket, bits := r.u8(), r.u8()
		if bits > session.LeafBits {
			return message{}, fmt.Errorf("decode leaves: %d bits of leaves, at most %d: %w", bits, session.LeafBits, errTooLarge)
		}
		raw := r.take(8 << bits)
		if r.short {
			break
		}
		g := bucketLeaves{bucket: bucket, bits: bits, hashes: make([]uint64, 1<<bits)}
		for i := range g.hashes {
			g.hashes[i] = binary.BigEndian.Uint64(raw[8*i:])
		}
		m.leaves = append(m.leaves, g)
	}
	if r.short {
		return message{}, fmt.Errorf("decode %s: %w", what, errTooShort)
	}
	return m, nil
}

// decodeDiffer reads a kindDiffer message.
func decodeDiffer(m message, body []byte) (message, error) {
	r := &wireReader{b: body}
	m.from = r.str()
	t := repairTag{Round: r.u64(), Part: r.u32(), Chunk: r.u32(), Chunks: r.u32()}
	if r.short {
		return message{}, fmt.Errorf("decode differ: %w", errTooShort)
	}
	if t.Chunk != 0 || t.Chunks != 1 {
		// One chunk answers a part (at most pullPartBuckets leaf sets of
		// 130 bytes): anything else is not an answer this member asks for.
		return message{}, fmt.Errorf("decode differ: chunk %d of %d, not one whole: %w", t.Chunk, t.Chunks, errTag)
	}
	m.tag = &t
	for len(r.b) > 0 {
		l, err := r.leafSet()
		if err != nil {
			return message{}, fmt.Errorf("decode differ: %w", err)
		}
		m.differ = append(m.differ, l)
	}
	return m, nil
}
