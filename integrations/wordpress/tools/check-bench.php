<?php
/**
 * The plugin's session check from PHP's command line, without WordPress:
 * how long a page view waits for it, and how much of PHP's CPU it takes,
 * by each path the plugin has (integrations/wordpress/README.md,
 * "Performance"). It runs the plugin's own Ussync_Curl. A developer's
 * tool, not shipped in the plugin's zip.
 *
 *   php check-bench.php --token TOKEN [--tcp http://127.0.0.1:7947]
 *       [--socket /run/ussync/api.sock [--socket-token TOKEN]]
 *       [--n 500] [--gap-ms 8] [--ahead-ms 2]
 *
 * Against real nodes (`ussync agent --dev` prints its token; a second one
 * with `--api unix:/tmp/api.sock --bind 127.0.0.1:0 --public 127.0.0.1:0`
 * for the socket): logs a test user in on each, then checks that session N
 * times by each path, the paths taking turns call by call, each call after
 * GAP_MS of PHP work (a page view's before the plugin loads: the node has
 * gone idle meanwhile). Paths, over TCP and over the socket:
 *
 *   asked       the check made when WordPress asks (curl, a new connection)
 *   sent ahead  sent (curl_multi), AHEAD_MS of PHP work (WordPress loading
 *               the other plugins and the theme), then received: the time
 *               and CPU counted are the sending's and the receiving's
 *
 * @package ussync
 */

define( 'ABSPATH', __DIR__ . '/' );
require dirname( __DIR__ ) . '/ussync/includes/class-ussync-util.php';
require dirname( __DIR__ ) . '/ussync/includes/class-ussync-curl.php';

$o     = getopt( '', array( 'token:', 'tcp:', 'socket:', 'socket-token:', 'n:', 'gap-ms:', 'ahead-ms:' ) );
$token = (string) ( $o['token'] ?? getenv( 'USSYNC_API_TOKEN' ) );
$n     = (int) ( $o['n'] ?? 500 );
$gap   = (float) ( $o['gap-ms'] ?? 8 );
$ahead = (float) ( $o['ahead-ms'] ?? 2 );
$bases = array();
if ( isset( $o['tcp'] ) ) {
	$bases['TCP'] = rtrim( (string) $o['tcp'], '/' );
}
if ( isset( $o['socket'] ) ) {
	$bases['socket'] = 'unix:' . $o['socket'];
}
if ( '' === $token || ! $bases || $n < 1 || ! Ussync_Curl::available() ) {
	fwrite( STDERR, "usage: php check-bench.php --token TOKEN [--tcp http://127.0.0.1:7947] [--socket PATH [--socket-token TOKEN]] [--n 500] [--gap-ms 8] [--ahead-ms 2]\n(PHP's curl extension is needed)\n" );
	exit( 2 );
}

/**
 * Keeps PHP busy for $ms milliseconds, as WordPress's own work would.
 *
 * @param float $ms Milliseconds.
 */
function work( float $ms ): void {
	$end = hrtime( true ) + (int) ( $ms * 1e6 );
	for ( $i = 0; hrtime( true ) < $end; $i++ ) {
		md5( (string) $i );
	}
}

/**
 * This process's CPU time so far, in ms.
 *
 * @return float
 */
function cpu(): float {
	$r = getrusage();
	return ( $r['ru_utime.tv_sec'] + $r['ru_stime.tv_sec'] ) * 1e3 + ( $r['ru_utime.tv_usec'] + $r['ru_stime.tv_usec'] ) / 1e3;
}

// Each path is a function returning [status, wall µs, CPU ms] of what the
// page view spends on the check.
$paths = array();
foreach ( $bases as $name => $base ) {
	$auth  = array( 'Authorization: Bearer ' . ( 'socket' === $name && isset( $o['socket-token'] ) ? $o['socket-token'] : $token ), 'Accept: application/json' );
	$login = Ussync_Curl::request( 'POST', $base, '/v1/sessions', array_merge( $auth, array( 'Content-Type: application/json' ) ), '{"email":"check-bench@example.com","ttl":"1h"}', 5.0 );
	$sid   = (string) ( json_decode( $login['body'], true )['session']['id'] ?? '' );
	if ( 201 !== $login['status'] || '' === $sid ) {
		fwrite( STDERR, "log in on $base: {$login['error']} {$login['status']} {$login['body']}\n" );
		exit( 1 );
	}
	$path = '/v1/sessions/' . $sid;

	$paths[ "asked, $name" ] = static function () use ( $base, $path, $auth ): array {
		$c0 = cpu();
		$t0 = hrtime( true );
		$r  = Ussync_Curl::request( 'GET', $base, $path, $auth, null, 1.0, false );
		return array( $r['status'], ( hrtime( true ) - $t0 ) / 1e3, cpu() - $c0 );
	};
	$paths[ "sent ahead, $name" ] = static function () use ( $base, $path, $auth, $ahead ): array {
		$c0   = cpu();
		$t0   = hrtime( true );
		$call = Ussync_Curl::send( 'GET', $base, $path, $auth, null, 30.0 );
		$sent = hrtime( true ) - $t0;
		$used = cpu() - $c0;
		work( $ahead );
		$c0 = cpu();
		$t0 = hrtime( true );
		$r  = Ussync_Curl::receive( $call, $base, 1.0 );
		return array( $r['status'], ( $sent + hrtime( true ) - $t0 ) / 1e3, $used + cpu() - $c0 );
	};
}

$took = array();
$used = array_fill_keys( array_keys( $paths ), 0.0 );
for ( $i = 0; $i < $n + 10; $i++ ) {
	foreach ( $paths as $name => $call ) {
		work( $gap );
		list( $status, $us, $ms ) = $call();
		if ( 200 !== $status ) {
			fwrite( STDERR, "$name: the check did not answer 200\n" );
			exit( 1 );
		}
		if ( $i >= 10 ) { // ten turns to warm up.
			$took[ $name ][] = $us;
			$used[ $name ]  += $ms;
		}
	}
}
$load = sys_getloadavg();
printf( "%d checks by each path in turns, %.1f ms of PHP work before each, %.1f ms between sending ahead and receiving; load %.2f %.2f %.2f\n", $n, $gap, $ahead, ...$load );
printf( "%-20s %9s %9s %13s\n", 'path', 'p50 µs', 'p90 µs', 'PHP CPU µs' );
foreach ( $took as $name => $t ) {
	sort( $t );
	printf( "%-20s %9.0f %9.0f %13.0f\n", $name, $t[ intdiv( $n, 2 ) ], $t[ intdiv( $n * 9, 10 ) ], $used[ $name ] * 1e3 / $n );
}
