package node

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
	"github.com/ussync/ussync/session"
)

// The private API's tokens: several at once, each named for the site
// backend or tool that holds it, so that one can be replaced or revoked
// without touching the others, and every change is recorded with the name
// of the token that made it (activity.go).
//
// Two kinds, as Consul has an initial management token in its
// configuration beside the tokens made through its API:
//
//   - the configuration's token (api.token, api.token_file,
//     USSYNC_API_TOKEN, USSYNC_API_TOKEN_FILE, --token-file), named
//     "config": it is required (a node can always be reached), and a
//     configuration reload (SIGHUP) replaces it;
//   - tokens made through the API (POST /v1/tokens, `ussync tokens
//     create NAME`): the node keeps their SHA-256 in its store (node-local
//     keys under "token/"), so they survive restarts and backups, and they
//     work, or stop working, from the answer on: no restart, no reload.
//
// Every token may make every call of the private API: a token is named,
// not scoped. Tokens are per node: a site's backend holds a token of its
// own node only.

// tokenConfigName is the name of the configuration's token.
const tokenConfigName = client.TokenConfig

// tokenKeyPrefix is where the store keeps the API's tokens (node-local).
const tokenKeyPrefix = "token/"

var (
	// ErrTokenExists means a token of that name exists already.
	ErrTokenExists = errors.New("a token of that name exists")
	// ErrTokenConfig means a call tried to remove the configuration's token.
	ErrTokenConfig = errors.New("the configuration's token is replaced in the configuration (api.token_file) and a reload, not through the API")
)

// apiToken is one token: its hash, never the token.
type apiToken struct {
	name      string
	hash      crypto.TokenHash
	source    string // client.TokenConfig or client.TokenAPI
	created   time.Time
	createdBy string
	// lastUsed is when it last authorized a call, in Unix seconds (0:
	// not since the node started). Written at most once a second.
	lastUsed atomic.Int64
}

func (t *apiToken) info() client.TokenInfo {
	ti := client.TokenInfo{Name: t.name, Source: t.source, Fingerprint: t.hash.Fingerprint(), CreatedBy: t.createdBy}
	if !t.created.IsZero() {
		c := t.created.UTC()
		ti.CreatedAt = &c
	}
	if s := t.lastUsed.Load(); s != 0 {
		u := time.Unix(s, 0).UTC()
		ti.LastUsed = &u
	}
	return ti
}

