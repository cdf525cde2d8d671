<?php
/**
 * WordPress logins and ussync sessions: creating a session at each
 * WordPress browser login, checking it on every page view, ending it at
 * every logout, and logging in a user whose session arrived from another
 * site.
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Auth ties each WordPress session (WP_Session_Tokens) of a browser
 * to its ussync session: the session's id (never its token, which is a
 * bearer secret and stays in the browser's cookie) is kept in the WordPress
 * session's data under "ussync".
 */
final class Ussync_Auth {

	/** @var array|null Network id => session id of the session WordPress is creating for an arrival. */
	private static ?array $linking = null;

	/** @var string A notice for the WordPress session an arrival is creating ('' if none). */
	private static string $linking_notice = '';

	/** @var int A user whose password changed in this request (their next WordPress session gets a fresh ussync session, not a hand-off). */
	private static int $password_changed = 0;

	/**
	 * @var array|null The current browser's WordPress session, as the
	 * check found it (uid, token, session), kept up to date by this
	 * request's changes of it (set_pending, clear_notice): the page's
	 * later steps read it here rather than from the user's meta again.
	 */
	private static ?array $current = null;

	/** @var string Why the check ended this browser's session in this request ('' if it did not). */
	private static string $ended = '';

	/** @var bool The check is running (WordPress may ask who the user is from inside it). */
	private static bool $busy = false;

	/** @var array|null The lifetime WordPress gave the session it is creating: length (seconds), remember. */
	private static ?array $lifetime = null;

	/** @var bool A user is being added by an arrival (its registration is not a site registration). */
	public static bool $adopting = false;

	/**
	 * The user has a second factor on this site (WordPress's Two Factor,
	 * Wordfence Login Security, or what the ussync_user_has_second_factor
	 * filter says).
	 *
	 * @param WP_User $user The user.
	 * @return bool
	 */
	public static function has_second_factor( WP_User $user ): bool {
		$has = false;
		if ( class_exists( 'Two_Factor_Core' ) && method_exists( 'Two_Factor_Core', 'is_user_using_two_factor' ) ) {
			$has = (bool) Two_Factor_Core::is_user_using_two_factor( $user->ID );
		}
		if ( ! $has && class_exists( '\WordfenceLS\Controller_Users' ) ) {
			$has = (bool) \WordfenceLS\Controller_Users::shared()->has_2fa_active( $user );
		}
		/**
		 * Filters whether a user logs in with a second factor on this site.
		 * Such a user is not logged in by a session carried from another
		 * site (the "second_factor" setting "local").
		 *
		 * @param bool    $has  Whether the user has a second factor.
		 * @param WP_User $user The user.
		 */
		return (bool) apply_filters( 'ussync_user_has_second_factor', $has, $user );
	}

	/**
	 * Whether a user's roles may travel to the other sites.
	 *
	 * @param WP_User $user The user.
	 * @return bool
	 */
	public static function travels( WP_User $user ): bool {
		return Ussync_Util::travels( (array) $user->roles, (array) Ussync_Settings::value( 'blocked_roles' ) );
	}

	/**
	 * auth_cookie_expiration, last: remembers the lifetime and the "Remember
	 * me" of the session wp_set_auth_cookie is about to create (the
	 * attach_session_information filter is not told either).
	 *
	 * @param int  $length   Seconds.
	 * @param int  $user_id  The user.
	 * @param bool $remember Remember me.
	 * @return int
	 */
	public static function lifetime( $length, $user_id = 0, $remember = false ) {
		self::$lifetime = array(
			'length'   => (int) $length,
			'remember' => (bool) $remember,
		);
		return $length;
	}

