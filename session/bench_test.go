package session

import (
	"fmt"
	"log/slog"
	"slices"
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

// BenchmarkStore_SessionCheckSites is the session check as the node makes
// it once site revocation is wired: the two cached reads, the site's record
// (a map read; one site revoked, another's sessions checked) and StateIn.
// The users carry the knowledge of 26 sites.
func BenchmarkStore_SessionCheckSites(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	exp := time.Now().Add(time.Hour).UnixMilli()
	for i := 0; i < 1000; i++ {
		email := fmt.Sprintf("u%d@example.com", i%100)
		u := User{Email: email, Login: Set("u", s.Clock().Now(), "n0")}
		for site := 0; site < 26; site++ {
			u.Bind(fmt.Sprintf("site-%02d", site), s.Clock().Now())
		}
		sess := Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "n0", Created: s.Clock().Now(), ExpiresAt: exp}
		if _, err := s.Apply(Record{User: &u}, Record{Session: &sess}); err != nil {
			b.Fatal(err)
		}
	}
	rev := RevokeSite("n9", s.Clock().Now(), "n0")
	if _, err := s.Apply(Record{Site: &rev}); err != nil {
		b.Fatal(err)
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
			u, err := s.User(sess.Email)
			if err != nil {
				b.Fatal(err)
			}
			if sess.StateIn(u, s.Site(sess.Site), s.Now()) != StateActive {
				b.Fatal("not active")
			}
		}
	})
}

// BenchmarkStore_ApplyLoginSites is BenchmarkStore_ApplyLogin for users
// that 26 sites know: each login marks its site's entry (a copy of the map)
// and merges a user record of about 1.5 KB.
func BenchmarkStore_ApplyLoginSites(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	base := map[string]SiteBinding{}
	for site := 0; site < 26; site++ {
		base[fmt.Sprintf("site-%02d", site)] = SiteBinding{Known: s.Clock().Now(), Bound: s.Clock().Now()}
	}
	var n atomic.Int64
	exp := time.Now().Add(time.Hour).UnixMilli()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			email := fmt.Sprintf("u%d@example.com", i%1000)
			u := User{Email: email, Login: Set("u", s.Clock().Now(), "n0"), Sites: base}
			u.MarkKnown(fmt.Sprintf("site-%02d", i%26), s.Clock().Now())
			sess := Session{ID: fmt.Sprintf("%064x", i), Email: email, Site: "n0", Created: s.Clock().Now(), ExpiresAt: exp}
			if _, err := s.Apply(Record{User: &u}, Record{Session: &sess}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkStore_ListSessions1M measures the admin listing and a user's
// history in a store of 1,000,000 sessions (10,000 users, five sites, 30
// days of logins, most of them history): one page of 50, newest first, from
// cursors spread over the whole list; the same filtered by one user, by one
// site, or to active sessions only; and one user's whole history as GET
// /v1/users/{email}/sessions?state=all reads it. Each sub-benchmark reports
// the p50 and p99 of one call in ms. Filling the store takes a minute or
// two, once; run it alone:
//
//	go test ./session/ -run '^$' -bench ListSessions1M -benchtime 2000x
func BenchmarkStore_ListSessions1M(b *testing.B) {
	const (
		sessions = 1_000_000
		users    = 10_000
		step     = 2 * time.Second // between logins: 1M logins span 23 days
		ttl      = 7 * 24 * time.Hour
	)
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	start := end.Add(-sessions * step)
	s, err := Open(Options{Dir: b.TempDir(), Now: func() time.Time { return end }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	email := func(i int) string { return fmt.Sprintf("user%05d@example.com", i%users) }
	sites := []string{"shop", "blog", "forum", "docs", "news"}
	t0 := time.Now()
	batch := make([]Record, 0, 10_000)
	flush := func() {
		if _, err := s.Apply(batch...); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 0; i < users; i++ {
		u := User{Email: email(i), Login: Set(fmt.Sprintf("user%d", i), MakeHLC(start.UnixMilli(), 0), "shop"),
			Verified: Set(Verification{OK: true, Method: VerifiedRegistration}, MakeHLC(start.UnixMilli(), 0), "shop"),
			Created:  MakeHLC(start.UnixMilli(), 0)}
		batch = append(batch, Record{User: &u})
	}
	flush()
	for i := 0; i < sessions; i++ {
		at := start.Add(time.Duration(i) * step)
		sess := Session{
			ID: fmt.Sprintf("%064x", uint64(i)*0x9e3779b97f4a7c15), Email: email(i * 7919), Site: sites[i%len(sites)],
			IP: "192.0.2.1", UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
			Created: MakeHLC(at.UnixMilli(), 0), ExpiresAt: at.Add(ttl).UnixMilli(),
		}
		if i%3 == 0 {
			sess.Ended, sess.EndReason = MakeHLC(at.Add(time.Hour).UnixMilli(), 0), EndLogout
		}
		batch = append(batch, Record{Session: &sess})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	if _, n := s.Counts(); n != sessions {
		b.Fatalf("%d sessions stored", n)
	}
	b.Logf("filled %d sessions in %v", sessions, time.Since(t0).Round(time.Second))

	// Cursors spread over the whole list, for pages far from the first.
	var cursors []string
	f := SessionFilter{Limit: MaxListLimit}
	for {
		_, next, err := s.ListSessions(f)
		if err != nil {
			b.Fatal(err)
		}
		if next == "" {
			break
		}
		cursors = append(cursors, next)
		f.After = next
	}

	run := func(name string, call func(i int) (int, error)) {
		b.Run(name, func(b *testing.B) {
			times := make([]time.Duration, 0, b.N)
			n := 0
			for i := 0; b.Loop(); i++ {
				t := time.Now()
				k, err := call(i)
				times = append(times, time.Since(t))
				if err != nil {
					b.Fatal(err)
				}
				n += k
			}
			slices.Sort(times)
			ms := func(q float64) float64 {
				return float64(times[int(q*float64(len(times)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
			b.ReportMetric(float64(n)/float64(len(times)), "sessions/op")
		})
	}
	page := func(f SessionFilter) (int, error) {
		p, _, err := s.ListSessions(f)
		return len(p), err
	}
	run("page=first", func(int) (int, error) { return page(SessionFilter{Limit: 50}) })
	run("page=any", func(i int) (int, error) {
		return page(SessionFilter{Limit: 50, After: cursors[(i*7919)%len(cursors)]})
	})
	run("page=any/oldest", func(i int) (int, error) {
		return page(SessionFilter{Limit: 50, Oldest: true, After: cursors[(i*7919)%len(cursors)]})
	})
	run("page=first/email", func(i int) (int, error) { return page(SessionFilter{Limit: 50, Email: email(i * 31)}) })
	run("page=any/site", func(i int) (int, error) {
		return page(SessionFilter{Limit: 50, Site: "forum", After: cursors[(i*7919)%len(cursors)]})
	})
	run("page=first/active", func(int) (int, error) { return page(SessionFilter{Limit: 50, Active: true}) })
	run("page=first/active/oldest", func(int) (int, error) { return page(SessionFilter{Limit: 50, Active: true, Oldest: true}) })
	run("user-history", func(i int) (int, error) {
		l, err := s.UserSessions(email(i*31), true, 0)
		return len(l), err
	})
}
