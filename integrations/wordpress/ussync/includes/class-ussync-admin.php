<?php
/**
 * Settings → ussync (the Settings API), its health box, the admin bar's
 * "Log out everywhere", and the notices the plugin shows.
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Admin holds the settings page and the notices.
 */
final class Ussync_Admin {

	/**
	 * The settings page under Settings.
	 */
	public static function menu(): void {
		add_options_page( __( 'ussync', 'ussync' ), __( 'ussync', 'ussync' ), 'manage_options', 'ussync', array( __CLASS__, 'page' ) );
	}

	/**
	 * A "Settings" link on the Plugins screen.
	 *
	 * @param array $links Links.
	 * @return array
	 */
	public static function action_links( $links ) {
		array_unshift( $links, sprintf( '<a href="%s">%s</a>', esc_url( admin_url( 'options-general.php?page=ussync' ) ), esc_html__( 'Settings', 'ussync' ) ) );
		return $links;
	}

	/**
	 * Registers the setting and its fields (Settings API).
	 */
	public static function register(): void {
		register_setting(
			'ussync',
			Ussync_Settings::OPTION,
			array(
				'type'              => 'array',
				'sanitize_callback' => array( 'Ussync_Settings', 'sanitize' ),
				'show_in_rest'      => false,
				'default'           => Ussync_Settings::defaults(),
			)
		);
		add_settings_section( 'ussync_nodes', __( 'Node connections', 'ussync' ), array( __CLASS__, 'nodes_intro' ), 'ussync' );
		add_settings_field( 'ussync_connections', __( 'Networks', 'ussync' ), array( __CLASS__, 'connections_field' ), 'ussync', 'ussync_nodes' );
		add_settings_section( 'ussync_policy', __( 'Hand-off and policies', 'ussync' ), '__return_false', 'ussync' );
		$radios = array(
			'mode'          => array(
				__( 'Hand-off mode', 'ussync' ),
				array(
					'chain'  => __( 'chain: after a login, the browser goes through every other site and back (works with third-party cookies blocked; the default)', 'ussync' ),
					'lazy'   => __( 'lazy: nothing at login; a site the browser has no session on asks the others once when it arrives', 'ussync' ),
					'iframe' => __( 'iframe: hidden frames after a login (only where browsers allow third-party cookies)', 'ussync' ),
				),
			),
			'unknown_user'  => array(
				__( 'A user this site does not have', 'ussync' ),
				array(
					'create' => __( 'create: add them as a subscriber', 'ussync' ),
					'reject' => __( 'reject: they must register on this site first', 'ussync' ),
				),
			),
			'second_factor' => array(
				__( 'Users with a second factor here', 'ussync' ),
				array(
					'local'  => __( 'must log in on this site (a login from another site does not log them in)', 'ussync' ),
					'accept' => __( 'are logged in by a login from another site too', 'ussync' ),
				),
			),
			'fail'          => array(
				__( 'When the node does not answer', 'ussync' ),
				array(
					'open'   => __( 'fail open: logged-in users stay logged in (logouts elsewhere reach this site once the node answers)', 'ussync' ),
					'closed' => __( 'fail closed: pages are shown as to a visitor until the node answers', 'ussync' ),
				),
			),
		);
		foreach ( $radios as $key => $def ) {
			add_settings_field(
				'ussync_' . $key,
				$def[0],
				array( __CLASS__, 'radio_field' ),
				'ussync',
				'ussync_policy',
				array(
					'key'     => $key,
					'choices' => $def[1],
				)
			);
		}
		add_settings_field( 'ussync_blocked_roles', __( 'Roles that stay on this site', 'ussync' ), array( __CLASS__, 'roles_field' ), 'ussync', 'ussync_policy' );
		add_settings_field( 'ussync_trusted_proxies', __( 'Trusted proxies', 'ussync' ), array( __CLASS__, 'proxies_field' ), 'ussync', 'ussync_policy' );
		add_settings_field( 'ussync_link_verifies', __( 'Password link', 'ussync' ), array( __CLASS__, 'link_field' ), 'ussync', 'ussync_policy' );
	}

	/**
	 * The introduction of the connections.
	 */
	public static function nodes_intro(): void {
		echo '<p>' . esc_html__( 'Each network is one ussync cluster; this site runs one node for each. The API token of the first network comes from the constant USSYNC_API_TOKEN in wp-config.php (others: USSYNC_API_TOKEN_<ID>), or from a file readable by PHP only. It is never stored in the database.', 'ussync' ) . '</p>';
	}

