<?php
/**
 * The calls the plugin makes straight through PHP's curl rather than
 * through WordPress's HTTP API: the session check of every page view, the
 * hand-off steps it forwards, and every call to a node whose private API
 * is on a Unix socket (Ussync_Node says why, call by call). No WordPress
 * function is used here, so that the unit tests and tools/check-bench.php
 * run this very code.
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Curl makes one HTTP request through curl (request), or sends one
 * now and reads its answer later (send, then receive or discard), with
 * curl's multi interface: the node answers while PHP goes on.
 *
 * A base URL is http(s)://host[:port][/prefix], or unix:/path for a node's
 * private API on a Unix socket (Ussync_Util::socket_path), reached as
 * http://localhost through CURLOPT_UNIX_SOCKET_PATH.
 *
 * Every call has a handle and a connection of its own, closed when its
 * answer is read or it is discarded: no connection outlives its call, so
 * no answer can ever be read as another's. A call sent and never received
 * is discarded when PHP shuts down (discard_all).
 *
 * An answer is an array: 'errno' (curl's error number, 0 when an answer
 * came; -1 when there was no call to make or to read), 'error' (a message
 * for people, '' when an answer came; it never holds a header or a body),
 * 'status' (the HTTP status, 0 without an answer), 'headers' (lower-case
 * name => values, one per header line; empty unless asked for) and 'body'.
 */
final class Ussync_Curl {

	/**
	 * Calls sent and not yet received or discarded, by id: the multi
	 * handle, the easy handle, and the hrtime (ns) at which the call's
	 * life ends (send's $life).
	 *
	 * @var array<int,array{mh:CurlMultiHandle,ch:CurlHandle,until:int}>
	 */
	private static array $pending = array();

	/** @var int The last call id given by send. */
	private static int $last = 0;

	/** @var bool Whether discard_all is registered to run at shutdown. */
	private static bool $at_shutdown = false;

	/**
	 * Whether PHP's curl extension is loaded.
	 *
	 * @return bool
	 */
	public static function available(): bool {
		return function_exists( 'curl_init' );
	}

	/**
	 * One request, redirects not followed; blocks until the answer, an
	 * error or $timeout.
	 *
	 * @param string      $method       HTTP method.
	 * @param string      $base         Base URL (http, https, or unix:/path).
	 * @param string      $path         Path and query under it, already escaped.
	 * @param string[]    $headers      Request header lines.
	 * @param string|null $body         Request body, or null for none.
	 * @param float       $timeout      Seconds, for the connection and for the whole call.
	 * @param bool        $want_headers Whether the answer's headers are read (the session check needs none).
	 * @return array{errno:int,error:string,status:int,headers:array<string,string[]>,body:string}
	 */
	public static function request( string $method, string $base, string $path, array $headers, ?string $body, float $timeout, bool $want_headers = true ): array {
		$got = array();
		$ch  = self::handle( $method, $base, $path, $headers, $body, $timeout, $want_headers, $got );
		if ( null === $ch ) {
			return self::no_answer( -1, 'no curl, or not a node URL: ' . self::shown( $base ) );
		}
		$out   = curl_exec( $ch );
		$errno = curl_errno( $ch );
		if ( 0 === $errno && false === $out ) {
			$errno = -1;
		}
		if ( 0 !== $errno ) {
			return self::no_answer( $errno, self::why( $base, $errno, curl_error( $ch ) ) );
		}
		return array(
			'errno'   => 0,
			'error'   => '',
			'status'  => (int) curl_getinfo( $ch, CURLINFO_RESPONSE_CODE ),
			'headers' => $got,
			'body'    => (string) $out,
		);
	}

	/**
	 * Sends a request now and returns at once, its answer left for
	 * receive (or discard): curl connects and writes the request (on
	 * loopback TCP or a Unix socket that takes no waiting), and the server
	 * answers while PHP goes on. The answer's headers are not read.
	 *
	 * $life bounds the whole call from now, however long PHP takes to come
	 * and read it: curl keeps no timer of its own running meanwhile (its
	 * timers are checked only when it is driven, so a shorter one would
	 * call a call timed out whose answer has long been waiting). How long
	 * the reader waits is receive's $wait, counted from then.
	 *
	 * @param string      $method  HTTP method.
	 * @param string      $base    Base URL (http, https, or unix:/path).
	 * @param string      $path    Path and query under it, already escaped.
	 * @param string[]    $headers Request header lines.
	 * @param string|null $body    Request body, or null for none.
	 * @param float       $life    Seconds the call may last, sent and received, at most.
	 * @return int The call's id (0 when no call could be made: receive then answers errno -1).
	 */
	public static function send( string $method, string $base, string $path, array $headers, ?string $body, float $life ): int {
		$unused = array();
		$ch     = self::handle( $method, $base, $path, $headers, $body, $life, false, $unused );
		if ( null === $ch ) {
			return 0;
		}
		$mh = curl_multi_init();
		curl_multi_add_handle( $mh, $ch );
		// Turns of curl's state machine, none of which waits, until the
		// request is written: a Unix socket connects and takes the request
		// in the first, loopback TCP connects in the first and takes it in
		// the second (later when a loaded machine delays the handshake:
		// then receive sends it).
		for ( $turn = 0; $turn < 4; $turn++ ) {
			$running = 0;
			if ( CURLM_OK !== curl_multi_exec( $mh, $running ) || 0 === $running || curl_getinfo( $ch, CURLINFO_REQUEST_SIZE ) > 0 ) {
				break;
			}
		}
		if ( ! self::$at_shutdown ) {
			register_shutdown_function( array( __CLASS__, 'discard_all' ) );
			self::$at_shutdown = true;
		}
		self::$pending[ ++self::$last ] = array(
			'mh'    => $mh,
			'ch'    => $ch,
			'until' => hrtime( true ) + (int) ( $life * 1e9 ),
		);
		return self::$last;
	}

