package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func fingerprints(k *Keyring) []string {
	var fps []string
	for _, ki := range k.Keys() {
		fps = append(fps, ki.Fingerprint)
	}
	return fps
}

func TestKeyring_New(t *testing.T) {
	a, b, c := testSecret(1), testSecret(2), testSecret(3)
	k := NewKeyring(a, b, a, c, b)
	if got, want := k.Secrets(), []Secret{a, b, c}; !slices.Equal(got, want) {
		t.Fatalf("Secrets = %v, want %v (primary first, duplicates dropped)", got, want)
	}
	if k.Primary() != a {
		t.Fatalf("Primary = %v, want %v", k.Primary(), a)
	}
	keys := k.Keys()
	want := []KeyInfo{{a.Fingerprint(), true}, {b.Fingerprint(), false}, {c.Fingerprint(), false}}
	if !slices.Equal(keys, want) {
		t.Fatalf("Keys = %v, want %v", keys, want)
	}
	// The returned slice is the caller's.
	s := k.Secrets()
	s[0] = testSecret(99)
	if k.Primary() != a {
		t.Fatal("changing the Secrets slice changed the keyring")
	}
}

func TestKeyring_Parse(t *testing.T) {
	a, b, c := testSecret(1), testSecret(2), testSecret(3)

	t.Run("forms", func(t *testing.T) {
		text := "# cluster secrets\n\n  " + a.Encode() + " \n" +
			b.Encode() + ", " + c.Encode() + ",\n" +
			"   # " + "old one below\n" +
			a.Encode() + "\r\n"
		k, err := ParseKeyring(text)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := k.Secrets(), []Secret{a, b, c}; !slices.Equal(got, want) {
			t.Fatalf("Secrets = %v, want %v", got, want)
		}
		k, err = ParseKeyring(c.Encode() + "," + a.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if k.Primary() != c || len(k.Secrets()) != 2 {
			t.Fatalf("comma list: got %v, want primary %v and 2 secrets", k.Secrets(), c)
		}
	})

	t.Run("no secret", func(t *testing.T) {
		for _, text := range []string{"", "\n\n", "# only a comment\n", " , ,\n"} {
			if _, err := ParseKeyring(text); !errors.Is(err, ErrNoSecret) {
				t.Fatalf("ParseKeyring(%q) err = %v, want ErrNoSecret", text, err)
			}
		}
	})

	t.Run("bad secret", func(t *testing.T) {
		bad := "c2VjcmV0LWJ1dC10b28tc2hvcnQ"
		_, err := ParseKeyring(a.Encode() + "\n# c\n" + b.Encode() + "," + bad + "\n")
		if !errors.Is(err, ErrBadSecret) {
			t.Fatalf("err = %v, want ErrBadSecret", err)
		}
		if !strings.Contains(err.Error(), "secret 3 (line 3)") {
			t.Fatalf("err = %v, want it to name secret 3 on line 3", err)
		}
		if strings.Contains(err.Error(), bad[:6]) {
			t.Fatalf("err echoes the input: %v", err)
		}
		assertNoLeak(t, "error", err.Error(), a, b)
	})
}

func TestKeyring_Rotation(t *testing.T) {
	old, next := testSecret(1), testSecret(2)
	k := NewKeyring(old)

	t.Run("install", func(t *testing.T) {
		k.Install(next)
		k.Install(next)
		k.Install(old)
		if got, want := fingerprints(k), []string{old.Fingerprint(), next.Fingerprint()}; !slices.Equal(got, want) {
			t.Fatalf("after Install: %v, want %v", got, want)
		}
	})

	t.Run("use", func(t *testing.T) {
		if err := k.Use("0123456789abcdef"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Use(unknown) err = %v, want ErrUnknownKey", err)
		}
		// The form String prints, upper case, is accepted.
		if err := k.Use(" " + strings.ToUpper(next.String()) + " "); err != nil {
			t.Fatalf("Use: %v", err)
		}
		if k.Primary() != next {
			t.Fatal("Use did not change the primary")
		}
		if got, want := k.Keys(), []KeyInfo{{next.Fingerprint(), true}, {old.Fingerprint(), false}}; !slices.Equal(got, want) {
			t.Fatalf("Keys = %v, want %v", got, want)
		}
		if err := k.Use(next.Fingerprint()); err != nil {
			t.Fatalf("Use of the primary: %v", err)
		}
	})

	t.Run("remove", func(t *testing.T) {
		if err := k.Remove(next.Fingerprint()); !errors.Is(err, ErrRemovePrimary) {
			t.Fatalf("Remove(primary) err = %v, want ErrRemovePrimary", err)
		}
		if err := k.Remove("ffffffffffffffff"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("Remove(unknown) err = %v, want ErrUnknownKey", err)
		}
		if err := k.Remove(old.Fingerprint()); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if err := k.Remove(old.Fingerprint()); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("second Remove err = %v, want ErrUnknownKey", err)
		}
		if got := k.Secrets(); !slices.Equal(got, []Secret{next}) {
			t.Fatalf("Secrets = %v, want only the new one", got)
		}
	})

	t.Run("middle of three", func(t *testing.T) {
		a, b, c := testSecret(10), testSecret(20), testSecret(30)
		k := NewKeyring(a, b, c)
		if err := k.Use(c.Fingerprint()); err != nil {
			t.Fatal(err)
		}
		if got, want := k.Secrets(), []Secret{c, a, b}; !slices.Equal(got, want) {
			t.Fatalf("after Use: %v, want %v", got, want)
		}
		if err := k.Remove(a.Fingerprint()); err != nil {
			t.Fatal(err)
		}
		if got, want := k.Secrets(), []Secret{c, b}; !slices.Equal(got, want) {
			t.Fatalf("after Remove: %v, want %v", got, want)
		}
	})
}

