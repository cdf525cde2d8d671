package node

import (
	"testing"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// TestWire_ClientAgrees checks that the words package client gives sites
// (it imports nothing of ours, so it spells them itself) are the node's.
func TestWire_ClientAgrees(t *testing.T) {
	for _, tok := range []string{"", "a", "a-token-of-forty-three-characters-in-base64url"} {
		if got, want := client.SessionID(tok), crypto.SessionID(tok); got != want {
			t.Errorf("client.SessionID(%q) = %s, crypto.SessionID = %s", tok, got, want)
		}
	}
	for _, c := range [][2]string{
		{client.VerifiedRegistration, session.VerifiedRegistration},
		{client.VerifiedAdmin, session.VerifiedAdmin},
		{client.VerifiedCode, session.VerifiedCode},
		{client.EndLogout, session.EndLogout},
		{client.EndLogoutEverywhere, session.EndLogoutEverywhere},
		{client.EndAdmin, session.EndAdmin},
		{client.EndExpired, session.EndExpired},
	} {
		if c[0] != c[1] {
			t.Errorf("client says %q, session says %q", c[0], c[1])
		}
	}
}
