<?php
/**
 * Tests of Ussync_Curl against a real HTTP server on a Unix socket and on
 * loopback TCP (fixtures/http-server.php, started for the class).
 *
 * @package ussync
 */

use PHPUnit\Framework\TestCase;

/**
 * CurlTest checks the plugin's curl calls: a request over a socket and
 * over TCP, a call sent ahead and received later, and that an answer is
 * never read as another's, a discarded call is closed, a silent server
 * times out, and a socket that cannot be reached says why.
 */
final class CurlTest extends TestCase {

	/** @var resource|null The server process. */
	private static $proc = null;

	/** @var string Its directory. */
	private static string $dir = '';

	/** @var array<string,string> Name => base URL of the server. */
	private static array $bases = array();

	public static function setUpBeforeClass(): void {
		if ( ! Ussync_Curl::available() ) {
			self::markTestSkipped( 'PHP has no curl extension (php-curl)' );
		}
		self::$dir = sys_get_temp_dir() . '/ussync-curl-' . bin2hex( random_bytes( 4 ) );
		mkdir( self::$dir, 0700 );
		self::$proc = proc_open( array( PHP_BINARY, __DIR__ . '/fixtures/http-server.php', self::$dir ), array( 0 => array( 'pipe', 'r' ), 2 => array( 'file', self::$dir . '/server.err', 'w' ) ), $pipes );
		$deadline   = microtime( true ) + 20;
		while ( ! file_exists( self::$dir . '/port' ) ) {
			if ( microtime( true ) > $deadline || ! proc_get_status( self::$proc )['running'] ) {
				self::fail( 'the test server did not start: ' . file_get_contents( self::$dir . '/server.err' ) );
			}
			usleep( 10000 );
		}
		self::$bases = array(
			'socket' => 'unix:' . self::$dir . '/api.sock',
			'tcp'    => 'http://127.0.0.1:' . trim( (string) file_get_contents( self::$dir . '/port' ) ),
		);
	}

	public static function tearDownAfterClass(): void {
		if ( is_resource( self::$proc ) ) {
			proc_terminate( self::$proc );
			proc_close( self::$proc );
		}
		foreach ( (array) glob( self::$dir . '/*' ) as $f ) {
			unlink( $f );
		}
		if ( '' !== self::$dir && is_dir( self::$dir ) ) {
			rmdir( self::$dir );
		}
	}

	protected function tearDown(): void {
		Ussync_Curl::discard_all();
	}

	/** @return array<string,array{string}> */
	public static function transports(): array {
		return array(
			'socket' => array( 'socket' ),
			'tcp'    => array( 'tcp' ),
		);
	}

	/**
	 * The decoded body of an answer that must have come with 200.
	 *
	 * @param array $r An answer of Ussync_Curl.
	 * @return mixed
	 */
	private function ok( array $r ) {
		$this->assertSame( 0, $r['errno'], $r['error'] );
		$this->assertSame( '', $r['error'] );
		$this->assertSame( 200, $r['status'] );
		return json_decode( $r['body'], true );
	}

	/**
	 * @dataProvider transports
	 * @param string $name The server's transport.
	 */
	public function test_request( string $name ): void {
		$base = self::$bases[ $name ];
		$r    = Ussync_Curl::request( 'POST', $base, '/echo/x?y=1', array( 'Authorization: Bearer t', 'Content-Type: application/json' ), '{"a":1}', 5.0 );
		$got  = $this->ok( $r );
		$head = explode( "\r\n", $got['head'] );
		$this->assertSame( 'POST /echo/x?y=1 HTTP/1.1', $head[0] );
		$this->assertContains( 'Authorization: Bearer t', $head );
		$this->assertContains( 'socket' === $name ? 'Host: localhost' : 'Host: ' . parse_url( $base, PHP_URL_HOST ) . ':' . parse_url( $base, PHP_URL_PORT ), $head );
		$this->assertEmpty( preg_grep( '/^Expect:/i', $head ), 'curl waited for 100-continue before the body' );
		$this->assertSame( '{"a":1}', $got['body'] );
		$this->assertSame( array( 'application/json' ), $r['headers']['content-type'] );
		$this->assertSame( array(), Ussync_Curl::request( 'GET', $base, '/echo/y', array(), null, 5.0, false )['headers'], 'headers read when not asked for' );
	}

