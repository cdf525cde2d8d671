<?php
/**
 * Tests of Ussync_Util.
 *
 * @package ussync
 */

use PHPUnit\Framework\TestCase;

/**
 * UtilTest checks the pure functions against the node's own rules.
 */
final class UtilTest extends TestCase {

	public function test_session_id_is_the_nodes(): void {
		// crypto.SessionID: hex SHA-256 of the token.
		$this->assertSame( hash( 'sha256', 'abc' ), Ussync_Util::session_id( 'abc' ) );
		$this->assertTrue( Ussync_Util::valid_session_id( Ussync_Util::session_id( 'x' ) ) );
		$this->assertFalse( Ussync_Util::valid_session_id( strtoupper( Ussync_Util::session_id( 'x' ) ) ) );
		$this->assertFalse( Ussync_Util::valid_session_id( '../v1/status' ) );
	}

	public function test_valid_token(): void {
		$this->assertTrue( Ussync_Util::valid_token( str_repeat( 'aZ0_-', 9 ) ) );
		$this->assertFalse( Ussync_Util::valid_token( 'short' ) );
		$this->assertFalse( Ussync_Util::valid_token( str_repeat( 'a', 129 ) ) );
		$this->assertFalse( Ussync_Util::valid_token( str_repeat( 'a', 20 ) . ';x=1' ) );
	}

	/** @return array<string,array{string,string,string}> */
	public static function endpoints(): array {
		return array(
			'sync at the root'        => array( '/ussync/v1/sync', '/', 'sync' ),
			'hop ask'                 => array( '/ussync/v1/hop/ask', '/', 'hop/ask' ),
			'sub-folder site'         => array( '/blog/ussync/v1/whoami', '/blog/', 'whoami' ),
			'other site of the host'  => array( '/shop/ussync/v1/sync', '/blog/', '' ),
			'root path on a sub-site' => array( '/ussync/v1/sync', '/blog/', '' ),
			'unknown endpoint'        => array( '/ussync/v1/status', '/', '' ),
			'trailing slash'          => array( '/ussync/v1/sync/', '/', '' ),
			'prefix only'             => array( '/ussync/v1/', '/', '' ),
			'dot segments'            => array( '/ussync/v1/../v1/sync', '/', '' ),
		);
	}

	/** @dataProvider endpoints */
	public function test_endpoint( string $path, string $site, string $want ): void {
		$this->assertSame( $want, Ussync_Util::endpoint( $path, $site ) );
	}

	public function test_site_path(): void {
		$this->assertSame( '/', Ussync_Util::site_path( 'http://a.localhost:8080' ) );
		$this->assertSame( '/', Ussync_Util::site_path( 'https://a.example/' ) );
		$this->assertSame( '/blog/', Ussync_Util::site_path( 'https://a.example/blog' ) );
		$this->assertSame( '/a/b/', Ussync_Util::site_path( 'https://a.example/a/b/' ) );
	}

	public function test_parse_set_cookie(): void {
		$c = Ussync_Util::parse_set_cookie( 'ussync_session=abc-_9; Path=/blog/; Max-Age=1209600; HttpOnly; SameSite=Lax' );
		$this->assertSame( 'ussync_session', $c['name'] );
		$this->assertSame( 'abc-_9', $c['value'] );
		$this->assertSame( '/blog/', $c['attrs']['path'] );
		$this->assertSame( '1209600', $c['attrs']['max-age'] );
		$this->assertTrue( $c['attrs']['httponly'] );
		$this->assertSame( 'Lax', $c['attrs']['samesite'] );
		$this->assertFalse( Ussync_Util::deletes( $c ) );

		$d = Ussync_Util::parse_set_cookie( 'ussync_session=; Path=/; Max-Age=0; HttpOnly' );
		$this->assertTrue( Ussync_Util::deletes( $d ) );
		$this->assertTrue( Ussync_Util::deletes( Ussync_Util::parse_set_cookie( 'a=b; Max-Age=-1' ) ) );
		$this->assertSame( 'q', Ussync_Util::parse_set_cookie( 'x="q"' )['value'] );
		$this->assertNull( Ussync_Util::parse_set_cookie( 'garbage' ) );
		$this->assertNull( Ussync_Util::parse_set_cookie( '=v' ) );
	}

