package demo

import (
	"context"
	"errors"

	"github.com/ussync/ussync/node"
)

// apiStatus returns the HTTP status of a *node.APIError, or 0 (no error, or
// no answer).
func apiStatus(err error) int {
	if ae, ok := errors.AsType[*node.APIError](err); ok {
		return ae.StatusCode
	}
	return 0
}

// userSessions lists every session of a user, history included, newest
// first: the pages of GET /v1/sessions?email=&state=all, all of them.
func userSessions(ctx context.Context, api *node.Client, email string) ([]node.SessionInfo, error) {
	q := node.SessionQuery{Email: email, All: true}
	var all []node.SessionInfo
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