func TestKeyring_GossipKeys(t *testing.T) {
	a, b := testSecret(1), testSecret(2)
	k := NewKeyring(a, b)
	primary, all := k.GossipKeys()
	if len(all) != 2 || len(primary) != 32 || len(all[1]) != 32 {
		t.Fatalf("GossipKeys: primary %d bytes, %d keys; want 32 bytes, 2 keys", len(primary), len(all))
	}
	if !bytes.Equal(primary, all[0]) {
		t.Fatal("primary is not all[0]")
	}
	ga, gb := a.derive32(labelGossip), b.derive32(labelGossip)
	if !bytes.Equal(all[0], ga[:]) || !bytes.Equal(all[1], gb[:]) {
		t.Fatal("gossip keys are not the derived keys in keyring order")
	}
	if bytes.Equal(all[0], a[:]) {
		t.Fatal("gossip key is the raw secret")
	}
	primary[0] ^= 0xff
	if p2, _ := k.GossipKeys(); !bytes.Equal(p2, ga[:]) {
		t.Fatal("changing a returned key changed the keyring")
	}
	if err := k.Use(b.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if p3, _ := k.GossipKeys(); !bytes.Equal(p3, gb[:]) {
		t.Fatal("after Use the primary gossip key did not follow")
	}
}

func TestKeyring_Redaction(t *testing.T) {
	a, b := testSecret(0x30), testSecret(0x60)
	k := NewKeyring(a, b)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		out := fmt.Sprintf(verb, k)
		assertNoLeak(t, verb, out, a, b)
		if !strings.Contains(out, a.Fingerprint()) {
			t.Fatalf("%s = %q, want the primary fingerprint", verb, out)
		}
	}
	type holder struct{ Ring *Keyring }
	assertNoLeak(t, "struct", fmt.Sprintf("%+v %#v", holder{k}, holder{k}), a, b)

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("ring", "keyring", k, "secrets", k.Secrets())
	}
	assertNoLeak(t, "slog", buf.String(), a, b)
	if !strings.Contains(buf.String(), b.Fingerprint()) {
		t.Fatalf("slog output lacks the fingerprints:\n%s", buf.String())
	}
}

// TestKeyring_Concurrent is for the race detector: rotation while sealing,
// opening and checking codes.
func TestKeyring_Concurrent(t *testing.T) {
	a, b := testSecret(1), testSecret(2)
	k := NewKeyring(a)
	now := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s, err := k.SealTicket(Ticket{Target: "b", IssuedAt: now, ExpiresAt: now.Add(time.Minute)})
				if err != nil {
					errs <- err
					return
				}
				// Both secrets stay installed, so every ticket opens.
				if _, err := k.OpenTicket(s, now); err != nil {
					errs <- err
					return
				}
				mac := k.CodeMAC("e@x", "123456")
				if !k.CheckCode("e@x", "123456", mac) {
					errs <- fmt.Errorf("code check failed")
					return
				}
				k.GossipKeys()
				_ = k.String()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		k.Install(b)
		for i := 0; i < 200; i++ {
			fp := []string{a.Fingerprint(), b.Fingerprint()}[i%2]
			if err := k.Use(fp); err != nil {
				errs <- err
				return
			}
			k.Keys()
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