	/** @return array<string,array{string,string,bool}> */
	public static function prefixes(): array {
		return array(
			'v4 in /32'        => array( '127.0.0.1', '127.0.0.1/32', true ),
			'v4 bare address'  => array( '127.0.0.1', '127.0.0.1', true ),
			'v4 out of /32'    => array( '127.0.0.2', '127.0.0.1/32', false ),
			'v4 in /8'         => array( '10.1.2.3', '10.0.0.0/8', true ),
			'v4 in /12'        => array( '172.31.255.1', '172.16.0.0/12', true ),
			'v4 out of /12'    => array( '172.32.0.1', '172.16.0.0/12', false ),
			'v6 in /128'       => array( '::1', '::1/128', true ),
			'v6 in /64'        => array( '2001:db8::5', '2001:db8::/64', true ),
			'v4 never in v6'   => array( '127.0.0.1', '::1/128', false ),
			'bad prefix'       => array( '127.0.0.1', '127.0.0.1/33', false ),
			'bad address'      => array( 'nope', '0.0.0.0/0', false ),
			'everything in /0' => array( '8.8.8.8', '0.0.0.0/0', true ),
		);
	}

	/** @dataProvider prefixes */
	public function test_ip_in( string $ip, string $cidr, bool $want ): void {
		$this->assertSame( $want, Ussync_Util::ip_in( $ip, $cidr ) );
	}

	public function test_client_ip(): void {
		$trusted = array( '127.0.0.1/32', '10.0.0.0/8' );
		// Not from a proxy: the socket address, whatever the header says.
		$this->assertSame( '203.0.113.9', Ussync_Util::client_ip( '203.0.113.9', '1.2.3.4', $trusted ) );
		// From a proxy: the rightmost untrusted entry.
		$this->assertSame( '198.51.100.7', Ussync_Util::client_ip( '127.0.0.1', '1.2.3.4, 198.51.100.7, 10.0.0.2', $trusted ) );
		// An entry that is not an address stops the walk at the last one believed.
		$this->assertSame( '10.0.0.2', Ussync_Util::client_ip( '127.0.0.1', 'junk, 10.0.0.2', $trusted ) );
		// Every hop trusted: the leftmost.
		$this->assertSame( '10.0.0.3', Ussync_Util::client_ip( '127.0.0.1', '10.0.0.3, 10.0.0.2', $trusted ) );
		$this->assertSame( '127.0.0.1', Ussync_Util::client_ip( '127.0.0.1', '', $trusted ) );
	}

	public function test_prefixes_setting(): void {
		$this->assertSame( array( '127.0.0.1/32', '::1/128', '10.0.0.0/8' ), Ussync_Util::prefixes( "127.0.0.1/32\n::1/128, 10.0.0.0/8 nonsense 300.1.1.1" ) );
	}

	public function test_browser_session(): void {
		$now = 1700000000;
		$this->assertTrue( Ussync_Util::browser_session( $now, $now + 2 * 86400 ), 'a login without Remember me (two days)' );
		$this->assertFalse( Ussync_Util::browser_session( $now, $now + 14 * 86400 ), 'a remembered login (fourteen days)' );
	}

	public function test_go_duration(): void {
		$this->assertSame( '1209600s', Ussync_Util::go_duration( 1209600 ) );
		$this->assertSame( '1s', Ussync_Util::go_duration( -5 ) );
	}

