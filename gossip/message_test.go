package gossip

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ussync/ussync/session"
)

func TestMessage_RoundTrip(t *testing.T) {
	s := session.Session{ID: "abc", Email: "ann@example.com", Site: "shop", Created: session.MakeHLC(1, 2), ExpiresAt: 99}
	u := session.User{Email: "ann@example.com", Login: session.Set("ann", 5, "shop")}
	recs := [][]byte{encodeRecord(session.Record{Session: &s}), encodeRecord(session.Record{User: &u})}

	t.Run("records", func(t *testing.T) {
		m, err := decodeMessage(encodeRecords(kindRepair, recs))
		if err != nil {
			t.Fatal(err)
		}
		if m.kind != kindRepair || len(m.records) != 2 || m.records[0].Session.ID != "abc" || m.records[1].User.Login.V != "ann" {
			t.Fatalf("decoded %+v", m)
		}
	})
	t.Run("digest", func(t *testing.T) {
		var d session.Digest
		d[0], d[255] = 1, 1<<63
		m, err := decodeMessage(encodeDigest("shop", "127.0.0.1:7946", &d))
		if err != nil || m.from != "shop" || m.addr != "127.0.0.1:7946" || *m.digest != d {
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
		chunks := chunkRecords(kindRepair, many)
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
}

func FuzzDecodeMessage(f *testing.F) {
	s := session.Session{ID: "abc", Email: "ann@example.com", Created: 1, ExpiresAt: 2}
	f.Add(encodeRecords(kindDelta, [][]byte{encodeRecord(session.Record{Session: &s})}))
	var d session.Digest
	f.Add(encodeDigest("node", "127.0.0.1:1", &d))
	f.Add(encodeHashes("node", "127.0.0.1:1", []bucketHashes{{bucket: 3, hashes: map[uint64]uint64{1: 2, 3: 4}}})[0])
	f.Add([]byte{1, 2, '{', '"', 'r', '"', ':', 'n', 'u', 'l', 'l', '}'})
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
	})
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
