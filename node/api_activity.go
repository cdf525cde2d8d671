package node

import (
	"net/http"
	"strconv"

	"github.com/ussync/ussync/client"
)

// The private API's read of the activity history (activity.go): every
// change made through the API, with the name of the token that made it.

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