// storedToken is how the store keeps a token of the API.
type storedToken struct {
	Hash      string    `json:"hash"` // hex SHA-256 of the token
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// apiTokens is a node's set of tokens. Checking a token reads an immutable
// list through an atomic pointer (no lock on the request path); changes
// are serialized and replace the list. Safe for concurrent use.
type apiTokens struct {
	store *session.Store // nil: no tokens but the configuration's (tests)
	now   func() time.Time
	log   *slog.Logger

	mu   sync.Mutex                  // serializes changes
	list atomic.Pointer[[]*apiToken] // config token first
}

// newAPITokens returns a set holding the configuration's token alone; load
// adds the store's.
func newAPITokens(store *session.Store, now func() time.Time, log *slog.Logger, config crypto.TokenHash) *apiTokens {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &apiTokens{store: store, now: now, log: log}
	list := []*apiToken{{name: tokenConfigName, hash: config, source: client.TokenConfig}}
	t.list.Store(&list)
	return t
}

// load reads the tokens the API made from the store.
func (t *apiTokens) load() error {
	if t.store == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	list := []*apiToken{(*t.list.Load())[0]}
	err := t.store.LocalScan(tokenKeyPrefix, func(key string, value []byte, _ time.Time) error {
		var st storedToken
		if err := json.Unmarshal(value, &st); err != nil {
			return fmt.Errorf("token %q: %w", strings.TrimPrefix(key, tokenKeyPrefix), err)
		}
		raw, err := hex.DecodeString(st.Hash)
		if err != nil || len(raw) != len(crypto.TokenHash{}) {
			return fmt.Errorf("token %q: bad hash", strings.TrimPrefix(key, tokenKeyPrefix))
		}
		tok := &apiToken{name: strings.TrimPrefix(key, tokenKeyPrefix), source: client.TokenAPI, created: st.CreatedAt, createdBy: st.CreatedBy}
		copy(tok.hash[:], raw)
		list = append(list, tok)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load api tokens: %w", err)
	}
	t.list.Store(&list)
	return nil
}

// match returns the token presented, or nil. It hashes the presented token
// once and compares the hash with every token's in constant time, without
// stopping at a match: the time taken depends on the number of tokens only.
func (t *apiTokens) match(presented string) *apiToken {
	h := crypto.HashToken(presented)
	var found *apiToken
	for _, tok := range *t.list.Load() {
		if subtle.ConstantTimeCompare(tok.hash[:], h[:]) == 1 {
			found = tok
		}
	}
	if found != nil {
		if s := t.now().Unix(); found.lastUsed.Load() != s {
			found.lastUsed.Store(s)
		}
	}
	return found
}

// setConfig replaces the configuration's token (a reload). It reports
// whether the token changed.
func (t *apiTokens) setConfig(h crypto.TokenHash) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.list.Load()
	if old[0].hash == h {
		return false
	}
	list := append([]*apiToken{{name: tokenConfigName, hash: h, source: client.TokenConfig}}, old[1:]...)
	t.list.Store(&list)
	return true
}

// infos describes every token, the configuration's first, then by name.
func (t *apiTokens) infos() []client.TokenInfo {
	list := *t.list.Load()
	out := make([]client.TokenInfo, len(list))
	for i, tok := range list {
		out[i] = tok.info()
	}
	return out
}

// validTokenName checks a token name: like a node name, and not the
// configuration's.
func validTokenName(name string) error {
	if err := validName(name); err != nil {
		return refuse(errInvalidField, "field \"name\": %v", strings.Replace(err.Error(), "required (it defaults to the host name)", "required", 1))
	}
	if name == tokenConfigName {
		return refuse(ErrTokenExists, "%q names the configuration's token; pick another name", name)
	}
	return nil
}

// create makes a new token named name, on behalf of by (the caller's token
// name), and returns it (the only time it is ever seen) with its
// description.
func (t *apiTokens) create(name, by string) (string, client.TokenInfo, error) {
	if err := validTokenName(name); err != nil {
		return "", client.TokenInfo{}, err
	}
	if t.store == nil {
		return "", client.TokenInfo{}, refuse(errUnavailable, "this node keeps no tokens of the API")
	}
	secret, err := crypto.NewAPIToken()
	if err != nil {
		return "", client.TokenInfo{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.list.Load()
	for _, tok := range old {
		if tok.name == name {
			return "", client.TokenInfo{}, refuse(ErrTokenExists, "a token named %q exists; revoke it first, or pick another name", name)
		}
	}
	tok := &apiToken{name: name, hash: crypto.HashToken(secret), source: client.TokenAPI, created: t.now().UTC().Truncate(time.Second), createdBy: by}
	b, err := json.Marshal(storedToken{Hash: hex.EncodeToString(tok.hash[:]), CreatedAt: tok.created, CreatedBy: by})
	if err != nil {
		return "", client.TokenInfo{}, err
	}
	if err := t.store.LocalPut(tokenKeyPrefix+name, b, 0); err != nil {
		return "", client.TokenInfo{}, fmt.Errorf("store token: %w", err)
	}
	list := append(old[:len(old):len(old)], tok)
	t.list.Store(&list)
	t.log.Info("api token created", "token", name, "fingerprint", tok.hash.Fingerprint(), "actor", by)
	return secret, tok.info(), nil
}

// revoke removes the token named name, on behalf of by. From its return on,
// the token authorizes nothing.
func (t *apiTokens) revoke(name, by string) (client.TokenInfo, error) {
	if name == tokenConfigName {
		return client.TokenInfo{}, refuse(ErrTokenConfig, "the token %q comes from the configuration: change api.token_file (or USSYNC_API_TOKEN) and reload the node (SIGHUP)", name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.list.Load()
	for i, tok := range old {
		if tok.name != name {
			continue
		}
		if err := t.store.LocalDelete(tokenKeyPrefix + name); err != nil {
			return client.TokenInfo{}, fmt.Errorf("delete token: %w", err)
		}
		list := append(append(make([]*apiToken, 0, len(old)-1), old[:i]...), old[i+1:]...)
		t.list.Store(&list)
		t.log.Info("api token revoked", "token", name, "fingerprint", tok.hash.Fingerprint(), "actor", by)
		return tok.info(), nil
	}
	return client.TokenInfo{}, refuse(session.ErrNotFound, "no token named %q", name)
}
