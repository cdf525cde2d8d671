package node

import (
	"net/http"

	"github.com/ussync/ussync/client"
)

// adminActivityRows is how many changes the Activity page shows.
const adminActivityRows = 200

// adminActivity is the Activity page: the node's latest changes with who
// made them (activity.go).
type adminActivity struct {
	Rows []client.ActivityEntry
}

// activity is GET /admin/activity.
func (a *admin) activity(w http.ResponseWriter, r *http.Request, s *adminSession) error {
	rows, err := a.cfg.Activity.recent(adminActivityRows)
	if err != nil {
		return err
	}
	a.render(w, r, http.StatusOK, s, "activity", adminPage{Title: "Activity", Nav: "activity", Activity: &adminActivity{Rows: rows}})
	return nil
}
