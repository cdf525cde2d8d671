package node

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/ussync/ussync/client"
	"github.com/ussync/ussync/crypto"
)

// Reloading the configuration while the node runs (SIGHUP, as Consul and
// Serf do): the keys marked live in Config (`ussync:"live"`, listed by
// EnvVars) take effect at once; the others need a restart, and the node
// says which.
//
// What a reload applies:
//
//   - the keyring, from the configuration's secrets (the change since the
//     last load: see keyring.go), handed to gossip at once;
//   - the configuration's API token (api.token, api.token_file: the file is
//     read again); the tokens made through the API are not affected;
//   - log.level;
//   - the admin password (admin.password_file, read again);
//   - the site's policies: site.on_unknown_user, session.ttl (of new
//     sessions), sync.require_verified (of new logins), sync.bind_ip,
//     sync.ticket_ttl, sync.hop_interval and sync.modes (of the tickets
//     and pages served from then on).
//
// A reload that cannot be applied whole (a file that cannot be read, a
// secret that does not parse, a value Validate refuses) changes nothing and
// is reported as failed, as Consul does; the node runs on with its
// configuration.

// ReloadReport says what a reload did.
type ReloadReport struct {
	// At is when the reload happened.
	At time.Time
	// Applied are the keys whose new value is in effect, in the order of
	// the file; "gossip.secret_file (content)" and the like for a file that
	// names the same path but holds something new.
	Applied []string
	// Restart are the keys whose value differs from the one the node
	// started with and that take effect only at the next start.
	Restart []string
	// Keyring is what the reload did to the keyring.
	Keyring keyringChange
}

// reloads is the node's record of its reloads, for its status.
type reloads struct {
	mu      sync.Mutex
	last    *client.ReloadStatus
	restart []string // keys that differ from the start's and need a restart
}

// Reload applies cfg, the configuration read again (file, environment,
// flags), to the running node: see the rules above. It validates cfg
// (Validate), reads the files it names, and applies everything or nothing.
// It returns what it did; on an error the node is unchanged. Reload is
// safe to call while the node serves, and serializes with itself.
func (n *Node) Reload(cfg Config) (ReloadReport, error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	rep := ReloadReport{At: n.now()}
	if err := n.reload(&cfg, &rep); err != nil {
		rep.Applied = nil
		rep.Restart = n.refuseReloadLocked(rep.At, err)
		return rep, err
	}
	n.reloads.mu.Lock()
	rep.Restart = slices.Clone(n.reloads.restart)
	n.reloads.last = &client.ReloadStatus{At: rep.At.UTC(), Applied: rep.Applied, Restart: rep.Restart}
	n.reloads.mu.Unlock()
	n.log.Info("configuration reloaded", "applied", rep.Applied, "needs_restart", rep.Restart)
	if len(rep.Applied) > 0 {
		n.activity.record("sighup", "config.reload", "")
	}
	return rep, nil
}

// ReloadFailed records a reload that failed before the configuration
// could be handed to Reload (a configuration file that does not parse):
// it is logged and shown in the status like a refused Reload.
func (n *Node) ReloadFailed(err error) {
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	n.refuseReloadLocked(n.now(), err)
}

// refuseReloadLocked logs and records a refused reload; it returns the
// keys still waiting for a restart.
func (n *Node) refuseReloadLocked(at time.Time, err error) []string {
	n.reloads.mu.Lock()
	restart := slices.Clone(n.reloads.restart)
	n.reloads.last = &client.ReloadStatus{At: at.UTC(), Applied: []string{}, Restart: restart, Error: err.Error()}
	n.reloads.mu.Unlock()
	n.log.Error("reload refused: nothing changed", "err", err)
	n.activity.record("sighup", "config.reload_refused", "")
	return restart
}

func (n *Node) now() time.Time {
	if n.Now != nil {
		return n.Now()
	}
	return time.Now()
}

// reloadFiles is what a reload reads from the files a configuration
// names, before it changes anything.
type reloadFiles struct {
	ring     *crypto.Keyring
	token    string
	password crypto.PasswordHash
	level    slog.Level
}

// reload checks everything, then applies.
func (n *Node) reload(cfg *Config, rep *ReloadReport) error {
	if !n.started {
		return errors.New("reload: the node is not running")
	}
	cfg.Dev, cfg.Version = n.cfg.Dev, n.cfg.Version
	if err := cfg.Validate(); err != nil {
		return err
	}
	files, err := readReloadFiles(cfg)
	if err != nil {
		return err
	}
	restart := n.diffConfig(cfg, rep)
	if err := n.applyReload(cfg, files, rep); err != nil {
		return err
	}
	n.current = *cfg
	n.reloads.mu.Lock()
	n.reloads.restart = restart
	n.reloads.mu.Unlock()
	return nil
}