	/**
	 * The connections: one row per network, and an empty row to add one.
	 */
	public static function connections_field(): void {
		$rows   = array_values( (array) Ussync_Settings::value( 'connections' ) );
		$rows[] = array(
			'id'         => '',
			'label'      => '',
			'api_url'    => '',
			'public_url' => '',
			'token_file' => '',
		);
		$name   = Ussync_Settings::OPTION . '[connections]';
		echo '<table class="widefat ussync-connections"><thead><tr><th>' . esc_html__( 'Id', 'ussync' ) . '</th><th>' . esc_html__( 'Label', 'ussync' ) . '</th><th>' . esc_html__( 'Private API URL', 'ussync' ) . '</th><th>' . esc_html__( 'Public listener URL', 'ussync' ) . '</th><th>' . esc_html__( 'Token file', 'ussync' ) . '</th><th>' . esc_html__( 'Token from', 'ussync' ) . '</th></tr></thead><tbody>';
		foreach ( $rows as $i => $c ) {
			$c = array_merge(
				array(
					'id'         => '',
					'label'      => '',
					'api_url'    => '',
					'public_url' => '',
					'token_file' => '',
				),
				(array) $c
			);
			echo '<tr>';
			foreach ( array( 'id' => 8, 'label' => 12, 'api_url' => 24, 'public_url' => 24, 'token_file' => 24 ) as $k => $size ) {
				printf( '<td><input type="text" name="%s" value="%s" size="%d"></td>', esc_attr( $name . '[' . $i . '][' . $k . ']' ), esc_attr( (string) $c[ $k ] ), (int) $size );
			}
			$src = '' !== $c['id'] ? Ussync_Settings::token_source( Ussync_Util::check_connection( $c )[0], $i ) : '';
			echo '<td>' . ( '' !== $src ? esc_html( $src ) : ( '' !== $c['id'] ? '<strong>' . esc_html__( 'none: set the constant or a token file', 'ussync' ) . '</strong>' : '' ) ) . '</td></tr>';
		}
		echo '</tbody></table><p class="description">' . esc_html__( 'Clear a row\'s id and private API URL to remove it. The private API URL is the node\'s api.listen: http://127.0.0.1:7947, or unix:/run/ussync/api.sock when the node listens on a Unix socket (no TCP port: who may call the node is who may open the socket, so the user PHP runs as must be in the node\'s group; PHP\'s curl extension is needed). The public listener URL is where this site forwards <site>/ussync/v1/… (no web-server change needed).', 'ussync' ) . '</p>';
	}

	/**
	 * A set of radio buttons.
	 *
	 * @param array $args key, choices.
	 */
	public static function radio_field( array $args ): void {
		$v = (string) Ussync_Settings::value( $args['key'] );
		foreach ( $args['choices'] as $val => $label ) {
			printf(
				'<label><input type="radio" name="%s" value="%s" %s> %s</label><br>',
				esc_attr( Ussync_Settings::OPTION . '[' . $args['key'] . ']' ),
				esc_attr( $val ),
				checked( $v, $val, false ),
				esc_html( $label )
			);
		}
	}

	/**
	 * The roles whose users do not travel.
	 */
	public static function roles_field(): void {
		$blocked = (array) Ussync_Settings::value( 'blocked_roles' );
		foreach ( wp_roles()->get_names() as $role => $label ) {
			printf(
				'<label><input type="checkbox" name="%s[]" value="%s" %s> %s</label><br>',
				esc_attr( Ussync_Settings::OPTION . '[blocked_roles]' ),
				esc_attr( $role ),
				checked( in_array( $role, $blocked, true ), true, false ),
				esc_html( translate_user_role( $label ) )
			);
		}
		echo '<p class="description">' . esc_html__( 'Users with a checked role are neither sent to the other sites nor logged in here by a login made elsewhere. Roles are never copied between sites; users added from another site are subscribers.', 'ussync' ) . '</p>';
	}

	/**
	 * Trusted proxies.
	 */
	public static function proxies_field(): void {
		printf( '<textarea name="%s" rows="3" cols="40">%s</textarea>', esc_attr( Ussync_Settings::OPTION . '[trusted_proxies]' ), esc_textarea( (string) Ussync_Settings::value( 'trusted_proxies' ) ) );
		echo '<p class="description">' . esc_html__( 'CIDR prefixes (one per line) of the reverse proxies in front of this site whose X-Forwarded-For and X-Forwarded-Proto are believed. Also tells WordPress that a request came over https through them.', 'ussync' ) . '</p>';
	}

