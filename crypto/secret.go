package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// SecretSize is the length of a Secret in bytes.
const SecretSize = 32

// HKDF info labels, one per use of a secret. Changing one changes every key
// derived with it and so breaks compatibility with running clusters.
const (
	labelFingerprint = "ussync fingerprint v1"
	labelGossip      = "ussync gossip v1"
	labelTicket      = "ussync ticket v1"
	labelCode        = "ussync code v1"
)

// fingerprintSize is the number of derived bytes in a fingerprint (16 hex
// characters); the ticket key id is these bytes.
const fingerprintSize = 8

// Secret is a 32-byte cluster secret. It is never used directly as a key: see
// the derivations in Keyring. Its String, GoString, Format and LogValue print
// only "secret:<fingerprint>", and MarshalText refuses; Encode is the one way
// to get its base64 text.
type Secret [SecretSize]byte

// GenerateSecret returns a new random secret.
func GenerateSecret() (Secret, error) {
	var s Secret
	if _, err := io.ReadFull(randReader, s[:]); err != nil {
		return Secret{}, fmt.Errorf("generate secret: %w", err)
	}
	return s, nil
}

// ParseSecret parses a secret written in base64, standard or URL-safe, padded
// or not, surrounded by optional white space. It must decode to exactly 32
// bytes and not be all zeros. Errors wrap ErrBadSecret and never contain the
// input.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Secret{}, fmt.Errorf("parse secret: %w: empty", ErrBadSecret)
	}
	// Padding: a 32-byte secret has one '='; accept none or a little extra
	// but no more than base64 can ever have.
	if t := strings.TrimRight(s, "="); len(s)-len(t) <= 2 {
		s = t
	} else {
		return Secret{}, fmt.Errorf("parse secret: %w: too much padding", ErrBadSecret)
	}
	hasStd := strings.ContainsAny(s, "+/")
	hasURL := strings.ContainsAny(s, "-_")
	if hasStd && hasURL {
		return Secret{}, fmt.Errorf("parse secret: %w: mixes standard and URL-safe base64", ErrBadSecret)
	}
	enc := base64.RawStdEncoding
	if hasURL {
		enc = base64.RawURLEncoding
	}
	if strings.ContainsAny(s, "\r\n") { // the decoder would skip them silently
		return Secret{}, fmt.Errorf("parse secret: %w: contains a line break", ErrBadSecret)
	}
	if enc.DecodedLen(len(s)) > 3*SecretSize { // bound the work, keep the length vague
		return Secret{}, fmt.Errorf("parse secret: %w: too long", ErrBadSecret)
	}
	b, err := enc.Strict().DecodeString(s)
	if err != nil {
		// err names only a byte offset, but do not wrap it: keep the input out.
		return Secret{}, fmt.Errorf("parse secret: %w: not base64", ErrBadSecret)
	}
	if len(b) != SecretSize {
		return Secret{}, fmt.Errorf("parse secret: %w: decodes to %d bytes, want %d", ErrBadSecret, len(b), SecretSize)
	}
	var sec Secret
	copy(sec[:], b)
	clear(b)
	if sec == (Secret{}) {
		return Secret{}, fmt.Errorf("parse secret: %w: all zeros", ErrBadSecret)
	}
	return sec, nil
}

// Encode returns the secret in standard padded base64, the form `ussync
// keygen` prints and ParseSecret reads. Handle the result as a secret.
func (s Secret) Encode() string {
	return base64.StdEncoding.EncodeToString(s[:])
}

// Fingerprint returns 16 lower-case hex characters identifying the secret,
// derived with HKDF-SHA256 (label "ussync fingerprint v1"). It reveals nothing
// useful about the secret and is safe to show and log.
func (s Secret) Fingerprint() string {
	fp := s.derive(labelFingerprint, fingerprintSize)
	return hex.EncodeToString(fp)
}

// String returns "secret:<fingerprint>", never the secret.
func (s Secret) String() string { return "secret:" + s.Fingerprint() }

// GoString returns the same as String, so %#v does not reveal the secret.
func (s Secret) GoString() string { return s.String() }

// Format writes String for every verb (%v, %+v, %#v, %s, %x, %d, ...), so no
// fmt verb reveals the secret.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue implements slog.LogValuer: a logged Secret shows as its String.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText always fails with ErrSecretMarshal, so a Secret placed in a
// JSON or YAML document by mistake is an error rather than a leak.
func (s Secret) MarshalText() ([]byte, error) { return nil, ErrSecretMarshal }

// UnmarshalText parses text with ParseSecret, so a Secret can be a field of
// a configuration file.
func (s *Secret) UnmarshalText(text []byte) error {
	v, err := ParseSecret(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// derive returns n bytes of HKDF-SHA256(secret, no salt, info).
func (s Secret) derive(info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, s[:], nil, info, n)
	if err != nil { // only for n > 255*32
		panic("crypto: hkdf: " + err.Error())
	}
	return k
}

// derive32 returns a 32-byte key derived with info.
func (s Secret) derive32(info string) [32]byte {
	var k [32]byte
	copy(k[:], s.derive(info, len(k)))
	return k
}