	public function test_unix(): void {
		$this->assertSame( 1700000000, Ussync_Util::unix( '2023-11-14T22:13:20Z' ) );
		$this->assertSame( 1700000000, Ussync_Util::unix( '2023-11-14T22:13:20.123456789Z' ) );
		$this->assertSame( 0, Ussync_Util::unix( null ) );
		$this->assertSame( 0, Ussync_Util::unix( 'not a time' ) );
	}

	public function test_unique_login(): void {
		// A stand-in of sanitize_user( $s, true ): ASCII letters, digits, " _.-@".
		$sanitize = static fn( string $s ): string => trim( preg_replace( '/[^a-z0-9 _.\-@]/i', '', $s ) );
		$taken    = static fn( array $names ): callable => static fn( string $s ): bool => in_array( $s, $names, true );
		$this->assertSame( 'ada', Ussync_Util::unique_login( 'ada', 'ada@example.com', $sanitize, $taken( array() ) ) );
		$this->assertSame( 'ada-2', Ussync_Util::unique_login( 'ada', 'ada@example.com', $sanitize, $taken( array( 'ada' ) ) ) );
		$this->assertSame( 'ada-3', Ussync_Util::unique_login( 'ada', 'x@example.com', $sanitize, $taken( array( 'ada', 'ada-2' ) ) ) );
		// Characters WordPress strips: what is left, else the address's local part.
		$this->assertSame( 'jrgen', Ussync_Util::unique_login( 'jürgen', 'j@example.com', $sanitize, $taken( array() ) ) );
		$this->assertSame( 'kim', Ussync_Util::unique_login( '李', 'kim@example.com', $sanitize, $taken( array() ) ) );
		$this->assertSame( 'user', Ussync_Util::unique_login( '', '李@example.com', $sanitize, $taken( array() ) ) );
		$all = array_merge( array( 'bo' ), array_map( static fn( $i ) => 'bo-' . $i, range( 2, 100 ) ) );
		$this->assertSame( '', Ussync_Util::unique_login( 'bo', 'bo@example.com', $sanitize, $taken( $all ) ) );
	}

	public function test_travels(): void {
		$blocked = array( 'administrator', 'editor' );
		$this->assertTrue( Ussync_Util::travels( array( 'subscriber' ), $blocked ) );
		$this->assertFalse( Ussync_Util::travels( array( 'subscriber', 'editor' ), $blocked ) );
		$this->assertTrue( Ussync_Util::travels( array(), $blocked ) );
	}

	public function test_cookie_base(): void {
		// node/browser.go: a site at an https root has __Host- cookies.
		$this->assertSame( 'ussync_nonce', Ussync_Util::cookie_base( '__Host-ussync_nonce' ) );
		$this->assertSame( 'ussync_session', Ussync_Util::cookie_base( '__Host-ussync_session' ) );
		$this->assertSame( 'ussync_nonce_x', Ussync_Util::cookie_base( 'ussync_nonce_x' ) );
		$this->assertSame( '__Secure-ussync_session', Ussync_Util::cookie_base( '__Secure-ussync_session' ) );
		$this->assertSame( '', Ussync_Util::cookie_base( '__Host-' ) );
	}

	public function test_cookie_and_token_names(): void {
		$this->assertSame( 'ussync_session', Ussync_Util::cookie_name( 0, 'main' ) );
		$this->assertSame( 'ussync_session_partners', Ussync_Util::cookie_name( 1, 'partners' ) );
		$this->assertTrue( Ussync_Util::host_prefixed( 'https://example.com' ) );
		$this->assertTrue( Ussync_Util::host_prefixed( 'HTTPS://example.com:8443/' ) );
		$this->assertFalse( Ussync_Util::host_prefixed( 'https://example.com/blog/' ) );
		$this->assertFalse( Ussync_Util::host_prefixed( 'http://example.com/' ) );
		$this->assertSame( 'USSYNC_API_TOKEN', Ussync_Util::token_constant( 0, 'main' ) );
		$this->assertSame( 'USSYNC_API_TOKEN_PARTNERS', Ussync_Util::token_constant( 2, 'partners' ) );
	}

