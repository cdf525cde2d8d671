<?php
/**
 * Bootstrap: loads the translations, hooks every part, and runs the
 * activation and deactivation steps.
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Plugin wires the plugin into WordPress.
 */
final class Ussync_Plugin {

	/**
	 * Hooks every part. Called once, when the plugin file is loaded.
	 */
	public static function boot(): void {
		self::behind_proxy();
		Ussync_Handoff::early_route();
		Ussync_Auth::check_ahead();
		add_action( 'init', array( __CLASS__, 'textdomain' ), 0 );
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'scripts' ) );
		Ussync_Handoff::hooks();
		Ussync_Auth::hooks();
		Ussync_Users::hooks();
		add_action( 'init', array( 'Ussync_Admin', 'early_notice' ), 1 );
		if ( is_admin() ) {
			Ussync_Admin::hooks();
		} else {
			add_action( 'wp_body_open', array( 'Ussync_Admin', 'front_notice' ) );
			add_filter( 'login_message', array( 'Ussync_Admin', 'login_message' ) );
			add_action( 'admin_bar_menu', array( 'Ussync_Admin', 'admin_bar' ), 100 );
		}
	}

	/**
	 * A request that reached PHP through a trusted TLS-terminating proxy
	 * is https: telling WordPress so (before anything reads is_ssl())
	 * keeps FORCE_SSL_ADMIN from redirecting it to https for ever.
	 */
	private static function behind_proxy(): void {
		if ( is_ssl() || ! isset( $_SERVER['HTTP_X_FORWARDED_PROTO'], $_SERVER['REMOTE_ADDR'] ) ) {
			return;
		}
		$proto = strtolower( sanitize_text_field( wp_unslash( $_SERVER['HTTP_X_FORWARDED_PROTO'] ) ) );
		$from  = sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) );
		if ( 'https' === $proto && Ussync_Util::ip_in_any( $from, Ussync_Settings::trusted_proxies() ) ) {
			$_SERVER['HTTPS'] = 'on';
		}
	}

	/**
	 * Loads the plugin's translations.
	 */
	public static function textdomain(): void {
		load_plugin_textdomain( 'ussync', false, dirname( plugin_basename( USSYNC_FILE ) ) . '/languages' );
	}

	/**
	 * Registers the cross-domain helper (enqueued by themes that want it:
	 * wp_enqueue_script( 'ussync-whoami' )).
	 */
	public static function scripts(): void {
		wp_register_script( 'ussync-whoami', plugins_url( 'assets/ussync-whoami.js', USSYNC_FILE ), array(), USSYNC_VERSION, true );
	}

	/**
	 * Activation: the rewrite rule of <site>/ussync/v1/…. No output.
	 */
	public static function activate(): void {
		Ussync_Handoff::rewrite();
		flush_rewrite_rules( false );
	}

	/**
	 * Deactivation: the rule goes. Settings stay (uninstall removes them).
	 */
	public static function deactivate(): void {
		flush_rewrite_rules( false );
	}
}
