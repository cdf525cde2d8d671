package crypto

import (
	"testing"
)

func TestCode_New(t *testing.T) {
	const n = 20000
	var perPosition [CodeDigits][10]int
	leadingZero := 0
	for i := 0; i < n; i++ {
		c, err := NewCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != CodeDigits {
			t.Fatalf("code %q: want %d characters", c, CodeDigits)
		}
		for p := 0; p < len(c); p++ {
			if c[p] < '0' || c[p] > '9' {
				t.Fatalf("code %q: not all digits", c)
			}
			perPosition[p][c[p]-'0']++
		}
		if c[0] == '0' {
			leadingZero++
		}
	}
	if leadingZero == 0 {
		t.Fatal("no code with a leading zero: codes are not zero-padded or not uniform")
	}
	// Each digit should appear n/10 = 2000 times per position (sd ≈ 42);
	// the bounds are about 12 sd wide, so only a broken generator fails.
	for p, counts := range perPosition {
		for d, got := range counts {
			if got < 1500 || got > 2500 {
				t.Fatalf("digit %d at position %d appeared %d times in %d codes, want about %d", d, p, got, n, n/10)
			}
		}
	}
}

func TestKeyring_CodeMAC(t *testing.T) {
	a, b := testSecret(1), testSecret(2)
	k := NewKeyring(a)
	mac := k.CodeMAC("ann@example.org", "012345")
	if len(mac) != 32 {
		t.Fatalf("MAC is %d bytes, want 32", len(mac))
	}

	t.Run("check", func(t *testing.T) {
		if !k.CheckCode("ann@example.org", "012345", mac) {
			t.Fatal("the right code does not check")
		}
		for name, c := range map[string]struct{ email, code string }{
			"wrong code":     {"ann@example.org", "012346"},
			"short code":     {"ann@example.org", "01234"},
			"wrong email":    {"bob@example.org", "012345"},
			"shifted border": {"ann@example.org0", "12345"},
			"empty":          {"", ""},
		} {
			if k.CheckCode(c.email, c.code, mac) {
				t.Fatalf("%s: checks", name)
			}
		}
		if k.CheckCode("ann@example.org", "012345", mac[:31]) || k.CheckCode("ann@example.org", "012345", nil) {
			t.Fatal("a truncated or missing MAC checks")
		}
		if NewKeyring(b).CheckCode("ann@example.org", "012345", mac) {
			t.Fatal("a MAC checks under another cluster's secret")
		}
	})

	t.Run("length prefix", func(t *testing.T) {
		if string(k.CodeMAC("ab", "c")) == string(k.CodeMAC("a", "bc")) {
			t.Fatal("email and code are not separated in the MAC")
		}
	})

	t.Run("rotation", func(t *testing.T) {
		k.Install(b)
		if err := k.Use(b.Fingerprint()); err != nil {
			t.Fatal(err)
		}
		if string(k.CodeMAC("ann@example.org", "012345")) == string(mac) {
			t.Fatal("the MAC did not change with the primary")
		}
		if !k.CheckCode("ann@example.org", "012345", mac) {
			t.Fatal("a MAC under the old primary does not check after Use(new)")
		}
		if err := k.Remove(a.Fingerprint()); err != nil {
			t.Fatal(err)
		}
		if k.CheckCode("ann@example.org", "012345", mac) {
			t.Fatal("a MAC under a removed secret still checks")
		}
	})
}
