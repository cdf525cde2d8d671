package gossip

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestGossip_QueryEveryMember: a query reaches every live member, the
// asker included, and brings each one's answer or error back; a member
// down is reported as not answering.
func TestGossip_QueryEveryMember(t *testing.T) {
	key := newKey(t)
	var ms []*member
	release := make(chan struct{}) // n2 answers test.slow once it is closed
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	for i := range 4 {
		cfg := testConfig(t, fmt.Sprintf("n%d", i), key)
		name := cfg.Name
		cfg.QueryHandler = func(q Query) ([]byte, error) {
			if name == "n2" && q.Name == "test.slow" {
				<-release
			}
			if name == "n2" {
				return nil, errors.New("n2 refuses")
			}
			return []byte(name + " answers " + q.Name + " from " + q.From + ": " + string(q.Payload)), nil
		}
		m := startMember(t, cfg)
		if i > 0 {
			if _, err := m.g.Join([]string{ms[0].g.Addr()}); err != nil {
				t.Fatal(err)
			}
		}
		ms = append(ms, m)
	}
	t.Cleanup(free) // runs before the members' cleanups: their loops must not block
	waitFor(t, 5*time.Second, "all members alive", func() bool {
		for _, m := range ms {
			if len(m.g.LiveMembers()) != len(ms) {
				return false
			}
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := ms[1].g.Query(ctx, "test.echo", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Asked)
	if !slices.Equal(res.Asked, []string{"n0", "n1", "n2", "n3"}) || len(res.Missing()) != 0 || len(res.SendErrors) != 0 || len(res.Unsupported) != 0 {
		t.Fatalf("result %+v, missing %v", res, res.Missing())
	}
	for _, n := range []string{"n0", "n1", "n3"} {
		if a := res.Answers[n]; a.Err != "" || string(a.Payload) != n+" answers test.echo from n1: hello" {
			t.Errorf("%s answered %+v", n, a)
		}
	}
	if a := res.Answers["n2"]; a.Err != "n2 refuses" {
		t.Errorf("n2 answered %+v", a)
	}

	// n2 is slow to answer the next query: the asker stops waiting at its
	// deadline and reports n2 missing, with everyone else's answers.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	res, err = ms[0].g.Query(ctx2, "test.slow", nil)
	free()
	if err != nil {
		t.Fatal(err)
	}
	if missing := res.Missing(); !slices.Equal(missing, []string{"n2"}) || len(res.Answers) != 3 {
		t.Errorf("missing %v, answers %+v", missing, res.Answers)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestMessage_QueryRoundTrip(t *testing.T) {
	q := queryWire{ID: "ab", From: "n0", Name: "keys.install", Payload: []byte{0, 1, 2}, Deadline: 42}
	m, err := decodeMessage(encodeQuery(q))
	if err != nil || m.kind != kindQuery || m.query.ID != "ab" || string(m.query.Payload) != "\x00\x01\x02" || m.query.Deadline != 42 {
		t.Fatalf("%+v %v", m, err)
	}
	a := answerWire{ID: "ab", From: "n1", Err: "no"}
	if m, err = decodeMessage(encodeAnswer(a)); err != nil || m.kind != kindAnswer || m.answer.Err != "no" {
		t.Fatalf("%+v %v", m, err)
	}
	for _, bad := range [][]byte{
		{wireVersion, byte(kindQuery)},
		append([]byte{wireVersion, byte(kindQuery)}, `{"id":""}`...),
		append([]byte{wireVersion, byte(kindAnswer)}, `[1]`...),
	} {
		if _, err := decodeMessage(bad); err == nil || !strings.Contains(err.Error(), "decode") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