	/**
	 * attach_session_information filter: WordPress is creating a browser
	 * session (any login path: wp-login.php, wp_signon from a form, REST or
	 * AJAX, a second factor completed). Its ussync session is created here,
	 * so its id is stored with the WordPress session from the start. A
	 * login whose cookies are held back (a second factor still to come) gets
	 * nothing; the session comes when the cookies are sent.
	 *
	 * @param array $session The WordPress session's data.
	 * @param int   $user_id The user.
	 * @return array
	 */
	public static function attach( $session, $user_id ) {
		$session = (array) $session;
		if ( null !== self::$linking ) {
			$session['ussync'] = array( 'sids' => self::$linking );
			if ( '' !== self::$linking_notice ) {
				$session['ussync']['notice'] = self::$linking_notice;
			}
			self::$linking = null;
			return $session;
		}
		if ( ! apply_filters( 'send_auth_cookies', true ) || ( defined( 'WP_CLI' ) && WP_CLI ) || wp_doing_cron() ) {
			return $session;
		}
		$user = get_userdata( (int) $user_id );
		if ( ! $user ) {
			return $session;
		}
		$life       = self::$lifetime ?? array(
			'length'   => 2 * DAY_IN_SECONDS,
			'remember' => false,
		);
		$expiration = time() + max( 60, $life['length'] );
		$remember   = $life['remember'] && ! Ussync_Util::browser_session( time(), $expiration );
		$fresh      = self::$password_changed === (int) $user_id;
		$answers    = self::create_sessions( $user, max( 60, $expiration - time() ), $remember ? $expiration : 0 );
		if ( ! $answers ) {
			return $session;
		}
		$data = array( 'sids' => array() );
		foreach ( $answers as $id => $a ) {
			$data['sids'][ $id ] = (string) $a['session']['id'];
			if ( empty( $a['synced'] ) ) {
				$data['notice'] = sanitize_key( (string) ( $a['reason'] ?? 'not_synced' ) );
			}
		}
		if ( ! $fresh && ! Ussync_Handoff::framed_login() ) {
			$pending = Ussync_Handoff::plan( $answers, self::travels( $user ) );
			if ( $pending ) {
				$data['pending'] = $pending;
			}
		}
		$session['ussync'] = $data;
		return $session;
	}

	/**
	 * Logs a user in on every network (POST /v1/sessions) and puts each
	 * token in this browser's cookie (only for a user whose roles travel).
	 * A network that cannot be reached, or
	 * refuses, is left out: the WordPress login never depends on it.
	 *
	 * @param WP_User $user    The user.
	 * @param int     $ttl     Seconds the session lives (the WordPress session's lifetime).
	 * @param int     $expires Cookie expiry: the session's end, or 0 for a browser-session cookie.
	 * @return array Network id => the node's answer (session, token, synced, reason, sync).
	 */
	private static function create_sessions( WP_User $user, int $ttl, int $expires ): array {
		$out     = array();
		$travels = self::travels( $user );
		foreach ( Ussync_Settings::nodes() as $node ) {
			$email = strtolower( $user->user_email );
			$prev  = $node->token_cookie();
			$r     = $node->login( Ussync_Handoff::login_body( $user, $ttl, $email ) );
			if ( 409 === $r['status'] && 'user_moved' === $r['code'] ) {
				$email = self::follow_move( $node, $user );
				if ( '' !== $email ) {
					$r = $node->login( Ussync_Handoff::login_body( $user, $ttl, $email ) );
				}
			}
			if ( 201 !== $r['status'] || empty( $r['data']['token'] ) ) {
				if ( 0 !== $r['status'] ) {
					// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log -- a refused login is worth a line; no secret in it.
					error_log( sprintf( 'ussync: network "%s" refused the login of user %d: %s', $node->id, $user->ID, $r['code'] ) );
				}
				continue;
			}
			$token = (string) $r['data']['token'];
			if ( Ussync_Util::valid_token( $prev ) && Ussync_Util::session_id( $prev ) !== Ussync_Util::session_id( $token ) ) {
				// This browser's former session (a re-login, a reauth): end it.
				$node->end( Ussync_Util::session_id( $prev ) );
			}
			if ( $travels ) {
				Ussync_Handoff::set_token_cookie( $node, $token, $expires );
			} else {
				// A role that stays here: the token is not put where the
				// node's public endpoints read it, or a lazy hop from another
				// site (hop/ask) or its whoami would find the session and
				// carry it there. The check and the logout use the session id
				// kept with the WordPress session.
				Ussync_Handoff::clear_token_cookie( $node );
			}
			$out[ $node->id ] = $r['data'];
		}
		return $out;
	}

