<?php
/**
 * Tests of the bootstrap's parts that need no WordPress: the class map the
 * plugin loads its classes from, and what decides whether a request gets
 * the endpoints' hooks.
 *
 * @package ussync
 */

use PHPUnit\Framework\TestCase;

/**
 * PluginTest checks Ussync_Plugin::autoload and the endpoints' routing.
 */
final class PluginTest extends TestCase {

	/**
	 * Every class file of includes/ is in the class map, under the class it
	 * declares: the plugin requires none of them itself, so a class left
	 * out would fail only when a request first used it.
	 */
	public function test_class_map_is_complete(): void {
		$dir   = dirname( __DIR__ ) . '/ussync/includes';
		$files = array_map( 'basename', glob( $dir . '/class-ussync-*.php' ) );
		$this->assertNotEmpty( $files );
		$mapped = array_values( Ussync_Plugin::CLASSES );
		$mapped[] = 'class-ussync-plugin.php'; // required by ussync.php itself.
		sort( $files );
		sort( $mapped );
		$this->assertSame( $files, $mapped );
		foreach ( Ussync_Plugin::CLASSES as $class => $file ) {
			$this->assertMatchesRegularExpression( '/^final class ' . preg_quote( $class, '/' ) . ' \{/m', (string) file_get_contents( $dir . '/' . $file ), $file );
		}
	}

	public function test_autoload_loads_the_mapped_class_only(): void {
		Ussync_Plugin::autoload( 'Ussync_Handoff' );
		$this->assertTrue( class_exists( 'Ussync_Handoff', false ) );
		Ussync_Plugin::autoload( 'Ussync_Nothing' ); // not ours: left to other autoloaders, no error.
		$this->assertFalse( class_exists( 'Ussync_Nothing', false ) );
	}

	/**
	 * The rewrite rule comes first, keeps the other rules, and sends each
	 * endpoint, and nothing else, to the query variable.
	 */
	public function test_rewrite_rule_first(): void {
		$rules = Ussync_Handoff::rewrite_rules( array( '^(.+?)/?$' => 'index.php?pagename=$matches[1]' ) );
		$this->assertCount( 2, $rules );
		$regex = array_key_first( $rules );
		$this->assertSame( 'index.php?ussync_endpoint=$matches[1]', $rules[ $regex ] );
		$this->assertSame( 'index.php?pagename=$matches[1]', $rules['^(.+?)/?$'] );
		foreach ( Ussync_Util::ENDPOINTS as $e ) {
			$this->assertSame( 1, preg_match( '#' . $regex . '#', 'ussync/v1/' . $e, $m ), $e );
			$this->assertSame( $e, $m[1] );
		}
		foreach ( array( 'ussync/v1/status', 'ussync/v1/hop/other', 'ussync/v2/sync', 'blog/ussync/v1/sync' ) as $not ) {
			$this->assertSame( 0, preg_match( '#' . $regex . '#', $not ), $not );
		}
		$this->assertCount( 1, Ussync_Handoff::rewrite_rules( null ) );
	}

	/** @return array<string,array{string,array,bool}> */
	public static function routes(): array {
		return array(
			'an endpoint'                 => array( '/ussync/v1/sync?t=1', array(), true ),
			'an endpoint of a sub-folder' => array( '/blog/ussync/v1/hop/ask', array(), true ),
			'encoded (WordPress decodes)' => array( '/%75ssync/v1/sync', array(), true ),
			'the query variable'          => array( '/index.php?ussync_endpoint=sync', array(), true ),
			'the query variable posted'   => array( '/', array( 'ussync_endpoint' => 'sync' ), true ),
			'the front page'              => array( '/', array(), false ),
			'a post'                      => array( '/2026/11/hello-world/?replytocom=3', array(), false ),
			'REST'                        => array( '/wp-json/wp/v2/users/me', array(), false ),
		);
	}

	/**
	 * @dataProvider routes
	 *
	 * @param string $uri  REQUEST_URI.
	 * @param array  $post The form.
	 * @param bool   $want Whether route() gets its hooks.
	 */
	public function test_may_route( string $uri, array $post, bool $want ): void {
		$saved                  = array( $_SERVER['REQUEST_URI'] ?? null, $_POST );
		$_SERVER['REQUEST_URI'] = $uri;
		$_POST                  = $post;
		try {
			$this->assertSame( $want, Ussync_Handoff::may_route() );
		} finally {
			$_SERVER['REQUEST_URI'] = $saved[0];
			$_POST                  = $saved[1];
		}
	}
}
