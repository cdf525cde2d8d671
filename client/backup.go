package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// Backup streams a consistent copy of the node's store (GET /v1/backup)
// into w and returns the bytes written. Unlike the other calls it has no
// time limit of its own (a large store takes a while): ctx bounds it. The
// stream is checked by its reader (node.ReadBackup): a transfer cut short
// lacks the backup's trailer, which the reader refuses.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := c.request(ctx, http.MethodGet, "/v1/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.WithTimeout(0).http.Do(req)
	if err != nil {
		return 0, c.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBody))
		return 0, apiError(resp, data)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("%w at %s: the backup stopped after %d bytes: %v", ErrUnreachable, c.base, n, err)
	}
	return n, nil
}