	/**
	 * The node says an administrator moved the user to a new address
	 * (`ussync users rename`): take the new address here too, past the
	 * e-mail lock. Returns the new address, or '' if it cannot be learnt.
	 *
	 * @param Ussync_Node $node The node.
	 * @param WP_User     $user The user.
	 * @return string
	 */
	private static function follow_move( Ussync_Node $node, WP_User $user ): string {
		$r  = $node->user( strtolower( $user->user_email ) );
		$to = (string) ( $r['data']['moved_to'] ?? '' );
		if ( '' === $to || ! is_email( $to ) ) {
			return '';
		}
		$other = get_user_by( 'email', $to );
		if ( $other && $other->ID !== $user->ID ) {
			// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			error_log( sprintf( 'ussync: user %d was moved to an address another account here holds; not followed', $user->ID ) );
			return '';
		}
		Ussync_Users::$allow_email_change = true;
		wp_update_user(
			array(
				'ID'         => $user->ID,
				'user_email' => $to,
			)
		);
		Ussync_Users::$allow_email_change = false;
		$user->user_email = $to;
		return strtolower( $to );
	}

	/**
	 * The pending hand-off kept with a WordPress session.
	 *
	 * @param int    $uid   The user.
	 * @param string $token The WordPress session token.
	 * @return array
	 */
	public static function pending( int $uid, string $token ): array {
		if ( self::is_current( $uid, $token ) ) {
			$s = self::$current['session'];
		} else {
			$s = WP_Session_Tokens::get_instance( $uid )->get( $token );
		}
		return is_array( $s ) ? (array) ( $s['ussync']['pending'] ?? array() ) : array();
	}

	/**
	 * Whether a WordPress session is the one the check found for this
	 * request (self::$current).
	 *
	 * @param int    $uid   The user.
	 * @param string $token The WordPress session token.
	 * @return bool
	 */
	private static function is_current( int $uid, string $token ): bool {
		return null !== self::$current && self::$current['uid'] === $uid && self::$current['token'] === $token;
	}

	/**
	 * Replaces the pending hand-off kept with a WordPress session.
	 *
	 * @param int    $uid   The user.
	 * @param string $token The WordPress session token.
	 * @param array  $p     The pending hand-off (empty: none).
	 */
	public static function set_pending( int $uid, string $token, array $p ): void {
		if ( ! $uid || '' === $token ) {
			return;
		}
		$mgr = WP_Session_Tokens::get_instance( $uid );
		$s   = $mgr->get( $token );
		if ( ! is_array( $s ) ) {
			return;
		}
		if ( $p ) {
			$s['ussync']['pending'] = $p;
		} else {
			unset( $s['ussync']['pending'] );
		}
		$mgr->update( $token, $s );
		if ( self::is_current( $uid, $token ) ) {
			self::$current['session'] = $s;
		}
	}

	/**
	 * The sessions (network id => session id) of the current browser's
	 * WordPress session, as the check found them.
	 *
	 * @return array
	 */
	public static function current_sids(): array {
		return (array) ( self::$current['session']['ussync']['sids'] ?? array() );
	}

	/**
	 * A notice kept with the current WordPress session ('' if none).
	 *
	 * @return string
	 */
	public static function current_notice(): string {
		return (string) ( self::$current['session']['ussync']['notice'] ?? '' );
	}

	/**
	 * Forgets the notice kept with the current WordPress session.
	 */
	public static function clear_notice(): void {
		if ( null === self::$current || ! isset( self::$current['session']['ussync']['notice'] ) ) {
			return;
		}
		unset( self::$current['session']['ussync']['notice'] );
		WP_Session_Tokens::get_instance( self::$current['uid'] )->update( self::$current['token'], self::$current['session'] );
	}

