<?php
/**
 * The hand-off protocol (docs/handoff.md), in one class: every step that
 * depends on how a login travels between sites lives here, so a change of
 * the protocol touches this file only.
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Handoff answers <site>/ussync/v1/… (through a rewrite rule, or the
 * request path when permalinks are plain) by forwarding the request to the
 * node's public listener, turns the session a ticket brings into a
 * WordPress login (through Ussync_Auth::arrive), and sends the browser
 * through the chosen hand-off after a login: chain (top-level redirects),
 * lazy (a site asks the others when the browser first arrives) or iframe.
 *
 * Why forward instead of redeeming with POST /v1/tickets/redeem: the
 * redeem answer does not say where a chain goes next, and the lazy hop
 * (hop, hop/ask, hop/done) seals and opens hop requests with the cluster's
 * keys, which only the node holds. Forwarding gives every endpoint, with
 * every refusal, exactly as docs/handoff.md describes it, and a change of
 * the node's public endpoints needs no change here as long as cookies and
 * headers pass through.
 */
final class Ussync_Handoff {

	/** Query parameter of the address a chain comes back to. */
	const RETURN_PARAM = 'ussync_return';

	/** Query parameter that stops the lazy hop from looping. */
	const HOPPED_PARAM = 'ussync_hopped';

	/** Cookie marking a browser the lazy hop asked the other sites for lately (the node's name). */
	const CHECKED_COOKIE = 'ussync_checked';

	/** Cookie of a notice for the next page (a code, never a name). */
	const NOTICE_COOKIE = 'ussync_notice';

	/** Seconds a pending hand-off may wait for a page view (tickets live 60 s). */
	const PENDING_TTL = 50;

	/** Seconds the lazy hop leaves a browser alone (the node's default sync.hop_interval). */
	const HOP_INTERVAL = 600;

	/** @var array|null A hand-off planned by a login of this request: chains, frames. */
	private static ?array $planned = null;

	/** @var string The WordPress session token of this request's login. */
	private static string $login_token = '';

	/** @var int The user of this request's login. */
	private static int $login_uid = 0;

	/**
	 * rewrite_rules_array: the rule of the endpoints, first (where
	 * add_rewrite_rule( …, 'top' ) puts a rule), added when WordPress
	 * builds its rules (a flush: activation, the Permalinks screen), which
	 * keep it; a page view does no rewrite work for it. Hooked in every
	 * request (Ussync_Plugin::boot), so that any flush keeps the rule.
	 *
	 * @param array $rules Regex => query, as WordPress built them.
	 * @return array
	 */
	public static function rewrite_rules( $rules ): array {
		$ends = implode( '|', array_map( static fn( $e ) => preg_quote( $e, '#' ), Ussync_Util::ENDPOINTS ) );
		return array( '^ussync/v1/(' . $ends . ')/?$' => 'index.php?ussync_endpoint=$matches[1]' ) + (array) $rules;
	}

	/**
	 * Whether this request may name an endpoint, as route() or WordPress's
	 * rewrite rules would find it: its address (decoded or not: WordPress
	 * matches its rules against both) holds "ussync", or its form holds
	 * the query variable. Only such a request gets route()'s hooks.
	 *
	 * @return bool
	 */
	public static function may_route(): bool {
		$uri = isset( $_SERVER['REQUEST_URI'] ) ? (string) $_SERVER['REQUEST_URI'] : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput -- only searched.
		return str_contains( $uri, 'ussync' ) || str_contains( urldecode( $uri ), 'ussync' ) || isset( $_POST['ussync_endpoint'] ); // phpcs:ignore WordPress.Security.NonceVerification.Missing -- only looked for.
	}

	/**
	 * Registers the endpoint query variable.
	 *
	 * @param string[] $vars Public query variables.
	 * @return string[]
	 */
	public static function query_vars( array $vars ): array {
		$vars[] = 'ussync_endpoint';
		return $vars;
	}

