<?php
/**
 * The plugin's settings: one option, ussync_settings, which never holds a
 * secret (API tokens come from wp-config.php constants or files).
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Settings reads, checks and stores the settings.
 */
final class Ussync_Settings {

	/** The option holding the settings. */
	const OPTION = 'ussync_settings';

	/** @var array|null The settings of this request. */
	private static ?array $cache = null;

	/** @var Ussync_Node[]|null The connections of this request. */
	private static ?array $nodes = null;

	/**
	 * @var array|null The valid connections of the settings, checked once
	 * a request: each a checked connection, its position and its token.
	 */
	private static ?array $checked = null;

	/**
	 * The settings a fresh install has, each with its reason.
	 *
	 * @return array
	 */
	public static function defaults(): array {
		return array(
			// One node per network; the first is the primary one (lazy mode,
			// whoami, the node's own cookie name). The addresses are the
			// node's defaults (cluster.yaml: api.listen, public.listen).
			'connections'     => array(
				array(
					'id'         => 'main',
					'label'      => '',
					'api_url'    => 'http://127.0.0.1:7947',
					'public_url' => 'http://127.0.0.1:7948',
					'token_file' => '',
				),
			),
			// chain works with third-party cookies blocked (browsers' default).
			'mode'            => 'chain',
			// The seed plugin's "auto add new subscriber".
			'unknown_user'    => 'create',
			// Accounts that can change the site stay on it unless allowed.
			'blocked_roles'   => array( 'administrator', 'editor' ),
			// A user who has a second factor here logs in here.
			'second_factor'   => 'local',
			// A node that does not answer must not lock everyone out.
			'fail'            => 'open',
			// REMOTE_ADDR is the browser unless a proxy is listed.
			'trusted_proxies' => '',
			// Core's registration mails a link; it proves the mailbox only
			// once used, and only if the site says so.
			'link_verifies'   => false,
		);
	}

	/**
	 * The settings, merged over the defaults.
	 *
	 * @return array
	 */
	public static function get(): array {
		if ( null === self::$cache ) {
			$saved       = get_option( self::OPTION, array() );
			self::$cache = array_merge( self::defaults(), is_array( $saved ) ? $saved : array() );
		}
		return self::$cache;
	}

	/**
	 * Forgets the settings of this request (after a save).
	 */
	public static function reset(): void {
		self::$cache   = null;
		self::$nodes   = null;
		self::$checked = null;
	}

	/**
	 * One setting.
	 *
	 * @param string $key Name.
	 * @return mixed
	 */
	public static function value( string $key ) {
		return self::get()[ $key ] ?? null;
	}

	/**
	 * The API token of a connection: the constant (USSYNC_API_TOKEN, or
	 * USSYNC_API_TOKEN_<ID> for the other networks), else the first line of
	 * its token file; '' when neither is set or readable.
	 *
	 * @param array $c     A checked connection.
	 * @param int   $index Its position.
	 * @return string
	 */
	public static function token( array $c, int $index ): string {
		$const = Ussync_Util::token_constant( $index, $c['id'] );
		if ( defined( $const ) && is_string( constant( $const ) ) && '' !== trim( constant( $const ) ) ) {
			return trim( constant( $const ) );
		}
		if ( '' !== $c['token_file'] && is_readable( $c['token_file'] ) ) {
			// phpcs:ignore WordPress.WP.AlternativeFunctions.file_get_contents_file_get_contents -- a local file, not a URL.
			$text = (string) file_get_contents( $c['token_file'], false, null, 0, 4096 );
			return trim( strtok( $text, "\n" ) ?: '' );
		}
		return '';
	}

	/**
	 * Where a connection's token comes from, for the settings page (never
	 * the token itself).
	 *
	 * @param array $c     A checked connection.
	 * @param int   $index Its position.
	 * @return string
	 */
	public static function token_source( array $c, int $index ): string {
		$const = Ussync_Util::token_constant( $index, $c['id'] );
		if ( defined( $const ) ) {
			/* translators: %s: a PHP constant name */
			return sprintf( __( 'the constant %s in wp-config.php', 'ussync' ), $const );
		}
		if ( '' !== $c['token_file'] ) {
			/* translators: %s: a file path */
			return is_readable( $c['token_file'] ) ? sprintf( __( 'the file %s', 'ussync' ), $c['token_file'] ) : sprintf( __( 'the file %s, which cannot be read', 'ussync' ), $c['token_file'] );
		}
		return '';
	}

