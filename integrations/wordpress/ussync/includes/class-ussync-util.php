<?php
/**
 * Pure functions of the plugin: no WordPress call, no I/O, unit-tested by
 * tests/UtilTest.php with Debian's phpunit.
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Util holds the plugin's pure functions.
 */
final class Ussync_Util {

	/**
	 * Lifetime (seconds) at or under which a session is a browser session:
	 * WordPress's own lifetime of a login without "Remember me" is two days
	 * (auth_cookie_expiration), and a login without it ends with the browser.
	 * An hour of slack covers the seconds between the login and the check.
	 */
	const BROWSER_SESSION_MAX = 2 * 86400 + 3600;

	/**
	 * The endpoints under <site path>ussync/v1/ that the plugin answers by
	 * forwarding them to the node's public listener (docs/handoff.md);
	 * healthz is the node's check of its own site (site.health_url): the
	 * other sites hand browsers only to a site that answers it.
	 */
	const ENDPOINTS = array( 'bind', 'chain', 'sync', 'whoami', 'logout', 'auth', 'hop', 'hop/ask', 'hop/done', 'verify', 'healthz' );

	/**
	 * Session id of a session token: the lower-case hex SHA-256 of the token,
	 * as the node computes it (crypto.SessionID).
	 *
	 * @param string $token The session token (the cookie value).
	 * @return string 64 hex characters.
	 */
	public static function session_id( string $token ): string {
		return hash( 'sha256', $token );
	}

	/**
	 * Whether $id has the form of a session id (64 lower-case hex characters).
	 *
	 * @param string $id Candidate id.
	 * @return bool
	 */
	public static function valid_session_id( string $id ): bool {
		return 1 === preg_match( '/\A[0-9a-f]{64}\z/', $id );
	}

	/**
	 * Whether $token may be a session token: URL-safe base64, 16 to 128
	 * characters (the node never looks up a longer cookie).
	 *
	 * @param string $token Candidate token.
	 * @return bool
	 */
	public static function valid_token( string $token ): bool {
		return 1 === preg_match( '/\A[A-Za-z0-9_-]{16,128}\z/', $token );
	}

	/**
	 * The endpoint a request path names under the site's path, or '' when
	 * the path is not one of ENDPOINTS. "/blog/ussync/v1/hop/ask" under the
	 * site path "/blog/" is "hop/ask"; "/ussync/v1/sync/" and
	 * "/ussync/v1/other" are ''.
	 *
	 * @param string $request_path The request's path, without the query (not decoded).
	 * @param string $site_path    The site's path, starting and ending with "/".
	 * @return string
	 */
	public static function endpoint( string $request_path, string $site_path ): string {
		$prefix = $site_path . 'ussync/v1/';
		if ( ! str_starts_with( $request_path, $prefix ) ) {
			return '';
		}
		$rest = substr( $request_path, strlen( $prefix ) );
		return in_array( $rest, self::ENDPOINTS, true ) ? $rest : '';
	}

	/**
	 * A site path in the form endpoint() takes: "/" or "/blog/".
	 *
	 * @param string $url The site's home URL.
	 * @return string
	 */
	public static function site_path( string $url ): string {
		$path = (string) parse_url( $url, PHP_URL_PATH );
		return '/' . trim( $path, '/' ) . ( '' === trim( $path, '/' ) ? '' : '/' );
	}