	/**
	 * Whether the password link proves the address.
	 */
	public static function link_field(): void {
		printf( '<label><input type="checkbox" name="%s" value="1" %s> %s</label>', esc_attr( Ussync_Settings::OPTION . '[link_verifies]' ), checked( (bool) Ussync_Settings::value( 'link_verifies' ), true, false ), esc_html__( 'A user who sets their password through the link WordPress e-mails has proved the address (verified at registration).', 'ussync' ) );
	}

	/**
	 * The settings page: the health box, then the form.
	 */
	public static function page(): void {
		if ( ! current_user_can( 'manage_options' ) ) {
			return;
		}
		echo '<div class="wrap"><h1>' . esc_html__( 'ussync', 'ussync' ) . '</h1>';
		self::health();
		echo '<form method="post" action="options.php">';
		settings_fields( 'ussync' );
		do_settings_sections( 'ussync' );
		submit_button();
		echo '</form></div>';
	}

	/**
	 * The health box: each node's status, its members and their sites, and
	 * whether the node's site URL is this site's.
	 */
	public static function health(): void {
		echo '<div class="card ussync-health" style="max-width:none"><h2>' . esc_html__( 'Health', 'ussync' ) . '</h2>';
		$nodes = Ussync_Settings::nodes();
		if ( ! $nodes ) {
			echo '<p class="ussync-health-bad">' . esc_html__( 'No network is configured.', 'ussync' ) . '</p></div>';
			return;
		}
		$home = home_url( '/' );
		foreach ( $nodes as $node ) {
			/* translators: %s: network name */
			echo '<h3>' . esc_html( sprintf( __( 'Network %s', 'ussync' ), $node->label ) ) . '</h3>';
			if ( ! $node->has_token() ) {
				echo '<p class="ussync-health-bad"><strong>' . esc_html__( 'No API token: define it in wp-config.php or give a token file.', 'ussync' ) . '</strong></p>';
				continue;
			}
			$r = $node->status();
			if ( 'blocked' === $r['code'] ) {
				/* translators: 1: URL, 2: a host name */
				echo '<p class="ussync-health-bad" data-health="blocked"><strong>' . esc_html( sprintf( __( 'WordPress does not let this site call its node at %1$s: wp-config.php defines WP_HTTP_BLOCK_EXTERNAL. Add %2$s to WP_ACCESSIBLE_HOSTS in wp-config.php (e.g. define( \'WP_ACCESSIBLE_HOSTS\', \'%2$s\' );). Until then logins stay on this site.', 'ussync' ), $node->api_url, (string) wp_parse_url( $node->api_url, PHP_URL_HOST ) ) ) . '</strong></p>';
				continue;
			}
			if ( 200 !== $r['status'] ) {
				if ( 401 === $r['status'] ) {
					$why = __( 'the node refused the API token', 'ussync' );
				} elseif ( 'no_curl' === $r['code'] ) {
					$why = __( 'PHP\'s curl extension (php-curl), which a node on a Unix socket needs, is not installed', 'ussync' );
				} else {
					$why = rtrim( '' !== $r['message'] ? $r['message'] : $r['code'], '.' );
				}
				/* translators: 1: URL, 2: the reason */
				echo '<p class="ussync-health-bad" data-health="unreachable"><strong>' . esc_html( sprintf( __( 'The node at %1$s is unreachable: %2$s. Logins stay on this site until it answers.', 'ussync' ), $node->api_url, $why ) ) . '</strong>';
				if ( $node->on_socket() && str_contains( $r['message'], 'Permission denied' ) ) {
					echo ' ' . esc_html__( 'The node makes its socket readable and writable by its own user and group only (mode 0660): add the user PHP runs as (e.g. www-data) to the node\'s group, then restart PHP.', 'ussync' );
				} elseif ( $node->on_socket() && ( str_contains( $r['message'], 'No such file' ) || str_contains( $r['message'], 'Connection refused' ) || str_contains( $r['message'], 'not a socket' ) ) ) {
					echo ' ' . esc_html__( 'Is the node running, with this path as its api.listen (unix:/path)?', 'ussync' );
				}
				echo '</p>';
				continue;
			}
			$d     = $r['data'];
			$bound = untrailingslashit( (string) ( $d['site_url'] ?? '' ) ) === untrailingslashit( $home );
			/* translators: 1: node name, 2: version */
			echo '<p data-health="ok">' . esc_html( sprintf( __( 'Node %1$s (version %2$s) answers.', 'ussync' ), (string) ( $d['node'] ?? '' ), (string) ( $d['version'] ?? '' ) ) ) . ' ';
			if ( $bound ) {
				/* translators: %s: URL */
				echo esc_html( sprintf( __( 'It serves this site (%s).', 'ussync' ), $home ) );
			} else {
				/* translators: 1: the node's site URL, 2: this site's URL */
				echo '<strong class="ussync-health-bad">' . esc_html( sprintf( __( 'Its site URL is %1$s, not this site\'s %2$s: set site.url in its cluster.yaml.', 'ussync' ), (string) ( $d['site_url'] ?? '' ), $home ) ) . '</strong>';
			}
			echo '</p>';
			self::binding_line( $node );
			echo '<table class="widefat striped"><thead><tr><th>' . esc_html__( 'Member', 'ussync' ) . '</th><th>' . esc_html__( 'State', 'ussync' ) . '</th><th>' . esc_html__( 'Site', 'ussync' ) . '</th><th>' . esc_html__( 'Version', 'ussync' ) . '</th></tr></thead><tbody>';
			foreach ( (array) ( $d['members'] ?? array() ) as $m ) {
				printf( '<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>', esc_html( (string) ( $m['name'] ?? '' ) ), esc_html( (string) ( $m['state'] ?? '' ) ), esc_html( (string) ( $m['site_url'] ?? '' ) ), esc_html( (string) ( $m['version'] ?? '' ) ) );
			}
			echo '</tbody></table>';
			$c = (array) ( $d['counts'] ?? array() );
			/* translators: 1: users, 2: active sessions */
			echo '<p>' . esc_html( sprintf( __( '%1$d users, %2$d active sessions in the cluster.', 'ussync' ), (int) ( $c['users'] ?? 0 ), (int) ( $c['active_sessions'] ?? 0 ) ) ) . '</p>';
		}
		echo '</div>';
	}

