package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	xhkdf "golang.org/x/crypto/hkdf"
)

// testSecret returns a fixed, recognisable secret: bytes seed, seed+1, ...
func testSecret(seed byte) Secret {
	var s Secret
	for i := range s {
		s[i] = seed + byte(i)
	}
	return s
}

// revealing returns every form in which the secret's bytes might leak.
func revealing(s Secret) []string {
	return []string{
		base64.StdEncoding.EncodeToString(s[:]),
		base64.RawStdEncoding.EncodeToString(s[:]),
		base64.URLEncoding.EncodeToString(s[:]),
		base64.RawURLEncoding.EncodeToString(s[:]),
		hex.EncodeToString(s[:]),
		strings.ToUpper(hex.EncodeToString(s[:])),
		hex.EncodeToString(s[:4]), // even a prefix
		fmt.Sprint([32]byte(s)),   // [1 2 3 ...]
		fmt.Sprint([32]byte(s))[1:20],
		string(s[:]),
	}
}

func assertNoLeak(t *testing.T, what, out string, secrets ...Secret) {
	t.Helper()
	for _, s := range secrets {
		for _, r := range revealing(s) {
			if strings.Contains(out, r) {
				t.Fatalf("%s reveals the secret (%q found) in %q", what, r, out)
			}
		}
	}
}

func TestSecret_Generate(t *testing.T) {
	a, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || a == (Secret{}) {
		t.Fatalf("two generated secrets are equal or zero")
	}
}