	/**
	 * Parses one Set-Cookie header value (RFC 6265 section 5.2, the parts a
	 * relay needs). Attribute names are lower-cased; flags (HttpOnly, Secure)
	 * map to true. Returns null when the header has no name=value pair.
	 *
	 * @param string $header The header value, e.g. "ussync_session=abc; Path=/; Max-Age=60; HttpOnly".
	 * @return array{name:string,value:string,attrs:array<string,string|bool>}|null
	 */
	public static function parse_set_cookie( string $header ): ?array {
		$parts = explode( ';', $header );
		$pair  = array_shift( $parts );
		$eq    = strpos( (string) $pair, '=' );
		if ( false === $eq ) {
			return null;
		}
		$name = trim( substr( $pair, 0, $eq ) );
		if ( '' === $name ) {
			return null;
		}
		$value = trim( substr( $pair, $eq + 1 ) );
		if ( strlen( $value ) >= 2 && '"' === $value[0] && '"' === $value[ strlen( $value ) - 1 ] ) {
			$value = substr( $value, 1, -1 );
		}
		$attrs = array();
		foreach ( $parts as $part ) {
			$eq = strpos( $part, '=' );
			if ( false === $eq ) {
				$k = strtolower( trim( $part ) );
				if ( '' !== $k ) {
					$attrs[ $k ] = true;
				}
				continue;
			}
			$attrs[ strtolower( trim( substr( $part, 0, $eq ) ) ) ] = trim( substr( $part, $eq + 1 ) );
		}
		return array(
			'name'  => $name,
			'value' => $value,
			'attrs' => $attrs,
		);
	}

	/**
	 * A node's cookie name without the __Host- prefix the node gives its
	 * cookies on a site served over https at the root of its host
	 * (client.CookieName, node/browser.go): "__Host-ussync_nonce" and
	 * "ussync_nonce" are both "ussync_nonce".
	 *
	 * @param string $name The cookie's name.
	 * @return string
	 */
	public static function cookie_base( string $name ): string {
		return str_starts_with( $name, '__Host-' ) ? substr( $name, strlen( '__Host-' ) ) : $name;
	}

	/**
	 * Whether a parsed Set-Cookie deletes its cookie (empty value, or a
	 * Max-Age of zero or less).
	 *
	 * @param array $cookie A parse_set_cookie() result.
	 * @return bool
	 */
	public static function deletes( array $cookie ): bool {
		if ( '' === $cookie['value'] ) {
			return true;
		}
		return isset( $cookie['attrs']['max-age'] ) && (int) $cookie['attrs']['max-age'] <= 0;
	}

	/**
	 * Whether $ip lies in the CIDR prefix $cidr ("127.0.0.1/32", "::1/128",
	 * "10.0.0.0/8"; a bare address is a single-address prefix). IPv4 and
	 * IPv6 never match each other.
	 *
	 * @param string $ip   An IP address.
	 * @param string $cidr A prefix.
	 * @return bool
	 */
	public static function ip_in( string $ip, string $cidr ): bool {
		$cidr = trim( $cidr );
		$bits = null;
		if ( str_contains( $cidr, '/' ) ) {
			list( $cidr, $b ) = explode( '/', $cidr, 2 );
			if ( ! ctype_digit( $b ) ) {
				return false;
			}
			$bits = (int) $b;
		}
		$a = @inet_pton( $ip ); // phpcs:ignore WordPress.PHP.NoSilencedErrors.Discouraged -- a bad address is an answer (false), not a notice.
		$n = @inet_pton( $cidr ); // phpcs:ignore WordPress.PHP.NoSilencedErrors.Discouraged
		if ( false === $a || false === $n || strlen( $a ) !== strlen( $n ) ) {
			return false;
		}
		$max  = strlen( $a ) * 8;
		$bits = null === $bits ? $max : $bits;
		if ( $bits < 0 || $bits > $max ) {
			return false;
		}
		$whole = intdiv( $bits, 8 );
		if ( substr( $a, 0, $whole ) !== substr( $n, 0, $whole ) ) {
			return false;
		}
		$rest = $bits % 8;
		if ( 0 === $rest ) {
			return true;
		}
		$mask = ( 0xff << ( 8 - $rest ) ) & 0xff;
		return ( ord( $a[ $whole ] ) & $mask ) === ( ord( $n[ $whole ] ) & $mask );
	}

	/**
	 * Whether $ip is in any of $prefixes.
	 *
	 * @param string   $ip       An IP address.
	 * @param string[] $prefixes CIDR prefixes.
	 * @return bool
	 */
	public static function ip_in_any( string $ip, array $prefixes ): bool {
		foreach ( $prefixes as $p ) {
			if ( self::ip_in( $ip, $p ) ) {
				return true;
			}
		}
		return false;
	}

