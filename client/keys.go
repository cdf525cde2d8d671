package client

import (
	"context"
	"net/http"
	"net/url"
)

// Keyring operations (`ussync keys`, docs/operations.md "Rotating keys and
// tokens"), as Serf's `serf keys` and Consul's `consul keyring`: each is
// asked of every live member of the cluster through the node called, and
// each member answers.

// Keyring operations (KeyringAnswer.Op).
const (
	KeysList    = "list"
	KeysInstall = "install"
	KeysUse     = "use"
	KeysRemove  = "remove"
)

// KeyringAnswer is the answer of a keyring call.
type KeyringAnswer struct {
	// Op is what was asked: KeysList, KeysInstall, KeysUse, KeysRemove.
	Op string `json:"op"`
	// Fingerprint is the key it was about (install, use, remove).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Local: only the node called was asked (?local=1).
	Local bool `json:"local,omitempty"`
	// Asked are the members asked: every live member that answers
	// keyring calls, the node called included.
	Asked []string `json:"asked"`
	// OK are the members that answered and did it.
	OK []string `json:"ok"`
	// NotHeld are the members of OK that did not hold the key a removal
	// named: nothing changed there. When it is every member of OK, the key
	// was removed nowhere (a mistyped fingerprint, or a removal run again).
	NotHeld []string `json:"not_held,omitempty"`
	// Failed are the members that answered with an error, by name.
	Failed map[string]string `json:"failed,omitempty"`
	// NoAnswer are the members asked that did not answer in time, or could
	// not be reached.
	NoAnswer []string `json:"no_answer,omitempty"`
	// Down are the members known but not alive (failed, not departed),
	// or alive again by the time the answers were summed up but not when
	// the query went out: not asked. A member down during a rotation must be given the new key
	// when it is back (it is flagged key_mismatch meanwhile).
	Down []string `json:"down,omitempty"`
	// Left are the members that left the cluster (stopped cleanly, as
	// `systemctl stop` does) and are still remembered: not asked. Like a
	// member down, one that comes back holds the keys it had when it
	// stopped, so an operation is not complete while one is listed.
	Left []string `json:"left,omitempty"`
	// Unsupported are the live members of a version without keyring calls
	// ("name (version)"): not asked.
	Unsupported []string `json:"unsupported,omitempty"`
	// Keys are the keys the members that answered hold, after the
	// operation.
	Keys []KeyringKey `json:"keys"`
	// Complete is true when every member asked answered and did it, and no
	// member was down, left or unsupported: the operation holds
	// cluster-wide.
	Complete bool `json:"complete"`
}

// KeyringKey is one key and the members that hold it.
type KeyringKey struct {
	Fingerprint string `json:"fingerprint"`
	// Members is how many of the members that answered hold it.
	Members int `json:"members"`
	// PrimaryOn are the members that use it as their primary.
	PrimaryOn []string `json:"primary_on,omitempty"`
	// MissingOn are the members that answered and do not hold it.
	MissingOn []string `json:"missing_on,omitempty"`
}

// keysPath is path with ?local=1 when local.
func keysPath(path string, local bool) string {
	if local {
		return path + "?local=1"
	}
	return path
}

// Keys lists the keys every live member holds (GET /v1/keys); local asks
// the node called alone.
func (c *Client) Keys(ctx context.Context, local bool) (KeyringAnswer, error) {
	var a KeyringAnswer
	err := c.callLong(ctx, http.MethodGet, keysPath("/v1/keys", local), nil, &a)
	return a, err
}

// InstallKey installs key (a cluster secret, base64) on every live member
// beside the keys they hold (POST /v1/keys). It is sent through the
// cluster encrypted like all gossip.
func (c *Client) InstallKey(ctx context.Context, key string, local bool) (KeyringAnswer, error) {
	var a KeyringAnswer
	err := c.callLong(ctx, http.MethodPost, keysPath("/v1/keys", local), map[string]string{"key": key}, &a)
	return a, err
}

// UseKey makes the key with the fingerprint every member's primary (POST
// /v1/keys/{fingerprint}/use); it must be installed everywhere first.
func (c *Client) UseKey(ctx context.Context, fingerprint string, local bool) (KeyringAnswer, error) {
	var a KeyringAnswer
	err := c.callLong(ctx, http.MethodPost, keysPath("/v1/keys/"+url.PathEscape(fingerprint)+"/use", local), nil, &a)
	return a, err
}

// RemoveKey removes the key with the fingerprint from every member (DELETE
// /v1/keys/{fingerprint}). The node called refuses its own primary (Code
// CodeKeyPrimary).
func (c *Client) RemoveKey(ctx context.Context, fingerprint string, local bool) (KeyringAnswer, error) {
	var a KeyringAnswer
	err := c.callLong(ctx, http.MethodDelete, keysPath("/v1/keys/"+url.PathEscape(fingerprint), local), nil, &a)
	return a, err
}
