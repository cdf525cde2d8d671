<?php
/**
 * Uninstall: removes what the plugin stored (its options and its user
 * meta). The users it added stay: they are accounts of this site now.
 *
 * @package ussync
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

delete_option( 'ussync_settings' );
delete_option( 'ussync_down' );
// The outage log claims (Ussync_Node::claim_log), one row per network.
global $wpdb;
$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( 'ussync_down_logged_' ) . '%' ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery
delete_metadata( 'user', 0, 'ussync_added', '', true );
delete_metadata( 'user', 0, 'ussync_credentials_reset', '', true );