func TestSecret_Parse(t *testing.T) {
	s := testSecret(0xf0) // bytes ≥ 0xf0 give '+' '/' or '-' '_' in base64
	std := base64.StdEncoding.EncodeToString(s[:])
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test secret should exercise the std alphabet: %s", std)
	}
	if s.Encode() != std {
		t.Fatalf("Encode = %q, want std padded base64 %q", s.Encode(), std)
	}

	t.Run("accepted forms", func(t *testing.T) {
		for name, in := range map[string]string{
			"std padded":    std,
			"std raw":       base64.RawStdEncoding.EncodeToString(s[:]),
			"url padded":    base64.URLEncoding.EncodeToString(s[:]),
			"url raw":       base64.RawURLEncoding.EncodeToString(s[:]),
			"white space":   " \t" + std + "\n",
			"trailing crlf": std + "\r\n",
		} {
			got, err := ParseSecret(in)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got != s {
				t.Fatalf("%s: parsed a different secret", name)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		short := testSecret(7)
		for name, in := range map[string]string{
			"empty":         "",
			"blank":         "  \n ",
			"not base64":    "this is not base64 at all!!",
			"16 bytes":      base64.StdEncoding.EncodeToString(short[:16]),
			"33 bytes":      base64.StdEncoding.EncodeToString(append(short[:], 1)),
			"31 bytes":      base64.RawURLEncoding.EncodeToString(short[:31]),
			"all zeros":     base64.StdEncoding.EncodeToString(make([]byte, 32)),
			"mixed":         strings.Replace(base64.RawURLEncoding.EncodeToString(s[:]), "_", "/", 1),
			"inner newline": std[:20] + "\n" + std[20:],
			"much padding":  std + "===",
			"huge":          strings.Repeat("QUJD", 10000),
		} {
			_, err := ParseSecret(in)
			if !errors.Is(err, ErrBadSecret) {
				t.Fatalf("%s: err = %v, want ErrBadSecret", name, err)
			}
			if trimmed := strings.TrimSpace(in); len(trimmed) > 3 && strings.Contains(err.Error(), trimmed[:4]) {
				t.Fatalf("%s: error echoes the input: %v", name, err)
			}
			assertNoLeak(t, name+" error", err.Error(), s, short)
		}
	})

	t.Run("unmarshal text", func(t *testing.T) {
		var cfg struct{ Secret Secret }
		if err := json.Unmarshal([]byte(`{"Secret":"`+std+`"}`), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Secret != s {
			t.Fatal("UnmarshalText parsed a different secret")
		}
		err := json.Unmarshal([]byte(`{"Secret":"c2hvcnQ="}`), &cfg)
		if !errors.Is(err, ErrBadSecret) {
			t.Fatalf("err = %v, want ErrBadSecret", err)
		}
	})
}

func TestSecret_Fingerprint(t *testing.T) {
	s := testSecret(1)
	fp := s.Fingerprint()
	if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Fatalf("fingerprint %q: want 16 lower-case hex chars", fp)
	}
	if fp != s.Fingerprint() {
		t.Fatal("fingerprint is not deterministic")
	}
	if fp == testSecret(2).Fingerprint() {
		t.Fatal("different secrets share a fingerprint")
	}
	// Independent computation with x/crypto/hkdf.
	want := make([]byte, 8)
	if _, err := io.ReadFull(xhkdf.New(sha256.New, s[:], nil, []byte("ussync fingerprint v1")), want); err != nil {
		t.Fatal(err)
	}
	if fp != hex.EncodeToString(want) {
		t.Fatalf("fingerprint %s, want HKDF-SHA256 %x", fp, want)
	}
	assertNoLeak(t, "fingerprint", fp, s)
}

func TestSecret_Redaction(t *testing.T) {
	s := testSecret(0x41)
	want := "secret:" + s.Fingerprint()
	type exported struct {
		Name   string
		Secret Secret
		Ptr    *Secret
	}
	holder := exported{Name: "n", Secret: s, Ptr: &s}

	t.Run("fmt", func(t *testing.T) {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10.3v"} {
			for name, arg := range map[string]any{
				"value":   s,
				"pointer": &s,
				"slice":   []Secret{s, s},
				"struct":  holder,
				"map":     map[string]Secret{"k": s},
			} {
				out := fmt.Sprintf(verb, arg)
				assertNoLeak(t, fmt.Sprintf("%s of %s", verb, name), out, s)
				if !strings.Contains(out, want) {
					t.Fatalf("%s of %s = %q, want it to show %q", verb, name, out, want)
				}
			}
		}
		if got := s.String(); got != want {
			t.Fatalf("String = %q, want %q", got, want)
		}
		assertNoLeak(t, "Sprint", fmt.Sprint(s, &s), s)
		assertNoLeak(t, "Sprintln", fmt.Sprintln(s), s)
	})

	t.Run("slog", func(t *testing.T) {
		var buf bytes.Buffer
		for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
			log := slog.New(h)
			log.Info("secret", "secret", s, "ptr", &s)
			log.Info("any", slog.Any("secret", s))
			log.Info("group", slog.Group("g", "secret", s))
		}
		assertNoLeak(t, "slog", buf.String(), s)
		if got := strings.Count(buf.String(), want); got != 8 {
			t.Fatalf("slog output shows the fingerprint %d times, want 8:\n%s", got, buf.String())
		}
	})

	t.Run("marshal", func(t *testing.T) {
		if _, err := s.MarshalText(); !errors.Is(err, ErrSecretMarshal) {
			t.Fatalf("MarshalText err = %v, want ErrSecretMarshal", err)
		}
		out, err := json.Marshal(holder)
		if err == nil {
			t.Fatalf("json.Marshal of a Secret succeeded: %s", out)
		}
		assertNoLeak(t, "json error", err.Error(), s)
	})
}

func TestSecret_Derivation(t *testing.T) {
	s := testSecret(9)
	k := NewKeyring(s)
	rk := k.primary()
	ticketKey := s.derive32(labelTicket)
	keys := map[string][]byte{
		"raw":         s[:],
		"gossip":      rk.gossip[:],
		"ticket":      ticketKey[:],
		"code":        rk.code[:],
		"fingerprint": rk.id[:],
	}
	for a, ka := range keys {
		for b, kb := range keys {
			if a < b && bytes.Contains(ka, kb[:8]) || a < b && bytes.Contains(kb, ka[:8]) {
				t.Fatalf("%s and %s keys overlap", a, b)
			}
		}
	}
	// Each derivation is HKDF-SHA256 with its label, computed independently.
	for label, got := range map[string][]byte{
		"ussync gossip v1": rk.gossip[:],
		"ussync ticket v1": ticketKey[:],
		"ussync code v1":   rk.code[:],
	} {
		want := make([]byte, 32)
		if _, err := io.ReadFull(xhkdf.New(sha256.New, s[:], nil, []byte(label)), want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("key for %q is not HKDF-SHA256(secret, %q)", label, label)
		}
	}
	other := testSecret(10)
	if other.derive32(labelGossip) == rk.gossip {
		t.Fatal("two secrets derive the same gossip key")
	}
}
