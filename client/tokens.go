package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Token sources (TokenInfo.Source).
const (
	// TokenConfig is the token of the node's configuration (api.token,
	// api.token_file, USSYNC_API_TOKEN): named "config", replaced by
	// editing the configuration and reloading (SIGHUP), never removed
	// through the API.
	TokenConfig = "config"
	// TokenAPI is a token made through the API (POST /v1/tokens, `ussync
	// tokens create`), kept hashed in the node's store.
	TokenAPI = "api"
)

// TokenInfo describes one API token of a node, never the token itself.
type TokenInfo struct {
	// Name names the token in lists, logs and the activity history: the
	// site backend or tool that holds it ("wordpress", "prometheus").
	Name string `json:"name"`
	// Source is TokenConfig or TokenAPI.
	Source string `json:"source"`
	// Fingerprint is the first 16 hex characters of the token's SHA-256:
	// enough to tell which token a file holds (`ussync agent
	// --print-config` shows the same), useless to call the API with.
	Fingerprint string `json:"fingerprint"`
	// CreatedAt and CreatedBy (the name of the token that created it) are
	// set for TokenAPI tokens.
	CreatedAt *time.Time `json:"created_at,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	// LastUsed is when the token last authorized a call (to the second),
	// since the node started; null if it has not.
	LastUsed *time.Time `json:"last_used"`
}

// NewToken is the answer of POST /v1/tokens: the token, shown this once.
type NewToken struct {
	Token TokenInfo `json:"token_info"`
	// Secret is the token to send as "Authorization: Bearer <secret>". The
	// node keeps only its hash: store it now.
	Secret string `json:"token"`
}

// ActivityEntry is one change made through the private API or the admin
// page, with who made it: the node's activity history (GET /v1/activity,
// the admin page's Activity, the last few in Status).
type ActivityEntry struct {
	At time.Time `json:"at"`
	// Actor is who made the change: a token's name for the private API
	// ("wordpress"), "admin:<token name>" or "admin:password" for the admin
	// page, "sighup" for a configuration reload, "<node> via <actor>" for a
	// keyring change another member asked for.
	Actor string `json:"actor"`
	// Action is what was done, e.g. "user.update", "session.revoke",
	// "token.create", "keys.install".
	Action string `json:"action"`
	// Subject is what it was done to: an e-mail address, a session id's
	// first 16 characters, a token's name, a key's fingerprint.
	Subject string `json:"subject,omitempty"`
}

// Tokens lists the node's API tokens (GET /v1/tokens).
func (c *Client) Tokens(ctx context.Context) ([]TokenInfo, error) {
	var a struct {
		Tokens []TokenInfo `json:"tokens"`
	}
	err := c.call(ctx, http.MethodGet, "/v1/tokens", nil, &a)
	return a.Tokens, err
}

// CreateToken makes a new API token named name (POST /v1/tokens): letters,
// digits, '.', '_' and '-', at most 64, not "config". A name in use is an
// *APIError with Code CodeTokenExists.
func (c *Client) CreateToken(ctx context.Context, name string) (NewToken, error) {
	var a NewToken
	err := c.call(ctx, http.MethodPost, "/v1/tokens", map[string]string{"name": name}, &a)
	return a, err
}

// RevokeToken removes the API token named name (DELETE /v1/tokens/{name}):
// from the answer on, it authorizes nothing. The configuration's token is
// refused (Code CodeTokenConfig), an unknown name is CodeNotFound.
func (c *Client) RevokeToken(ctx context.Context, name string) (TokenInfo, error) {
	var a struct {
		Token TokenInfo `json:"token_info"`
	}
	err := c.call(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil, &a)
	return a.Token, err
}

// Activity returns the node's latest changes, newest first, at most limit
// (1 to 500; 0: 50) (GET /v1/activity).
func (c *Client) Activity(ctx context.Context, limit int) ([]ActivityEntry, error) {
	path := "/v1/activity"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var a struct {
		Activity []ActivityEntry `json:"activity"`
	}
	err := c.call(ctx, http.MethodGet, path, nil, &a)
	return a.Activity, err
}
