package node

import (
	"net/http"

	"github.com/ussync/ussync/client"
)

// The private API's calls on its own tokens (docs/operations.md, "Rotating
// keys and tokens"); the activity they are recorded in is api_activity.go.

// listTokens is GET /v1/tokens.
func (a *api) listTokens(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, struct {
		Tokens []client.TokenInfo `json:"tokens"`
	}{a.Tokens.infos()})
	return nil
}

// createToken is POST /v1/tokens {"name"}: 201 with the new token, shown
// this once.
func (a *api) createToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeBody(w, r, &req, false); err != nil {
		return err
	}
	by := actorOf(r)
	secret, info, err := a.Tokens.create(req.Name, by)
	if err != nil {
		return err
	}
	a.Activity.record(by, "token.create", req.Name)
	writeJSON(w, http.StatusCreated, client.NewToken{Token: info, Secret: secret})
	return nil
}

// revokeToken is DELETE /v1/tokens/{name}.
func (a *api) revokeToken(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	by := actorOf(r)
	info, err := a.Tokens.revoke(name, by)
	if err != nil {
		return err
	}
	a.Activity.record(by, "token.revoke", name)
	writeJSON(w, http.StatusOK, struct {
		Token client.TokenInfo `json:"token_info"`
	}{info})
	return nil
}
