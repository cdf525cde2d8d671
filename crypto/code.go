package crypto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
)

// CodeDigits is the length of a verification code.
const CodeDigits = 6

var codeRange = big.NewInt(1_000_000) // 10^CodeDigits

// NewCode returns a new verification code: CodeDigits decimal digits, uniform
// over "000000" to "999999". Store only Keyring.CodeMAC of it.
func NewCode() (string, error) {
	n, err := rand.Int(randReader, codeRange)
	if err != nil {
		return "", fmt.Errorf("new code: %w", err)
	}
	return fmt.Sprintf("%0*d", CodeDigits, n.Int64()), nil
}

// CodeMAC returns HMAC-SHA256, under the primary secret's code key (label
// "ussync code v1"), of the length-prefixed email and code. Store it instead
// of the code. Pass the e-mail address in one canonical form (the caller
// chooses, e.g. lower case), the same when checking.
func (k *Keyring) CodeMAC(email, code string) []byte {
	return codeMAC(k.primary(), email, code)
}

// CheckCode reports whether mac is CodeMAC(email, code) under any secret in
// the keyring. It compares in constant time and tries every secret whatever
// the outcome.
func (k *Keyring) CheckCode(email, code string, mac []byte) bool {
	ok := 0
	for _, rk := range k.snapshot() {
		ok |= subtle.ConstantTimeCompare(codeMAC(rk, email, code), mac)
	}
	return ok == 1
}

func codeMAC(rk *ringKey, email, code string) []byte {
	m := hmac.New(sha256.New, rk.code[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(email)))
	m.Write(n[:])
	io.WriteString(m, email)
	binary.BigEndian.PutUint64(n[:], uint64(len(code)))
	m.Write(n[:])
	io.WriteString(m, code)
	return m.Sum(nil)
}
