package gossip

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// TestRounds_ClaimOnce: rounds with two peers claimed at once never pull a
// bucket twice. The buckets were read free and the round started later, so
// a newcomer comparing two members' digests on two workers pulled the
// store from both.
func TestRounds_ClaimOnce(t *testing.T) {
	all := make([]uint8, 256)
	for i := range all {
		all[i] = uint8(i)
	}
	for try := 0; try < 200; try++ {
		b := newRoundBook()
		var wg sync.WaitGroup
		got := make([][]uint8, 2)
		skipped := make([]bool, 2)
		for i, peer := range []string{"n0", "n1"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, got[i], skipped[i] = b.claim(peer, "127.0.0.1:1", time.Minute, all)
			}()
		}
		wg.Wait()
		if len(got[0])+len(got[1]) != 256 || (len(got[0]) > 0 && len(got[1]) > 0) || skipped[0] == skipped[1] {
			t.Fatalf("claims of every bucket by two peers: %d and %d buckets, skipped %v", len(got[0]), len(got[1]), skipped)
		}
	}

	// Part of a round in flight: the other peer gets the rest.
	b := newRoundBook()
	id, first, _ := b.claim("n0", "127.0.0.1:1", time.Minute, []uint8{1, 2, 3})
	_, rest, skipped := b.claim("n1", "127.0.0.1:2", time.Minute, []uint8{2, 3, 4, 5})
	if !slices.Equal(first, []uint8{1, 2, 3}) || !slices.Equal(rest, []uint8{4, 5}) || !skipped {
		t.Fatalf("claims: %v then %v (skipped %v), want [1 2 3] then [4 5] (skipped)", first, rest, skipped)
	}
	if _, none, skipped := b.claim("n2", "127.0.0.1:3", time.Minute, []uint8{1, 4}); len(none) != 0 || !skipped || len(b.rounds) != 2 {
		t.Fatalf("a claim of busy buckets started a round: %v (skipped %v), %d rounds", none, skipped, len(b.rounds))
	}
	// Once the round ends, its buckets are free.
	b.remove(id)
	if _, again, _ := b.claim("n2", "127.0.0.1:3", time.Minute, []uint8{1, 4}); !slices.Equal(again, []uint8{1}) {
		t.Fatalf("after n0's round ended: %v, want [1]", again)
	}
}