	public function test_check_connection(): void {
		list( $c, $p ) = Ussync_Util::check_connection(
			array(
				'id'         => ' Main ',
				'api_url'    => 'http://127.0.0.1:7947/',
				'public_url' => 'http://127.0.0.1:7948',
			)
		);
		$this->assertSame( array(), $p );
		$this->assertSame( 'main', $c['id'] );
		$this->assertSame( 'http://127.0.0.1:7947', $c['api_url'] );
		list( , $p ) = Ussync_Util::check_connection(
			array(
				'id'         => 'a b',
				'api_url'    => 'ftp://x',
				'public_url' => 'http://u:p@127.0.0.1/',
				'token_file' => 'relative/path',
			)
		);
		$this->assertSame( array( 'id', 'api_url', 'public_url', 'token_file' ), $p );
	}

	public function test_socket_api_url(): void {
		// The node's api.listen and its Go client's forms.
		$this->assertSame( '/run/ussync/api.sock', Ussync_Util::socket_path( 'unix:/run/ussync/api.sock' ) );
		$this->assertSame( '/run/ussync/api.sock', Ussync_Util::socket_path( 'unix:///run/ussync/api.sock' ) );
		$this->assertSame( '/run/ussync/api.sock', Ussync_Util::socket_path( 'UNIX:/run/ussync/api.sock' ) );
		foreach ( array( 'unix:', 'unix:run/api.sock', 'unix://host/api.sock', 'unix:/' . str_repeat( 'x', 104 ), "unix:/run/a\nb.sock", 'http://127.0.0.1:7947' ) as $bad ) {
			$this->assertSame( '', Ussync_Util::socket_path( $bad ), $bad );
		}
		list( $c, $p ) = Ussync_Util::check_connection(
			array(
				'id'         => 'main',
				'api_url'    => ' unix:///run/ussync/api.sock ',
				'public_url' => 'http://127.0.0.1:7948',
			)
		);
		$this->assertSame( array(), $p );
		$this->assertSame( 'unix:/run/ussync/api.sock', $c['api_url'] );
		list( , $p ) = Ussync_Util::check_connection(
			array(
				'id'         => 'main',
				'api_url'    => 'unix:api.sock',
				'public_url' => 'unix:/run/ussync/public.sock',
			)
		);
		$this->assertSame( array( 'api_url', 'public_url' ), $p, 'a relative socket path, or a socket for the public listener (browsers reach it through the site)' );
	}

	public function test_under(): void {
		$home = 'http://site-a.localhost:8081/blog/';
		$this->assertTrue( Ussync_Util::under( 'http://site-a.localhost:8081/blog/x?y=1', $home ) );
		$this->assertTrue( Ussync_Util::under( 'http://SITE-A.localhost:8081/blog', $home ) );
		$this->assertFalse( Ussync_Util::under( 'http://site-a.localhost:8081/blogx', $home ) );
		$this->assertFalse( Ussync_Util::under( 'http://site-a.localhost:8082/blog/', $home ) );
		$this->assertFalse( Ussync_Util::under( 'https://site-a.localhost:8081/blog/', $home ) );
		$this->assertFalse( Ussync_Util::under( 'http://evil@site-a.localhost:8081/blog/', $home ) );
		$this->assertTrue( Ussync_Util::under( 'https://a.example/x', 'https://a.example:443/' ) );
	}

	public function test_without_param(): void {
		$this->assertSame( 'http://a/x?b=2#f', Ussync_Util::without_param( 'http://a/x?ussync_hopped=1&b=2#f', 'ussync_hopped' ) );
		$this->assertSame( 'http://a/x', Ussync_Util::without_param( 'http://a/x?ussync_hopped=1', 'ussync_hopped' ) );
		$this->assertSame( 'http://a/x', Ussync_Util::without_param( 'http://a/x', 'ussync_hopped' ) );
	}
}
