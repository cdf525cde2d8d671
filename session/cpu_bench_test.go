package session

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time this process has used (user and system): on
// a machine others share, a steadier measure of a change than wall time.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStore_LoginCPU is BenchmarkStore_ApplyLogin's writes (a user's
// login and a new session, from 32 callers) reported as CPU time per login:
// Badger's own goroutines (memtable, flushes, compactions) included.
func BenchmarkStore_LoginCPU(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	exp := time.Now().Add(time.Hour).UnixMilli()
	const callers = 32
	b.ResetTimer()
	cpu := processCPU(b)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < b.N; i += callers {
				email := fmt.Sprintf("u%d@example.com", i%1000)
				u := User{Email: email, Login: Set("u", s.Clock().Now(), "n0")}
				sess := Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "n0", Created: s.Clock().Now(), ExpiresAt: exp}
				if _, err := s.Apply(Record{User: &u}, Record{Session: &sess}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}

// BenchmarkStore_CatchUpCPU applies a peer's store into an empty one as
// anti-entropy repairs do (ApplyRepairs, chunks of 1,000 records: one user for five
// sessions), reported as CPU time per record.
func BenchmarkStore_CatchUpCPU(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := s.Clock().Now()
	exp := time.Now().Add(time.Hour).UnixMilli()
	recs := make([]Record, b.N)
	for i := range recs {
		email := fmt.Sprintf("u%d@example.com", i/6)
		if i%6 == 0 {
			recs[i] = Record{User: &User{Email: email, Login: Set("u", now, "n0")}}
			continue
		}
		recs[i] = Record{Session: &Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "n0", Created: now, ExpiresAt: exp,
			IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0"}}
	}
	b.ResetTimer()
	cpu := processCPU(b)
	for len(recs) > 0 {
		n := min(1000, len(recs))
		if _, _, err := s.ApplyRepairs(recs[:n]...); err != nil {
			b.Fatal(err)
		}
		recs = recs[n:]
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