	/**
	 * Sends the session check of each network ahead (Ussync_Node::
	 * check_ahead), as soon as the plugin is loaded, for a browser that
	 * holds WordPress's logged-in cookie and that network's session
	 * cookie: the node answers while WordPress loads the other plugins and
	 * the theme, and determine_current_user (check) finds the answer there
	 * if the WordPress session WordPress validated holds the same session.
	 * The cookies are only a hint: nothing is decided from them, and a
	 * check sent for another session is discarded unread. Visitors without
	 * the cookies are never asked about; roles that stay on this site hold
	 * no session cookie here and are checked when WordPress asks. Measured
	 * on a logged-in page view: README "Performance". The constant
	 * USSYNC_CHECK_AHEAD, false in wp-config.php, turns it off (the check
	 * is then made when WordPress asks, as before).
	 */
	public static function check_ahead(): void {
		if ( ( defined( 'USSYNC_CHECK_AHEAD' ) && ! USSYNC_CHECK_AHEAD ) || ! defined( 'LOGGED_IN_COOKIE' ) || empty( $_COOKIE[ LOGGED_IN_COOKIE ] ) || ( defined( 'WP_CLI' ) && WP_CLI ) || wp_doing_cron() ) {
			return;
		}
		foreach ( Ussync_Settings::nodes( false ) as $node ) {
			$v = $node->token_cookie();
			if ( '' !== $v ) {
				$node->check_ahead( Ussync_Util::session_id( $v ) );
			}
		}
	}

	/**
	 * determine_current_user filter, after WordPress found the user from
	 * its cookies: checks a logged-in browser's ussync session (one call to
	 * the node per network, none for an anonymous visitor), and logs in a
	 * browser that holds a session cookie a node set (a site whose web
	 * server proxies /ussync/ to the node; iframe mode).
	 *
	 * @param int|false $user_id The user WordPress found.
	 * @return int|false
	 */
	public static function determine( $user_id ) {
		if ( self::$busy ) {
			return $user_id;
		}
		self::$busy = true;
		try {
			if ( $user_id ) {
				return self::check( (int) $user_id );
			}
			return self::from_cookie() ?: $user_id;
		} finally {
			self::$busy = false;
		}
	}

	/**
	 * The check of a logged-in browser.
	 *
	 * @param int $uid The user WordPress found.
	 * @return int|false The user, or false when the session ended (or the node is down and the site fails closed).
	 */
	private static function check( int $uid ) {
		if ( did_action( 'application_password_did_authenticate' ) || ( defined( 'WP_CLI' ) && WP_CLI ) || wp_doing_cron() ) {
			return $uid; // not a browser: application passwords are their own credential.
		}
		$token = wp_get_session_token();
		if ( '' === $token ) {
			return $uid;
		}
		$s = WP_Session_Tokens::get_instance( $uid )->get( $token );
		if ( ! is_array( $s ) ) {
			return $uid;
		}
		self::$current = array(
			'uid'     => $uid,
			'token'   => $token,
			'session' => $s,
		);
		if ( empty( $s['ussync']['sids'] ) ) {
			return $uid; // a session from before the plugin, or one no node took.
		}
		foreach ( (array) $s['ussync']['sids'] as $id => $sid ) {
			$node = Ussync_Settings::node( (string) $id );
			if ( null === $node || ! Ussync_Util::valid_session_id( (string) $sid ) ) {
				continue;
			}
			$r = $node->check( (string) $sid, true );
			if ( 200 === $r['status'] ) {
				if ( ! empty( $r['data']['new_user'] ) ) {
					$node->put_user( strtolower( (string) $r['data']['session']['email'] ), array() );
				}
				continue;
			}
			if ( 410 === $r['status'] || 404 === $r['status'] ) {
				self::end_here( $uid, $token, '' !== $r['code'] ? $r['code'] : 'session_ended' );
				return false;
			}
			if ( 0 === $r['status'] && 'closed' === Ussync_Settings::value( 'fail' ) ) {
				return false; // for this request only: the WordPress session stays.
			}
			if ( 503 === $r['status'] && 'node_isolated' === $r['code'] ) {
				// The node has been out of touch longer than its
				// sync.fail_closed_after and refuses to vouch for the
				// session: closed for this request, whatever this site's
				// own setting; the WordPress session stays.
				return false;
			}
		}
		return $uid;
	}

