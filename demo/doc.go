// Package demo runs the ussync demo: three real nodes and three small
// websites in one process, so that a person (or a browser test) can log in
// on one site and watch the session reach the others.
//
// Each site ("Shop", "Blog", "Forum", on http://site-a.localhost:8081/ and
// its neighbours) is package demo/site: what a real site does with ussync,
// and nothing more, through package client alone. The site sets its own
// ussync_session cookie at login (the token of POST /v1/sessions); the node
// sets it on the other sites when the browser brings a ticket.
//
// The hand-off mode (docs/handoff.md) is chosen for the whole demo:
//
//   - chain: after login the site sends the browser through every other site
//     (sync.chain) and back; works with third-party cookies blocked.
//   - iframe: the page after login embeds the other sites' sync URLs in hidden
//     iframes, the way the WordPress plugin did; only works where third-party
//     cookies are allowed (Chromium blocks them by default).
//   - lazy: nothing at login; a site that sees a browser with neither a
//     session cookie nor ussync_checked sends it once round the other sites
//     (/ussync/v1/hop), and it comes back with a session or with
//     ussync_checked set.
//
// A login travels only from a site bound to the user's address
// (docs/security.md). The demo sends no mail, so the demo users are
// registered on the Shop and vouched for by the demo's operator on the
// Blog and the Forum (verified_via: admin): every site is bound, and a
// login on any of them travels. The page's "register" form proves nothing:
// its logins stay on their site.
//
// Run starts everything and returns once the three nodes see each other and
// the demo users are known everywhere; Close stops it and removes the data.
package demo
