<?php
/**
 * Bootstrap: loads the classes as they are used, hooks every part where
 * the request can use it, and runs the activation and deactivation steps.
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Plugin wires the plugin into WordPress.
 *
 * Every page view pays for what is done here, so it is kept to what a
 * request can use (README "Performance"): a class is loaded when it is
 * first used (autoload), and a hook is added only where it can fire:
 * the screens, Users list actions and admin-post actions in wp-admin
 * (is_admin(): admin-ajax.php and admin-post.php too), the page's hooks
 * (scripts, the body's notice, the footer) elsewhere, the routes of
 * <site>/ussync/v1/… only for a request that names them, and the
 * redirect of a login through its chain only once a login planned one
 * (Ussync_Handoff::plan). Logins, checks, logouts, password changes and
 * the e-mail lock are hooked in every request: any path may run them.
 */
final class Ussync_Plugin {

	/** Class => its file under includes/ (autoload). */
	const CLASSES = array(
		'Ussync_Util'     => 'class-ussync-util.php',
		'Ussync_Settings' => 'class-ussync-settings.php',
		'Ussync_Curl'     => 'class-ussync-curl.php',
		'Ussync_Node'     => 'class-ussync-node.php',
		'Ussync_Handoff'  => 'class-ussync-handoff.php',
		'Ussync_Auth'     => 'class-ussync-auth.php',
		'Ussync_Users'    => 'class-ussync-users.php',
		'Ussync_Admin'    => 'class-ussync-admin.php',
	);

	/**
	 * Loads one of the plugin's classes (spl_autoload_register): a class
	 * map, so that no file is looked for on disk.
	 *
	 * @param string $name A class name.
	 */
	public static function autoload( string $name ): void {
		if ( isset( self::CLASSES[ $name ] ) ) {
			require __DIR__ . '/' . self::CLASSES[ $name ];
		}
	}

	/**
	 * Hooks every part. Called once, when the plugin file is loaded.
	 */
	public static function boot(): void {
		self::behind_proxy();
		Ussync_Handoff::early_route();
		Ussync_Auth::check_ahead();

		// Every request: a login, a check, a logout, a password or address
		// change may come from any path (wp-login.php, a form, AJAX, REST).
		add_action( 'init', array( __CLASS__, 'textdomain' ), 0 );
		add_filter( 'rewrite_rules_array', array( 'Ussync_Handoff', 'rewrite_rules' ) );
		add_action( 'init', array( 'Ussync_Handoff', 'come_back' ), 20 );
		add_filter( 'auth_cookie_expiration', array( 'Ussync_Auth', 'lifetime' ), PHP_INT_MAX, 3 );
		add_filter( 'attach_session_information', array( 'Ussync_Auth', 'attach' ), 20, 2 );
		add_filter( 'determine_current_user', array( 'Ussync_Auth', 'determine' ), 100 );
		add_action( 'wp_logout', array( 'Ussync_Auth', 'logout' ), 1 );
		add_action( 'profile_update', array( 'Ussync_Auth', 'profile_update' ), 10, 2 );
		add_action( 'after_password_reset', array( 'Ussync_Auth', 'after_password_reset' ), 10, 1 );
		add_action( 'user_register', array( 'Ussync_Users', 'registered' ), 20 );
		// The e-mail lock, on every path that changes an address
		// (edit_user() may run outside wp-admin too).
		add_action( 'user_profile_update_errors', array( 'Ussync_Users', 'profile_errors' ), 10, 3 );
		add_filter( 'wp_pre_insert_user_data', array( 'Ussync_Users', 'keep_email' ), 10, 3 );
		add_action( 'init', array( 'Ussync_Admin', 'early_notice' ), 1 );
		add_action( 'admin_bar_menu', array( 'Ussync_Admin', 'admin_bar' ), 100 );
		add_action( 'delete_option_' . Ussync_Node::DOWN_OPTION, array( 'Ussync_Node', 'release_all' ) );

		if ( is_admin() ) {
			add_action( 'admin_init', array( 'Ussync_Auth', 'ajax_ended' ), 0 );
			add_action( 'admin_init', array( 'Ussync_Handoff', 'page_view' ), 1 );
			add_action( 'admin_init', array( 'Ussync_Admin', 'register' ) );
			add_action( 'admin_init', array( 'Ussync_Users', 'no_email_confirmation' ) ); // core adds it in admin-filters.php, after init.
			add_action( 'admin_menu', array( 'Ussync_Admin', 'menu' ) );
			add_action( 'admin_menu', array( 'Ussync_Users', 'menus' ) );
			add_action( 'admin_notices', array( 'Ussync_Admin', 'notices' ) );
			add_action( 'admin_footer', array( 'Ussync_Handoff', 'frames' ) );
			add_filter( 'plugin_action_links_' . plugin_basename( USSYNC_FILE ), array( 'Ussync_Admin', 'action_links' ) );
			add_action( 'admin_post_ussync_logout_everywhere', array( 'Ussync_Auth', 'logout_everywhere_action' ) );
			add_action( 'admin_post_ussync_verify', array( 'Ussync_Users', 'row_verify' ) );
			add_action( 'admin_post_ussync_code', array( 'Ussync_Users', 'code_action' ) );
			add_action( 'admin_post_ussync_revoke', array( 'Ussync_Users', 'revoke_action' ) );
			add_action( 'admin_post_ussync_user_logout_everywhere', array( 'Ussync_Users', 'admin_logout_everywhere' ) );
			add_filter( 'manage_users_columns', array( 'Ussync_Users', 'columns' ) );
			add_filter( 'manage_users_custom_column', array( 'Ussync_Users', 'column' ), 10, 3 );
			add_filter( 'user_row_actions', array( 'Ussync_Users', 'row_actions' ), 10, 2 );
			add_filter( 'bulk_actions-users', array( 'Ussync_Users', 'bulk_actions' ) );
			add_filter( 'handle_bulk_actions-users', array( 'Ussync_Users', 'handle_bulk' ), 10, 3 );
			add_action( 'show_user_profile', array( 'Ussync_Users', 'profile_box' ) );
			add_action( 'edit_user_profile', array( 'Ussync_Users', 'profile_box' ) );
			return;
		}
		// Pages, wp-login.php, REST, XML-RPC, cron.
		if ( Ussync_Handoff::may_route() ) {
			add_filter( 'query_vars', array( 'Ussync_Handoff', 'query_vars' ) );
			add_action( 'parse_request', array( 'Ussync_Handoff', 'route' ), 0 );
		}
		add_action( 'template_redirect', array( 'Ussync_Handoff', 'page_view' ), 1 );
		add_action( 'wp_footer', array( 'Ussync_Handoff', 'frames' ) );
		add_action( 'wp_enqueue_scripts', array( __CLASS__, 'scripts' ) );
		add_action( 'wp_body_open', array( 'Ussync_Admin', 'front_notice' ) );
		add_filter( 'login_message', array( 'Ussync_Admin', 'login_message' ) );
		add_filter( 'rest_authentication_errors', array( 'Ussync_Auth', 'rest_errors' ), 99 ); // before core's cookie check (100), which would call it a bad nonce.
		add_filter( 'rest_request_before_callbacks', array( 'Ussync_Users', 'rest_email' ), 10, 3 );
		add_action( 'woocommerce_save_account_details_errors', array( 'Ussync_Users', 'woo_email' ), 10, 2 );
	}

