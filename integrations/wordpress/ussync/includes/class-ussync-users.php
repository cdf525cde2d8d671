<?php
/**
 * Users: registration, the verified state (Users list, bulk and row
 * actions, the user's own code form), the e-mail lock, and the sessions
 * screens (every session for administrators, one's own on all sites).
 *
 * @package ussync
 */

defined( 'ABSPATH' ) || exit;

/**
 * Ussync_Users holds the user-facing screens and the e-mail lock.
 */
final class Ussync_Users {

	/** @var bool Set while the plugin itself follows an administrator's rename. */
	public static bool $allow_email_change = false;

	/** @var array Address => the node's user record (or null: unknown), for the Users list of this request. */
	private static array $records = array();

	/**
	 * user_register: a new account of this site is PUT to the cluster. It is
	 * not verified: WordPress's registration does not prove the mailbox
	 * when it creates the account.
	 *
	 * @param int $user_id The new user.
	 */
	public static function registered( $user_id ): void {
		if ( Ussync_Auth::$adopting ) {
			return;
		}
		$user = get_userdata( (int) $user_id );
		if ( ! $user ) {
			return;
		}
		foreach ( Ussync_Settings::nodes() as $node ) {
			$node->put_user(
				strtolower( $user->user_email ),
				array(
					'login'        => $user->user_login,
					'display_name' => $user->display_name,
				)
			);
		}
	}

	/**
	 * The cluster's record of an address on the primary network: the user
	 * array, null when unknown, false when the node did not answer.
	 *
	 * @param string $email Address.
	 * @return array|null|false
	 */
	public static function record( string $email ) {
		$email = strtolower( $email );
		if ( ! array_key_exists( $email, self::$records ) ) {
			$node = Ussync_Settings::primary();
			$r    = null === $node ? array( 'status' => 0 ) : $node->user( $email );
			if ( 200 === $r['status'] ) {
				self::$records[ $email ] = $r['data'];
			} elseif ( 404 === $r['status'] ) {
				self::$records[ $email ] = null;
			} else {
				self::$records[ $email ] = false;
			}
		}
		return self::$records[ $email ];
	}

	/**
	 * The Users list's column.
	 *
	 * @param array $cols Columns.
	 * @return array
	 */
	public static function columns( $cols ) {
		$cols['ussync'] = esc_html__( 'E-mail verified (ussync)', 'ussync' );
		return $cols;
	}

	/**
	 * One cell of the column.
	 *
	 * @param string $out    Output so far.
	 * @param string $column Column name.
	 * @param int    $uid    The row's user.
	 * @return string
	 */
	public static function column( $out, $column, $uid ) {
		if ( 'ussync' !== $column ) {
			return $out;
		}
		$user = get_userdata( (int) $uid );
		if ( ! $user ) {
			return $out;
		}
		return self::state_html( self::record( $user->user_email ) );
	}

	/**
	 * The verified state of a record, as HTML.
	 *
	 * @param array|null|false $rec The record.
	 * @return string
	 */
	private static function state_html( $rec ): string {
		if ( false === $rec ) {
			return '<span class="ussync-state ussync-unreachable">' . esc_html__( 'node unreachable', 'ussync' ) . '</span>';
		}
		if ( null === $rec ) {
			return '<span class="ussync-state ussync-unknown">' . esc_html__( 'not in the cluster', 'ussync' ) . '</span>';
		}
		if ( ! empty( $rec['verified'] ) ) {
			/* translators: %s: how the address was verified: registration, admin or code */
			return '<span class="ussync-state ussync-verified">' . esc_html( sprintf( __( 'verified (%s)', 'ussync' ), (string) $rec['verified_via'] ) ) . '</span>';
		}
		return '<span class="ussync-state ussync-unverified">' . esc_html__( 'not verified', 'ussync' ) . '</span>';
	}