	/**
	 * Ends this browser's WordPress session here because its ussync session
	 * ended elsewhere.
	 *
	 * @param int    $uid   The user.
	 * @param string $token The WordPress session token.
	 * @param string $why   The node's code.
	 */
	private static function end_here( int $uid, string $token, string $why ): void {
		WP_Session_Tokens::get_instance( $uid )->destroy( $token );
		self::$ended   = $why;
		self::$current = null;
		Ussync_Handoff::no_cache();
		if ( ! headers_sent() ) {
			wp_clear_auth_cookie();
		}
		foreach ( Ussync_Settings::nodes() as $node ) {
			Ussync_Handoff::clear_token_cookie( $node );
		}
		if ( 'lazy' === Ussync_Settings::value( 'mode' ) ) {
			Ussync_Handoff::cookie( Ussync_Handoff::CHECKED_COOKIE, '1', time() + Ussync_Handoff::HOP_INTERVAL, false );
		}
	}

	/**
	 * Whether the browser sent a cookie named like a network's session
	 * cookie (Ussync_Util::cookie_name, __Host- prefixed or not): most
	 * visitors send none, and their page views look no further.
	 *
	 * @return bool
	 */
	private static function has_session_cookie(): bool {
		foreach ( array_keys( $_COOKIE ) as $name ) {
			if ( str_contains( (string) $name, 'ussync_session' ) ) {
				return true;
			}
		}
		return false;
	}

	/**
	 * An anonymous page view with a session cookie a node set: log it in.
	 *
	 * @return int 0 when nothing happened.
	 */
	private static function from_cookie(): int {
		if ( ! self::has_session_cookie() || ! Ussync_Handoff::page_request() ) {
			return 0;
		}
		foreach ( Ussync_Settings::nodes() as $node ) {
			$v = $node->token_cookie();
			if ( '' === $v ) {
				if ( isset( $_COOKIE[ $node->cookie ] ) || isset( $_COOKIE[ $node->legacy_cookie ] ) ) {
					Ussync_Handoff::clear_token_cookie( $node );
				}
				continue;
			}
			$got = self::arrive( $node, $v );
			if ( $got['ok'] ) {
				Ussync_Handoff::set_token_cookie( $node, $v, $got['remember'] ? $got['expires'] : 0 );
				return $got['uid'];
			}
			Ussync_Handoff::clear_token_cookie( $node );
			if ( 'unavailable' !== $got['code'] ) {
				Ussync_Handoff::refused( $got['code'] );
			}
		}
		return 0;
	}

