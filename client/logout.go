package client

import (
	"context"
	"fmt"
	"net/http"
)

// Logout logs the browser of r out of every site of the family: it ends
// on the node the session of each session cookie r carries (the cookies
// Middleware with opts reads: by default both HostCookie and
// DefaultCookie; DELETE /v1/sessions/{id}, end reason "logout"), then
// deletes those cookies on w as Middleware deletes one whose session is
// over. A site's logout handler calls it with the options its Middleware
// has, then redirects. A session already over, or unknown to the node, is
// nothing to end; a cookie that cannot hold a token costs no call.
//
// When the node does not end a session (it is unreachable, answers 5xx or
// refuses the API token: the errors MiddlewareOptions.OnNodeError
// receives), Logout returns the error and deletes no cookie: the session
// still lives on the other sites, so the site should say that the logout
// failed and let the user try again, rather than look logged out here
// alone. A request carrying more than 8 cookies of a token's form gets an
// error too, and nothing deleted. Logout panics on a nil c, as Middleware
// does.
func Logout(c *Client, w http.ResponseWriter, r *http.Request, opts MiddlewareOptions) error {
	if c == nil {
		panic("client.Logout: nil *Client")
	}
	ctx, cancel := c.checks(r.Context())
	defer cancel()
	names, all, err := eachSession(r, opts.cookieNames(), func(id string) (bool, error) {
		return false, c.end(ctx, id)
	})
	if err != nil {
		return err
	}
	if !all {
		return fmt.Errorf("log out: the request carries more than %d session cookies; none was deleted", maxCookieTries)
	}
	for _, name := range names {
		deleteCookie(w, r, name, opts.cookiePath())
	}
	return nil
}

// end ends the session id on the node. A 404 not_found is the node's word
// that it knows no such session only if its session check says so too
// (SessionOver): the answers of DELETE carry no HeaderNodeState, and a
// wrong base URL's path is a 404 not_found as well.
func (c *Client) end(ctx context.Context, id string) error {
	_, err := c.EndSession(ctx, id)
	if ErrorCode(err) == CodeNotFound {
		if _, cerr := c.CheckSession(ctx, id); SessionOver(cerr) {
			return nil
		}
	}
	return err
}