	/**
	 * @dataProvider transports
	 * @param string $name The server's transport.
	 */
	public function test_send_then_receive( string $name ): void {
		$base = self::$bases[ $name ];
		$call = Ussync_Curl::send( 'GET', $base, '/echo/ahead', array( 'Authorization: Bearer t' ), null, 5.0 );
		$this->assertGreaterThan( 0, $call );
		$this->assertSame( 1, Ussync_Curl::pending() );
		$got = $this->ok( Ussync_Curl::receive( $call, $base, 5.0 ) );
		$this->assertSame( '/echo/ahead', $got['target'] );
		$this->assertContains( 'Authorization: Bearer t', explode( "\r\n", $got['head'] ) );
		$this->assertSame( 0, Ussync_Curl::pending() );
		$this->assertSame( -1, Ussync_Curl::receive( $call, $base, 5.0 )['errno'], 'a call received twice' );
	}

	/**
	 * On a Unix socket, connecting takes no waiting: send writes the
	 * request before it returns, and the server has it before anything
	 * else is asked. (On loopback TCP it is written by send's second turn
	 * once the connection is up, which a loaded machine may delay until
	 * receive: not asserted.)
	 */
	public function test_send_writes_the_request_at_once(): void {
		$base = self::$bases['socket'];
		$tag  = '/slow/300/' . bin2hex( random_bytes( 4 ) );
		$call = Ussync_Curl::send( 'GET', $base, $tag, array(), null, 5.0 );
		$seen = $this->ok( Ussync_Curl::request( 'GET', $base, '/seen', array(), null, 5.0 ) );
		$this->assertContains( $tag, $seen, 'the call sent ahead had not reached the server' );
		$this->assertSame( $tag, $this->ok( Ussync_Curl::receive( $call, $base, 5.0 ) )['target'] );
	}

	/**
	 * @dataProvider transports
	 * @param string $name The server's transport.
	 */
	public function test_answers_never_cross( string $name ): void {
		$base  = self::$bases[ $name ];
		$slow  = Ussync_Curl::send( 'GET', $base, '/slow/200/first', array(), null, 5.0 );
		$quick = Ussync_Curl::send( 'GET', $base, '/echo/second', array(), null, 5.0 );
		$gone  = Ussync_Curl::send( 'GET', $base, '/echo/third', array(), null, 5.0 );
		Ussync_Curl::discard( $gone );
		$this->assertSame( '/echo/second', $this->ok( Ussync_Curl::receive( $quick, $base, 5.0 ) )['target'] );
		$this->assertSame( '/slow/200/first', $this->ok( Ussync_Curl::receive( $slow, $base, 5.0 ) )['target'] );
		$this->assertSame( -1, Ussync_Curl::receive( $gone, $base, 5.0 )['errno'], 'a discarded call was read' );
		$this->assertSame( 0, Ussync_Curl::pending() );
	}

	/**
	 * @dataProvider transports
	 * @param string $name The server's transport.
	 */
	public function test_discard_closes_the_connection( string $name ): void {
		$base = self::$bases[ $name ];
		$a    = Ussync_Curl::send( 'GET', $base, '/silent', array(), null, 5.0 );
		$b    = Ussync_Curl::send( 'GET', $base, '/silent', array(), null, 5.0 );
		$this->assertSame( 2, Ussync_Curl::pending() );
		Ussync_Curl::discard( $a );
		Ussync_Curl::discard_all(); // what shutdown runs.
		$this->assertSame( 0, Ussync_Curl::pending() );
		$this->assertSame( -1, Ussync_Curl::receive( $b, $base, 5.0 )['errno'] );
		// The server sees both connections closed (it reads their end).
		$deadline = microtime( true ) + 10;
		do {
			$open = $this->ok( Ussync_Curl::request( 'GET', $base, '/conns', array(), null, 5.0 ) );
			if ( 0 === $open ) {
				break;
			}
			usleep( 20000 );
		} while ( microtime( true ) < $deadline );
		$this->assertSame( 0, $open, 'a discarded call left its connection open' );
	}