// readReloadFiles reads and parses every file cfg names: a failure
// changes nothing.
func readReloadFiles(cfg *Config) (reloadFiles, error) {
	var f reloadFiles
	secrets, err := cfg.Secrets()
	if err != nil {
		return f, err
	}
	if f.ring, err = crypto.ParseKeyring(secrets); err != nil {
		return f, fmt.Errorf("cluster secret: %w", err)
	}
	if f.token, err = cfg.APIToken(); err != nil {
		return f, err
	}
	if f.password, err = cfg.AdminPassword(); err != nil {
		return f, err
	}
	if err := f.level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return f, fmt.Errorf("log.level: %w", err)
	}
	return f, nil
}

// diffConfig lists in rep.Applied the live keys cfg changes since the last
// reload, and returns the other keys that differ from the start's.
func (n *Node) diffConfig(cfg *Config, rep *ReloadReport) (restart []string) {
	cur := reflect.ValueOf(&n.current).Elem()
	start := reflect.ValueOf(&n.cfg).Elem()
	now := reflect.ValueOf(cfg).Elem()
	for _, v := range envVars {
		was := start
		if v.Live {
			was = cur
		}
		if reflect.DeepEqual(was.FieldByIndex(v.index).Interface(), now.FieldByIndex(v.index).Interface()) {
			continue
		}
		if v.Live {
			rep.Applied = append(rep.Applied, v.Key)
		} else {
			restart = append(restart, v.Key)
		}
	}
	return restart
}

// applyReload hands the live keys' new values to the parts that use them.
func (n *Node) applyReload(cfg *Config, f reloadFiles, rep *ReloadReport) error {
	ch, err := n.keys.reloadConfig(f.ring)
	if err != nil {
		return err
	}
	rep.Keyring = ch
	if !ch.Empty() {
		if err := n.applyKeyring(); err != nil {
			return err
		}
		rep.Applied = appendOnce(rep.Applied, "gossip.secret_file (content)", cfg.Gossip.SecretFile != "" && !slices.Contains(rep.Applied, "gossip.secret_file"))
	}
	n.logKeyringChange(ch, "reload")
	if n.tokens.setConfig(crypto.HashToken(f.token)) {
		rep.Applied = appendOnce(rep.Applied, "api.token_file (content)", cfg.API.TokenFile != "" && !slices.Contains(rep.Applied, "api.token_file"))
	}
	if n.admin != nil {
		if cur := *n.admin.password.Load(); cur.String() != f.password.String() {
			n.admin.setPassword(f.password)
			rep.Applied = appendOnce(rep.Applied, "admin.password_file (content)", !slices.Contains(rep.Applied, "admin.password_file"))
		}
	}
	if n.LogLevel != nil {
		n.LogLevel.Set(f.level)
	}
	n.svc.setPolicy(servicePolicy{TTL: time.Duration(cfg.Session.TTL), RequireVerified: cfg.Sync.RequireVerified})
	n.handoff.setPolicy(handoffPolicy{
		TicketTTL:     time.Duration(cfg.Sync.TicketTTL),
		BindIP:        cfg.Sync.BindIP,
		HopInterval:   time.Duration(cfg.Sync.HopInterval),
		Modes:         cfg.Sync.Modes,
		OnUnknownUser: cfg.Site.OnUnknownUser,
	})
	return nil
}

// appendOnce appends s to list when cond holds.
func appendOnce(list []string, s string, cond bool) []string {
	if cond {
		return append(list, s)
	}
	return list
}

// applyKeyring hands the keyring's gossip keys to memberlist, primary
// first: the keyring changed.
func (n *Node) applyKeyring() error {
	_, keys := n.keyring.GossipKeys()
	if err := n.gossip.UpdateKeys(keys); err != nil {
		return fmt.Errorf("apply keyring: %w", err)
	}
	return nil
}

// logKeyringChange logs what loading the configuration's secrets did to
// the keyring (fingerprints only).
func (n *Node) logKeyringChange(ch keyringChange, when string) {
	if !ch.Empty() {
		n.log.Info("keyring: applied the configuration's change", "when", when,
			"installed", ch.Installed, "used", ch.Used, "removed", ch.Removed)
	}
	if len(ch.Kept) > 0 {
		n.log.Warn("keyring: the configuration no longer holds these secrets, but one is the primary in use; make another primary (`ussync keys use`), then remove it", "kept", ch.Kept)
	}
}

// ReloadStatus is the last reload's outcome, nil before the first.
func (n *Node) reloadStatus() *client.ReloadStatus {
	n.reloads.mu.Lock()
	defer n.reloads.mu.Unlock()
	if n.reloads.last == nil {
		return nil
	}
	st := *n.reloads.last
	return &st
}
