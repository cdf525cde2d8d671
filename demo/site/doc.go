// Package site is one website of the ussync demo ("Shop", "Blog" or
// "Forum"): what a real site's Go backend does with ussync, and nothing
// more. It talks to its own node's private API over loopback with package
// client only (log in, check the cookie's session on every page view, log
// out, log out everywhere, list the user's sessions), and forwards
// <site url>ussync/ to the node's public listener with a reverse proxy, so
// that the browser reaches the hand-off endpoints on the site's own domain.
// It links neither the node's store nor its gossip (TestLayout checks it).
//
// Forms are protected against cross-site requests by a per-browser token
// (a cookie and a hidden field compared in constant time).
package site