	/**
	 * @dataProvider transports
	 * @param string $name The server's transport.
	 */
	public function test_silent_server_times_out( string $name ): void {
		$base = self::$bases[ $name ];
		$r    = Ussync_Curl::request( 'GET', $base, '/silent', array(), null, 0.2 );
		$this->assertSame( 28, $r['errno'], $r['error'] ); // CURLE_OPERATION_TIMEDOUT.
		$this->assertSame( 0, $r['status'] );
		$call = Ussync_Curl::send( 'GET', $base, '/silent', array(), null, 0.2 );
		$r    = Ussync_Curl::receive( $call, $base, 5.0 );
		$this->assertSame( 28, $r['errno'], 'the call outlived its life: ' . $r['error'] );
		$this->assertSame( '', $r['body'] );
		$call = Ussync_Curl::send( 'GET', $base, '/silent', array(), null, 30.0 );
		$r    = Ussync_Curl::receive( $call, $base, 0.2 );
		$this->assertSame( 28, $r['errno'], 'the reader waited past its wait: ' . $r['error'] );
	}

	/**
	 * An answer that came while PHP was busy elsewhere, for longer than
	 * the reader then waits, is read: the wait counts from receive, not
	 * from send (a timer counted from send would call it timed out, and
	 * the node down, whenever WordPress loads slowly).
	 *
	 * @dataProvider transports
	 * @param string $name The server's transport.
	 */
	public function test_answer_read_after_a_long_gap( string $name ): void {
		$base = self::$bases[ $name ];
		$tag  = '/echo/gap-' . bin2hex( random_bytes( 4 ) );
		$call = Ussync_Curl::send( 'GET', $base, $tag, array(), null, 30.0 );
		// PHP busy elsewhere (WordPress loading its theme) for longer than
		// the wait below; the server has answered meanwhile.
		usleep( 300000 );
		$this->assertSame( $tag, $this->ok( Ussync_Curl::receive( $call, $base, 0.2 ) )['target'] );
	}

	public function test_socket_that_cannot_be_reached_says_why(): void {
		$missing = 'unix:' . self::$dir . '/none.sock';
		$r       = Ussync_Curl::request( 'GET', $missing, '/v1/status', array(), null, 1.0 );
		$this->assertSame( 7, $r['errno'] ); // CURLE_COULDNT_CONNECT.
		$this->assertSame( self::$dir . '/none.sock: No such file or directory', $r['error'] );
		$this->assertSame( $r['error'], Ussync_Curl::receive( Ussync_Curl::send( 'GET', $missing, '/v1/status', array(), null, 1.0 ), $missing, 5.0 )['error'] );

		touch( self::$dir . '/file.sock' );
		$this->assertStringEndsWith( 'file.sock: not a socket', Ussync_Curl::request( 'GET', 'unix:' . self::$dir . '/file.sock', '/', array(), null, 1.0 )['error'] );

		// A socket left behind by a server that is gone (a crashed node).
		$stale = self::$dir . '/stale.sock';
		$srv   = stream_socket_server( 'unix://' . $stale, $errno, $errstr );
		$this->assertNotFalse( $srv, $errstr );
		fclose( $srv );
		$this->assertFileExists( $stale );
		$this->assertStringStartsWith( $stale . ': Connection refused', Ussync_Curl::request( 'GET', 'unix:' . $stale, '/', array(), null, 1.0 )['error'] );
	}

	public function test_not_a_node_url(): void {
		foreach ( array( 'ftp://127.0.0.1', 'unix:relative.sock', '' ) as $bad ) {
			$this->assertSame( -1, Ussync_Curl::request( 'GET', $bad, '/', array(), null, 1.0 )['errno'], $bad );
			$this->assertSame( 0, Ussync_Curl::send( 'GET', $bad, '/', array(), null, 1.0 ), $bad );
		}
		$this->assertSame( 0, Ussync_Curl::pending() );
	}
}