	/**
	 * A session arrived from another site (a redeemed ticket, or a cookie
	 * a node set): log the browser into the WordPress account with the
	 * session's address, adding a subscriber under the "create" policy.
	 * Never logs into an account matched by name, never replaces another
	 * user's session in this browser, never copies or raises a role.
	 *
	 * An account this site already had under the address, while the site
	 * was not bound to it before this hand-off ($was_bound false: the node
	 * says so on the sync step's answer), was never proven to be the
	 * mailbox owner's: someone may have registered it first, with a
	 * password of their choosing. Its credentials are reset before the
	 * browser is logged in (see unproven_account).
	 *
	 * @param Ussync_Node $node      The network.
	 * @param string      $token     The session token.
	 * @param bool|null   $was_bound The site was bound to the address before this hand-off; null: unknown (a cookie the node set itself).
	 * @return array{ok:bool,uid:int,code:string,remember:bool,expires:int}
	 */
	public static function arrive( Ussync_Node $node, string $token, ?bool $was_bound = null ): array {
		$no = static fn( string $code ): array => array(
			'ok'       => false,
			'uid'      => 0,
			'code'     => $code,
			'remember' => false,
			'expires'  => 0,
		);
		$sid = Ussync_Util::session_id( $token );
		$r   = $node->check( $sid );
		if ( 200 !== $r['status'] ) {
			return $no( 0 === $r['status'] ? 'unavailable' : ( '' !== $r['code'] ? $r['code'] : 'session_ended' ) );
		}
		$sess    = (array) ( $r['data']['session'] ?? array() );
		$email   = strtolower( (string) ( $sess['email'] ?? '' ) );
		$created = Ussync_Util::unix( $sess['created_at'] ?? null );
		$expires = Ussync_Util::unix( $sess['expires_at'] ?? null );
		if ( '' === $email || $expires <= time() ) {
			return $no( 'session_expired' );
		}
		$remember = ! Ussync_Util::browser_session( $created, $expires );
		$ok       = static fn( int $uid ): array => array(
			'ok'       => true,
			'uid'      => $uid,
			'code'     => '',
			'remember' => $remember,
			'expires'  => $expires,
		);

		$current = self::$busy ? 0 : get_current_user_id();
		if ( $current ) {
			$cu = get_userdata( $current );
			if ( ! $cu || strtolower( $cu->user_email ) !== $email ) {
				return $no( 'other_user' ); // never silently replace someone's session.
			}
			$token_wp = wp_get_session_token();
			$mgr      = WP_Session_Tokens::get_instance( $current );
			$s        = $mgr->get( $token_wp );
			if ( is_array( $s ) ) {
				$s['ussync']['sids'][ $node->id ] = $sid;
				$mgr->update( $token_wp, $s );
				if ( self::is_current( $current, $token_wp ) ) {
					self::$current['session'] = $s;
				}
			}
			return $ok( $current );
		}

		$user    = get_user_by( 'email', $email );
		$existed = (bool) $user;
		if ( ! $user ) {
			if ( 'reject' === Ussync_Settings::value( 'unknown_user' ) ) {
				return $no( 'unknown_user' );
			}
			$user = self::add_subscriber( $node, $email );
			if ( ! $user ) {
				return $no( 'create_failed' );
			}
		} elseif ( ! empty( $r['data']['new_user'] ) ) {
			$node->put_user( $email, array() ); // this site has the user: acknowledged.
		}
		if ( ! self::travels( $user ) ) {
			return $no( 'role' );
		}
		if ( 'local' === Ussync_Settings::value( 'second_factor' ) && self::has_second_factor( $user ) ) {
			return $no( 'second_factor' );
		}

		$notice = '';
		if ( $existed && false === $was_bound ) {
			self::unproven_account( $user, $node->id, $sid );
			$notice = 'password_reset';
		}

		// WordPress's cookies never outlive the ussync session: a remembered
		// login cookie is kept 12 hours past its session's expiration
		// (wp_set_auth_cookie), so that session ends 12 hours earlier.
		$life  = max( 60, $expires - time() - ( $remember ? 12 * HOUR_IN_SECONDS : 0 ) );
		$limit = static fn() => $life;
		add_filter( 'auth_cookie_expiration', $limit, PHP_INT_MAX );
		self::$linking        = array( $node->id => $sid );
		self::$linking_notice = $notice;
		wp_set_auth_cookie( $user->ID, $remember, is_ssl() );
		self::$linking_notice = '';
		self::$linking = null;
		remove_filter( 'auth_cookie_expiration', $limit, PHP_INT_MAX );
		wp_set_current_user( $user->ID );
		Ussync_Handoff::no_cache();
		return $ok( $user->ID );
	}

