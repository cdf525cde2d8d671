package session

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"pgregory.net/rapid"
)

// TestNormalizeEmail_LookAlikes is the table of issue 9 item 2: each input
// a user, a site or an attacker might send, with the one answer for it.
// want "" means refused.
func TestNormalizeEmail_LookAlikes(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain", "  Ann@Example.COM ", "ann@example.com"},
		{"plus tag kept", "bob+tag@shop.io", "bob+tag@shop.io"},
		{"ASCII case folds", "KIM@EXAMPLE.COM", "kim@example.com"},
		{"Kelvin sign is not K", "\u212Aim@example.com", ""},
		{"Kelvin sign in the domain maps as IDNA says", "kim@\u212Aelvin.com", "kim@kelvin.com"},
		{"Ohm sign", "\u2126mega@example.com", ""},
		{"Angstrom sign", "\u212Bsa@example.se", ""},
		{"dotted capital I", "\u0130brahim@example.com", ""},
		{"dotless i is its own letter", "k\u0131m@example.com", "k\u0131m@example.com"},
		{"capital I folds to i, not to dotless i", "KIM@example.com", "kim@example.com"},
		{"fullwidth letter", "\uFF4Bim@example.com", ""},
		{"fullwidth domain maps as IDNA says", "kim@\uFF45xample.com", "kim@example.com"},
		{"fullwidth at sign", "kim\uFF20example.com", ""},
		{"ligature", "\uFB01nn@example.com", ""},
		{"superscript digit", "kim\u00B2@example.com", ""},
		{"zero-width joiner", "k\u200Dim@example.com", ""},
		{"zero-width non-joiner", "k\u200Cim@example.com", ""},
		{"zero-width space", "k\u200Bim@example.com", ""},
		{"word joiner", "kim\u2060@example.com", ""},
		{"soft hyphen", "k\u00ADim@example.com", ""},
		{"byte order mark", "\uFEFFkim@example.com", ""},
		{"right-to-left override", "kim\u202E@example.com", ""},
		{"left-to-right mark", "\u200Ekim@example.com", ""},
		{"combining grapheme joiner", "ki\u034Fm@example.com", ""},
		{"variation selector", "ki\uFE0Fm@example.com", ""},
		{"Hangul filler", "kim\u3164@example.com", ""},
		{"zero-width joiner in the domain", "kim@exa\u200Dmple.com", ""},
		{"NFC", "j\u00FCrgen@example.de", "j\u00FCrgen@example.de"},
		{"NFD is the same user as NFC", "ju\u0308rgen@example.de", "j\u00FCrgen@example.de"},
		{"NFD capital is refused like the precomposed one", "JU\u0308RGEN@example.de", ""},
		{"precomposed capital", "J\u00DCRGEN@example.de", ""},
		{"ASCII capital before a decomposed accent", "U\u0308ber@example.de", ""},
		{"ASCII capital composes after folding", "J\u030Cunior@example.com", "\u01F0unior@example.com"},
		{"Cyrillic i among Latin", "k\u0456m@example.com", ""},
		{"Cyrillic a among Latin", "\u0430nn@example.com", ""},
		{"Greek omicron among Latin", "b\u03BFb@example.com", ""},
		{"all Cyrillic", "\u043F\u0451\u0442\u0440@example.ru", "\u043F\u0451\u0442\u0440@example.ru"},
		{"all Cyrillic capital", "\u041F\u0451\u0442\u0440@example.ru", ""},
		{"Japanese with Latin", "taro.\u5C71\u7530\u305F\u308D\u3046@example.jp", "taro.\u5C71\u7530\u305F\u308D\u3046@example.jp"},
		{"Hangul with Latin", "kim.\uD55C\uAE00@example.kr", "kim.\uD55C\uAE00@example.kr"},
		{"Arabic-Indic digits", "\u0661\u0662\u0663@example.com", "\u0661\u0662\u0663@example.com"},
		{"two digit systems", "1\u0662@example.com", ""},
		{"Arabic-Indic and extended Arabic-Indic", "\u0661\u06F2@example.com", ""},
		{"emoji", "kim\U0001F600@example.com", ""},
		{"non-ASCII hyphen", "anne\u2010marie@example.com", ""},
		{"modifier letter apostrophe", "o\u02BCbrien@example.com", ""},
		{"katakana with the prolonged sound mark", "\u30B3\u30FC\u30D2\u30FC@example.jp", "\u30B3\u30FC\u30D2\u30FC@example.jp"},
		{"IDN domain is kept as its A-label", "ann@B\u00FCcher.DE", "ann@xn--bcher-kva.de"},
		{"A-label domain", "ann@XN--BCHER-KVA.de", "ann@xn--bcher-kva.de"},
		{"decomposed IDN", "ann@bu\u0308cher.de", "ann@xn--bcher-kva.de"},
		{"eszett in the domain is not ss", "ann@stra\u00DFe.de", "ann@xn--strae-oqa.de"},
		{"underscore in the domain", "ann@ex_ample.com", ""},
		{"hyphen at a label's start", "ann@-example.com", ""},
		{"bad punycode", "ann@xn--zz.com", ""},
		{"domain literal", "ann@[127.0.0.1]", ""},
		{"quoted local part", "\"ann\"@example.com", ""},
		{"display name", "Ann <ann@example.com>", ""},
		{"two addresses", "a@b.c, d@e.f", ""},
		{"two at signs", "a@b@c", ""},
		{"no at sign", "ann", ""},
		{"empty", "", ""},
		{"invalid UTF-8", "k\xffim@example.com", ""},
		{"too long", strings.Repeat("a", 250) + "@b.co", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeEmail(tc.in)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("NormalizeEmail(%+q) = %+q, want a refusal", tc.in, got)
			case tc.want == "" && !errors.Is(err, ErrInvalidEmail):
				t.Fatalf("NormalizeEmail(%+q): %v does not wrap ErrInvalidEmail", tc.in, err)
			case tc.want != "" && (err != nil || got != tc.want):
				t.Fatalf("NormalizeEmail(%+q) = %+q, %v; want %+q", tc.in, got, err, tc.want)
			case tc.want != "":
				if again, err := NormalizeEmail(got); err != nil || again != got {
					t.Fatalf("the normal form %+q normalises to %+q, %v", got, again, err)
				}
			}
		})
	}
}

