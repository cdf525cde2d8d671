package session

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// MaxEmailBytes is the longest address accepted (RFC 5321 path limit), in
// bytes of its normal form.
const MaxEmailBytes = 254

// maxEmailInput bounds the raw input NormalizeEmail looks at: a longer
// input cannot normalise to MaxEmailBytes (NFC and IDNA shrink an address
// by far less than four times).
const maxEmailInput = 4 * MaxEmailBytes

// domainProfile is UTS #46 processing for lookup (RFC 5891 section 5):
// nontransitional, with the Bidi rule (RFC 5893), the CONTEXTJ rules for
// joiners, the hyphen rules, STD3 ASCII rules (letters, digits, hyphen) and
// DNS lengths.
var domainProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.CheckHyphens(true),
	idna.CheckJoiners(true),
	idna.VerifyDNSLength(true),
)

// NormalizeEmail returns the normal form of an address: one address, one
// user, whatever way it was typed. It trims surrounding white space and
// checks that the rest is one plain addr-spec (no display name, no quoted
// local part, no domain literal); then:
//
//   - the domain goes through IDNA (UTS #46 lookup processing: Unicode case
//     folding, width and compatibility mapping, NFC, the Bidi and joiner
//     rules) and is kept in its ASCII form, so "Bücher.DE" and
//     "xn--bcher-kva.de" are one domain;
//   - the local part is put in NFC, so precomposed and decomposed accents
//     are one spelling, and its ASCII letters are lower-cased. Nothing else
//     is folded. What cannot be made unambiguous is refused: a code point
//     that never occurs in NFC text (the Kelvin sign, the Ohm sign, the
//     Angstrom sign, ...), a compatibility character (fullwidth forms,
//     ligatures, superscripts, ...), a non-ASCII letter in upper or title
//     case (there is no safe way to fold it: "İ" lower-cases to an ASCII
//     "i"), a non-ASCII character that is not a letter, a combining mark or
//     a decimal digit (zero-width spaces and joiners, bidi controls, soft
//     hyphens, symbols, ...), a letter of no script (modifier letters that
//     look like punctuation), a default-ignorable code point or variation
//     selector, letters of scripts that are not used together (Latin with
//     Cyrillic or Greek: only the combinations UTS #39 calls highly
//     restrictive pass), and digits of two numbering systems.
//
// The result is at most MaxEmailBytes. Every refusal wraps ErrInvalidEmail.
// NormalizeEmail is idempotent: a normal form normalises to itself. The
// policy is written out in docs/users.md.
func NormalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidEmail)
	case len(s) > maxEmailInput:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidEmail, MaxEmailBytes)
	case !utf8.ValidString(s):
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalidEmail)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", fmt.Errorf("%w: %q is not an address", ErrInvalidEmail, s)
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", fmt.Errorf("%w: %q is not an address", ErrInvalidEmail, s)
	}
	local, err := normalizeLocal(s[:at])
	if err != nil {
		return "", err
	}
	domain, err := domainProfile.ToASCII(s[at+1:])
	if err != nil || domain == "" {
		return "", fmt.Errorf("%w: the domain of %q is not a valid domain name (IDNA)", ErrInvalidEmail, s)
	}
	e := local + "@" + domain
	if len(e) > MaxEmailBytes {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidEmail, MaxEmailBytes)
	}
	return e, nil
}