	/**
	 * A session arrived for an account this site had before it was bound to
	 * the account's address: the hand-off is the first proof that the
	 * browser's user owns the mailbox, and nothing proved that whoever set
	 * the account's credentials did (someone may have registered the
	 * address first, with a password of their choosing: a pre-account
	 * takeover). As careful SSO systems do when they link an identity to a
	 * pre-existing unverified local account, the account's credentials
	 * are reset before the browser is logged in: a random password, its
	 * application passwords deleted, every other WordPress session
	 * destroyed (and the ussync sessions they held ended). The event is
	 * logged and the user is told, by e-mail and by a notice, how to set a
	 * password of their own. Profile and content stay as they are.
	 *
	 * @param WP_User $user    The account.
	 * @param string  $network The id of the network the session came by.
	 * @param string  $sid     The arriving session's id (never ended).
	 */
	private static function unproven_account( WP_User $user, string $network, string $sid ): void {
		$mgr   = WP_Session_Tokens::get_instance( $user->ID );
		$nodes = array();
		foreach ( Ussync_Settings::nodes() as $n ) {
			$nodes[ $n->id ] = $n;
		}
		foreach ( $mgr->get_all() as $s ) {
			foreach ( (array) ( $s['ussync']['sids'] ?? array() ) as $id => $other ) {
				$other = (string) $other;
				if ( isset( $nodes[ $id ] ) && Ussync_Util::valid_session_id( $other ) && ! ( $id === $network && $other === $sid ) ) {
					$nodes[ $id ]->end( $other );
				}
			}
		}
		$mgr->destroy_all();
		wp_set_password( wp_generate_password( 32, true, true ), $user->ID );
		if ( class_exists( 'WP_Application_Passwords' ) ) {
			WP_Application_Passwords::delete_all_application_passwords( $user->ID );
		}
		update_user_meta( $user->ID, 'ussync_credentials_reset', time() );
		// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
		error_log( sprintf( 'ussync: user %d arrived by a hand-off before this site had proved their address: the account\'s password was reset and its other sessions ended', $user->ID ) );
		$site = wp_specialchars_decode( get_bloginfo( 'name' ), ENT_QUOTES );
		wp_mail(
			$user->user_email,
			/* translators: %s: the site's name. */
			sprintf( __( '[%s] Your password here was reset', 'ussync' ), $site ),
			sprintf(
				/* translators: 1: the site's name, 2: its address, 3: the lost-password page. */
				__( "You were just logged in on %1\$s (%2\$s) by your login on another site of the same family.\n\nAn account with your e-mail address already existed here, but this site had never verified that address. Someone else may have created that account before you, so for your safety its password was replaced by a random one and every other session of the account was ended.\n\nTo log in here with a password, set a new one: %3\$s\n\nIf you did not just log in, you can ignore this message.", 'ussync' ),
				$site,
				home_url( '/' ),
				wp_lostpassword_url()
			)
		);
	}

	/**
	 * Adds the account of a user who arrived from another site: a
	 * subscriber whatever their roles elsewhere, under the login the
	 * cluster knows if it is free here (else with a suffix), with a random
	 * password. Acknowledges the user to the node (PUT).
	 *
	 * @param Ussync_Node $node  The network.
	 * @param string      $email The address.
	 * @return WP_User|null
	 */
	private static function add_subscriber( Ussync_Node $node, string $email ): ?WP_User {
		$r     = $node->user( $email );
		$login = Ussync_Util::unique_login(
			(string) ( $r['data']['login'] ?? '' ),
			$email,
			static fn( string $s ): string => sanitize_user( $s, true ),
			static fn( string $s ): bool => (bool) username_exists( $s )
		);
		if ( '' === $login ) {
			return null;
		}
		$name           = sanitize_text_field( (string) ( $r['data']['display_name'] ?? '' ) );
		self::$adopting = true;
		$uid            = wp_insert_user(
			array(
				'user_login'   => $login,
				'user_email'   => $email,
				'user_pass'    => wp_generate_password( 32, true, true ),
				'display_name' => '' !== $name ? $name : $login,
				'role'         => 'subscriber',
			)
		);
		self::$adopting = false;
		if ( is_wp_error( $uid ) ) {
			// phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			error_log( 'ussync: could not add a user who arrived from another site: ' . $uid->get_error_code() );
			return null;
		}
		update_user_meta( $uid, 'ussync_added', time() );
		$node->put_user( $email, array() );
		$user = get_userdata( $uid );
		return $user ?: null;
	}

	/**
	 * wp_logout: end this browser's session on every site, whatever the path
	 * that logged out (wp-login.php, a WooCommerce page, a wp_logout() of a
	 * theme). A node that cannot be reached does not stop the local logout.
	 */
	public static function logout(): void {
		$sids = self::current_sids();
		foreach ( Ussync_Settings::nodes() as $node ) {
			$sid = (string) ( $sids[ $node->id ] ?? '' );
			$v   = $node->token_cookie();
			if ( '' === $sid && Ussync_Util::valid_token( $v ) ) {
				$sid = Ussync_Util::session_id( $v );
			}
			if ( Ussync_Util::valid_session_id( $sid ) ) {
				$node->end( $sid );
			}
			Ussync_Handoff::clear_token_cookie( $node );
		}
		if ( 'lazy' === Ussync_Settings::value( 'mode' ) ) {
			// Asking the other sites right after a logout would find nothing.
			Ussync_Handoff::cookie( Ussync_Handoff::CHECKED_COOKIE, '1', time() + Ussync_Handoff::HOP_INTERVAL, false );
		}
		self::$current = null;
		Ussync_Handoff::no_cache();
	}