	/**
	 * The health box's line on this site's binding. A binding is per
	 * address (docs/security.md, "A site's knowledge of its users"), so the
	 * box shows the one of the administrator looking at it: whether their
	 * address is verified, and whether this site is bound to it (so their
	 * logins here travel). One call; the Users list shows everyone's.
	 *
	 * @param Ussync_Node $node The network.
	 */
	private static function binding_line( Ussync_Node $node ): void {
		$email = strtolower( (string) wp_get_current_user()->user_email );
		if ( '' === $email ) {
			return;
		}
		$r = $node->user( $email, true );
		if ( 404 === $r['status'] ) {
			$state = 'unknown';
			/* translators: %s: an e-mail address */
			$text = sprintf( __( 'Your address %s is not in the cluster yet: your next login here adds it.', 'ussync' ), $email );
		} elseif ( 200 !== $r['status'] ) {
			return;
		} elseif ( empty( $r['data']['verified'] ) ) {
			$state = 'unverified';
			/* translators: %s: an e-mail address */
			$text = sprintf( __( 'Your address %s is not verified: your logins stay on this site. Verify it under Users → My sessions.', 'ussync' ), $email );
		} elseif ( empty( $r['data']['bound'] ) ) {
			$state = 'not_bound';
			/* translators: %s: an e-mail address */
			$text = sprintf( __( 'This site is not bound to your address %s (it has not proved the mailbox): your logins here stay here. Ask for a code under Users → My sessions, or arrive here from a site where you are logged in.', 'ussync' ), $email );
		} else {
			$state = 'bound';
			/* translators: %s: an e-mail address */
			$text = sprintf( __( 'This site is bound to your address %s: your logins here travel to the other sites.', 'ussync' ), $email );
		}
		printf( '<p data-binding="%s">%s</p>', esc_attr( $state ), esc_html( $text ) );
	}

	/**
	 * "Log out everywhere" in the admin bar (a link to a nonce-checked
	 * POST form on the user's sessions page would need two clicks; the bar
	 * item posts through a small form instead).
	 *
	 * @param WP_Admin_Bar $bar The bar.
	 */
	public static function admin_bar( $bar ): void {
		if ( ! is_user_logged_in() ) {
			return;
		}
		$form = '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline">'
			. '<input type="hidden" name="_wpnonce" value="' . esc_attr( wp_create_nonce( 'ussync_logout_everywhere' ) ) . '">' // no id: the page may hold its own #_wpnonce.
			. '<input type="hidden" name="action" value="ussync_logout_everywhere">'
			. '<button type="submit" id="ussync-bar-logout-everywhere" class="ab-item" style="background:none;border:0;color:inherit;cursor:pointer;padding:0 10px">' . esc_html__( 'Log out everywhere', 'ussync' ) . '</button></form>';
		$bar->add_node(
			array(
				'parent' => 'user-actions',
				'id'     => 'ussync-logout-everywhere',
				'title'  => $form,
				'meta'   => array( 'html' => '' ),
			)
		);
	}

