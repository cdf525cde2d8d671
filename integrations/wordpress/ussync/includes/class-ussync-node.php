<?php
/**
 * One node connection: the client of a node's private API (README "The
 * private API", docs/users.md, docs/verification.md) and of its public
 * listener (docs/handoff.md), through WordPress's HTTP API, except where
 * it costs too much or cannot serve: the session check of every page view,
 * the forwarded hand-off steps, and a private API on a Unix socket go
 * straight through curl (Ussync_Curl).
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Node talks to one ussync node: the one this site runs for one
 * network. Calls are bounded (CHECK_TIMEOUT for what a page view waits for);
 * a node that does not answer is marked down for DOWN_FOR seconds, during
 * which no page view calls it, and the failure is logged once.
 */
final class Ussync_Node {

	/**
	 * Seconds a page view waits for the node at most. The constant
	 * USSYNC_TIMEOUT in wp-config.php replaces it (e.g. on an overloaded
	 * test machine).
	 */
	const CHECK_TIMEOUT = 1.0;

	/**
	 * Seconds a check sent ahead (check_ahead) may wait to be read: the
	 * time WordPress takes to load the other plugins and the theme before
	 * it asks, which an overloaded machine may stretch past CHECK_TIMEOUT.
	 * The page view itself waits CHECK_TIMEOUT at most when it reads the
	 * answer; a call never read is closed at shutdown.
	 */
	const AHEAD_LIFE = 30.0;

	/** Seconds a code request waits (the node waits for its mail server). */
	const MAIL_TIMEOUT = 15.0;

	/** Seconds a node that did not answer is left alone (USSYNC_DOWN_FOR replaces it). */
	const DOWN_FOR = 30;

	/**
	 * The timeout of a call: $t, or USSYNC_TIMEOUT when it is defined and
	 * $t is CHECK_TIMEOUT (or a multiple of it).
	 *
	 * @param float $t Seconds.
	 * @return float
	 */
	private static function timeout( float $t ): float {
		if ( defined( 'USSYNC_TIMEOUT' ) && is_numeric( USSYNC_TIMEOUT ) && (float) USSYNC_TIMEOUT > 0 && $t < self::MAIL_TIMEOUT ) {
			return $t / self::CHECK_TIMEOUT * (float) USSYNC_TIMEOUT;
		}
		return $t;
	}

	/**
	 * Seconds a node that did not answer is left alone.
	 *
	 * @return int
	 */
	private static function down_for(): int {
		return defined( 'USSYNC_DOWN_FOR' ) && is_numeric( USSYNC_DOWN_FOR ) ? max( 1, (int) USSYNC_DOWN_FOR ) : self::DOWN_FOR;
	}

	/**
	 * Autoloaded option: network id => Unix time until which the node is
	 * considered down. Autoloaded, so reading it costs no query.
	 */
	const DOWN_OPTION = 'ussync_down';

	/**
	 * Prefix of the option rows that claim an outage's log line (one per
	 * mark key, never autoloaded, read only by claim_log's SQL).
	 */
	const LOGGED_PREFIX = 'ussync_down_logged_';

	/** @var string The network's id. */
	public string $id;

	/** @var int Its position in the settings (0: the primary network). */
	public int $index;

	/** @var string A name for people. */
	public string $label;

	/**
	 * @var string Private API base URL, without a trailing slash:
	 * http(s)://host:port, or unix:/path when the node's api.listen is a
	 * Unix socket.
	 */
	public string $api_url;

	/** @var string Public listener base URL, without a trailing slash. */
	public string $public_url;

	/**
	 * @var string The browser cookie holding this network's session token
	 * here: __Host- prefixed on a site at an https root.
	 */
	public string $cookie;

	/**
	 * @var string The cookie's name before the __Host- prefix (the same as
	 * $cookie elsewhere): still read, and deleted, for one transition, so
	 * that an upgrade logs nobody out.
	 */
	public string $legacy_cookie;

	/** @var string The API token ('' when none is configured). */
	private string $token;

