package gossip

import "hash/maphash"

// recentMessages remembers the hashes of the last recentDepth delta
// messages the apply loop took, so that the extra copies of an eager-push
// packet (Config.PacketCopies) are dropped before they are decoded. A
// push's number is left out of its hash: a push sent again goes under a new
// number (peer), and is a copy all the same. Only the apply loop uses it.
type recentMessages struct {
	seed  maphash.Seed
	ring  [recentDepth]uint64
	next  int
	known map[uint64]struct{}
}

// recentDepth covers the copies of every packet a busy node receives in
// the moment between a packet and its copy.
const recentDepth = 4096

func newRecentMessages() *recentMessages {
	return &recentMessages{seed: maphash.MakeSeed(), known: make(map[uint64]struct{}, recentDepth)}
}

// seen reports whether msg was taken recently, and remembers it.
func (r *recentMessages) seen(msg []byte) bool {
	h := r.hash(msg)
	if _, ok := r.known[h]; ok {
		return true
	}
	if old := r.ring[r.next]; old != 0 {
		delete(r.known, old)
	}
	r.ring[r.next] = h
	r.next = (r.next + 1) % recentDepth
	r.known[h] = struct{}{}
	return false
}

// forget makes msg unseen again (its slot in the ring stays until reused:
// a message taken twice is merged twice, which changes nothing).
func (r *recentMessages) forget(msg []byte) {
	delete(r.known, r.hash(msg))
}

// hash hashes msg, less a kindPush's number (bytes 2 to 9).
func (r *recentMessages) hash(msg []byte) uint64 {
	if len(msg) < 10 || kind(msg[1]) != kindPush {
		return maphash.Bytes(r.seed, msg)
	}
	var h maphash.Hash
	h.SetSeed(r.seed)
	h.Write(msg[:2])
	h.Write(msg[10:])
	return h.Sum64()
}