// normalizeLocal is the local part's normal form (see NormalizeEmail).
func normalizeLocal(l string) (string, error) {
	if isASCII(l) {
		return asciiLower(l), nil
	}
	// A code point that NFC would replace by another (NFC_Quick_Check=No)
	// is refused rather than mapped: the Kelvin sign would become "K".
	for _, r := range l {
		if !norm.NFC.IsNormalString(string(r)) {
			return "", refuse(r, "is not used in normalised text (NFC maps it to %q)", norm.NFC.String(string(r)))
		}
	}
	// NFC, lower-case ASCII, NFC again: an ASCII letter lower-cased may now
	// compose with a mark that followed it ("J" + caron becomes "ǰ").
	l = norm.NFC.String(asciiLower(norm.NFC.String(l)))
	var (
		scripts scriptSet
		zero    rune = -1 // the zero of the first digit's numbering system
	)
	for _, r := range l {
		if unicode.IsDigit(r) {
			z := digitZero(r)
			if zero >= 0 && z != zero {
				return "", refuse(r, "is a digit of another numbering system than the address's other digits")
			}
			zero = z
		}
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				scripts.addName("Latin")
			}
			continue // other atext was checked by net/mail
		}
		switch {
		case unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Variation_Selector, r):
			return "", refuse(r, "is invisible (a default-ignorable code point)")
		case !unicode.In(r, unicode.L, unicode.M, unicode.Nd):
			return "", refuse(r, "is not a letter, a combining mark or a digit")
		case !norm.NFKC.IsNormalString(string(r)):
			return "", refuse(r, "is a compatibility form of %q", norm.NFKC.String(string(r)))
		case unicode.ToLower(r) != r:
			return "", refuse(r, "is an upper-case letter outside ASCII: write the address in lower case")
		case unicode.IsLetter(r) && r != prolongedSoundMark && scriptOf(r) == "Common":
			return "", refuse(r, "is a letter of no script (it looks like punctuation)")
		}
		scripts.add(r)
	}
	if !scripts.restrictive() {
		return "", fmt.Errorf("%w: the local part %q mixes scripts (%s) that look alike", ErrInvalidEmail, l, scripts)
	}
	return l, nil
}

func refuse(r rune, why string, args ...any) error {
	return fmt.Errorf("%w: %q (%U) "+why, append([]any{ErrInvalidEmail, string(r), r}, args...)...)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiLower lower-cases the ASCII letters of s and nothing else.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// digitZero is the zero of r's numbering system. Unicode encodes every set
// of decimal digits as ten consecutive code points from 0 to 9 (a stability
// policy), and adjacent sets follow each other from their zeros.
func digitZero(r rune) rune {
	start := r
	for unicode.IsDigit(start - 1) {
		start--
	}
	return start + (r-start)/10*10
}

// prolongedSoundMark (ー, U+30FC) is the one letter of the Common script a
// local part may hold: it belongs to Japanese kana (its Script_Extensions
// are Hiragana and Katakana). The other Common letters are modifier letters
// that look like ASCII punctuation (U+02BC looks like an apostrophe).
const prolongedSoundMark = '\u30FC'

// scriptSet is the set of scripts of an address's letters and marks, Common
// and Inherited left out (they go with any script).
type scriptSet []string

// frequentScripts are looked up first; any other script is found in
// unicode.Scripts.
var frequentScripts = []string{"Latin", "Common", "Inherited", "Cyrillic", "Greek", "Han", "Hiragana", "Katakana", "Hangul", "Arabic", "Hebrew"}

func scriptOf(r rune) string {
	for _, name := range frequentScripts {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	for name, t := range unicode.Scripts {
		if unicode.Is(t, r) {
			return name
		}
	}
	return "Unknown"
}

func (s *scriptSet) add(r rune) { s.addName(scriptOf(r)) }

func (s *scriptSet) addName(name string) {
	if name == "Common" || name == "Inherited" {
		return
	}
	for _, have := range *s {
		if have == name {
			return
		}
	}
	*s = append(*s, name)
}

// restrictive reports whether the scripts may be used together: one script,
// or one of the combinations of UTS #39's "highly restrictive" level
// (section 5.2), in which Latin goes with the scripts of Japanese, Chinese
// and Korean. ASCII letters count as Latin.
func (s scriptSet) restrictive() bool {
	if len(s) <= 1 {
		return true
	}
	for _, allowed := range [][]string{
		{"Latin", "Han", "Hiragana", "Katakana"},
		{"Latin", "Han", "Bopomofo"},
		{"Latin", "Han", "Hangul"},
	} {
		all := true
		for _, name := range s {
			found := false
			for _, a := range allowed {
				found = found || a == name
			}
			all = all && found
		}
		if all {
			return true
		}
	}
	return false
}

func (s scriptSet) String() string { return strings.Join(s, ", ") }