	/**
	 * The path of this request, undecoded, without its query.
	 *
	 * @return string
	 */
	private static function request_path(): string {
		$uri = isset( $_SERVER['REQUEST_URI'] ) ? (string) wp_unslash( $_SERVER['REQUEST_URI'] ) : '/'; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- compared, never printed.
		return (string) strtok( $uri, '?' );
	}

	/**
	 * The endpoints answered as soon as the plugin is loaded (early_route):
	 * those whose answer needs nothing of WordPress but the settings and
	 * the request's cookies. A sync step (it logs the browser into
	 * WordPress), logout, auth and verify wait for the whole of WordPress
	 * (route).
	 */
	const EARLY = array( 'healthz', 'bind', 'chain', 'hop', 'hop/ask', 'hop/done', 'whoami' );

	/**
	 * Answers a request for one of EARLY when the plugin is loaded, before
	 * the theme, init, the other plugins' hooks and the request's parsing:
	 * every step of a chain but the sync steps, and every step page's
	 * probe of the health URL, is one of them, and each was a whole
	 * WordPress page load (README "Performance"). The health URL answered
	 * here still proves what a probe asks: PHP, the database and
	 * WordPress's core answer, with this plugin and its node. Called by
	 * Ussync_Plugin::boot; returns when the request is not one of them.
	 */
	public static function early_route(): void {
		$path = self::request_path();
		if ( ! str_contains( $path, '/ussync/v1/' ) ) {
			return; // every other request, before home_url() is asked.
		}
		$endpoint = Ussync_Util::endpoint( $path, Ussync_Util::site_path( home_url( '/' ) ) );
		if ( ! in_array( $endpoint, self::EARLY, true ) ) {
			return;
		}
		// WordPress slashes the request's globals after the plugins load;
		// the code below unslashes them as it does later (the request
		// ends here, so they are never slashed twice).
		wp_magic_quotes();
		self::no_cache();
		self::forward( $endpoint );
		exit;
	}

	/**
	 * Answers <site>/ussync/v1/<endpoint> (parse_request, before anything
	 * else WordPress would do with the request).
	 *
	 * @param WP $wp The request.
	 */
	public static function route( $wp ): void {
		$endpoint = Ussync_Util::endpoint( self::request_path(), Ussync_Util::site_path( home_url( '/' ) ) );
		if ( '' === $endpoint && isset( $wp->query_vars['ussync_endpoint'] ) && in_array( $wp->query_vars['ussync_endpoint'], Ussync_Util::ENDPOINTS, true ) ) {
			$endpoint = $wp->query_vars['ussync_endpoint'];
		}
		if ( '' === $endpoint ) {
			return;
		}
		self::no_cache();
		self::forward( $endpoint );
		exit;
	}

	/**
	 * Marks this answer uncacheable by browsers, proxies and page caches.
	 */
	public static function no_cache(): void {
		if ( ! defined( 'DONOTCACHEPAGE' ) ) {
			define( 'DONOTCACHEPAGE', true );
		}
		if ( ! headers_sent() ) {
			nocache_headers();
			header( 'Cache-Control: no-store, no-cache, must-revalidate, max-age=0' );
		}
	}

