package crypto

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
)

// Browser binding (docs/handoff.md, "Bound to the browser"): before a site
// is handed a ticket, it sets a random nonce in a cookie of its own; the
// ticket names a commitment of that nonce (a Binding), and the site accepts
// the ticket only from a browser whose cookie matches it. A ticket copied
// out of one browser is refused in every other, which is what stops login
// CSRF (a captured hand-off URL opened in a victim's browser). The idea is
// OAuth 2.0's "state" bound to the user agent (RFC 6749 §10.12) and the
// PKCE verifier/challenge pair (RFC 7636), applied to every site of a
// route: the nonce never leaves the browser and its site, and only its
// commitment travels.

// BindingSize is the length of a Binding: 64 bits. A captured ticket names
// its owner's bindings; opening it in another browser succeeds only if that
// browser's random nonce commits to the same 64 bits (probability 2^-64 per
// try, each try needing a victim to open a URL). Kept short because a chain
// ticket names one Binding per site (docs/handoff.md).
const BindingSize = 8

// NonceSize is the number of random bytes of a browser nonce.
const NonceSize = 32

// Binding is the commitment of a browser nonce on one site: the first
// BindingSize bytes of SHA-256 over a label, the site's node name and the
// nonce. Naming the site keeps one site's nonce from counting on another.
type Binding [BindingSize]byte

// NewNonce returns a new browser nonce: 32 random bytes, URL-safe unpadded
// base64 (43 characters), for a cookie.
func NewNonce() (string, error) {
	n, err := randomToken()
	if err != nil {
		return "", fmt.Errorf("new nonce: %w", err)
	}
	return n, nil
}

// ValidNonce reports whether s has the form NewNonce returns: what a node
// takes from a cookie before it commits to it.
func ValidNonce(s string) bool {
	if len(s) != base64.RawURLEncoding.EncodedLen(NonceSize) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil && len(b) == NonceSize
}

// BindingOf returns the commitment of nonce, as set by the node name.
func BindingOf(name, nonce string) Binding {
	h := sha256.New()
	h.Write([]byte("ussync browser binding v1\x00"))
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write([]byte(nonce))
	var sum [sha256.Size]byte
	var b Binding
	copy(b[:], h.Sum(sum[:0]))
	return b
}

// Matches reports, in constant time, whether b is the commitment of nonce
// as set by the node name.
func (b Binding) Matches(name, nonce string) bool {
	got := BindingOf(name, nonce)
	return subtle.ConstantTimeCompare(b[:], got[:]) == 1
}

// String is the binding in URL-safe unpadded base64 (11 characters).
func (b Binding) String() string { return base64.RawURLEncoding.EncodeToString(b[:]) }

// ParseBinding parses what Binding.String returns.
func ParseBinding(s string) (Binding, error) {
	var b Binding
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != BindingSize {
		return b, fmt.Errorf("parse binding: not %d bytes of URL-safe base64", BindingSize)
	}
	copy(b[:], raw)
	return b, nil
}

// MarshalText implements encoding.TextMarshaler (String).
func (b Binding) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (ParseBinding).
func (b *Binding) UnmarshalText(t []byte) error {
	v, err := ParseBinding(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
