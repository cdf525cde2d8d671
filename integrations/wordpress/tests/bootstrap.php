<?php
/**
 * Unit tests of the plugin's pure functions (no WordPress needed).
 *
 * @package ussync
 */

define( 'ABSPATH', __DIR__ . '/' );
require_once dirname( __DIR__ ) . '/ussync/includes/class-ussync-util.php';