	/**
	 * Row actions: verify or unverify.
	 *
	 * @param array   $actions Actions.
	 * @param WP_User $user    The row's user.
	 * @return array
	 */
	public static function row_actions( $actions, $user ) {
		if ( ! current_user_can( 'edit_users' ) || ! current_user_can( 'edit_user', $user->ID ) ) {
			return $actions;
		}
		$rec = self::record( $user->user_email );
		if ( ! is_array( $rec ) && null !== $rec ) {
			return $actions;
		}
		$verify = ! is_array( $rec ) || empty( $rec['verified'] );
		$url    = wp_nonce_url(
			add_query_arg(
				array(
					'action' => 'ussync_verify',
					'user'   => $user->ID,
					'to'     => $verify ? '1' : '0',
				),
				admin_url( 'admin-post.php' )
			),
			'ussync_verify_' . $user->ID
		);
		$actions['ussync_verify'] = sprintf(
			'<a href="%s" class="ussync-%s">%s</a>',
			esc_url( $url ),
			$verify ? 'verify' : 'unverify',
			$verify ? esc_html__( 'Verify e-mail', 'ussync' ) : esc_html__( 'Unverify e-mail', 'ussync' )
		);
		return $actions;
	}

	/**
	 * Sets a user's verified state on every network: verify (PUT
	 * verified_via admin, creating the user in the cluster if needed) or
	 * unverify (verified false).
	 *
	 * @param WP_User $user   The user.
	 * @param bool    $verify Verify, or unverify.
	 * @return bool Whether every network took it.
	 */
	public static function set_verified( WP_User $user, bool $verify ): bool {
		$ok = true;
		foreach ( Ussync_Settings::nodes() as $node ) {
			$email = strtolower( $user->user_email );
			if ( $verify ) {
				$r = $node->user( $email, true );
				if ( 404 === $r['status'] ) {
					$node->put_user(
						$email,
						array(
							'login'        => $user->user_login,
							'display_name' => $user->display_name,
						)
					);
				}
				$r = $node->put_user( $email, array( 'verified_via' => 'admin' ) );
			} else {
				$r = $node->put_user( $email, array( 'verified' => false ) );
			}
			$ok = $ok && 200 === $r['status'];
		}
		return $ok;
	}

	/**
	 * admin-post.php?action=ussync_verify: a row action.
	 */
	public static function row_verify(): void {
		$uid = isset( $_GET['user'] ) ? absint( $_GET['user'] ) : 0;
		check_admin_referer( 'ussync_verify_' . $uid );
		// edit_user alone lets every user edit themselves: verifying an
		// address as the administrator takes edit_users too.
		if ( ! current_user_can( 'edit_users' ) || ! current_user_can( 'edit_user', $uid ) ) {
			wp_die( esc_html__( 'You may not change this user.', 'ussync' ), 403 );
		}
		$user = get_userdata( $uid );
		if ( ! $user ) {
			wp_die( esc_html__( 'No such user.', 'ussync' ), 404 );
		}
		$ok = self::set_verified( $user, isset( $_GET['to'] ) && '1' === $_GET['to'] );
		wp_safe_redirect( add_query_arg( 'ussync_done', $ok ? 'verified' : 'failed', admin_url( 'users.php' ) ) );
		exit;
	}

	/**
	 * Bulk actions of the Users list.
	 *
	 * @param array $actions Actions.
	 * @return array
	 */
	public static function bulk_actions( $actions ) {
		if ( current_user_can( 'edit_users' ) ) {
			$actions['ussync_verify']   = esc_html__( 'Verify e-mail (ussync)', 'ussync' );
			$actions['ussync_unverify'] = esc_html__( 'Unverify e-mail (ussync)', 'ussync' );
		}
		return $actions;
	}

	/**
	 * Handles a bulk action. WordPress does not check the list's nonce
	 * before a plugin's bulk action on users.php (its default branch only
	 * calls this filter), so it is checked here: without it, a link on any
	 * page an administrator opens would verify an address nobody proved.
	 *
	 * @param string $redirect Where to go next.
	 * @param string $action   The action.
	 * @param int[]  $ids      The users.
	 * @return string
	 */
	public static function handle_bulk( $redirect, $action, $ids ) {
		if ( ! in_array( $action, array( 'ussync_verify', 'ussync_unverify' ), true ) ) {
			return $redirect;
		}
		check_admin_referer( 'bulk-users' );
		if ( ! current_user_can( 'edit_users' ) ) {
			wp_die( esc_html__( 'You may not change users.', 'ussync' ), 403 );
		}
		$ok = true;
		foreach ( array_map( 'absint', (array) $ids ) as $uid ) {
			$user = get_userdata( $uid );
			if ( $user && current_user_can( 'edit_user', $uid ) ) {
				$ok = self::set_verified( $user, 'ussync_verify' === $action ) && $ok;
			}
		}
		// Back to the list, without the action (a reload must not repeat it).
		$redirect = $redirect ? remove_query_arg( array( 'action', 'action2', 'users', '_wpnonce', '_wp_http_referer', 'ussync_done' ), $redirect ) : admin_url( 'users.php' );
		return add_query_arg( 'ussync_done', $ok ? 'verified' : 'failed', $redirect );
	}

