package session

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestStore_StorageFull: below the reserve of free space every write is
// refused with ErrStorageFull and nothing changes; reads go on; once space
// returns, writes are accepted again.
func TestStore_StorageFull(t *testing.T) {
	mt := NewManualClock(time.UnixMilli(1_000_000))
	s := openStore(t, t.TempDir(), mt.Now)
	defer s.Close()
	var free atomic.Uint64
	free.Store(1 << 30)
	s.space.free = func(string) (uint64, error) { return free.Load(), nil }

	sess := func(i int) Session {
		return Session{ID: fmt.Sprintf("%064x", i), Email: "ann@example.com", Site: "n0", Created: MakeHLC(900_000+int64(i), 0), ExpiresAt: 2_000_000}
	}
	a := sess(1)
	if _, err := s.Apply(Record{Session: &a}); err != nil {
		t.Fatal(err)
	}
	digest := s.Digest()

	free.Store(DefaultMinFree - 1)
	b := sess(2)
	for name, write := range map[string]func() error{
		"Apply":       func() error { _, err := s.Apply(Record{Session: &b}); return err },
		"LocalPut":    func() error { return s.LocalPut("k", []byte("v"), 0) },
		"LocalUpdate": func() error { return s.LocalUpdate("k", 0, func([]byte) ([]byte, error) { return []byte("v"), nil }) },
		"LocalDelete": func() error { return s.LocalDelete("k") },
		"UseOnce":     func() error { _, err := s.UseOnce("ticket", mt.Now().Add(time.Minute)); return err },
		"Sweep":       func() error { _, err := s.Sweep(context.Background()); return err },
	} {
		if err := write(); !errors.Is(err, ErrStorageFull) {
			// Sweep with nothing to sweep writes nothing: no error either.
			if name == "Sweep" && err == nil {
				continue
			}
			t.Errorf("%s on a full disk: %v, want ErrStorageFull", name, err)
		}
	}
	if _, err := s.Session(b.ID); !errors.Is(err, ErrNotFound) || s.Digest() != digest {
		t.Errorf("a refused write changed the store: %v", err)
	}
	if got, err := s.Session(a.ID); err != nil || got.ID != a.ID {
		t.Errorf("reads on a full disk: %v", err)
	}
	if sp := s.Space(); !sp.Full || sp.Free != DefaultMinFree-1 || sp.Reserve != DefaultMinFree || sp.Refused == 0 {
		t.Errorf("Space on a full disk: %+v", sp)
	}

	free.Store(DefaultMinFree)
	if _, err := s.Apply(Record{Session: &b}); err != nil {
		t.Fatalf("once space returned: %v", err)
	}
	if sp := s.Space(); sp.Full {
		t.Errorf("Space once space returned: %+v", sp)
	}
}

// TestStore_StorageReserveOff: an in-memory store, or MinFree < 0, never
// refuses for space.
func TestStore_StorageReserveOff(t *testing.T) {
	s := openStore(t, "", nil)
	defer s.Close()
	if sp := s.Space(); sp.Reserve != 0 || sp.Full {
		t.Errorf("in-memory store: %+v", sp)
	}
	s2, err := Open(Options{Dir: t.TempDir(), MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.space.free = func(string) (uint64, error) { return 0, nil }
	if err := s2.LocalPut("k", nil, 0); err != nil {
		t.Errorf("MinFree < 0: %v", err)
	}
}
