package session

import (
	"strings"
	"testing"
	"time"
)

// Explain names what differs between stores: a record one lacks, a record
// held in two states, a digest that drifted from its records, and records
// refused; and says nothing of stores that agree.
func TestExplain(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	a := openStore(t, "", mt.Now)
	defer a.Close()
	b := openStore(t, "", mt.Now)
	defer b.Close()
	names := []string{"a", "b"}
	both := newSession("s1", "ann@example.com", MakeHLC(999_000, 0), 2_000_000)
	for _, s := range []*Store{a, b} {
		if _, err := s.Apply(both); err != nil {
			t.Fatal(err)
		}
	}
	if got := Explain(names, []*Store{a, b}, 10); got != "" {
		t.Fatalf("stores that agree: %q", got)
	}

	ended := both
	ended.Session = &Session{ID: "s1", Email: "ann@example.com", Site: "shop", Created: MakeHLC(999_000, 0), ExpiresAt: 2_000_000, Ended: MakeHLC(999_500, 0)}
	if _, err := a.Apply(ended, newSession("s2", "bob@example.com", MakeHLC(999_000, 1), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(newSession("s3", "cy@example.com", MakeHLC(999_000, 2), 2_000_000)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.ApplyChecked(newSession("s4", "di@example.com", MakeHLC(2_000_000, 0), 3_000_000)); err != nil {
		t.Fatal(err) // 1,000 s ahead of b's clock: refused, counted
	}
	b.sum.Lock()
	b.sum.digest[7] ^= 1
	b.sum.Unlock()

	got := Explain(names, []*Store{a, b}, 10)
	for _, want := range []string{
		"b: its digest is not its records' sum: bucket 7: the digest holds",
		"b: refused 1 records (clock_ahead)",
		"b holds ss1 (bucket ", "where a holds {",
		"b lacks ss2 (bucket ",
		"b holds ss3 (bucket ", ", which a lacks",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Explain lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "a: its digest") {
		t.Errorf("a's digest is its records' sum:\n%s", got)
	}
	if got := Explain(names, []*Store{a, b}, 1); !strings.Contains(got, "(and 2 more differences)") {
		t.Errorf("at most 1 difference shown, the rest counted:\n%s", got)
	}
}