	/**
	 * The screens: every session (Users → Sessions, for administrators),
	 * and one's own e-mail and sessions (Users → My sessions / Profile).
	 */
	public static function menus(): void {
		add_users_page( __( 'ussync sessions', 'ussync' ), __( 'Sessions (ussync)', 'ussync' ), 'list_users', 'ussync-sessions', array( __CLASS__, 'sessions_page' ) );
		$parent = current_user_can( 'list_users' ) ? 'users.php' : 'profile.php';
		add_submenu_page( $parent, __( 'My e-mail and sessions', 'ussync' ), __( 'My sessions', 'ussync' ), 'read', 'ussync-me', array( __CLASS__, 'me_page' ) );
	}

	/**
	 * The profile's box: the verified state, where to verify, and "log out
	 * everywhere" (a separate form: the profile is one form already, so
	 * its buttons point to admin-post.php through the form attribute).
	 *
	 * @param WP_User $user The profile's user.
	 */
	public static function profile_box( $user ): void {
		$rec = self::record( $user->user_email );
		echo '<h2>' . esc_html__( 'Sign-in across sites (ussync)', 'ussync' ) . '</h2><table class="form-table" role="presentation"><tr><th>' . esc_html__( 'E-mail', 'ussync' ) . '</th><td>';
		echo self::state_html( $rec ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- built with esc_html.
		echo '<p class="description">' . esc_html__( 'Your e-mail address is your identity on every site of this family: it cannot be changed here. An administrator can move an account to a new address (ussync users rename).', 'ussync' ) . '</p>';
		if ( get_current_user_id() === $user->ID ) {
			printf( '<p><a class="button" id="ussync-me-link" href="%s">%s</a></p>', esc_url( admin_url( ( current_user_can( 'list_users' ) ? 'users.php' : 'profile.php' ) . '?page=ussync-me' ) ), esc_html__( 'Verify my e-mail, see my sessions on all sites', 'ussync' ) );
		}
		echo '</td></tr></table>';
		// The address field cannot be edited (the server refuses a change anyway).
		echo '<script>(function(){var e=document.getElementById("email");if(e){e.readOnly=true;}})();</script>';
	}

	/**
	 * Users → My sessions: verify one's e-mail with a code, see and revoke
	 * one's sessions on every site, log out everywhere.
	 */
	public static function me_page(): void {
		$user = wp_get_current_user();
		$node = Ussync_Settings::primary();
		echo '<div class="wrap"><h1>' . esc_html__( 'My e-mail and sessions', 'ussync' ) . '</h1>';
		self::done_notice();
		if ( null === $node ) {
			echo '<p>' . esc_html__( 'This site is not connected to a ussync node.', 'ussync' ) . '</p></div>';
			return;
		}
		$rec = self::record( $user->user_email );
		echo '<h2>' . esc_html__( 'E-mail', 'ussync' ) . '</h2><p><strong>' . esc_html( $user->user_email ) . '</strong> &mdash; <span id="ussync-state">';
		echo self::state_html( $rec ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- built with esc_html.
		echo '</span></p>';
		if ( is_array( $rec ) && empty( $rec['verified'] ) || null === $rec ) {
			echo '<p>' . esc_html__( 'Until your address is verified, your logins stay on this site. Ask for a code, then type it below.', 'ussync' ) . '</p>';
			echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">';
			wp_nonce_field( 'ussync_code' );
			echo '<input type="hidden" name="action" value="ussync_code"><input type="hidden" name="step" value="send">';
			submit_button( __( 'Send me a code', 'ussync' ), 'secondary', 'ussync-send', false, array( 'id' => 'ussync-send' ) );
			echo '</form><form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="margin-top:1em">';
			wp_nonce_field( 'ussync_code' );
			echo '<input type="hidden" name="action" value="ussync_code"><input type="hidden" name="step" value="verify">';
			echo '<label for="ussync-code">' . esc_html__( 'Code', 'ussync' ) . '</label> <input type="text" name="code" id="ussync-code" inputmode="numeric" autocomplete="one-time-code" size="10" maxlength="20"> ';
			submit_button( __( 'Verify', 'ussync' ), 'primary', 'ussync-verify', false, array( 'id' => 'ussync-verify' ) );
			echo '</form>';
		}

		echo '<h2>' . esc_html__( 'My sessions on all sites', 'ussync' ) . '</h2>';
		$r = $node->user_sessions( strtolower( $user->user_email ), 'all' );
		if ( 200 !== $r['status'] ) {
			echo '<p>' . esc_html__( 'The sessions cannot be shown: this site\'s ussync node is not answering.', 'ussync' ) . '</p>';
		} else {
			self::sessions_table( (array) ( $r['data']['sessions'] ?? array() ), 'own' );
		}
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">';
		wp_nonce_field( 'ussync_logout_everywhere' );
		echo '<input type="hidden" name="action" value="ussync_logout_everywhere">';
		submit_button( __( 'Log out everywhere', 'ussync' ), 'delete', 'ussync-logout-everywhere', false, array( 'id' => 'ussync-logout-everywhere' ) );
		echo '</form></div>';
	}

	/**
	 * A table of sessions with a revoke button for the active ones.
	 *
	 * @param array  $sessions Sessions as the API shows them.
	 * @param string $who      own (the user's own) or admin.
	 */
	private static function sessions_table( array $sessions, string $who ): void {
		$current = Ussync_Auth::current_sids();
		echo '<table class="widefat striped ussync-sessions"><thead><tr>';
		$heads = array( __( 'User', 'ussync' ), __( 'Site', 'ussync' ), __( 'IP', 'ussync' ), __( 'Browser', 'ussync' ), __( 'Started', 'ussync' ), __( 'Ended', 'ussync' ), __( 'Reason', 'ussync' ), '' );
		foreach ( $heads as $h ) {
			echo '<th>' . esc_html( $h ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		if ( ! $sessions ) {
			echo '<tr><td colspan="8">' . esc_html__( 'No session.', 'ussync' ) . '</td></tr>';
		}
		foreach ( $sessions as $s ) {
			$id     = (string) ( $s['id'] ?? '' );
			$active = ! empty( $s['active'] );
			$reason = $active ? __( 'active', 'ussync' ) : (string) ( $s['end_reason'] ?? '' );
			if ( $active && in_array( $id, $current, true ) ) {
				$reason .= ' ' . __( '(this browser)', 'ussync' );
			}
			printf(
				'<tr data-session="%s"><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>',
				esc_attr( $id ),
				esc_html( (string) ( $s['email'] ?? '' ) ),
				esc_html( (string) ( $s['site'] ?? '' ) ),
				esc_html( (string) ( $s['ip'] ?? '' ) ),
				esc_html( wp_html_excerpt( (string) ( $s['user_agent'] ?? '' ), 60, '…' ) ),
				esc_html( self::when( $s['created_at'] ?? null ) ),
				esc_html( self::when( $s['ended_at'] ?? null ) ),
				esc_html( $reason )
			);
			if ( $active && Ussync_Util::valid_session_id( $id ) ) {
				echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">';
				wp_nonce_field( 'ussync_revoke_' . $id );
				echo '<input type="hidden" name="action" value="ussync_revoke"><input type="hidden" name="who" value="' . esc_attr( $who ) . '"><input type="hidden" name="session" value="' . esc_attr( $id ) . '">';
				echo '<button type="submit" class="button button-small ussync-revoke">' . esc_html__( 'Revoke', 'ussync' ) . '</button></form>';
			}
			echo '</td></tr>';
		}
		echo '</tbody></table>';
	}

	/**
	 * A time for people, in the site's zone.
	 *
	 * @param string|null $t RFC 3339 time.
	 * @return string
	 */
	private static function when( $t ): string {
		$ts = Ussync_Util::unix( is_string( $t ) ? $t : null );
		return $ts ? wp_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), $ts ) : '';
	}

	/**
	 * admin-post.php?action=ussync_code: send a code, or check one.
	 */
	public static function code_action(): void {
		check_admin_referer( 'ussync_code' );
		$user = wp_get_current_user();
		$node = Ussync_Settings::primary();
		$back = wp_get_referer() ? wp_get_referer() : admin_url( 'profile.php?page=ussync-me' );
		if ( ! $user->exists() || null === $node ) {
			wp_safe_redirect( $back );
			exit;
		}
		$email = strtolower( $user->user_email );
		$step  = isset( $_POST['step'] ) ? sanitize_key( wp_unslash( $_POST['step'] ) ) : '';
		if ( 'send' === $step ) {
			if ( null === self::record( $email ) ) {
				$node->put_user(
					$email,
					array(
						'login'        => $user->user_login,
						'display_name' => $user->display_name,
					)
				);
			}
			$r    = $node->send_code( $email );
			$done = 202 === $r['status'] ? 'sent' : ( 429 === $r['status'] ? 'rate_limited' : 'send_failed' );
		} else {
			$code = isset( $_POST['code'] ) ? sanitize_text_field( wp_unslash( $_POST['code'] ) ) : '';
			$r    = $node->verify_code( $email, $code );
			$done = 200 === $r['status'] ? 'code_ok' : ( 'code_locked' === $r['code'] ? 'code_locked' : 'code_wrong' );
			if ( 200 === $r['status'] ) {
				// The other networks learn it from an administrator's verify of this site.
				foreach ( array_slice( Ussync_Settings::nodes(), 1 ) as $other ) {
					$other->put_user( $email, array( 'verified_via' => 'admin' ) );
				}
			}
		}
		wp_safe_redirect( add_query_arg( 'ussync_done', $done, remove_query_arg( 'ussync_done', $back ) ) );
		exit;
	}

	/**
	 * admin-post.php?action=ussync_revoke: end one session. A user may end
	 * their own; an administrator (edit_users) any.
	 */
	public static function revoke_action(): void {
		$id = isset( $_POST['session'] ) ? sanitize_key( wp_unslash( $_POST['session'] ) ) : '';
		check_admin_referer( 'ussync_revoke_' . $id );
		$node = Ussync_Settings::primary();
		$back = wp_get_referer() ? wp_get_referer() : admin_url();
		if ( null === $node || ! Ussync_Util::valid_session_id( $id ) ) {
			wp_safe_redirect( $back );
			exit;
		}
		$admin = isset( $_POST['who'] ) && 'admin' === $_POST['who'] && current_user_can( 'edit_users' );
		if ( $admin ) {
			$r = $node->revoke( $id );
		} else {
			$user = wp_get_current_user();
			$own  = $node->user_sessions( strtolower( $user->user_email ), 'active' );
			$mine = in_array( $id, array_column( (array) ( $own['data']['sessions'] ?? array() ), 'id' ), true );
			if ( ! $mine ) {
				wp_die( esc_html__( 'That session is not yours.', 'ussync' ), 403 );
			}
			$r = $node->call( 'DELETE', '/v1/sessions/' . $id, null, Ussync_Node::CHECK_TIMEOUT, true );
		}
		wp_safe_redirect( add_query_arg( 'ussync_done', 200 === $r['status'] ? 'revoked' : 'failed', remove_query_arg( 'ussync_done', $back ) ) );
		exit;
	}

	/**
	 * admin-post.php?action=ussync_user_logout_everywhere: an administrator
	 * logs a user out on every site.
	 */
	public static function admin_logout_everywhere(): void {
		$email = isset( $_POST['email'] ) ? sanitize_email( wp_unslash( $_POST['email'] ) ) : '';
		check_admin_referer( 'ussync_user_logout_everywhere' );
		if ( ! current_user_can( 'edit_users' ) ) {
			wp_die( esc_html__( 'You may not do this.', 'ussync' ), 403 );
		}
		$ok   = true;
		$back = wp_get_referer() ? wp_get_referer() : admin_url( 'users.php?page=ussync-sessions' );
		foreach ( Ussync_Settings::nodes() as $node ) {
			$r  = $node->logout_everywhere( strtolower( $email ) );
			$ok = $ok && 200 === $r['status'];
		}
		$user = get_user_by( 'email', $email );
		if ( $user ) {
			WP_Session_Tokens::get_instance( $user->ID )->destroy_all();
		}
		wp_safe_redirect( add_query_arg( 'ussync_done', $ok ? 'everywhere' : 'failed', remove_query_arg( 'ussync_done', $back ) ) );
		exit;
	}

	/**
	 * The notice of the last action (a code in the query, never free text).
	 */
	public static function done_notice(): void {
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- a display-only code from the list below.
		$done = isset( $_GET['ussync_done'] ) ? sanitize_key( wp_unslash( $_GET['ussync_done'] ) ) : '';
		$msgs = array(
			'verified'     => array( 'success', __( 'The verified state was changed on every site.', 'ussync' ) ),
			'sent'         => array( 'success', __( 'If the address can receive mail, a code is on its way. It is valid for a few minutes.', 'ussync' ) ),
			'rate_limited' => array( 'warning', __( 'A code was sent a moment ago. Wait a minute before asking for another.', 'ussync' ) ),
			'send_failed'  => array( 'error', __( 'The code could not be sent. Try again later.', 'ussync' ) ),
			'code_ok'      => array( 'success', __( 'Your e-mail is verified. Your next login reaches every site.', 'ussync' ) ),
			'code_wrong'   => array( 'error', __( 'That code is not right, or it expired. Check it, or ask for a new one.', 'ussync' ) ),
			'code_locked'  => array( 'error', __( 'Too many wrong codes. Ask for a new one.', 'ussync' ) ),
			'revoked'      => array( 'success', __( 'The session was ended on every site.', 'ussync' ) ),
			'everywhere'   => array( 'success', __( 'The user was logged out on every site.', 'ussync' ) ),
			'failed'       => array( 'error', __( 'The ussync node did not take the change. Check its status under Settings → ussync.', 'ussync' ) ),
		);
		if ( isset( $msgs[ $done ] ) ) {
			printf( '<div class="notice notice-%s ussync-done" data-done="%s"><p>%s</p></div>', esc_attr( $msgs[ $done ][0] ), esc_attr( $done ), esc_html( $msgs[ $done ][1] ) );
		}
	}

	/**
	 * Users → Sessions (ussync): every session of the cluster, filtered
	 * and paged as the node does (docs/users.md), with revoke and "log this
	 * user out everywhere".
	 */
	public static function sessions_page(): void {
		if ( ! current_user_can( 'list_users' ) ) {
			wp_die( esc_html__( 'You may not see this page.', 'ussync' ), 403 );
		}
		// phpcs:disable WordPress.Security.NonceVerification.Recommended -- a read-only filter form.
		$email = isset( $_GET['email'] ) ? sanitize_email( wp_unslash( $_GET['email'] ) ) : '';
		$site  = isset( $_GET['site'] ) ? sanitize_text_field( wp_unslash( $_GET['site'] ) ) : '';
		$state = isset( $_GET['state'] ) && 'active' === $_GET['state'] ? 'active' : 'all';
		$after = isset( $_GET['after'] ) ? sanitize_text_field( wp_unslash( $_GET['after'] ) ) : '';
		// phpcs:enable
		echo '<div class="wrap"><h1>' . esc_html__( 'Sessions on every site (ussync)', 'ussync' ) . '</h1>';
		self::done_notice();
		$node = Ussync_Settings::primary();
		if ( null === $node ) {
			echo '<p>' . esc_html__( 'This site is not connected to a ussync node.', 'ussync' ) . '</p></div>';
			return;
		}
		echo '<form method="get"><input type="hidden" name="page" value="ussync-sessions">';
		printf( '<label>%s <input type="email" name="email" value="%s"></label> ', esc_html__( 'E-mail', 'ussync' ), esc_attr( $email ) );
		printf( '<label>%s <input type="text" name="site" value="%s" size="12"></label> ', esc_html__( 'Site (node name)', 'ussync' ), esc_attr( $site ) );
		printf( '<label><input type="checkbox" name="state" value="active" %s> %s</label> ', checked( 'active', $state, false ), esc_html__( 'Active only', 'ussync' ) );
		submit_button( __( 'Filter', 'ussync' ), 'secondary', '', false );
		echo '</form>';
		$r = $node->sessions(
			array(
				'email' => $email,
				'site'  => $site,
				'state' => $state,
				'after' => $after,
				'limit' => 50,
			)
		);
		if ( 200 !== $r['status'] ) {
			/* translators: %s: the node's error code */
			echo '<p>' . esc_html( sprintf( __( 'The sessions cannot be shown (%s).', 'ussync' ), $r['code'] ) ) . '</p></div>';
			return;
		}
		self::sessions_table( (array) ( $r['data']['sessions'] ?? array() ), 'admin' );
		$next = (string) ( $r['data']['next'] ?? '' );
		if ( '' !== $next ) {
			printf( '<p><a class="button" href="%s">%s</a></p>', esc_url( add_query_arg( 'after', rawurlencode( $next ) ) ), esc_html__( 'Next page', 'ussync' ) );
		}
		if ( '' !== $email && current_user_can( 'edit_users' ) ) {
			echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">';
			wp_nonce_field( 'ussync_user_logout_everywhere' );
			echo '<input type="hidden" name="action" value="ussync_user_logout_everywhere"><input type="hidden" name="email" value="' . esc_attr( $email ) . '">';
			/* translators: %s: an e-mail address */
			submit_button( sprintf( __( 'Log %s out everywhere', 'ussync' ), $email ), 'delete', 'ussync-user-logout-everywhere', false );
			echo '</form>';
		}
		echo '</div>';
	}

	/**
	 * Core's profile form mails a confirmation to a new address, whose link
	 * changes it later: not with the lock.
	 */
	public static function no_email_confirmation(): void {
		remove_action( 'personal_options_update', 'send_confirmation_on_profile_email' );
	}

	/**
	 * The message every refused change of address gives.
	 *
	 * @return string
	 */
	private static function locked_message(): string {
		return __( 'Your e-mail address is your identity on every site of this family and cannot be changed here. Ask an administrator to move your account to a new address.', 'ussync' );
	}

	/**
	 * user_profile_update_errors: the profile form (one's own, or an
	 * administrator's edit of another user) cannot change an address.
	 *
	 * @param WP_Error $errors Errors.
	 * @param bool     $update Whether this is an update.
	 * @param stdClass $user   The posted user.
	 */
	public static function profile_errors( $errors, $update, $user ): void {
		if ( ! $update || empty( $user->ID ) || ! isset( $user->user_email ) ) {
			return;
		}
		$old = get_userdata( (int) $user->ID );
		if ( $old && strtolower( $old->user_email ) !== strtolower( (string) $user->user_email ) ) {
			$errors->add( 'ussync_email_locked', self::locked_message(), array( 'form-field' => 'email' ) );
		}
	}

	/**
	 * wp_pre_insert_user_data: whatever path updates a user (core's
	 * confirmation link, WooCommerce, REST, a plugin), the address stays.
	 *
	 * @param array $data    The row to write.
	 * @param bool  $update  Whether this is an update.
	 * @param int   $user_id The user (null on insert).
	 * @return array
	 */
	public static function keep_email( $data, $update, $user_id ) {
		if ( ! $update || self::$allow_email_change || ! $user_id ) {
			return $data;
		}
		$old = get_userdata( (int) $user_id );
		if ( $old && isset( $data['user_email'] ) && strtolower( $old->user_email ) !== strtolower( (string) $data['user_email'] ) ) {
			$data['user_email'] = $old->user_email;
			delete_user_meta( (int) $user_id, '_new_email' );
		}
		return $data;
	}

	/**
	 * rest_request_before_callbacks: a REST update of a user (users/me,
	 * users/{id}) that changes the address answers 400 before core runs it.
	 * (rest_pre_insert_user cannot refuse: core's update_item does not
	 * check its result for an error.)
	 *
	 * @param WP_REST_Response|WP_Error|mixed $response Earlier result.
	 * @param array                           $handler  The route's handler.
	 * @param WP_REST_Request                 $request  The request.
	 * @return WP_REST_Response|WP_Error|mixed
	 */
	public static function rest_email( $response, $handler, $request ) {
		if ( is_wp_error( $response ) || ! $request instanceof WP_REST_Request || 'GET' === $request->get_method() ) {
			return $response;
		}
		if ( ! preg_match( '#\A/wp/v2/users/(me|\d+)\z#', $request->get_route(), $m ) || ! is_string( $request['email'] ) ) {
			return $response;
		}
		$user = get_userdata( 'me' === $m[1] ? get_current_user_id() : (int) $m[1] );
		if ( $user && strtolower( $user->user_email ) !== strtolower( $request['email'] ) ) {
			return new WP_Error( 'ussync_email_locked', self::locked_message(), array( 'status' => 400 ) );
		}
		return $response;
	}

	/**
	 * WooCommerce's account details form.
	 *
	 * @param WP_Error $errors Errors.
	 * @param stdClass $user   The posted user.
	 */
	public static function woo_email( $errors, $user ): void {
		self::profile_errors( $errors, true, $user );
	}
}