	/**
	 * The browser's address: the socket address, or, when the socket address
	 * is a trusted proxy, the rightmost X-Forwarded-For entry that is not a
	 * trusted proxy (the node's rule, docs/handoff.md). An entry that is not
	 * an address stops the walk at the last address believed.
	 *
	 * @param string   $remote   REMOTE_ADDR.
	 * @param string   $xff      The X-Forwarded-For header ('' when absent).
	 * @param string[] $trusted  CIDR prefixes of the trusted proxies.
	 * @return string
	 */
	public static function client_ip( string $remote, string $xff, array $trusted ): string {
		$ip = trim( $remote );
		if ( '' === $xff || ! self::ip_in_any( $ip, $trusted ) ) {
			return $ip;
		}
		$hops = array_reverse( array_map( 'trim', explode( ',', $xff ) ) );
		foreach ( $hops as $hop ) {
			if ( false === filter_var( $hop, FILTER_VALIDATE_IP ) ) {
				return $ip;
			}
			$ip = $hop;
			if ( ! self::ip_in_any( $hop, $trusted ) ) {
				return $hop;
			}
		}
		return $ip;
	}

	/**
	 * Splits a list of CIDR prefixes written one per line or separated by
	 * commas or spaces, keeping the valid ones.
	 *
	 * @param string $text The setting's text.
	 * @return string[]
	 */
	public static function prefixes( string $text ): array {
		$out = array();
		foreach ( preg_split( '/[\s,]+/', $text, -1, PREG_SPLIT_NO_EMPTY ) as $p ) {
			$addr = explode( '/', $p, 2 )[0];
			if ( false !== filter_var( $addr, FILTER_VALIDATE_IP ) && ( ! str_contains( $p, '/' ) || self::ip_in( $addr, $p ) ) ) {
				$out[] = $p;
			}
		}
		return $out;
	}

	/**
	 * Whether a session of this lifetime is a browser session: one that
	 * ends when the browser closes on every site (the login was made without
	 * "Remember me"). See BROWSER_SESSION_MAX.
	 *
	 * @param int $created Unix time the session was created.
	 * @param int $expires Unix time it expires.
	 * @return bool
	 */
	public static function browser_session( int $created, int $expires ): bool {
		return $expires - $created <= self::BROWSER_SESSION_MAX;
	}

	/**
	 * A Go duration for a lifetime in seconds ("1209600s"), at least one
	 * second.
	 *
	 * @param int $seconds Lifetime.
	 * @return string
	 */
	public static function go_duration( int $seconds ): string {
		return max( 1, $seconds ) . 's';
	}

	/**
	 * Unix time of an RFC 3339 time, or 0 when it does not parse.
	 *
	 * @param string|null $t The time, e.g. "2026-11-29T17:43:14.123Z".
	 * @return int
	 */
	public static function unix( ?string $t ): int {
		if ( null === $t || '' === $t ) {
			return 0;
		}
		$ts = strtotime( $t );
		return false === $ts ? 0 : $ts;
	}

	/**
	 * A user name for an account the plugin adds: the wanted login, else the
	 * local part of the address, reduced by $sanitize (WordPress's
	 * sanitize_user in strict mode), and made unique with "-2", "-3", …
	 * when $taken says a name belongs to someone else. Never matches an
	 * account by name: the caller has already found no account with the
	 * address.
	 *
	 * @param string   $wanted   The login the cluster knows ('' if none).
	 * @param string   $email    The user's address.
	 * @param callable $sanitize fn(string): string.
	 * @param callable $taken    fn(string): bool.
	 * @return string '' when no free name was found in 100 tries.
	 */
	public static function unique_login( string $wanted, string $email, callable $sanitize, callable $taken ): string {
		$base = (string) $sanitize( $wanted );
		if ( '' === trim( $base ) ) {
			$base = (string) $sanitize( explode( '@', $email, 2 )[0] );
		}
		if ( '' === trim( $base ) ) {
			$base = 'user';
		}
		$base = substr( $base, 0, 50 );
		for ( $i = 1; $i <= 100; $i++ ) {
			$name = 1 === $i ? $base : $base . '-' . $i;
			if ( ! $taken( $name ) ) {
				return $name;
			}
		}
		return '';
	}