	/**
	 * The browser's address as this site sees it.
	 *
	 * @return string
	 */
	public static function client_ip(): string {
		$remote = isset( $_SERVER['REMOTE_ADDR'] ) ? sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) ) : '';
		$xff    = isset( $_SERVER['HTTP_X_FORWARDED_FOR'] ) ? sanitize_text_field( wp_unslash( $_SERVER['HTTP_X_FORWARDED_FOR'] ) ) : '';
		return Ussync_Util::client_ip( $remote, $xff, Ussync_Settings::trusted_proxies() );
	}

	/**
	 * Forwards the request to the nodes that may answer it (every network
	 * for what carries a sealed ticket, until one holds its key; the
	 * primary one for the rest) and relays the answer, turning a session
	 * cookie the node sets into a WordPress login.
	 *
	 * @param string $endpoint One of Ussync_Util::ENDPOINTS.
	 */
	private static function forward( string $endpoint ): void {
		$nodes = Ussync_Settings::nodes();
		if ( ! in_array( $endpoint, array( 'bind', 'chain', 'sync', 'hop/ask', 'hop/done', 'verify' ), true ) ) {
			$nodes = array_slice( $nodes, 0, 1 );
		}
		$method = isset( $_SERVER['REQUEST_METHOD'] ) ? strtoupper( sanitize_key( wp_unslash( $_SERVER['REQUEST_METHOD'] ) ) ) : 'GET';
		$uri    = isset( $_SERVER['REQUEST_URI'] ) ? (string) wp_unslash( $_SERVER['REQUEST_URI'] ) : '/'; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- passed on to the node, which checks it.
		$body   = 'POST' === $method ? (string) file_get_contents( 'php://input', false, null, 0, 65536 ) : '';
		$ans    = null;
		foreach ( $nodes as $node ) {
			$ans = $node->forward( $method, $uri, self::forward_headers( $node ), $body );
			$refused = (string) ( $ans['headers']['x-ussync-refused'][0] ?? '' );
			if ( '' === $refused && $ans['status'] >= 400 ) {
				$err     = json_decode( $ans['body'], true );
				$refused = is_array( $err ) ? (string) ( $err['error']['code'] ?? '' ) : '';
			}
			if ( 'ticket_unknown_key' !== $refused || 0 === $ans['status'] ) {
				break;
			}
		}
		if ( null === $ans || 0 === $ans['status'] ) {
			status_header( 502 );
			header( 'Content-Type: application/json' );
			echo wp_json_encode(
				array(
					'error' => array(
						'code'    => 'node_unreachable',
						// Before init (early_route) the translations are not loaded yet.
						'message' => did_action( 'init' ) ? __( 'This site\'s ussync node is not answering.', 'ussync' ) : 'This site\'s ussync node is not answering.',
					),
				)
			);
			return;
		}
		self::relay( $endpoint, $node, $ans );
	}

	/**
	 * The headers a forwarded request carries: what the node's checks read
	 * (origin, referrer, fetch metadata, agent, the browser's address and
	 * scheme), and this network's ussync cookies under the node's names.
	 * WordPress's own cookies never leave the site.
	 *
	 * @param Ussync_Node $node The node asked.
	 * @return array
	 */
	private static function forward_headers( Ussync_Node $node ): array {
		$h = array();
		// Access-Control-Request-*: a CORS preflight (a step page's probe of
		// healthz from a browser that adds headers to every request).
		foreach ( array( 'User-Agent', 'Accept', 'Accept-Language', 'Origin', 'Referer', 'Content-Type', 'Sec-Fetch-Site', 'Sec-Fetch-Mode', 'Sec-Fetch-Dest', 'Sec-Fetch-User', 'Access-Control-Request-Method', 'Access-Control-Request-Headers' ) as $name ) {
			$key = 'HTTP_' . strtoupper( str_replace( '-', '_', $name ) );
			if ( 'Content-Type' === $name ) {
				$key = 'CONTENT_TYPE';
			}
			if ( isset( $_SERVER[ $key ] ) ) {
				$h[ $name ] = sanitize_text_field( wp_unslash( $_SERVER[ $key ] ) );
			}
		}
		$h['X-Forwarded-For']   = self::client_ip();
		$h['X-Forwarded-Proto'] = is_ssl() ? 'https' : 'http';
		$cookies                = array();
		foreach ( $_COOKIE as $name => $value ) {
			if ( ! is_string( $value ) ) {
				continue;
			}
			$value = wp_unslash( $value );
			if ( $name === $node->cookie || $name === $node->legacy_cookie ) {
				continue; // below: the token, under the node's own name.
			} elseif ( 0 === $node->index && self::CHECKED_COOKIE === $name && '1' === $value ) {
				$cookies[] = self::CHECKED_COOKIE . '=1';
			} elseif ( 0 === strpos( Ussync_Util::cookie_base( (string) $name ), 'ussync_nonce' ) && preg_match( '/\A[A-Za-z0-9_.~-]{1,200}\z/', $value ) ) {
				// Browser-binding cookies of the node (docs/handoff.md, issue 9):
				// one for every network (each node commits to it under its own
				// name), __Host- prefixed on a site at an https root.
				$cookies[] = $name . '=' . $value;
			}
		}
		$token = $node->token_cookie();
		if ( '' !== $token ) {
			$cookies[] = 'ussync_session=' . $token;
		}
		if ( $cookies ) {
			$h['Cookie'] = implode( '; ', $cookies );
		}
		return $h;
	}

	/**
	 * Relays the node's answer to the browser.
	 *
	 * @param string      $endpoint The endpoint.
	 * @param Ussync_Node $node     The node that answered.
	 * @param array       $ans      Ussync_Node::forward's answer.
	 */
	private static function relay( string $endpoint, Ussync_Node $node, array $ans ): void {
		$status = $ans['status'];
		$h      = $ans['headers'];
		foreach ( $h['set-cookie'] ?? array() as $raw ) {
			$c = Ussync_Util::parse_set_cookie( $raw );
			if ( null === $c ) {
				continue;
			}
			$same = strtolower( (string) ( $c['attrs']['samesite'] ?? 'lax' ) );
			// At an https root the node names its cookies __Host-…: the
			// session's token and the lazy hop's mark go into the plugin's
			// own cookies, the nonce keeps the node's name (and its Secure,
			// Path=/ protection against cookies set by a sibling host).
			$base = Ussync_Util::cookie_base( $c['name'] );
			if ( 'ussync_session' === $base ) {
				if ( Ussync_Util::deletes( $c ) ) {
					self::clear_token_cookie( $node );
					continue;
				}
				if ( 'sync' !== $endpoint || ! Ussync_Util::valid_token( $c['value'] ) ) {
					continue;
				}
				$bound = strtolower( (string) ( $h['x-ussync-site-was-bound'][0] ?? '' ) );
				$got   = Ussync_Auth::arrive( $node, $c['value'], 'true' === $bound ? true : ( 'false' === $bound ? false : null ) );
				if ( $got['ok'] ) {
					self::set_token_cookie( $node, $c['value'], $got['remember'] ? $got['expires'] : 0, 'none' === $same );
				} else {
					self::refused( $got['code'] );
				}
				continue;
			}
			if ( ( 0 === $node->index && self::CHECKED_COOKIE === $base ) || 0 === strpos( $base, 'ussync_nonce' ) ) {
				$age = isset( $c['attrs']['max-age'] ) ? (int) $c['attrs']['max-age'] : 0;
				self::cookie( self::CHECKED_COOKIE === $base ? $base : $c['name'], $c['value'], $age > 0 ? time() + $age : ( $age < 0 ? 1 : 0 ), 'none' === $same );
			}
		}
		status_header( $status );
		$pass = array( 'location', 'content-type', 'content-security-policy', 'x-content-type-options', 'referrer-policy', 'vary', 'allow', 'retry-after', 'x-ussync-refused', 'x-ussync-email', 'x-ussync-session', 'access-control-allow-origin', 'access-control-allow-credentials', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age' );
		foreach ( $pass as $name ) {
			foreach ( $h[ $name ] ?? array() as $i => $v ) {
				header( $name . ': ' . str_replace( array( "\r", "\n" ), '', $v ), 0 === $i );
			}
		}
		if ( 204 !== $status && 304 !== $status ) {
			echo $ans['body']; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- the node's own answer (JSON or its HTML page), relayed with its Content-Type and CSP.
		}
	}

	/**
	 * A session that arrived was refused here: tell the next page why, and
	 * keep the lazy hop from asking again at once.
	 *
	 * @param string $code Why (Ussync_Auth::arrive's code).
	 */
	public static function refused( string $code ): void {
		self::cookie( self::NOTICE_COOKIE, sanitize_key( $code ), time() + 120, false );
		self::cookie( self::CHECKED_COOKIE, '1', time() + self::HOP_INTERVAL, false );
	}

	/**
	 * Sets an HttpOnly cookie on the site's path, and marks the answer
	 * uncacheable: a page cache must never hand one browser's cookie (a
	 * notice, the lazy hop's mark, a deletion) to another.
	 *
	 * @param string $name    Name.
	 * @param string $value   Value.
	 * @param int    $expires Unix time; 0 for a browser-session cookie; 1 deletes.
	 * @param bool   $none    SameSite=None (iframe mode), else Lax.
	 */
	public static function cookie( string $name, string $value, int $expires, bool $none ): void {
		if ( headers_sent() ) {
			return;
		}
		self::no_cache();
		// A __Host- cookie must be Secure (with Path=/: the site is at its
		// host's root), or the browser drops it.
		$secure = is_ssl() || ( $none && self::localhost() ) || str_starts_with( $name, '__Host-' );
		setcookie(
			$name,
			$value,
			array(
				'expires'  => $expires,
				'path'     => Ussync_Util::site_path( home_url( '/' ) ),
				'secure'   => $secure,
				'httponly' => true,
				'samesite' => $none && $secure ? 'None' : 'Lax',
			)
		);
		if ( 1 === $expires ) {
			unset( $_COOKIE[ $name ] );
		} else {
			$_COOKIE[ $name ] = $value;
		}
	}

	/**
	 * Whether the site is on a localhost name (browsers treat it as a
	 * secure context, so SameSite=None cookies may be set over http).
	 *
	 * @return bool
	 */
	private static function localhost(): bool {
		$host = (string) wp_parse_url( home_url(), PHP_URL_HOST );
		return 'localhost' === $host || str_ends_with( $host, '.localhost' );
	}

	/**
	 * Deletes a cookie of the site's path.
	 *
	 * @param string $name Name.
	 */
	public static function clear_cookie( string $name ): void {
		if ( isset( $_COOKIE[ $name ] ) ) {
			self::cookie( $name, '', 1, false );
		}
	}

	/**
	 * Deletes a network's session token cookie, under its name and (one
	 * transition) its name before the __Host- prefix.
	 *
	 * @param Ussync_Node $node The network.
	 */
	public static function clear_token_cookie( Ussync_Node $node ): void {
		self::clear_cookie( $node->cookie );
		if ( $node->legacy_cookie !== $node->cookie ) {
			self::clear_cookie( $node->legacy_cookie );
		}
	}

	/**
	 * Puts a network's session token in this browser's cookie, for the
	 * node's public endpoints (whoami, the lazy hop's ask, logout).
	 *
	 * @param Ussync_Node $node    The network.
	 * @param string      $token   The session token.
	 * @param int         $expires Unix time, or 0 for a browser-session cookie.
	 * @param bool        $none    SameSite=None (iframe mode).
	 */
	public static function set_token_cookie( Ussync_Node $node, string $token, int $expires, bool $none = false ): void {
		self::cookie( $node->cookie, $token, $expires, $none || 'iframe' === Ussync_Settings::value( 'mode' ) );
		if ( $node->legacy_cookie !== $node->cookie ) {
			self::clear_cookie( $node->legacy_cookie ); // moved under the __Host- name.
		}
	}

	/**
	 * The body of a login (POST /v1/sessions) for a WordPress user.
	 *
	 * @param WP_User $user The user.
	 * @param int     $ttl  Seconds the session lives.
	 * @param string  $email The address to log in (the user's).
	 * @return array
	 */
	public static function login_body( WP_User $user, int $ttl, string $email ): array {
		$ua = isset( $_SERVER['HTTP_USER_AGENT'] ) ? sanitize_text_field( wp_unslash( $_SERVER['HTTP_USER_AGENT'] ) ) : '';
		$ip = self::client_ip();
		return array(
			'email'        => $email,
			'login'        => $user->user_login,
			'display_name' => $user->display_name,
			'ip'           => false !== filter_var( $ip, FILTER_VALIDATE_IP ) ? $ip : '',
			'user_agent'   => substr( $ua, 0, 500 ),
			'ttl'          => Ussync_Util::go_duration( $ttl ),
			'return_to'    => add_query_arg( self::RETURN_PARAM, '1', home_url( '/' ) ),
		);
	}

	/**
	 * Plans the hand-off of a login from the nodes' answers, one per
	 * network: what the browser must visit, kept with the WordPress session
	 * until a page view can send it there.
	 *
	 * @param array $answers Network id => the data of POST /v1/sessions.
	 * @param bool  $travels Whether the user's roles may travel.
	 * @return array The pending hand-off ('chains', 'frames', 'exp'), empty when nothing travels.
	 */
	public static function plan( array $answers, bool $travels ): array {
		if ( ! $travels ) {
			return array();
		}
		$mode   = (string) Ussync_Settings::value( 'mode' );
		$chains = array();
		$frames = array();
		foreach ( $answers as $a ) {
			if ( empty( $a['synced'] ) ) {
				continue;
			}
			if ( 'chain' === $mode && ! empty( $a['sync']['chain'] ) ) {
				$chains[] = (string) $a['sync']['chain'];
			}
			if ( 'iframe' === $mode ) {
				foreach ( (array) ( $a['sync']['urls'] ?? array() ) as $u ) {
					$frames[] = (string) $u['url'] . '&m=iframe';
				}
			}
		}
		if ( ! $chains && ! $frames ) {
			return array();
		}
		$p = array(
			'chains' => $chains,
			'frames' => $frames,
			'exp'    => time() + self::PENDING_TTL,
		);
		self::$planned = $p;
		if ( $chains ) {
			// The login's redirect goes through the chain (redirect), which
			// needs the login's WordPress session token: hooked only now,
			// when a chain is planned (inside wp_set_auth_cookie, whose
			// set_logged_in_cookie comes after this).
			add_action( 'set_logged_in_cookie', array( __CLASS__, 'logged_in_cookie' ), 10, 6 );
			add_filter( 'wp_redirect', array( __CLASS__, 'redirect' ), 1000, 2 );
		}
		return $p;
	}

	/**
	 * Remembers the WordPress session token of this request's login (from
	 * wp_set_auth_cookie), so the hand-off can update its session.
	 *
	 * @param string $cookie     The cookie value.
	 * @param int    $expire     Cookie expiry.
	 * @param int    $expiration Session expiry.
	 * @param int    $user_id    The user.
	 * @param string $scheme     Cookie scheme.
	 * @param string $token      The session token.
	 */
	public static function logged_in_cookie( $cookie, $expire, $expiration, $user_id, $scheme, $token = '' ): void {
		self::$login_token = (string) $token;
		self::$login_uid   = (int) $user_id;
	}

	/**
	 * Whether this request is a browser's top-level page view: a GET of a
	 * document, not AJAX, REST, XML-RPC, cron or the CLI, and not inside a
	 * frame (the interim login modal, iframes).
	 *
	 * @return bool
	 */
	public static function page_request(): bool {
		if ( ( defined( 'WP_CLI' ) && WP_CLI ) || wp_doing_cron() || wp_doing_ajax() || ( defined( 'REST_REQUEST' ) && REST_REQUEST ) || ( defined( 'XMLRPC_REQUEST' ) && XMLRPC_REQUEST ) ) {
			return false;
		}
		$method = isset( $_SERVER['REQUEST_METHOD'] ) ? sanitize_key( wp_unslash( $_SERVER['REQUEST_METHOD'] ) ) : '';
		if ( 'get' !== $method ) {
			return false;
		}
		$dest = isset( $_SERVER['HTTP_SEC_FETCH_DEST'] ) ? sanitize_key( wp_unslash( $_SERVER['HTTP_SEC_FETCH_DEST'] ) ) : '';
		if ( '' !== $dest && 'document' !== $dest ) {
			return false;
		}
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- only read to stay out of the modal.
		if ( isset( $_REQUEST['interim-login'] ) ) {
			return false;
		}
		$path = self::request_path();
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended
		if ( isset( $_GET['rest_route'] ) || str_ends_with( $path, '/xmlrpc.php' ) || str_ends_with( $path, '/admin-ajax.php' ) || str_ends_with( $path, '/admin-post.php' ) ) {
			return false; // an action's link is not a page.
		}
		// Under the REST prefix (site path, then "wp-json/"): home_url() is
		// asked only for a path that holds "/wp-json/" at all.
		$rest = '/' . rest_get_url_prefix() . '/';
		return ! str_contains( $path, $rest ) || ! str_starts_with( $path, rtrim( Ussync_Util::site_path( home_url( '/' ) ), '/' ) . $rest );
	}

	/**
	 * Whether the request is a login made inside a frame (the interim
	 * login modal, a login form in an iframe), which must not start a
	 * chain. A fetch or XHR login is not framed: its hand-off waits for the
	 * browser's next page view.
	 *
	 * @return bool
	 */
	public static function framed_login(): bool {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended
		if ( isset( $_REQUEST['interim-login'] ) ) {
			return true;
		}
		$dest = isset( $_SERVER['HTTP_SEC_FETCH_DEST'] ) ? sanitize_key( wp_unslash( $_SERVER['HTTP_SEC_FETCH_DEST'] ) ) : '';
		return in_array( $dest, array( 'iframe', 'frame', 'embed', 'object', 'fencedframe' ), true );
	}

	/**
	 * Whether this request's answer is what the browser shows at the top
	 * level (a redirect of it may go through a chain).
	 *
	 * @return bool
	 */
	private static function top_level(): bool {
		if ( self::framed_login() || wp_doing_ajax() || ( defined( 'REST_REQUEST' ) && REST_REQUEST ) ) {
			return false;
		}
		$dest = isset( $_SERVER['HTTP_SEC_FETCH_DEST'] ) ? sanitize_key( wp_unslash( $_SERVER['HTTP_SEC_FETCH_DEST'] ) ) : '';
		return '' === $dest || 'document' === $dest;
	}

	/**
	 * wp_redirect filter: the redirect that follows a login of this request
	 * goes through the chain first; the chain comes back to RETURN_PARAM,
	 * which goes on to where WordPress meant to go.
	 *
	 * @param string $location Where WordPress redirects.
	 * @param int    $status   The status.
	 * @return string
	 */
	public static function redirect( $location, $status ) {
		if ( null === self::$planned || ! self::$planned['chains'] || '' === self::$login_token || ! self::top_level() ) {
			return $location;
		}
		$p             = self::$planned;
		self::$planned = null;
		$chain         = array_shift( $p['chains'] );
		$p['dest']     = (string) $location;
		$p['frames']   = array();
		Ussync_Auth::set_pending( self::$login_uid, self::$login_token, $p );
		self::no_cache();
		return $chain;
	}

	/**
	 * A chain came back (?ussync_return=1): the next network's chain, or
	 * where the login meant to go.
	 */
	public static function come_back(): void {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- a landing address, it changes nothing but the pending hand-off.
		if ( ! isset( $_GET[ self::RETURN_PARAM ] ) ) {
			return;
		}
		self::no_cache();
		$uid   = get_current_user_id();
		$token = wp_get_session_token();
		$p     = $uid && '' !== $token ? Ussync_Auth::pending( $uid, $token ) : array();
		$dest  = (string) ( $p['dest'] ?? '' );
		if ( ! empty( $p['chains'] ) && (int) $p['exp'] >= time() ) {
			$next = array_shift( $p['chains'] );
			Ussync_Auth::set_pending( $uid, $token, $p );
			wp_redirect( $next, 303 ); // phpcs:ignore WordPress.Security.SafeRedirect.wp_redirect_wp_redirect -- a chain URL minted by this site's node.
			exit;
		}
		if ( $uid && '' !== $token ) {
			Ussync_Auth::set_pending( $uid, $token, array() );
		}
		if ( '' === $dest ) {
			$dest = Ussync_Util::without_param( self::current_url(), self::RETURN_PARAM );
		}
		wp_safe_redirect( $dest, 303 );
		exit;
	}

	/**
	 * A page view: a login made without a redirect (AJAX, REST) goes
	 * through its pending chain now; in lazy mode, a browser this site
	 * knows nothing of asks the other sites once.
	 */
	public static function page_view(): void {
		if ( ! self::page_request() ) {
			return;
		}
		$uid = get_current_user_id();
		if ( $uid ) {
			$token = wp_get_session_token();
			$p     = '' !== $token ? Ussync_Auth::pending( $uid, $token ) : array();
			if ( ! empty( $p['chains'] ) ) {
				if ( (int) $p['exp'] < time() ) {
					Ussync_Auth::set_pending( $uid, $token, array() );
					return;
				}
				$next      = array_shift( $p['chains'] );
				$p['dest'] = self::current_url();
				Ussync_Auth::set_pending( $uid, $token, $p );
				self::no_cache();
				wp_redirect( $next, 303 ); // phpcs:ignore WordPress.Security.SafeRedirect.wp_redirect_wp_redirect -- minted by this site's node.
				exit;
			}
			// phpcs:ignore WordPress.Security.NonceVerification.Recommended
			if ( isset( $_GET[ self::HOPPED_PARAM ] ) ) {
				wp_safe_redirect( Ussync_Util::without_param( self::current_url(), self::HOPPED_PARAM ) );
				exit;
			}
			return;
		}
		if ( 'lazy' !== Ussync_Settings::value( 'mode' ) || is_admin() || null === Ussync_Settings::primary() ) {
			return;
		}
		$node = Ussync_Settings::primary();
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$hopped = isset( $_GET[ self::HOPPED_PARAM ] );
		if ( isset( $_COOKIE[ $node->cookie ] ) || isset( $_COOKIE[ $node->legacy_cookie ] ) || isset( $_COOKIE[ self::CHECKED_COOKIE ] ) ) {
			if ( $hopped ) {
				wp_safe_redirect( Ussync_Util::without_param( self::current_url(), self::HOPPED_PARAM ) );
				exit;
			}
			return;
		}
		if ( $hopped || $node->is_down() ) {
			return; // a browser that keeps no cookie: never a loop.
		}
		$ret = add_query_arg( self::HOPPED_PARAM, '1', self::current_url() );
		self::no_cache();
		wp_redirect( home_url( '/ussync/v1/hop?return=' . rawurlencode( $ret ) ), 302 ); // phpcs:ignore WordPress.Security.SafeRedirect.wp_redirect_wp_redirect -- this site's own endpoint.
		exit;
	}

	/**
	 * This request's absolute URL.
	 *
	 * @return string
	 */
	public static function current_url(): string {
		$uri  = isset( $_SERVER['REQUEST_URI'] ) ? esc_url_raw( wp_unslash( $_SERVER['REQUEST_URI'] ) ) : '/';
		$home = wp_parse_url( home_url() );
		$port = isset( $home['port'] ) ? ':' . $home['port'] : '';
		return ( is_ssl() ? 'https' : 'http' ) . '://' . $home['host'] . $port . $uri;
	}

	/**
	 * Iframe mode: the page after a login embeds the other sites' sync
	 * URLs in hidden frames, once.
	 */
	public static function frames(): void {
		$uid   = get_current_user_id();
		$token = $uid ? wp_get_session_token() : '';
		if ( '' === $token ) {
			return;
		}
		$p = Ussync_Auth::pending( $uid, $token );
		if ( empty( $p['frames'] ) ) {
			return;
		}
		$frames      = $p['frames'];
		$p['frames'] = array();
		Ussync_Auth::set_pending( $uid, $token, $p );
		if ( (int) $p['exp'] < time() ) {
			return;
		}
		foreach ( $frames as $src ) {
			printf( '<iframe class="ussync-sync" src="%s" hidden width="0" height="0" tabindex="-1" title="%s"></iframe>', esc_url( $src ), esc_attr__( 'Signing you in on the other sites', 'ussync' ) );
		}
	}
}
