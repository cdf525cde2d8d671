package gossip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/ussync/ussync/session"
)

func TestMessage_RoundTrip(t *testing.T) {
	s := session.Session{ID: "abc", Email: "ann@example.com", Site: "shop", Created: session.MakeHLC(1, 2), ExpiresAt: 99}
	u := session.User{Email: "ann@example.com", Login: session.Set("ann", 5, "shop")}
	recs := [][]byte{encodeRecord(session.Record{Session: &s}), encodeRecord(session.Record{User: &u})}

	t.Run("records", func(t *testing.T) {
		m, err := decodeMessage(encodeRecords(kindRepair, "n1", recs))
		if err != nil {
			t.Fatal(err)
		}
		if m.kind != kindRepair || m.from != "n1" || len(m.records) != 2 || m.records[0].Session.ID != "abc" || m.records[1].User.Login.V != "ann" {
			t.Fatalf("decoded %+v", m)
		}
	})
	t.Run("digest", func(t *testing.T) {
		var d session.Digest
		d[0], d[255] = 1, 1<<63
		b := encodeDigest("shop", "127.0.0.1:7946", &d)
		m, err := decodeMessage(b)
		if err != nil || m.from != "shop" || m.addr != "127.0.0.1:7946" || *m.digest != d || m.proto != aeProto {
			t.Fatalf("decoded %+v, %v", m, err)
		}
		// The byte layout, as older versions read it: name, digest, address;
		// the protocol after it.
		if b[2] != 4 || string(b[3:7]) != "shop" || b[7+8*session.Buckets] != 14 || b[len(b)-1] != aeProto {
			t.Fatalf("layout % x", b)
		}
		if m, err := decodeMessage(b[:len(b)-1]); err != nil || m.proto != 1 {
			t.Fatalf("a digest from a version before rounds: proto %d, %v", m.proto, err)
		}
		if m.fresh {
			t.Fatal("a digest without flags decoded as fresh")
		}
		// A newcomer catching up says so in a byte after the protocol,
		// which older versions ignore.
		b = encodeDigestProto("shop", "127.0.0.1:7946", &d, aeProto, digestFresh)
		if m, err := decodeMessage(b); err != nil || !m.fresh || m.proto != aeProto || *m.digest != d {
			t.Fatalf("fresh digest decoded %+v, %v", m, err)
		}
		if b[len(b)-2] != aeProto || b[len(b)-1] != digestFresh {
			t.Fatalf("layout % x", b)
		}
	})
	t.Run("pull and tagged repair", func(t *testing.T) {
		groups := []bucketHashes{{bucket: 5, hashes: map[uint64]uint64{7: 8}}}
		msgs := encodePull("n1", "127.0.0.1:1", 1<<63+5, groups)
		m, err := decodeMessage(msgs[0])
		if err != nil || m.kind != kindPull || m.part != (partOf{round: 1<<63 + 5, part: 0, parts: 1}) || m.buckets[0].hashes[7] != 8 {
			t.Fatalf("decoded %+v, %v", m, err)
		}
		tag := repairTag{Round: 1<<63 + 5, Part: 2, Chunk: 1, Chunks: 3}
		m, err = decodeMessage(encodeTagged(kindRepair, "n1", recs, &tag))
		if err != nil || m.tag == nil || *m.tag != tag || len(m.records) != 2 {
			t.Fatalf("decoded %+v, %v", m, err)
		}
		// Not the last chunk: no count; older versions ignore the tag.
		tag.Chunks = 0
		b := encodeTagged(kindRepair, "n1", nil, &tag)
		if m, err = decodeMessage(b); err != nil || *m.tag != tag {
			t.Fatalf("decoded %+v, %v", m, err)
		}
		if !bytes.HasSuffix(b, []byte(`"q":[9223372036854775813,2,1,0]}`)) {
			t.Fatalf("tag layout %s", b)
		}
		for _, bad := range []string{`[1,2,3]`, `[1,2,5,5]`, `[1,4294967296,0,1]`} {
			if _, err := decodeMessage(append([]byte{wireVersion, byte(kindRepair)}, `{"r":[],"q":`+bad+`}`...)); !errors.Is(err, errTag) {
				t.Errorf("tag %s: %v", bad, err)
			}
		}
	})
	t.Run("pull by leaves, pairs and want", func(t *testing.T) {
		var l session.LeafHashes
		l[0], l[1023] = 5, 1<<62
		leaves := []bucketLeaves{{bucket: 7, bits: session.LeafBits, hashes: l.Fold(session.LeafBits)}, {bucket: 200, bits: 4, hashes: l.Fold(4)}}
		groups := []bucketHashes{{bucket: 3, hashes: map[uint64]uint64{1: 2}}}
		msgs := encodeRound("n1", "127.0.0.1:1", 1<<63+5, groups, leaves)
		if len(msgs) != 2 || kind(msgs[0][1]) != kindPull || kind(msgs[1][1]) != kindLeaves {
			t.Fatalf("%d messages", len(msgs))
		}
		m, err := decodeMessage(msgs[1])
		if err != nil || m.kind != kindLeaves || m.from != "n1" || m.addr != "127.0.0.1:1" || m.part != (partOf{round: 1<<63 + 5, part: 1, parts: 2}) ||
			!reflect.DeepEqual(m.leaves, leaves) || m.leaves[1].hashes[15] != 1<<62 {
			t.Fatalf("decoded %+v, %v", m, err)
		}
		if m, err := decodeMessage(msgs[0]); err != nil || m.part != (partOf{round: 1<<63 + 5, part: 0, parts: 2}) || m.buckets[0].hashes[1] != 2 {
			t.Fatalf("decoded %+v, %v", m, err)
		}
		tag := repairTag{Round: 9, Part: 1, Chunk: 0, Chunks: 1}
		a, b := newLeafSet(7, session.LeafBits), newLeafSet(8, 0)
		a.add(0)
		a.add(1023)
		m, err = decodeMessage(encodeDiffer("n2", tag, []leafSet{a, b}))
		if err != nil || m.kind != kindDiffer || m.from != "n2" || *m.tag != tag || !reflect.DeepEqual(m.differ, []leafSet{a, b}) ||
			!m.differ[0].has(1023) || m.differ[0].has(1) || len(m.differ[1].set) != 1 {
			t.Fatalf("decoded %+v, %v", m, err)
		}
		pulls := []leafPull{
			{leafSet: a, hashes: map[uint64]uint64{1: 2, 3: 4}, covers: map[uint64]uint64{3: 5}},
			{leafSet: b, hashes: map[uint64]uint64{}, covers: map[uint64]uint64{}},
		}
		m, err = decodeMessage(encodeLeafPull("n1", "127.0.0.1:1", 9, 4, pulls))
		if err != nil || m.kind != kindLeafPull || m.from != "n1" || m.addr != "127.0.0.1:1" || m.part != (partOf{round: 9, part: 4}) || !reflect.DeepEqual(m.pulls, pulls) {
			t.Fatalf("decoded %+v, %v", m, err)
		}
	})
	t.Run("unknown fields are tolerated", func(t *testing.T) {
		b := append([]byte{wireVersion, byte(kindDelta)}, `{"r":[{"s":{"id":"x","email":"a@b.c","future":1}}],"more":true}`...)
		m, err := decodeMessage(b)
		if err != nil || len(m.records) != 1 || m.records[0].Session.ID != "x" {
			t.Fatalf("decoded %+v, %v", m, err)
		}
	})
	t.Run("chunks stay under the limit", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 1000)
		s.UserAgent = string(big)
		one := encodeRecord(session.Record{Session: &s})
		var many [][]byte
		for i := 0; i < 1000; i++ {
			many = append(many, one)
		}
		chunks := chunkRecords(kindRepair, "n1", many)
		n := 0
		for _, c := range chunks {
			if len(c) > MaxChunkBytes {
				t.Fatalf("chunk of %d bytes", len(c))
			}
			m, err := decodeMessage(c)
			if err != nil {
				t.Fatal(err)
			}
			n += len(m.records)
		}
		if n != 1000 || len(chunks) < 2 {
			t.Fatalf("%d records in %d chunks", n, len(chunks))
		}
	})
}

