package crypto

import (
	"encoding/base64"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestToken_New(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, id, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
		if err != nil || len(b) != 32 {
			t.Fatalf("token %q: want 32 bytes of URL-safe unpadded base64 (%v)", tok, err)
		}
		if id != SessionID(tok) || !ValidSessionID(id) {
			t.Fatalf("id %q is not SessionID(token)", id)
		}
		if seen[tok] {
			t.Fatal("NewToken repeated a token")
		}
		seen[tok] = true
	}
}

func TestToken_SessionID(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2 test vector.
	if got, want := SessionID("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; got != want {
		t.Fatalf("SessionID(abc) = %s, want %s", got, want)
	}
	valid := SessionID("x")
	for id, want := range map[string]bool{
		valid:                          true,
		strings.Repeat("0", 64):        true,
		strings.ToUpper(valid):         false,
		valid[:63]:                     false,
		valid + "0":                    false,
		valid[:63] + "g":               false,
		valid[:63] + " ":               false,
		"":                             false,
		strings.Repeat("é", 32):        false,
		strings.Repeat("0", 62) + "\n": false,
	} {
		if got := ValidSessionID(id); got != want {
			t.Fatalf("ValidSessionID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestToken_Equal(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"token", "token", true},
		{"token", "tokeN", false},
		{"token", "toke", false},
		{"toke", "token", false},
		{"", "x", false},
		{"x", "", false},
		{"\x00", "", false},
	} {
		if got := Equal(c.a, c.b); got != c.want {
			t.Fatalf("Equal(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestToken_API(t *testing.T) {
	tok, err := NewAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(tok); err != nil || len(b) != 32 {
		t.Fatalf("API token %q: want 32 bytes of URL-safe base64", tok)
	}
	other, _ := NewAPIToken()
	if other == tok {
		t.Fatal("NewAPIToken repeated a token")
	}
	h := HashToken(tok)
	if !h.Matches(tok) {
		t.Fatal("hash does not match its token")
	}
	for _, wrong := range []string{"", other, tok[:len(tok)-1], tok + "x", " " + tok} {
		if h.Matches(wrong) {
			t.Fatalf("hash matches %q", wrong)
		}
	}
	if strings.Contains(string(h[:]), tok) || HashToken(tok) != h {
		t.Fatal("HashToken is not a deterministic hash")
	}
}

// TestPackage_Imports keeps the package on the standard library and
// golang.org/x/crypto.
func TestPackage_Imports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") && !strings.HasPrefix(path, "golang.org/x/crypto/") {
				t.Fatalf("%s imports %s: only the standard library and golang.org/x/crypto are allowed", name, path)
			}
			if path == "crypto" {
				t.Fatalf("%s imports the standard library package crypto, which this package's name shadows", name)
			}
		}
	}
}
