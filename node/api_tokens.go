package node

import (
	"net/http"
	"strconv"

	"github.com/ussync/ussync/client"
)

// The private API's calls on its own tokens and activity history
// (docs/operations.md, "Rotating keys and tokens").

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

// listActivity is GET /v1/activity?limit=N: the latest changes, newest
// first.
func (a *api) listActivity(w http.ResponseWriter, r *http.Request) error {
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return refuse(errInvalidField, "query parameter \"limit\" must be a whole number from 1 to 500, not %q", s)
		}
		limit = n
	}
	list, err := a.Activity.recent(limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Activity []client.ActivityEntry `json:"activity"`
	}{list})
	return nil
}