	/**
	 * The answer to a call sent (send): waits for it $wait seconds at
	 * most from now (and not past the call's life), then closes the call.
	 * An answer that came meanwhile is read however long ago it was sent.
	 * A call is received once; a call id unknown, already received or
	 * discarded gets errno -1.
	 *
	 * @param int    $call A call id of send.
	 * @param string $base The base URL it was sent to (for the error message).
	 * @param float  $wait Seconds to wait at most.
	 * @return array{errno:int,error:string,status:int,headers:array<string,string[]>,body:string}
	 */
	public static function receive( int $call, string $base, float $wait ): array {
		$p = self::$pending[ $call ] ?? null;
		unset( self::$pending[ $call ] );
		if ( null === $p ) {
			return self::no_answer( -1, 'no call to receive' );
		}
		$mh      = $p['mh'];
		$ch      = $p['ch'];
		$until   = min( $p['until'], hrtime( true ) + (int) ( $wait * 1e9 ) );
		$running = 1;
		while ( true ) {
			if ( CURLM_OK !== curl_multi_exec( $mh, $running ) || 0 === $running ) {
				break;
			}
			$left = ( $until - hrtime( true ) ) / 1e9;
			if ( $left <= 0 ) {
				break;
			}
			// Waits for the connection's activity or curl's own timer,
			// whichever comes first; -1 is select's failure, not a wait.
			if ( -1 === curl_multi_select( $mh, $left ) ) {
				usleep( 100 );
			}
		}
		$errno = -1;
		$error = 'the call did not finish';
		if ( 0 === $running ) {
			$info  = curl_multi_info_read( $mh );
			$errno = is_array( $info ) ? (int) $info['result'] : curl_errno( $ch );
			$error = 0 !== $errno ? curl_error( $ch ) : '';
		} elseif ( ( $until - hrtime( true ) ) <= 0 ) {
			$errno = 28; // CURLE_OPERATION_TIMEDOUT.
			$error = sprintf( 'no answer within %d ms', (int) ( $wait * 1000 ) );
		}
		$status = (int) curl_getinfo( $ch, CURLINFO_RESPONSE_CODE );
		$body   = (string) curl_multi_getcontent( $ch );
		self::close( $mh, $ch );
		if ( 0 !== $errno ) {
			return self::no_answer( $errno, self::why( $base, $errno, $error ) );
		}
		return array(
			'errno'   => 0,
			'error'   => '',
			'status'  => $status,
			'headers' => array(),
			'body'    => $body,
		);
	}

	/**
	 * Closes a call sent and not received, its answer unread (its
	 * connection with it). Nothing happens for an id unknown, received or
	 * already discarded.
	 *
	 * @param int $call A call id of send.
	 */
	public static function discard( int $call ): void {
		if ( isset( self::$pending[ $call ] ) ) {
			self::close( self::$pending[ $call ]['mh'], self::$pending[ $call ]['ch'] );
			unset( self::$pending[ $call ] );
		}
	}

	/**
	 * Discards every call sent and not received: registered to run at
	 * shutdown by the first send.
	 */
	public static function discard_all(): void {
		foreach ( array_keys( self::$pending ) as $call ) {
			self::discard( $call );
		}
	}

	/**
	 * The number of calls sent and not yet received or discarded.
	 *
	 * @return int
	 */
	public static function pending(): int {
		return count( self::$pending );
	}