	/**
	 * The node connections, the primary one first.
	 *
	 * @param bool $keep Keep them for the rest of the request (false: while
	 *                   the plugins load, before other plugins' filters on
	 *                   home_url, which names the cookies, are in place).
	 * @return Ussync_Node[]
	 */
	public static function nodes( bool $keep = true ): array {
		if ( null !== self::$nodes ) {
			return self::$nodes;
		}
		if ( null === self::$checked ) {
			self::$checked = array();
			foreach ( array_values( (array) self::value( 'connections' ) ) as $i => $raw ) {
				list( $c, $problems ) = Ussync_Util::check_connection( (array) $raw );
				if ( array() === $problems ) {
					self::$checked[] = array( $c, $i, self::token( $c, $i ) );
				}
			}
		}
		$nodes = array();
		foreach ( self::$checked as list( $c, $i, $token ) ) {
			$nodes[] = new Ussync_Node( $c, $i, $token );
		}
		if ( $keep ) {
			self::$nodes = $nodes;
		}
		return $nodes;
	}

	/**
	 * The primary network's node, or null when none is configured.
	 *
	 * @return Ussync_Node|null
	 */
	public static function primary(): ?Ussync_Node {
		return self::nodes()[0] ?? null;
	}

	/**
	 * The node of a network id, or null.
	 *
	 * @param string $id Network id.
	 * @return Ussync_Node|null
	 */
	public static function node( string $id ): ?Ussync_Node {
		foreach ( self::nodes() as $n ) {
			if ( $n->id === $id ) {
				return $n;
			}
		}
		return null;
	}

	/**
	 * Trusted proxy prefixes.
	 *
	 * @return string[]
	 */
	public static function trusted_proxies(): array {
		return Ussync_Util::prefixes( (string) self::value( 'trusted_proxies' ) );
	}

	/**
	 * Checks the settings page's input (the Settings API's sanitize
	 * callback). A bad field keeps its former value and says why.
	 *
	 * @param mixed $input The posted settings.
	 * @return array
	 */
	public static function sanitize( $input ): array {
		$old = self::get();
		$in  = is_array( $input ) ? $input : array();
		$out = $old;

		$conns = array();
		$ids   = array();
		foreach ( (array) ( $in['connections'] ?? array() ) as $raw ) {
			$raw = array_map( 'sanitize_text_field', array_map( 'strval', (array) $raw ) );
			if ( '' === trim( $raw['api_url'] ?? '' ) && '' === trim( $raw['id'] ?? '' ) ) {
				continue; // an empty row: removed.
			}
			list( $c, $problems ) = Ussync_Util::check_connection( $raw );
			if ( isset( $ids[ $c['id'] ] ) ) {
				$problems[] = 'id';
			}
			if ( array() !== $problems ) {
				add_settings_error(
					self::OPTION,
					'ussync_connection',
					/* translators: 1: network id, 2: field names */
					sprintf( __( 'Network "%1$s": check %2$s. The network settings were not changed.', 'ussync' ), $c['id'], implode( ', ', $problems ) )
				);
				$conns = null;
				break;
			}
			$ids[ $c['id'] ] = true;
			$conns[]         = $c;
		}
		if ( null !== $conns && array() !== $conns ) {
			$out['connections'] = $conns;
		}

		$choices = array(
			'mode'          => array( 'chain', 'lazy', 'iframe' ),
			'unknown_user'  => array( 'create', 'reject' ),
			'second_factor' => array( 'local', 'accept' ),
			'fail'          => array( 'open', 'closed' ),
		);
		foreach ( $choices as $k => $allowed ) {
			$v = sanitize_key( (string) ( $in[ $k ] ?? '' ) );
			if ( in_array( $v, $allowed, true ) ) {
				$out[ $k ] = $v;
			}
		}
		$roles                = array_keys( wp_roles()->roles );
		$out['blocked_roles'] = array_values( array_intersect( $roles, array_map( 'sanitize_key', (array) ( $in['blocked_roles'] ?? array() ) ) ) );
		$proxies              = sanitize_textarea_field( (string) ( $in['trusted_proxies'] ?? '' ) );
		$out['trusted_proxies'] = implode( "\n", Ussync_Util::prefixes( $proxies ) );
		$out['link_verifies']   = ! empty( $in['link_verifies'] );
		self::reset();
		return $out;
	}
}
