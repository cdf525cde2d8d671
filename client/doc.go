// Package client is the Go client of a ussync node's private API
// (docs/architecture.md, README "The private API"): the calls a site's
// backend makes with its API token, on loopback or on the node's Unix
// socket (New with "unix:///path"), the wire types of their answers, the
// API's error codes, and Middleware, the net/http middleware a Go site
// wraps its handlers in so that every request is checked against the
// site's node.
//
// It imports the standard library only: a site's backend that links it
// links neither the node's store (Badger) nor its gossip (memberlist). The
// node encodes its answers with these same types, so the two cannot drift.
//
// A Client is safe for concurrent use. Every call returns an *APIError when
// the node answered with an error ({"error":{"code","message"}}; compare its
// Code with the Code* constants), an error wrapping ErrUnreachable when no
// answer came back, or one wrapping ErrBadURL when New was given a base URL
// it cannot use.
package client
