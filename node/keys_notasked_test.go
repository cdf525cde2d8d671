package node

import (
	"slices"
	"testing"

	"github.com/ussync/ussync/gossip"
)

// TestKeys_NotAskedNamed: a member alive when the answer is summed up but
// not asked (it was not alive when the query went out: a loaded peer had
// judged it dead for a moment) is named down, so the answer is not
// complete. It was left out, and a rotation said complete on five nodes
// while one lacked the new key (TestKeys_RotationOnFiveNodes under load).
func TestKeys_NotAskedNamed(t *testing.T) {
	members := []gossip.Member{
		{Name: "n0", State: "alive"}, {Name: "n1", State: "alive"}, {Name: "n2", State: "dead"},
		{Name: "n3", State: "left"}, {Name: "n4", State: "alive", Version: "0.1.0"},
	}
	down, left := notAsked(members, []string{"n0"}, []gossip.Member{members[4]})
	if !slices.Equal(down, []string{"n1", "n2"}) || !slices.Equal(left, []string{"n3"}) {
		t.Fatalf("down %v, left %v; want [n1 n2] and [n3]", down, left)
	}
}