	/**
	 * Whether a user with these roles may travel: none of the roles is
	 * in the site's list of roles that stay on this site. A user without
	 * any role travels.
	 *
	 * @param string[] $roles   The user's roles.
	 * @param string[] $blocked Roles that do not travel.
	 * @return bool
	 */
	public static function travels( array $roles, array $blocked ): bool {
		return array() === array_intersect( $roles, $blocked );
	}

	/**
	 * The cookie name of a network's session token on this site: the node's
	 * own name (ussync_session) for the first network, so a node's public
	 * endpoints read it as they are; "ussync_session_<id>" for the others.
	 *
	 * @param int    $index The network's position in the settings.
	 * @param string $id    The network's id.
	 * @return string
	 */
	public static function cookie_name( int $index, string $id ): string {
		return 0 === $index ? 'ussync_session' : 'ussync_session_' . $id;
	}

	/**
	 * Whether a site at $home may name its cookies __Host-…: served over
	 * https at the root of its host (RFC 6265bis section 4.1.3.2: Secure,
	 * Path=/, no Domain). Such a cookie cannot be planted by a sibling
	 * subdomain, which a plain name can (login CSRF: the browser would be
	 * logged in as the planter).
	 *
	 * @param string $home The site's home URL.
	 * @return bool
	 */
	public static function host_prefixed( string $home ): bool {
		return 'https' === strtolower( (string) parse_url( $home, PHP_URL_SCHEME ) ) && '/' === self::site_path( $home );
	}

	/**
	 * A network id: lower-case letters, digits and '_', 1 to 20 characters.
	 *
	 * @param string $id Candidate.
	 * @return bool
	 */
	public static function valid_network_id( string $id ): bool {
		return 1 === preg_match( '/\A[a-z0-9_]{1,20}\z/', $id );
	}

	/**
	 * Checks one network connection of the settings and returns its
	 * normalised form and the problems found (translated by the caller).
	 *
	 * The private API URL is http(s)://host[:port][/path], or a Unix
	 * socket (socket_path), normalised to "unix:/path".
	 *
	 * @param array $c Raw connection: id, label, api_url, public_url, token_file.
	 * @return array{0:array,1:string[]} The connection and a list of problem codes.
	 */
	public static function check_connection( array $c ): array {
		$out      = array(
			'id'         => strtolower( trim( (string) ( $c['id'] ?? '' ) ) ),
			'label'      => trim( (string) ( $c['label'] ?? '' ) ),
			'api_url'    => rtrim( trim( (string) ( $c['api_url'] ?? '' ) ), '/' ),
			'public_url' => rtrim( trim( (string) ( $c['public_url'] ?? '' ) ), '/' ),
			'token_file' => trim( (string) ( $c['token_file'] ?? '' ) ),
		);
		$problems = array();
		if ( ! self::valid_network_id( $out['id'] ) ) {
			$problems[] = 'id';
		}
		$socket = 0 === strncasecmp( $out['api_url'], self::UNIX_PREFIX, strlen( self::UNIX_PREFIX ) );
		if ( $socket ) {
			$path = self::socket_path( $out['api_url'] );
			if ( '' === $path ) {
				$problems[] = 'api_url';
			} else {
				$out['api_url'] = self::UNIX_PREFIX . $path;
			}
		}
		foreach ( array( 'api_url', 'public_url' ) as $k ) {
			if ( 'api_url' === $k && $socket ) {
				continue; // checked above.
			}
			$scheme = parse_url( $out[ $k ], PHP_URL_SCHEME );
			$host   = parse_url( $out[ $k ], PHP_URL_HOST );
			if ( ! in_array( $scheme, array( 'http', 'https' ), true ) || ! is_string( $host ) || '' === $host ||
				null !== parse_url( $out[ $k ], PHP_URL_QUERY ) || null !== parse_url( $out[ $k ], PHP_URL_USER ) ) {
				$problems[] = $k;
			}
		}
		if ( '' !== $out['token_file'] && ! str_starts_with( $out['token_file'], '/' ) ) {
			$problems[] = 'token_file';
		}
		return array( $out, $problems );
	}

