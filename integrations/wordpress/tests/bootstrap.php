<?php
/**
 * Unit tests of the plugin's pure functions and of its curl calls (no
 * WordPress needed).
 *
 * @package ussync
 */

define( 'ABSPATH', __DIR__ . '/' );
require_once dirname( __DIR__ ) . '/ussync/includes/class-ussync-util.php';
require_once dirname( __DIR__ ) . '/ussync/includes/class-ussync-curl.php';
