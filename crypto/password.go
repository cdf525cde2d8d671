package crypto

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// PasswordCost is the bcrypt cost of HashPassword: about 50 ms on a current
// server core, slow enough to make guessing from a stolen hash expensive and
// fast enough for a login form.
const PasswordCost = 12

// ErrBadPasswordHash is returned by ParsePasswordHash for text that is not a
// bcrypt hash ($2a$, $2b$ or $2y$, as htpasswd -B and HashPassword write).
// The error never contains the input.
var ErrBadPasswordHash = errors.New("not a bcrypt password hash (want $2a$/$2b$/$2y$…, e.g. from `htpasswd -nBC 12 admin`)")

// PasswordHash is a bcrypt hash of an administrator's password: what a node
// keeps instead of the password. It prints as a marker only.
type PasswordHash struct{ h []byte }

// HashPassword returns the bcrypt hash of password at PasswordCost. bcrypt
// reads at most 72 bytes: a longer password is refused rather than cut.
func HashPassword(password string) (PasswordHash, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), PasswordCost)
	if err != nil {
		return PasswordHash{}, fmt.Errorf("hash password: %w", err)
	}
	return PasswordHash{h}, nil
}

// ParsePasswordHash parses the text of a bcrypt hash (surrounding
// whitespace ignored; a leading "user:" as htpasswd writes it is dropped).
func ParsePasswordHash(text string) (PasswordHash, error) {
	s := strings.TrimSpace(text)
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[i+1:]
	}
	if _, err := bcrypt.Cost([]byte(s)); err != nil || !strings.HasPrefix(s, "$2") {
		return PasswordHash{}, ErrBadPasswordHash
	}
	return PasswordHash{[]byte(s)}, nil
}

// IsZero reports whether h holds no hash (no password configured).
func (h PasswordHash) IsZero() bool { return len(h.h) == 0 }

// Check reports whether password matches h. bcrypt compares in constant
// time; a zero h matches nothing.
func (h PasswordHash) Check(password string) bool {
	if h.IsZero() {
		return false
	}
	return bcrypt.CompareHashAndPassword(h.h, []byte(password)) == nil
}

// String returns the hash's text, the form ParsePasswordHash reads (for
// writing a password file). A bcrypt hash is not a secret in the way a
// token is, but it is not printed by %v either: see Format.
func (h PasswordHash) String() string { return string(h.h) }

// Format prints a marker for every fmt verb, so a hash never lands in a
// log by accident; String gives the text on purpose.
func (h PasswordHash) Format(f fmt.State, _ rune) { fmt.Fprint(f, "password-hash") }
