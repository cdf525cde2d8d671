package site

import (
	"context"
	"errors"

	"github.com/ussync/ussync/client"
)

// apiStatus returns the HTTP status of a *client.APIError, or 0 (no error, or
// no answer).
func apiStatus(err error) int {
	if ae, ok := errors.AsType[*client.APIError](err); ok {
		return ae.StatusCode
	}
	return 0
}

// userSessions lists every session of a user, history included, newest
// first: the pages of GET /v1/sessions?email=&state=all, all of them.
func userSessions(ctx context.Context, api *client.Client, email string) ([]client.SessionInfo, error) {
	q := client.SessionQuery{Email: email, All: true}
	var all []client.SessionInfo
	for {
		p, err := api.Sessions(ctx, q)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Sessions...)
		if p.Next == "" {
			return all, nil
		}
		q.After = p.Next
	}
}