	/** The scheme of a node's private API on a Unix socket (the node's api.listen). */
	const UNIX_PREFIX = 'unix:';

	/**
	 * The path of a Unix socket URL, as the node's api.listen and its Go
	 * client write it: "unix:/run/ussync/api.sock" or
	 * "unix:///run/ussync/api.sock". '' when $url is not one, or its path
	 * is not absolute, holds a control character, or is longer than the
	 * 104 bytes a socket address holds on every Unix (the node's own limit).
	 *
	 * @param string $url Candidate.
	 * @return string
	 */
	public static function socket_path( string $url ): string {
		if ( 0 !== strncasecmp( $url, self::UNIX_PREFIX, strlen( self::UNIX_PREFIX ) ) ) {
			return '';
		}
		$path = substr( $url, strlen( self::UNIX_PREFIX ) );
		if ( str_starts_with( $path, '///' ) ) {
			$path = substr( $path, 2 );
		}
		if ( ! str_starts_with( $path, '/' ) || str_starts_with( $path, '//' ) || strlen( $path ) > 104 || 1 === preg_match( '/[\x00-\x1f\x7f]/', $path ) ) {
			return '';
		}
		return $path;
	}

	/**
	 * The name of the constant holding a network's API token:
	 * USSYNC_API_TOKEN for the first, USSYNC_API_TOKEN_<ID> for the others.
	 *
	 * @param int    $index The network's position.
	 * @param string $id    Its id.
	 * @return string
	 */
	public static function token_constant( int $index, string $id ): string {
		return 0 === $index ? 'USSYNC_API_TOKEN' : 'USSYNC_API_TOKEN_' . strtoupper( $id );
	}

	/**
	 * Whether a URL is under the site's URL: same scheme, host and port
	 * (default ports normalised), and a path at or below the site's path.
	 *
	 * @param string $url  Candidate, absolute.
	 * @param string $home The site's home URL.
	 * @return bool
	 */
	public static function under( string $url, string $home ): bool {
		$u = parse_url( $url );
		$h = parse_url( $home );
		if ( ! is_array( $u ) || ! is_array( $h ) || ! isset( $u['scheme'], $u['host'], $h['scheme'], $h['host'] ) ) {
			return false;
		}
		if ( isset( $u['user'] ) || str_contains( $url, '\\' ) ) {
			return false;
		}
		$port = static function ( array $p ): int {
			return (int) ( $p['port'] ?? ( 'https' === strtolower( $p['scheme'] ) ? 443 : 80 ) );
		};
		if ( strtolower( $u['scheme'] ) !== strtolower( $h['scheme'] ) || strtolower( $u['host'] ) !== strtolower( $h['host'] ) || $port( $u ) !== $port( $h ) ) {
			return false;
		}
		$hp = self::site_path( $home );
		$up = (string) ( $u['path'] ?? '/' );
		return '/' === $hp || $up === rtrim( $hp, '/' ) || str_starts_with( $up, $hp );
	}

	/**
	 * Removes one query parameter from a URL (the lazy mode's loop guard).
	 *
	 * @param string $url  The URL.
	 * @param string $name The parameter.
	 * @return string
	 */
	public static function without_param( string $url, string $name ): string {
		$q = strpos( $url, '?' );
		if ( false === $q ) {
			return $url;
		}
		$frag = '';
		$hash = strpos( $url, '#', $q );
		if ( false !== $hash ) {
			$frag = substr( $url, $hash );
			$url  = substr( $url, 0, $hash );
		}
		$keep = array();
		foreach ( explode( '&', substr( $url, $q + 1 ) ) as $pair ) {
			$k = urldecode( explode( '=', $pair, 2 )[0] );
			if ( '' !== $pair && $k !== $name ) {
				$keep[] = $pair;
			}
		}
		return substr( $url, 0, $q ) . ( $keep ? '?' . implode( '&', $keep ) : '' ) . $frag;
	}
}