	/**
	 * A curl handle ready for one request, or null without curl or when
	 * $base is neither http(s) nor a Unix socket URL. With $want_headers,
	 * $got collects the answer's headers as curl reads them.
	 *
	 * @param string      $method  HTTP method.
	 * @param string      $base    Base URL.
	 * @param string      $path    Path and query.
	 * @param string[]    $headers Request header lines.
	 * @param string|null $body    Request body, or null.
	 * @param float       $timeout Seconds.
	 * @param bool        $want_headers Whether the answer's headers are read.
	 * @param array       $got     Where they go.
	 * @return CurlHandle|null
	 */
	private static function handle( string $method, string $base, string $path, array $headers, ?string $body, float $timeout, bool $want_headers, array &$got ): ?CurlHandle {
		if ( ! self::available() ) {
			return null;
		}
		$sock = Ussync_Util::socket_path( $base );
		if ( '' === $sock && ! in_array( strtolower( (string) parse_url( $base, PHP_URL_SCHEME ) ), array( 'http', 'https' ), true ) ) {
			return null;
		}
		$ch = curl_init( ( '' !== $sock ? 'http://localhost' : $base ) . $path );
		if ( false === $ch ) {
			return null;
		}
		$opt = array(
			CURLOPT_CUSTOMREQUEST     => $method,
			CURLOPT_RETURNTRANSFER    => true,
			CURLOPT_FOLLOWLOCATION    => false,
			CURLOPT_PROTOCOLS         => CURLPROTO_HTTP | CURLPROTO_HTTPS,
			CURLOPT_NOSIGNAL          => true,
			CURLOPT_TIMEOUT_MS        => max( 1, (int) ( $timeout * 1000 ) ),
			CURLOPT_CONNECTTIMEOUT_MS => max( 1, (int) ( $timeout * 1000 ) ),
			// No 100-continue round trip before a body.
			CURLOPT_HTTPHEADER        => array_merge( $headers, array( 'Expect:' ) ),
		);
		if ( '' !== $sock ) {
			$opt[ CURLOPT_UNIX_SOCKET_PATH ] = $sock;
		}
		if ( $want_headers ) {
			$opt[ CURLOPT_HEADERFUNCTION ] = static function ( $h, string $line ) use ( &$got ): int {
				if ( 0 === strncasecmp( $line, 'HTTP/', 5 ) ) {
					$got = array(); // a new answer (after a 1xx): its headers only.
				} elseif ( false !== strpos( $line, ':' ) ) {
					list( $name, $value )                 = explode( ':', $line, 2 );
					$got[ strtolower( trim( $name ) ) ][] = trim( $value );
				}
				return strlen( $line );
			};
		}
		if ( 'HEAD' === $method ) {
			$opt[ CURLOPT_NOBODY ] = true;
		}
		if ( null !== $body ) {
			$opt[ CURLOPT_POSTFIELDS ] = $body;
		}
		curl_setopt_array( $ch, $opt );
		return $ch;
	}

	/**
	 * Closes a call's handles: its connection goes with them.
	 *
	 * @param CurlMultiHandle $mh The multi handle.
	 * @param CurlHandle      $ch The easy handle in it.
	 */
	private static function close( CurlMultiHandle $mh, CurlHandle $ch ): void {
		curl_multi_remove_handle( $mh, $ch );
		curl_multi_close( $mh );
	}

	/**
	 * An answer that did not come.
	 *
	 * @param int    $errno Curl's error number, or -1.
	 * @param string $error The message.
	 * @return array{errno:int,error:string,status:int,headers:array,body:string}
	 */
	private static function no_answer( int $errno, string $error ): array {
		return array(
			'errno'   => $errno,
			'error'   => '' !== $error ? $error : 'curl error ' . $errno,
			'status'  => 0,
			'headers' => array(),
			'body'    => '',
		);
	}

	/**
	 * The message of a failed call. Curl says of a Unix socket it could not
	 * connect to only "Couldn't connect to server" (naming port 80 of
	 * localhost): the socket's path and what is wrong with it say more,
	 * and what to do (the health box shows this).
	 *
	 * @param string $base  The base URL.
	 * @param int    $errno Curl's error number.
	 * @param string $error Curl's message.
	 * @return string
	 */
	private static function why( string $base, int $errno, string $error ): string {
		$sock = Ussync_Util::socket_path( $base );
		if ( '' === $sock || 7 !== $errno ) { // 7: CURLE_COULDNT_CONNECT.
			return '' !== $error ? $error : 'curl error ' . $errno;
		}
		if ( '' !== (string) ini_get( 'open_basedir' ) ) {
			return $sock . ': could not connect (open_basedir keeps PHP from looking at the path)';
		}
		clearstatcache( true, $sock );
		if ( ! file_exists( $sock ) ) {
			return $sock . ': No such file or directory';
		}
		if ( 'socket' !== filetype( $sock ) ) {
			return $sock . ': not a socket';
		}
		if ( ! is_writable( $sock ) ) {
			return $sock . ': Permission denied';
		}
		return $sock . ': Connection refused (no process listens on it)';
	}

	/**
	 * A base URL as it may be shown: no user information.
	 *
	 * @param string $base The base URL.
	 * @return string
	 */
	private static function shown( string $base ): string {
		return (string) preg_replace( '#//[^/@]*@#', '//', $base );
	}
}