	/**
	 * The text of a notice code.
	 *
	 * @param string $code The code.
	 * @return string '' for an unknown code.
	 */
	public static function notice_text( string $code ): string {
		if ( '' === $code ) {
			return ''; // every page view without a notice: no strings to translate.
		}
		$texts = array(
			'email_not_verified' => __( 'Your login stays on this site: your e-mail address is not verified yet. Verify it under Users → My sessions to be logged in on the other sites too.', 'ussync' ),
			'site_not_bound'     => __( 'Your login stays on this site: this site has not verified your e-mail address yet. Ask for a code under Users → My sessions.', 'ussync' ),
			'unknown_user'       => __( 'You are logged in on another site of this family, but this site only accepts users who registered here. Register or log in here.', 'ussync' ),
			'role'               => __( 'You are logged in on another site of this family, but accounts with your role here must log in on this site.', 'ussync' ),
			'second_factor'      => __( 'You are logged in on another site of this family, but your account here uses a second factor: log in here.', 'ussync' ),
			'other_user'         => __( 'Another account was already logged in here in this browser: it was kept. Log out here first to switch accounts.', 'ussync' ),
			'password_reset'     => __( 'Welcome: your login on another site of this family logged you in here. An account with your e-mail address already existed on this site before it had verified that address, so for your safety its password was reset and its other sessions were ended. To log in here with a password, use "Lost your password?" (we also sent you an e-mail).', 'ussync' ),
			'create_failed'      => __( 'You are logged in on another site of this family, but this site could not add your account. Register here.', 'ussync' ),
		);
		return $texts[ $code ] ?? ( '' !== $code ? __( 'Your login on another site could not be used here. Log in here.', 'ussync' ) : '' );
	}

	/** @var string The notice cookie's code, taken before any output ('' if none). */
	private static string $cookie_code = '';

	/**
	 * The notice cookie's code, deleting the cookie. A page that shows a
	 * notice is marked uncacheable (it is this browser's). Once output has
	 * begun the cookie can no longer be deleted: it is then left for the
	 * next page, which takes it at init.
	 *
	 * @return string
	 */
	private static function cookie_notice(): string {
		$code = isset( $_COOKIE[ Ussync_Handoff::NOTICE_COOKIE ] ) && is_string( $_COOKIE[ Ussync_Handoff::NOTICE_COOKIE ] ) ? sanitize_key( wp_unslash( $_COOKIE[ Ussync_Handoff::NOTICE_COOKIE ] ) ) : '';
		if ( '' === $code || headers_sent() ) {
			return '';
		}
		Ussync_Handoff::clear_cookie( Ussync_Handoff::NOTICE_COOKIE );
		Ussync_Handoff::no_cache();
		return $code;
	}

	/**
	 * init: takes the notice cookie while headers can still be sent (the
	 * notice itself is printed later, in the page's body), so that it is
	 * shown once.
	 */
	public static function early_notice(): void {
		if ( '' === self::$cookie_code ) {
			self::$cookie_code = self::cookie_notice();
		}
	}

	/**
	 * The notice of this browser: a code in a cookie (for a visitor), or
	 * kept with the WordPress session (for a logged-in user). Read once.
	 *
	 * @return string
	 */
	private static function take_notice(): string {
		$code = Ussync_Auth::current_notice();
		if ( '' !== $code ) {
			Ussync_Auth::clear_notice();
			Ussync_Handoff::no_cache();
			return $code;
		}
		$code              = '' !== self::$cookie_code ? self::$cookie_code : self::cookie_notice();
		self::$cookie_code = '';
		return $code;
	}

	/**
	 * Admin notices: this browser's notice, and the node's outage.
	 */
	public static function notices(): void {
		$text = self::notice_text( self::take_notice() );
		if ( '' !== $text ) {
			printf( '<div class="notice notice-warning ussync-notice"><p>%s</p></div>', esc_html( $text ) );
		}
		$screen = get_current_screen();
		if ( $screen && 'users' === $screen->id ) {
			Ussync_Users::done_notice();
		}
	}

	/**
	 * The front end's notice, at the top of the body (themes that call
	 * wp_body_open).
	 */
	public static function front_notice(): void {
		$text = self::notice_text( self::take_notice() );
		if ( '' !== $text ) {
			printf( '<div class="ussync-notice" role="status">%s</div>', esc_html( $text ) );
		}
	}

	/**
	 * The login page's notice.
	 *
	 * @param string $message The login page's message.
	 * @return string
	 */
	public static function login_message( $message ) {
		$text = self::notice_text( self::take_notice() );
		return '' !== $text ? $message . '<p class="message ussync-notice">' . esc_html( $text ) . '</p>' : $message;
	}
}