	/**
	 * A request that reached PHP through a trusted TLS-terminating proxy
	 * is https: telling WordPress so (before anything reads is_ssl())
	 * keeps FORCE_SSL_ADMIN from redirecting it to https for ever.
	 */
	private static function behind_proxy(): void {
		if ( ! isset( $_SERVER['HTTP_X_FORWARDED_PROTO'], $_SERVER['REMOTE_ADDR'] ) || is_ssl() ) {
			return;
		}
		$proto = strtolower( sanitize_text_field( wp_unslash( $_SERVER['HTTP_X_FORWARDED_PROTO'] ) ) );
		$from  = sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) );
		if ( 'https' === $proto && Ussync_Util::ip_in_any( $from, Ussync_Settings::trusted_proxies() ) ) {
			$_SERVER['HTTPS'] = 'on';
		}
	}

	/**
	 * Tells WordPress where the plugin's translations are (init). They
	 * are loaded when a string of the plugin is first translated, as
	 * WordPress 6.7's load_plugin_textdomain does: most page views
	 * translate one string or none. Before 6.7, load_plugin_textdomain
	 * would look for the file at once; the same registry then finds it
	 * just in time (WordPress 6.1's _load_textdomain_just_in_time looks in
	 * wp-content/languages/plugins first, then here, as
	 * load_plugin_textdomain did). A plugin_locale filter (which only
	 * load_plugin_textdomain applies) keeps the loading at once.
	 */
	public static function textdomain(): void {
		global $wp_version, $wp_textdomain_registry;
		if ( version_compare( $wp_version, '6.7', '<' ) && $wp_textdomain_registry instanceof WP_Textdomain_Registry && ! has_filter( 'plugin_locale' ) ) {
			$wp_textdomain_registry->set_custom_path( 'ussync', dirname( USSYNC_FILE ) . '/languages' );
			return;
		}
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
	 * Activation: the rewrite rule of <site>/ussync/v1/… (boot added its
	 * filter when WordPress loaded the plugin to activate it), and the
	 * settings' option, empty (the defaults hold) and autoloaded, so that a
	 * site that never saved them does not ask the database for it on every
	 * page view. No output.
	 */
	public static function activate(): void {
		add_option( Ussync_Settings::OPTION, array() );
		flush_rewrite_rules( false );
	}

	/**
	 * Deactivation: the rule goes (the plugin is still loaded in this
	 * request: its filter is taken out before the rules are rebuilt).
	 * Settings stay (uninstall removes them).
	 */
	public static function deactivate(): void {
		remove_filter( 'rewrite_rules_array', array( 'Ussync_Handoff', 'rewrite_rules' ) );
		flush_rewrite_rules( false );
	}
}