func TestMessage_Refusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errTooShort},
		{"one byte", []byte{1}, errTooShort},
		{"future version", []byte{9, 1, '{', '}'}, errVersion},
		{"unknown kind", []byte{1, 77}, errKind},
		{"oversized", make([]byte, MaxMessageBytes+1), errTooLarge},
		{"short digest", []byte{1, byte(kindDigest), 4, 'a'}, errTooShort},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeMessage(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := decodeMessage([]byte{1, byte(kindDelta), '{'}); err == nil {
		t.Fatal("truncated JSON accepted")
	}
	// The messages of a pull by leaves, cut short, lying about their
	// counts, or numbered impossibly.
	var l session.LeafHashes
	leaves := encodeLeaves("n1", "a", 1, []bucketLeaves{{bucket: 1, bits: 4, hashes: l.Fold(4)}})
	numberParts([][]byte{leaves})
	set := newLeafSet(1, 4)
	set.add(3)
	differ := encodeDiffer("n2", repairTag{Round: 1, Chunks: 1}, []leafSet{set})
	pull := encodeLeafPull("n1", "a", 1, 0, []leafPull{{leafSet: set, hashes: map[uint64]uint64{1: 2}, covers: map[uint64]uint64{}}})
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"leaves cut short", leaves[:len(leaves)-1], errTooShort},
		{"leaves without their header", leaves[:5], errTooShort},
		{"leaves of more bits than a bucket has", append(slices.Clone(leaves[:len(leaves)-2-8*16]), 1, session.LeafBits+1), errTooLarge},
		{"leaves of a part past the parts", func() []byte {
			b := slices.Clone(leaves)
			binary.BigEndian.PutUint32(b[3+2+2+8:], 1) // part 1 of 1
			return b
		}(), errTag},
		{"differ cut short", differ[:len(differ)-1], errTooShort},
		{"differ without its tag", differ[:10], errTooShort},
		{"differ of more bits than a bucket has", append(slices.Clone(differ[:len(differ)-4]), 1, session.LeafBits+1), errTooLarge},
		{"differ of a chunk past the chunks", encodeDiffer("n2", repairTag{Round: 1, Chunk: 3, Chunks: 2}, nil), errTag},
		// One chunk answers a part: more would pile up, each pushing the
		// round's deadline back; none would never complete it.
		{"differ of two chunks", encodeDiffer("n2", repairTag{Round: 1, Chunk: 0, Chunks: 2}, nil), errTag},
		{"differ of chunks untold", encodeDiffer("n2", repairTag{Round: 1}, nil), errTag},
		{"differ of a second chunk", encodeDiffer("n2", repairTag{Round: 1, Chunk: 1, Chunks: 2}, nil), errTag},
		{"leaf pull cut short", pull[:len(pull)-3], errTooShort},
		{"leaf pull counting more than it holds", func() []byte {
			b := slices.Clone(pull)
			binary.BigEndian.PutUint32(b[len(b)-4-16-4:], 2)
			return b
		}(), errTooShort},
		{"leaf pull of more bits than a bucket has", func() []byte {
			b := slices.Clone(pull)
			b[3+2+2+8+4+1] = session.LeafBits + 1
			return b
		}(), errTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeMessage(tc.b); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	s := session.Session{ID: "abc", Email: "ann@example.com", Created: 1, ExpiresAt: 2}
	u := session.User{Email: "ann@example.com", Login: session.Set("ann", 5, "shop"), RevokedBefore: 9}
	enc := [][]byte{encodeRecord(session.Record{Session: &s}), encodeRecord(session.Record{User: &u})}
	f.Add(encodeRecords(kindDelta, "node", enc))
	f.Add(encodeRecords(kindDelta, "", enc))
	f.Add(encodeTagged(kindRepair, "node", enc, &repairTag{Round: 1 << 60, Part: 2, Chunk: 3, Chunks: 4}))
	f.Add(encodeTagged(kindRepair, "", nil, &repairTag{Round: 7, Chunk: 5}))
	var d session.Digest
	d[3] = 42
	f.Add(encodeDigest("node", "127.0.0.1:1", &d))
	f.Add(encodeDigestProto("old", "", &d, 1, 0))
	f.Add(encodeDigestProto("new", "127.0.0.1:1", &d, aeProto, digestFresh))
	groups := []bucketHashes{{bucket: 3, hashes: map[uint64]uint64{1: 2, 3: 4}}, {bucket: 9, hashes: map[uint64]uint64{}}}
	f.Add(encodeHashes("node", "127.0.0.1:1", groups)[0])
	f.Add(encodePull("node", "[::1]:7946", 99, groups)[0])
	f.Add([]byte{1, 2, '{', '"', 'r', '"', ':', 'n', 'u', 'l', 'l', '}'})
	f.Add(encodePush(1<<40, "node", encodeRecords(kindDelta, "node", enc)))
	f.Add(encodePush(0, "", encodeRecords(kindDelta, "", nil)))
	f.Add(encodeAck("node", []uint64{1, 1 << 63, 7}))
	f.Add(encodeAck("", nil))
	var l session.LeafHashes
	l[3] = 77
	f.Add(encodeRound("node", "127.0.0.1:1", 5, nil, []bucketLeaves{{bucket: 1, bits: 4, hashes: l.Fold(4)}, {bucket: 2, bits: 0, hashes: l.Fold(0)}})[0])
	ls := newLeafSet(1, 5)
	ls.add(31)
	f.Add(encodeDiffer("node", repairTag{Round: 5, Part: 1, Chunks: 1}, []leafSet{ls, newLeafSet(2, session.LeafBits)}))
	f.Add(encodeDiffer("", repairTag{Round: 5, Chunk: 2}, nil))
	f.Add(encodeLeafPull("node", "127.0.0.1:1", 5, 3, []leafPull{{leafSet: ls, hashes: map[uint64]uint64{9: 1, 1 << 63: 2}, covers: map[uint64]uint64{9: 3}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		// Whatever decodes must be safe to hand to the store.
		for _, r := range m.records {
			_ = r.Validate()
			_ = r.Key()
			_ = r.MaxHLC()
		}
		// And what decodes encodes back to what decodes the same.
		again, ok := reencode(t, m)
		if ok && !sameMessage(m, again) {
			t.Fatalf("round trip changed the message:\nfirst  %+v\nsecond %+v", describe(m), describe(again))
		}
	})
}

// reencode encodes m with the encoders the members use, and decodes the
// result; messages split over several are joined back into one. It
// reports false when the encoding does not fit a message.
func reencode(t *testing.T, m message) (message, bool) {
	t.Helper()
	var msgs [][]byte
	switch m.kind {
	case kindDelta, kindRepair:
		encs := make([][]byte, len(m.records))
		for i, r := range m.records {
			encs[i] = encodeRecord(r)
		}
		if m.tag != nil {
			msgs = [][]byte{encodeTagged(m.kind, m.from, encs, m.tag)}
		} else {
			msgs = chunkRecords(m.kind, m.from, encs)
			if len(msgs) == 0 {
				msgs = [][]byte{encodeRecords(m.kind, m.from, nil)}
			}
		}
	case kindPush:
		encs := make([][]byte, len(m.records))
		for i, r := range m.records {
			encs[i] = encodeRecord(r)
		}
		msgs = [][]byte{encodePush(m.seq, m.from, encodeRecords(kindDelta, "", encs))}
	case kindAck:
		msgs = [][]byte{encodeAck(m.from, m.acks)}
	case kindQuery, kindAnswer:
		return m, false // JSON of their own (query_test.go)
	case kindDigest:
		var flags uint8
		if m.fresh {
			flags = digestFresh
		}
		msgs = [][]byte{encodeDigestProto(m.from, m.addr, m.digest, m.proto, flags)}
	case kindHashes:
		msgs = encodeHashes(m.from, m.addr, m.buckets)
	case kindPull, kindLeaves:
		if m.kind == kindPull {
			msgs = encodeGroups(kindPull, m.from, m.addr, m.part.round, m.buckets)
		} else {
			msgs = [][]byte{encodeLeaves(m.from, m.addr, m.part.round, m.leaves)}
		}
		for _, b := range msgs { // this part's numbering, as encodePull would have it
			off := 3 + int(b[2])
			off += 1 + int(b[off]) + 8
			binary.BigEndian.PutUint32(b[off:], m.part.part)
			binary.BigEndian.PutUint32(b[off+4:], m.part.parts)
		}
	case kindDiffer:
		msgs = [][]byte{encodeDiffer(m.from, *m.tag, m.differ)}
	case kindLeafPull:
		msgs = [][]byte{encodeLeafPull(m.from, m.addr, m.part.round, m.part.part, m.pulls)}
	default:
		t.Fatalf("decoded an unknown kind %d", m.kind)
	}
	var out message
	for i, b := range msgs {
		if len(b) > MaxMessageBytes {
			// JSON escapes <, > and & as six bytes: a message near the limit
			// may not fit once re-encoded. Records are bounded long before.
			return message{}, false
		}
		d, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("the re-encoded message does not decode: %v", err)
		}
		if i == 0 {
			out = d
			continue
		}
		out.records = append(out.records, d.records...)
		out.buckets = append(out.buckets, d.buckets...)
	}
	return out, true
}

// sameMessage compares two decoded messages; bucket groups are compared as
// the pairs they hold (encoding may split a bucket over several groups).
func sameMessage(a, b message) bool {
	if a.kind != b.kind || a.from != b.from || a.addr != b.addr || a.proto != b.proto || a.fresh != b.fresh || a.part != b.part || a.seq != b.seq {
		return false
	}
	if !slices.Equal(a.acks, b.acks) || !reflect.DeepEqual(a.leaves, b.leaves) || !reflect.DeepEqual(a.differ, b.differ) || !reflect.DeepEqual(a.pulls, b.pulls) {
		return false
	}
	if (a.digest == nil) != (b.digest == nil) || a.digest != nil && *a.digest != *b.digest {
		return false
	}
	if (a.tag == nil) != (b.tag == nil) || a.tag != nil && *a.tag != *b.tag {
		return false
	}
	if len(a.records) != len(b.records) || !reflect.DeepEqual(a.records, b.records) && (len(a.records) > 0 || len(b.records) > 0) {
		return false
	}
	return reflect.DeepEqual(pairs(a.buckets), pairs(b.buckets))
}

// pairs flattens bucket groups into bucket → key hash → record hash, with
// the buckets named even when empty.
func pairs(groups []bucketHashes) map[uint8]map[uint64]uint64 {
	out := map[uint8]map[uint64]uint64{}
	for _, g := range groups {
		if out[g.bucket] == nil {
			out[g.bucket] = map[uint64]uint64{}
		}
		for k, v := range g.hashes {
			out[g.bucket][k] = v
		}
	}
	return out
}

func describe(m message) string {
	return fmt.Sprintf("kind %d from %q addr %q proto %d part %+v tag %+v %d records %v buckets %v", m.kind, m.from, m.addr, m.proto, m.part, m.tag, len(m.records), m.records, pairs(m.buckets))
}

func TestMessage_DigestWithoutAddress(t *testing.T) {
	// A digest from a version that sent no address still decodes.
	var d session.Digest
	b := encodeDigest("old", "", &d)
	m, err := decodeMessage(b[:len(b)-1])
	if err != nil || m.from != "old" || m.addr != "" {
		t.Fatalf("decoded %+v, %v", m, err)
	}
}

func TestMessage_Hashes(t *testing.T) {
	big := bucketHashes{bucket: 7, hashes: map[uint64]uint64{}}
	for i := uint64(1); i <= 40_000; i++ { // more than one message holds
		big.hashes[i] = i * 3
	}
	groups := []bucketHashes{{bucket: 1, hashes: map[uint64]uint64{}}, big, {bucket: 9, hashes: map[uint64]uint64{5: 6}}}
	msgs := encodeHashes("n0", "127.0.0.1:7946", groups)
	if len(msgs) < 2 {
		t.Fatalf("%d messages for 40,000 pairs", len(msgs))
	}
	got := map[uint8]map[uint64]uint64{}
	for _, b := range msgs {
		if len(b) > MaxChunkBytes {
			t.Fatalf("message of %d bytes", len(b))
		}
		m, err := decodeMessage(b)
		if err != nil || m.from != "n0" || m.addr != "127.0.0.1:7946" {
			t.Fatalf("decoded %v, %v", m.from, err)
		}
		for _, g := range m.buckets {
			if got[g.bucket] == nil {
				got[g.bucket] = map[uint64]uint64{}
			}
			for k, v := range g.hashes {
				got[g.bucket][k] = v
			}
		}
	}
	if len(got) != 3 || len(got[1]) != 0 || len(got[7]) != 40_000 || got[9][5] != 6 || got[7][1000] != 3000 {
		t.Fatalf("round trip lost pairs: %d buckets, %d in bucket 7", len(got), len(got[7]))
	}
	// Truncations are refused, not misread.
	b := msgs[len(msgs)-1]
	for _, cut := range []int{3, 5, len(b) - 1} {
		if _, err := decodeMessage(b[:cut]); err == nil {
			t.Errorf("truncated at %d: accepted", cut)
		}
	}
}

// A push carries its sequence number and sender ahead of the records, so
// that a copy dropped unread can still be acknowledged; an ack lists what
// it acknowledges. Both refuse a truncated header.
func TestMessage_PushAndAck(t *testing.T) {
	s := session.Session{ID: "abc", Email: "ann@example.com", Created: 1, ExpiresAt: 2}
	delta := encodeRecords(kindDelta, "n1", [][]byte{encodeRecord(session.Record{Session: &s})})
	push := encodePush(1<<33+5, "n1", delta)
	seq, from, _, ok := pushHeader(push)
	if !ok || seq != 1<<33+5 || from != "n1" {
		t.Fatalf("pushHeader = %d, %q, %v", seq, from, ok)
	}
	m, err := decodeMessage(push)
	if err != nil || m.kind != kindPush || m.seq != 1<<33+5 || m.from != "n1" || len(m.records) != 1 || m.records[0].Session.ID != "abc" {
		t.Fatalf("decode push: %+v, %v", describe(m), err)
	}
	if _, _, _, ok := pushHeader(delta); ok {
		t.Fatal("a delta read as a push")
	}
	again := renumberPush(push, 7)
	if seq, from, body, ok := pushHeader(again); !ok || seq != 7 || from != "n1" || !bytes.Equal(body, delta[2:]) {
		t.Fatalf("renumbered push: %d, %q, %v", seq, from, ok)
	}
	if seq, _, _, _ := pushHeader(push); seq != 1<<33+5 {
		t.Fatalf("renumbering changed the push it copied: numbered %d", seq)
	}
	for n := range 11 + len("n1") {
		if _, err := decodeMessage(push[:n]); err == nil {
			t.Errorf("a push cut to %d bytes decoded", n)
		}
	}
	ack := encodeAck("n2", []uint64{3, 1 << 62})
	m, err = decodeMessage(ack)
	if err != nil || m.kind != kindAck || m.from != "n2" || !slices.Equal(m.acks, []uint64{3, 1 << 62}) {
		t.Fatalf("decode ack: %+v, %v", describe(m), err)
	}
	if _, err := decodeMessage(ack[:len(ack)-1]); err == nil {
		t.Error("an ack with a partial sequence number decoded")
	}
	if _, err := decodeMessage(encodeAck("n2", make([]uint64, maxAcks+1))); err == nil {
		t.Error("an ack over maxAcks decoded")
	}
}

// A push sent again under a new number (peer) is a copy of the one taken,
// dropped unread as the packet's copies are, and forgotten as it is (a
// store that refused it takes the next try); a delta of the same records,
// or another sender's push, is not a copy.
func TestRecentMessages_RetriedPushIsACopy(t *testing.T) {
	s := session.Session{ID: "abc", Email: "ann@example.com", Created: 1, ExpiresAt: 2}
	delta := encodeRecords(kindDelta, "n1", [][]byte{encodeRecord(session.Record{Session: &s})})
	push := encodePush(5, "n1", delta)
	r := newRecentMessages()
	if r.seen(push) {
		t.Fatal("a push seen before it was taken")
	}
	if !r.seen(renumberPush(push, 6)) {
		t.Fatal("the push sent again under another number was not a copy")
	}
	if r.seen(delta) || r.seen(encodePush(5, "n2", delta)) {
		t.Fatal("a delta of the same records, or another sender's push, taken for a copy")
	}
	r.forget(renumberPush(push, 7))
	if r.seen(push) {
		t.Fatal("a push forgotten under another number still a copy")
	}
}