	/**
	 * Builds a connection from checked settings.
	 *
	 * @param array  $c     A connection of Ussync_Util::check_connection.
	 * @param int    $index Its position.
	 * @param string $token Its API token.
	 */
	public function __construct( array $c, int $index, string $token ) {
		$this->id         = $c['id'];
		$this->index      = $index;
		$this->label      = '' !== $c['label'] ? $c['label'] : $c['id'];
		$this->api_url    = $c['api_url'];
		$this->public_url = $c['public_url'];
		$this->legacy_cookie = Ussync_Util::cookie_name( $index, $c['id'] );
		$this->cookie        = ( Ussync_Util::host_prefixed( home_url( '/' ) ) ? '__Host-' : '' ) . $this->legacy_cookie;
		$this->token      = $token;
	}

	/**
	 * The session token this browser holds for this network here: its
	 * cookie, else (one transition) the cookie under its name before the
	 * __Host- prefix. '' when neither holds a well-formed token.
	 *
	 * @return string
	 */
	public function token_cookie(): string {
		foreach ( array_unique( array( $this->cookie, $this->legacy_cookie ) ) as $name ) {
			$v = isset( $_COOKIE[ $name ] ) && is_string( $_COOKIE[ $name ] ) ? wp_unslash( $_COOKIE[ $name ] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- checked by valid_token.
			if ( Ussync_Util::valid_token( $v ) ) {
				return $v;
			}
		}
		return '';
	}

	/**
	 * Whether an API token is configured.
	 *
	 * @return bool
	 */
	public function has_token(): bool {
		return '' !== $this->token;
	}

	/**
	 * Whether the private API is on a Unix socket (api_url unix:/path).
	 *
	 * @return bool
	 */
	public function on_socket(): bool {
		return str_starts_with( $this->api_url, Ussync_Util::UNIX_PREFIX );
	}

	/**
	 * Whether the node failed lately (it is not called until DOWN_FOR passed).
	 *
	 * @return bool
	 */
	public function is_down(): bool {
		$down = self::marks();
		return isset( $down[ $this->id ] ) && (int) $down[ $this->id ] > time();
	}

	/**
	 * The down-marks (DOWN_OPTION), read from the autoloaded options
	 * WordPress loaded with the request: the option is written autoloaded
	 * whenever it exists (failed, answered), so its absence there means it
	 * does not exist. get_option would instead ask the database for the
	 * missing option on every page view (one query, ~0.2 ms of the page
	 * view's cost, measured; README "Performance").
	 *
	 * @return array Mark key => Unix time until which it is down.
	 */
	private static function marks(): array {
		if ( null === self::$marks ) {
			$all         = wp_load_alloptions();
			$down        = isset( $all[ self::DOWN_OPTION ] ) ? get_option( self::DOWN_OPTION, array() ) : array();
			self::$marks = is_array( $down ) ? $down : array();
		}
		return self::$marks;
	}

	/**
	 * @var array|null The down-marks as this request read or wrote them
	 * (marks): a page view asks is_down several times.
	 */
	private static ?array $marks = null;

	/**
	 * The key of a down-mark in DOWN_OPTION: the private API's (the only
	 * one is_down reads), or the public listener's. A visitor's forwarded
	 * request that fails or times out (a slow step, a client that went
	 * away) marks only the public listener's, which is there to log the
	 * outage once: it never stops the session checks of every other
	 * visitor.
	 *
	 * @param bool $public The public listener's mark.
	 * @return string
	 */
	private function mark_key( bool $public ): string {
		return $public ? $this->id . '#public' : $this->id;
	}

	/**
	 * Records a failure: marks the node (or its public listener) down and
	 * logs it, once per outage.
	 *
	 * @param string $what   What failed (no secret, no address).
	 * @param bool   $public A forwarded request to the public listener failed.
	 */
	private function failed( string $what, bool $public = false ): void {
		$key  = $this->mark_key( $public );
		$down = self::marks();
		$was  = isset( $down[ $key ] ) && (int) $down[ $key ] > time();
		$down[ $key ] = time() + self::down_for();
		update_option( self::DOWN_OPTION, $down, true );
		self::$marks = $down;
		if ( ! $was && self::claim_log( $key ) ) {
			// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log -- logged once per outage, by design.
			error_log( sprintf( 'ussync: the node of network "%s" did not answer (%s); retrying in %d s', $this->id, $what, self::down_for() ) );
		}
	}

	/** Seconds within which page views that find the node down log it once. */
	const LOG_WINDOW = 10;

	/**
	 * Claims the log line of an outage of $key: true for one caller only,
	 * however many PHP workers find the node down at once. The down-mark is
	 * read (from the options loaded when the request began), changed and
	 * written back, so two page views that both waited for a stopped node
	 * found it unmarked and both logged. The claim is a row of its own
	 * holding when it was taken, taken by one atomic statement (an INSERT
	 * IGNORE, else an UPDATE of a claim older than LOG_WINDOW, or than
	 * DOWN_FOR if shorter): WordPress's option API has no compare-and-set,
	 * and wp_cache_add is atomic only with a persistent object cache. The
	 * node answering again ends the claim (release_log).
	 *
	 * @param string $key The mark key (mark_key).
	 * @return bool
	 */
	private static function claim_log( string $key ): bool {
		global $wpdb;
		$name = self::LOGGED_PREFIX . md5( $key );
		$now  = time();
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- an atomic claim; never cached.
		if ( 1 === $wpdb->query( $wpdb->prepare( "INSERT IGNORE INTO {$wpdb->options} (option_name, option_value, autoload) VALUES (%s, %s, 'no')", $name, (string) $now ) ) ) {
			return true;
		}
		$before = $now - min( self::LOG_WINDOW, self::down_for() );
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- an atomic claim; never cached.
		return 1 === $wpdb->query( $wpdb->prepare( "UPDATE {$wpdb->options} SET option_value = %s WHERE option_name = %s AND CAST(option_value AS SIGNED) <= %d", (string) $now, $name, $before ) );
	}

	/**
	 * Ends an outage's log claim, so that the next outage is logged at once;
	 * true for the one caller that ended it (one query, made only when the
	 * node answers while marked down).
	 *
	 * @param string $key The mark key (mark_key).
	 * @return bool
	 */
	private static function release_log( string $key ): bool {
		global $wpdb;
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- the claim's row; never cached.
		return 1 === $wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name = %s", self::LOGGED_PREFIX . md5( $key ) ) );
	}

	/**
	 * Ends every outage's log claim: the down-marks were deleted
	 * (delete_option_ussync_down, hooked by Ussync_Plugin::boot: cleared by
	 * hand as a retry-now), so the next outage is logged at once.
	 */
	public static function release_all(): void {
		global $wpdb;
		self::$marks = null;
		// phpcs:ignore WordPress.DB.DirectDatabaseQuery -- the claims' rows; never cached.
		$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( self::LOGGED_PREFIX ) . '%' ) );
	}

	/**
	 * Records a success after a failure: clears the mark and logs it once.
	 *
	 * @param bool $public The public listener answered.
	 */
	private function answered( bool $public = false ): void {
		$key  = $this->mark_key( $public );
		$down = self::marks();
		if ( isset( $down[ $key ] ) ) {
			unset( $down[ $key ] );
			update_option( self::DOWN_OPTION, $down, true );
			self::$marks = $down;
			if ( self::release_log( $key ) ) { // the one worker that ends the outage says so.
				// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
				error_log( sprintf( 'ussync: the node of network "%s" answers again%s', $this->id, $public ? ' (public listener)' : '' ) );
			}
		}
	}

	/**
	 * Calls the private API. The answer is an array: 'status' (the HTTP
	 * status; 0 when the node could not be reached, answered 5xx, or no
	 * token is configured: the call failed), 'data' (the decoded JSON
	 * body, an empty array if none), 'code' and 'message' (of an error
	 * answer, else '').
	 *
	 * @param string     $method  HTTP method.
	 * @param string     $path    Path under the API URL, e.g. "/v1/sessions/ID" (already escaped).
	 * @param array|null $body    JSON body, or null for none.
	 * @param float      $timeout Seconds.
	 * @param bool       $force   Call even while the node is marked down (administration screens).
	 * @return array{status:int,data:array,code:string,message:string}
	 */
	public function call( string $method, string $path, ?array $body = null, float $timeout = self::CHECK_TIMEOUT, bool $force = false ): array {
		$fail = array(
			'status'  => 0,
			'data'    => array(),
			'code'    => 'unreachable',
			'message' => '',
		);
		$this->drop_ahead();
		if ( ! $this->has_token() ) {
			$fail['code'] = 'no_token';
			return $fail;
		}
		if ( ! $force && $this->is_down() ) {
			$fail['code'] = 'down';
			return $fail;
		}
		$json = null !== $body ? (string) wp_json_encode( (object) $body ) : null;
		if ( $this->on_socket() ) {
			// WordPress's HTTP API has no way to reach a Unix socket. Its
			// http_api_curl action could put CURLOPT_UNIX_SOCKET_PATH on
			// WordPress's own curl handle, but only when WordPress picks
			// curl: with its fsockopen transport (no php-curl), or another
			// plugin's transport or pre_http_request, the request would go
			// to whatever listens on port 80 of localhost, the API token
			// with it. So every call to a node on a socket goes through the
			// plugin's curl helper, which reaches the socket or fails.
			if ( ! Ussync_Curl::available() ) {
				$fail['code'] = 'no_curl'; // the health box says what it means.
				$this->failed( 'PHP has no curl extension (php-curl), which a node on a Unix socket needs' );
				return $fail;
			}
			$lines = $this->auth_headers();
			if ( null !== $json ) {
				$lines[] = 'Content-Type: application/json';
			}
			$ans = Ussync_Curl::request( $method, $this->api_url, $path, $lines, $json, self::timeout( $timeout ), false );
			if ( 0 !== $ans['errno'] ) {
				$this->failed( 'curl error ' . $ans['errno'] . ': ' . $ans['error'] );
				$fail['message'] = $ans['error'];
				return $fail;
			}
			$status = $ans['status'];
			$raw    = $ans['body'];
		} else {
			$args = array(
				'method'      => $method,
				'timeout'     => self::timeout( $timeout ),
				'redirection' => 0,
				'httpversion' => '1.1',
				'blocking'    => true,
				'headers'     => array(
					'Authorization' => 'Bearer ' . $this->token,
					'Accept'        => 'application/json',
				),
			);
			if ( null !== $json ) {
				$args['headers']['Content-Type'] = 'application/json';
				$args['body']                    = $json;
			}
			$resp = wp_remote_request( $this->api_url . $path, $args );
			if ( is_wp_error( $resp ) ) {
				if ( 'http_request_not_executed' === $resp->get_error_code() ) {
					// WP_HTTP_BLOCK_EXTERNAL without the node's host in
					// WP_ACCESSIBLE_HOSTS: WordPress never sent the call.
					$fail['code'] = 'blocked';
					$this->failed( 'WordPress blocked the call: WP_HTTP_BLOCK_EXTERNAL is set and WP_ACCESSIBLE_HOSTS does not list ' . (string) wp_parse_url( $this->api_url, PHP_URL_HOST ) );
				} else {
					$this->failed( $resp->get_error_code() );
				}
				$fail['message'] = $resp->get_error_message();
				return $fail;
			}
			$status = (int) wp_remote_retrieve_response_code( $resp );
			$raw    = (string) wp_remote_retrieve_body( $resp );
		}
		$data = json_decode( $raw, true );
		$data = is_array( $data ) ? $data : array();
		if ( $status >= 500 || $status < 200 ) {
			$this->failed( 'HTTP ' . $status );
			$fail['code']    = (string) ( $data['error']['code'] ?? 'server_error' );
			$fail['message'] = (string) ( $data['error']['message'] ?? '' );
			return $fail;
		}
		$this->answered();
		return array(
			'status'  => $status,
			'data'    => $data,
			'code'    => (string) ( $data['error']['code'] ?? '' ),
			'message' => (string) ( $data['error']['message'] ?? '' ),
		);
	}

	/**
	 * The escaped path segment of an address.
	 *
	 * @param string $email The address.
	 * @return string
	 */
	public static function seg( string $email ): string {
		return rawurlencode( $email );
	}

	/**
	 * Forwards a browser's request to the node's public listener and
	 * returns its answer unfollowed: 'status' (0 when unreachable),
	 * 'headers' (lower-case name => list of values) and 'body'.
	 *
	 * @param string $method       GET or POST (or any, for auth).
	 * @param string $path_query   The request's path and query, as the browser sent them.
	 * @param array  $headers      Request headers to send.
	 * @param string $body         Request body.
	 * @return array{status:int,headers:array<string,string[]>,body:string}
	 */
	public function forward( string $method, string $path_query, array $headers, string $body ): array {
		$this->drop_ahead();
		$url = $this->public_url . $path_query;
		if ( ! self::direct( $this->public_url ) ) {
			return $this->forward_wp( $method, $url, $headers, $body );
		}
		// Every step of a chain and every step page's probe of healthz
		// comes through here: straight through curl, as the session check
		// does (check), rather than through WordPress's HTTP API, whose
		// Requests library costs more to load than the node takes to
		// answer (and, on PHP 8.2 with WP_DEBUG, logs WordPress 6.1's
		// deprecations each time). Same timeout, same answer, same
		// outage handling.
		$lines = array();
		foreach ( $headers as $name => $value ) {
			$lines[] = $name . ': ' . str_replace( array( "\r", "\n" ), '', (string) $value );
		}
		$ans = Ussync_Curl::request( $method, $this->public_url, $path_query, $lines, '' === $body ? null : $body, self::timeout( 2 * self::CHECK_TIMEOUT ) );
		if ( 0 !== $ans['errno'] ) {
			$this->failed( 'public listener: curl error ' . $ans['errno'], true );
			return array(
				'status'  => 0,
				'headers' => array(),
				'body'    => '',
			);
		}
		$this->answered( true );
		return array(
			'status'  => $ans['status'],
			'headers' => $ans['headers'],
			'body'    => $ans['body'],
		);
	}

	/**
	 * Whether calls under $base (a node's http(s) API or public URL) may
	 * go straight through curl (check, forward): curl is there and
	 * WordPress's WP_HTTP_BLOCK_EXTERNAL would let them through (it judges
	 * the host alone). Otherwise they go through WordPress's HTTP API,
	 * which works without curl and reports a blocked host (call's
	 * 'blocked'). Decided once per base and request: the check runs on
	 * every page view. (A Unix socket is on this machine by definition:
	 * WP_HTTP_BLOCK_EXTERNAL has nothing to judge there, see call.)
	 *
	 * @param string $base The node URL the calls go under.
	 * @return bool
	 */
	private static function direct( string $base ): bool {
		static $known = array();
		if ( ! isset( $known[ $base ] ) ) {
			$ok = Ussync_Curl::available();
			if ( $ok && defined( 'WP_HTTP_BLOCK_EXTERNAL' ) && WP_HTTP_BLOCK_EXTERNAL && class_exists( 'WP_Http' ) ) {
				$ok = ! ( new WP_Http() )->block_request( $base );
			}
			$known[ $base ] = $ok;
		}
		return $known[ $base ];
	}

	/**
	 * forward, through WordPress's HTTP API (no curl, or a host that
	 * WP_HTTP_BLOCK_EXTERNAL blocks).
	 *
	 * @param string $method  Method.
	 * @param string $url     URL.
	 * @param array  $headers Request headers (name => value).
	 * @param string $body    Request body.
	 * @return array{status:int,headers:array<string,string[]>,body:string}
	 */
	private function forward_wp( string $method, string $url, array $headers, string $body ): array {
		$resp = wp_remote_request(
			$url,
			array(
				'method'      => $method,
				'timeout'     => self::timeout( 2 * self::CHECK_TIMEOUT ),
				'redirection' => 0,
				'httpversion' => '1.1',
				'headers'     => $headers,
				'body'        => '' === $body ? null : $body,
			)
		);
		if ( is_wp_error( $resp ) ) {
			$this->failed( 'public listener: ' . $resp->get_error_code(), true );
			return array(
				'status'  => 0,
				'headers' => array(),
				'body'    => '',
			);
		}
		$this->answered( true );
		$out = array();
		$raw = $resp['http_response'] instanceof WP_HTTP_Requests_Response ? $resp['http_response']->get_response_object()->headers : null;
		if ( null !== $raw ) {
			foreach ( $raw as $name => $value ) {
				$out[ strtolower( $name ) ] = $raw->getValues( $name );
			}
		}
		return array(
			'status'  => (int) wp_remote_retrieve_response_code( $resp ),
			'headers' => $out,
			'body'    => (string) wp_remote_retrieve_body( $resp ),
		);
	}

	// The private API calls the plugin makes (README, docs/users.md,
	// docs/verification.md). Each returns call()'s answer.

	/**
	 * PUT /v1/users/{email}.
	 *
	 * @param string $email  Address.
	 * @param array  $fields login, display_name, verified_via, verified.
	 * @return array
	 */
	public function put_user( string $email, array $fields ): array {
		return $this->call( 'PUT', '/v1/users/' . self::seg( $email ), $fields );
	}

	/**
	 * GET /v1/users/{email}.
	 *
	 * @param string $email Address.
	 * @param bool   $force Call even while marked down.
	 * @return array
	 */
	public function user( string $email, bool $force = false ): array {
		return $this->call( 'GET', '/v1/users/' . self::seg( $email ), null, self::CHECK_TIMEOUT, $force );
	}

	/**
	 * POST /v1/sessions: a login.
	 *
	 * @param array $req email, login, display_name, ip, user_agent, ttl, return_to.
	 * @return array
	 */
	public function login( array $req ): array {
		return $this->call( 'POST', '/v1/sessions', $req );
	}

	/**
	 * @var array<string,array{sid:string,call:int}> Network id => the check
	 * sent ahead (check_ahead): the session asked about, and the call of
	 * Ussync_Curl waiting to be received.
	 */
	private static array $ahead = array();

	/**
	 * Sends the check of a session now, so that the node answers while
	 * WordPress goes on loading (Ussync_Auth::check_ahead, at plugin load,
	 * for a browser that holds WordPress's logged-in cookie and this
	 * network's session cookie). Nothing is decided from this call: only
	 * check(), asked about the same session by the WordPress session
	 * WordPress validated, reads its answer; anything else drops it. At
	 * most one per network and request; none while the node is marked
	 * down, or when the check would not go through curl.
	 *
	 * @param string $id Session id.
	 */
	public function check_ahead( string $id ): void {
		if ( isset( self::$ahead[ $this->id ] ) || ! Ussync_Util::valid_session_id( $id ) || ! $this->has_token() || $this->is_down() || ! $this->check_by_curl() ) {
			return;
		}
		$call = Ussync_Curl::send( 'GET', $this->api_url, '/v1/sessions/' . $id, $this->auth_headers(), null, max( self::AHEAD_LIFE, self::timeout( self::CHECK_TIMEOUT ) ) );
		if ( 0 !== $call ) {
			self::$ahead[ $this->id ] = array(
				'sid'  => $id,
				'call' => $call,
			);
		}
	}

	/**
	 * Takes this network's check sent ahead, if any, out of the waiting
	 * list: whoever takes it receives or discards it.
	 *
	 * @return array{sid:string,call:int}|null
	 */
	private function take_ahead(): ?array {
		$ahead = self::$ahead[ $this->id ] ?? null;
		unset( self::$ahead[ $this->id ] );
		return $ahead;
	}

	/**
	 * Discards this network's check sent ahead, unread: another call to
	 * the node is made first (call, forward), and may change the session
	 * (a logout, a hand-off step), so the answer sent before it could be
	 * older than it.
	 */
	private function drop_ahead(): void {
		$ahead = $this->take_ahead();
		if ( null !== $ahead ) {
			Ussync_Curl::discard( $ahead['call'] );
		}
	}

	/**
	 * Whether the check goes straight through curl: a Unix socket (with
	 * curl), or an http(s) URL that direct() lets through.
	 *
	 * @return bool
	 */
	private function check_by_curl(): bool {
		return $this->on_socket() ? Ussync_Curl::available() : self::direct( $this->api_url );
	}

	/**
	 * The headers of every private API call.
	 *
	 * @return string[]
	 */
	private function auth_headers(): array {
		return array( 'Authorization: Bearer ' . $this->token, 'Accept: application/json' );
	}

	/**
	 * GET /v1/sessions/{id}: the check of every page view.
	 *
	 * With $validated (Ussync_Auth::check: $id is the session the WordPress
	 * session WordPress validated for this request holds), the answer of
	 * the check sent ahead for the same session (check_ahead) serves, and
	 * is waited for up to the same timeout. A check sent ahead for another
	 * session (the browser's cookie said one thing, its WordPress session
	 * another) is discarded unread and $id asked about.
	 *
	 * @param string $id        Session id.
	 * @param bool   $validated $id comes from the WordPress session WordPress validated.
	 * @return array
	 */
	public function check( string $id, bool $validated = false ): array {
		$path  = '/v1/sessions/' . $id;
		$ahead = $this->take_ahead();
		if ( null !== $ahead && ( ! $validated || $ahead['sid'] !== $id || ! $this->has_token() || $this->is_down() ) ) {
			Ussync_Curl::discard( $ahead['call'] );
			$ahead = null;
		}
		if ( null === $ahead && ( ! $this->has_token() || $this->is_down() || ! $this->check_by_curl() ) ) {
			return $this->call( 'GET', $path );
		}
		// The check runs on every logged-in page view: straight through
		// curl it costs a fraction of WordPress's HTTP API. Measured on a
		// logged-in page of WordPress 6.1 on PHP 8.2 (ab, one connection,
		// means of 200 requests, plugin on against off, a busy 2-core
		// machine): +4 ms through wp_remote_request, +0.5 ms here. Same
		// timeout, same answer, same outage handling.
		if ( null !== $ahead ) {
			$ans = Ussync_Curl::receive( $ahead['call'], $this->api_url, self::timeout( self::CHECK_TIMEOUT ) );
		} else {
			$ans = Ussync_Curl::request( 'GET', $this->api_url, $path, $this->auth_headers(), null, self::timeout( self::CHECK_TIMEOUT ), false );
		}
		if ( 0 !== $ans['errno'] ) {
			$this->failed( 'curl error ' . $ans['errno'] . ( $this->on_socket() ? ': ' . $ans['error'] : '' ) );
			return array(
				'status'  => 0,
				'data'    => array(),
				'code'    => 'unreachable',
				'message' => '',
			);
		}
		$status = $ans['status'];
		$data   = json_decode( $ans['body'], true );
		$data   = is_array( $data ) ? $data : array();
		if ( $status >= 500 || $status < 200 ) {
			$this->failed( 'HTTP ' . $status );
			return array(
				'status'  => 0,
				'data'    => $data,
				'code'    => (string) ( $data['error']['code'] ?? 'server_error' ),
				'message' => '',
			);
		}
		$this->answered();
		return array(
			'status'  => $status,
			'data'    => $data,
			'code'    => (string) ( $data['error']['code'] ?? '' ),
			'message' => (string) ( $data['error']['message'] ?? '' ),
		);
	}

	/**
	 * DELETE /v1/sessions/{id}: log out, on every site.
	 *
	 * @param string $id Session id.
	 * @return array
	 */
	public function end( string $id ): array {
		return $this->call( 'DELETE', '/v1/sessions/' . $id );
	}

	/**
	 * POST /v1/sessions/{id}/revoke: an administrator's revocation.
	 *
	 * @param string $id Session id.
	 * @return array
	 */
	public function revoke( string $id ): array {
		return $this->call( 'POST', '/v1/sessions/' . $id . '/revoke', null, self::CHECK_TIMEOUT, true );
	}

	/**
	 * POST /v1/users/{email}/logout-everywhere.
	 *
	 * @param string $email Address.
	 * @return array
	 */
	public function logout_everywhere( string $email ): array {
		return $this->call( 'POST', '/v1/users/' . self::seg( $email ) . '/logout-everywhere', null, self::CHECK_TIMEOUT, true );
	}

	/**
	 * GET /v1/users/{email}/sessions.
	 *
	 * @param string $email Address.
	 * @param string $state active or all.
	 * @return array
	 */
	public function user_sessions( string $email, string $state ): array {
		return $this->call( 'GET', '/v1/users/' . self::seg( $email ) . '/sessions?state=' . rawurlencode( $state ), null, self::CHECK_TIMEOUT, true );
	}

	/**
	 * GET /v1/sessions with filters (docs/users.md).
	 *
	 * @param array $q email, site, state, order, after, limit.
	 * @return array
	 */
	public function sessions( array $q ): array {
		$q = array_filter( $q, static fn( $v ) => '' !== (string) $v );
		return $this->call( 'GET', '/v1/sessions?' . http_build_query( $q, '', '&', PHP_QUERY_RFC3986 ), null, 2 * self::CHECK_TIMEOUT, true );
	}

	/**
	 * POST /v1/users/{email}/verification: e-mail a code.
	 *
	 * @param string $email Address.
	 * @return array
	 */
	public function send_code( string $email ): array {
		return $this->call( 'POST', '/v1/users/' . self::seg( $email ) . '/verification', array(), self::MAIL_TIMEOUT, true );
	}

	/**
	 * POST /v1/users/{email}/verify.
	 *
	 * @param string $email Address.
	 * @param string $code  The code the user typed.
	 * @return array
	 */
	public function verify_code( string $email, string $code ): array {
		return $this->call( 'POST', '/v1/users/' . self::seg( $email ) . '/verify', array( 'code' => $code ), self::CHECK_TIMEOUT, true );
	}

	/**
	 * GET /v1/status.
	 *
	 * @return array
	 */
	public function status(): array {
		return $this->call( 'GET', '/v1/status', null, 2 * self::CHECK_TIMEOUT, true );
	}
}
