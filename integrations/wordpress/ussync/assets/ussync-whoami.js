/**
 * ussync cross-domain helper: who is this browser on a sister site?
 *
 *   ussyncWhoami('https://blog.example/').then(function (me) {
 *     if (me) { console.log(me.email, me.display_name); }
 *   });
 *
 * It asks <site>ussync/v1/whoami with the browser's credentials. The sister
 * site's node answers with CORS for member sites only (docs/handoff.md), so
 * the calling page must be on a member site. A cross-site credentialed call
 * carries the sister site's cookie only where the browser allows
 * third-party cookies and the cookie is SameSite=None: iframe mode. With
 * third-party cookies blocked (browsers' default) the answer is null, as for
 * a visitor who is not logged in there.
 *
 * Resolves to {email, login, display_name, session} or null; never rejects.
 */
(function (global) {
	'use strict';
	function ussyncWhoami(siteUrl) {
		var base = String(siteUrl || '');
		if (base.slice(-1) !== '/') {
			base += '/';
		}
		return fetch(base + 'ussync/v1/whoami', {
			credentials: 'include',
			mode: 'cors',
			cache: 'no-store',
			headers: { Accept: 'application/json' }
		}).then(function (r) {
			return r.ok ? r.json() : null;
		}).catch(function () {
			return null;
		});
	}
	global.ussyncWhoami = ussyncWhoami;
}(window));