// TestNormalizeEmail_Properties: the normal form is a fixed point, and the
// spellings Unicode calls the same (NFC and NFD) and the ASCII case
// variants give one answer.
func TestNormalizeEmail_Properties(t *testing.T) {
	alphabet := []rune("abcKLMxyz09.+-_\u00FC\u00DCu\u0308\u0301\u0131\u0130\u212A\u0456\u200D\u00E9\u5C71\u305F\u0661\uFF41")
	rapid.Check(t, func(t *rapid.T) {
		local := rapid.StringOfN(rapid.SampledFrom(alphabet), 1, 12, -1).Draw(t, "local")
		domain := rapid.SampledFrom([]string{"example.com", "B\u00FCcher.de", "xn--bcher-kva.de", "EXAMPLE.org"}).Draw(t, "domain")
		in := local + "@" + domain
		got, err := NormalizeEmail(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidEmail) {
				t.Fatalf("%+q: %v does not wrap ErrInvalidEmail", in, err)
			}
			return
		}
		if again, err := NormalizeEmail(got); err != nil || again != got {
			t.Fatalf("%+q -> %+q -> %+q, %v: not a fixed point", in, got, again, err)
		}
		variants := []string{norm.NFC.String(in), norm.NFD.String(in)}
		if 'a' <= in[0] && in[0] <= 'z' && in[1] < utf8.RuneSelf { // not followed by a mark that composes with it
			variants = append(variants, strings.ToUpper(in[:1])+in[1:])
		}
		for _, variant := range variants {
			v, err := NormalizeEmail(variant)
			if err != nil || v != got {
				t.Fatalf("%+q -> %+q but its variant %+q -> %+q, %v", in, got, variant, v, err)
			}
		}
		if !isASCII(got[strings.LastIndexByte(got, '@'):]) {
			t.Fatalf("%+q: the domain of %+q is not ASCII", in, got)
		}
	})
}
