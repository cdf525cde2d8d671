package session

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkStore_ApplyLogin measures one login's writes (user + session) on
// disk, from parallel callers as the API makes them.
func BenchmarkStore_ApplyLogin(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Int64
	exp := time.Now().Add(time.Hour).UnixMilli()
	b.SetParallelism(16) // 32 callers on 2 cores, like concurrent logins
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			email := fmt.Sprintf("u%d@example.com", i%1000)
			u := User{Email: email, Login: Set("u", s.Clock().Now(), "n0")}
			sess := Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "n0", Created: s.Clock().Now(), ExpiresAt: exp}
			if _, err := s.Apply(Record{User: &u}, Record{Session: &sess}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStore_SessionCheck measures the reads of a session check.
func BenchmarkStore_SessionCheck(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	exp := time.Now().Add(time.Hour).UnixMilli()
	for i := 0; i < 1000; i++ {
		email := fmt.Sprintf("u%d@example.com", i%100)
		u := User{Email: email, Login: Set("u", s.Clock().Now(), "n0")}
		sess := Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "n0", Created: s.Clock().Now(), ExpiresAt: exp}
		if _, err := s.Apply(Record{User: &u}, Record{Session: &sess}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % 1000
			sess, err := s.Session(fmt.Sprintf("%064x", i))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.User(sess.Email); err != nil {
				b.Fatal(err)
			}
		}
	})
}
