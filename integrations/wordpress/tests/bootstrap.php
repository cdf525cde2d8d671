<?php
/**
 * Unit tests of the plugin's pure functions, of its curl calls and of the
 * parts of its bootstrap that need no WordPress.
 *
 * @package ussync
 */

define( 'ABSPATH', __DIR__ . '/' );
require_once dirname( __DIR__ ) . '/ussync/includes/class-ussync-util.php';
require_once dirname( __DIR__ ) . '/ussync/includes/class-ussync-curl.php';
require_once dirname( __DIR__ ) . '/ussync/includes/class-ussync-plugin.php';
spl_autoload_register( array( 'Ussync_Plugin', 'autoload' ) );
