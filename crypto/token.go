package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
)

// randReader is the source of every random byte in the package.
var randReader io.Reader = rand.Reader

// TokenSize is the number of random bytes in a session or API token.
const TokenSize = 32

// NewToken returns a new session token (32 random bytes, URL-safe unpadded
// base64) and its id, SessionID(token). The browser cookie holds the token;
// the store keeps only the id.
func NewToken() (token, id string, err error) {
	token, err = randomToken()
	if err != nil {
		return "", "", fmt.Errorf("new token: %w", err)
	}
	return token, SessionID(token), nil
}

// SessionID returns the session id of a token: the lower-case hex SHA-256 of
// the token, 64 characters.
func SessionID(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ValidSessionID reports whether id is exactly 64 lower-case hex characters,
// the form SessionID returns.
func ValidSessionID(id string) bool {
	if len(id) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Equal reports whether a and b are equal, in time that depends only on
// their lengths (crypto/subtle). Use it for every comparison of secrets.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// TokenHash is the SHA-256 of an API token: what a node keeps instead of the
// token.
type TokenHash [sha256.Size]byte

// HashToken returns the hash of token to keep in place of it.
func HashToken(token string) TokenHash {
	return sha256.Sum256([]byte(token))
}

// Matches reports, in constant time, whether token hashes to h.
func (h TokenHash) Matches(token string) bool {
	got := HashToken(token)
	return subtle.ConstantTimeCompare(h[:], got[:]) == 1
}

// Fingerprint returns the first 16 lower-case hex characters of h: what
// names an API token in lists and logs (`ussync tokens list`, `ussync agent
// --print-config`) without revealing it. A token of 32 random bytes cannot
// be recovered from it; a short typed-in one might be guessed offline, which
// is one more reason the node refuses tokens under 16 characters.
func (h TokenHash) Fingerprint() string {
	return hex.EncodeToString(h[:fingerprintSize])
}

// NewAPIToken returns a new API token: 32 random bytes, URL-safe unpadded
// base64.
func NewAPIToken() (string, error) {
	t, err := randomToken()
	if err != nil {
		return "", fmt.Errorf("new api token: %w", err)
	}
	return t, nil
}

func randomToken() (string, error) {
	var b [TokenSize]byte
	if _, err := io.ReadFull(randReader, b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(randReader, b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
