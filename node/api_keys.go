package node

import (
	"context"
	"net/http"

	"github.com/ussync/ussync/client"
)

// The private API's keyring calls (keys.go): GET /v1/keys, POST /v1/keys
// {"key"}, POST /v1/keys/{fingerprint}/use, DELETE /v1/keys/{fingerprint},
// each with ?local=1 to act on this node alone. They answer 200 with what
// every member did (client.KeyringAnswer; Complete false when one did not
// answer or failed), 400 for a bad key, 409 key_primary for the removal of
// this node's primary.

// keyringFunc is Node.askKeyring.
type keyringFunc func(ctx context.Context, req keysRequest, local bool) (client.KeyringAnswer, error)

// keysCall runs one keyring operation for the request.
func (a *api) keysCall(w http.ResponseWriter, r *http.Request, req keysRequest) error {
	if a.Keyring == nil {
		return refuse(errUnavailable, "this node has no keyring calls")
	}
	local := false
	switch v := r.URL.Query().Get("local"); v {
	case "", "0", "false":
	case "1", "true":
		local = true
	default:
		return refuse(errInvalidField, "query parameter \"local\" must be 1 or 0, not %q", v)
	}
	if fp := r.PathValue("fingerprint"); fp != "" {
		var err error
		if req.Fingerprint, err = normalizeFingerprint(fp); err != nil {
			return err
		}
	}
	req.Actor = actorOf(r)
	ans, err := a.Keyring(r.Context(), req, local)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, &ans)
	return nil
}

// listKeys is GET /v1/keys.
func (a *api) listKeys(w http.ResponseWriter, r *http.Request) error {
	return a.keysCall(w, r, keysRequest{Op: client.KeysList})
}

// installKey is POST /v1/keys {"key": "<base64 secret>"}.
func (a *api) installKey(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Key string `json:"key"`
	}
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	return a.keysCall(w, r, keysRequest{Op: client.KeysInstall, Key: body.Key})
}

// useKey is POST /v1/keys/{fingerprint}/use.
func (a *api) useKey(w http.ResponseWriter, r *http.Request) error {
	return a.keysCall(w, r, keysRequest{Op: client.KeysUse})
}

// removeKey is DELETE /v1/keys/{fingerprint}.
func (a *api) removeKey(w http.ResponseWriter, r *http.Request) error {
	return a.keysCall(w, r, keysRequest{Op: client.KeysRemove})
}
