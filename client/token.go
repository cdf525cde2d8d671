package client

import (
	"crypto/sha256"
	"encoding/hex"
)

// SessionID is the id of the session whose token is token: the lower-case
// hex SHA-256 of the token, 64 characters. A site keeps the token in its
// cookie and asks its node about SessionID(token); the node never stores or
// sends the token itself.
func SessionID(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