	/**
	 * Logs a user out on every site and every browser (every network).
	 *
	 * @param WP_User $user The user.
	 * @return bool Whether every network answered.
	 */
	public static function logout_everywhere( WP_User $user ): bool {
		$all = true;
		foreach ( Ussync_Settings::nodes() as $node ) {
			$r   = $node->logout_everywhere( strtolower( $user->user_email ) );
			$all = $all && ( 200 === $r['status'] || 404 === $r['status'] );
		}
		return $all;
	}

	/**
	 * admin-post.php?action=ussync_logout_everywhere (the profile's and the
	 * admin bar's "Log out everywhere"): a POST with a nonce, for oneself.
	 */
	public static function logout_everywhere_action(): void {
		check_admin_referer( 'ussync_logout_everywhere' );
		$user = wp_get_current_user();
		if ( ! $user->exists() ) {
			wp_safe_redirect( wp_login_url() );
			exit;
		}
		self::logout_everywhere( $user );
		WP_Session_Tokens::get_instance( $user->ID )->destroy_all();
		wp_logout();
		wp_safe_redirect( add_query_arg( 'loggedout', 'true', wp_login_url() ) );
		exit;
	}

	/**
	 * profile_update: a changed password (profile, WooCommerce account,
	 * REST, an administrator) logs the user out everywhere else.
	 *
	 * @param int          $user_id  The user.
	 * @param WP_User|null $old_user The user before the change.
	 */
	public static function profile_update( $user_id, $old_user = null ): void {
		$new = get_userdata( (int) $user_id );
		if ( ! $new || ! $old_user instanceof WP_User || $old_user->user_pass === $new->user_pass ) {
			return;
		}
		self::password_changed( $new );
	}

	/**
	 * after_password_reset: the lost-password link was used; its user is
	 * logged out everywhere. When the site counts that link as proof of
	 * the address, the address is verified (verified_via: registration).
	 *
	 * @param WP_User $user The user.
	 */
	public static function after_password_reset( $user ): void {
		if ( ! $user instanceof WP_User ) {
			return;
		}
		self::password_changed( $user );
		if ( Ussync_Settings::value( 'link_verifies' ) ) {
			foreach ( Ussync_Settings::nodes() as $node ) {
				$node->put_user( strtolower( $user->user_email ), array( 'verified_via' => 'registration' ) );
			}
		}
	}

	/**
	 * Ends every session of a user; the browser that changed its own
	 * password keeps a fresh session here (WordPress sets its cookie again
	 * right after).
	 *
	 * @param WP_User $user The user.
	 */
	private static function password_changed( WP_User $user ): void {
		self::logout_everywhere( $user );
		if ( get_current_user_id() === $user->ID ) {
			self::$password_changed = $user->ID;
		}
	}

	/**
	 * rest_authentication_errors: a REST call whose browser session ended
	 * elsewhere answers 401 JSON (never a redirect).
	 *
	 * @param WP_Error|null|true $result Earlier result.
	 * @return WP_Error|null|true
	 */
	public static function rest_errors( $result ) {
		if ( '' === self::$ended || is_wp_error( $result ) ) {
			return $result;
		}
		return new WP_Error( 'ussync_session_ended', __( 'Your session has ended (you logged out on another site, or it was revoked). Log in again.', 'ussync' ), array( 'status' => 401 ) );
	}

	/**
	 * admin_init during admin-ajax.php: a call whose browser session ended
	 * elsewhere answers 401 JSON. The heartbeat keeps WordPress's own
	 * answer (it shows the "session expired" login modal).
	 */
	public static function ajax_ended(): void {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- only read to leave the heartbeat alone.
		if ( '' === self::$ended || ! wp_doing_ajax() || ( isset( $_REQUEST['action'] ) && 'heartbeat' === $_REQUEST['action'] ) ) {
			return;
		}
		wp_send_json(
			array(
				'success' => false,
				'data'    => array(
					'code'    => 'ussync_session_ended',
					'message' => __( 'Your session has ended. Log in again.', 'ussync' ),
				),
			),
			401
		);
	}
}
