<?php
/**
 * Plugin Name:       ussync
 * Plugin URI:        https://github.com/ussync/ussync/tree/main/integrations/wordpress
 * Description:       One login and one logout for a family of sites on different domains: each site runs a ussync node, and this plugin ties WordPress's logins to it. Replaces "User Session Synchronizer".
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      8.1
 * Author:            The ussync authors
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       ussync
 * Domain Path:       /languages
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

define( 'USSYNC_VERSION', '0.1.0' );
define( 'USSYNC_FILE', __FILE__ );

// The other classes load when first used (Ussync_Plugin::autoload): a page
// view loads only what it runs (README "Performance").
require_once __DIR__ . '/includes/class-ussync-plugin.php';
spl_autoload_register( array( 'Ussync_Plugin', 'autoload' ) );

register_activation_hook( __FILE__, array( 'Ussync_Plugin', 'activate' ) );
register_deactivation_hook( __FILE__, array( 'Ussync_Plugin', 'deactivate' ) );

Ussync_Plugin::boot();
